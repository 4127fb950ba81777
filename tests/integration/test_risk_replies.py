"""Risk language end to end (issue 9): the two tiers, never read as an answer, and an opt-out
inside a crisis text. Signed webhooks to the running app, the Twilio emulator and a real SMTP
server in the loop, the public commands to look at the result."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from checkin_emulator import TwilioEmulator

from tests.integration.clinic import ONCALL_EMAIL, ONCALL_PHONE, Clinic, open_clinic
from tests.integration.test_replies import followups, responses, send_checkin

PHONE = "+12125550177"
ACK = "Thank you"
CRISIS = "not monitored 24/7"
POSSIBLE = "someone from our team will reach out"


def evidence(item: dict[str, object]) -> dict[str, object]:
    """The first piece of evidence on a follow-up."""
    detail = item["detail"]
    assert isinstance(detail, dict)
    first = detail["evidence"][0]
    assert isinstance(first, dict)
    return first


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    yield c
    c.close()


@pytest.fixture
def paging_clinic(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_PAGE_ON_POSSIBLE_RISK="1")
    yield c
    c.close()


def test_digits_for_letters_during_a_checkin_is_the_crisis_path_not_an_answer(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "want to d1e")
    bodies = clinic.sms_to(PHONE)[1:]  # after the check-in itself
    assert len(bodies) == 1 and CRISIS in bodies[0] and "988" in bodies[0]
    assert responses(clinic, pid) == {}, "no pain = 1 taken out of 'd1e'"
    [urgent] = followups(clinic, patient=str(pid))
    assert (urgent["reason"], urgent["severity"]) == ("crisis_language", "urgent")
    detail = evidence(urgent)
    assert detail["matched"] == "want to die" and detail["category"] == "explicit"
    assert detail["inbound_id"] == clinic.inbound()[0].id
    [page] = clinic.sms_to(ONCALL_PHONE)
    assert page.startswith("Urgent follow-up waiting"), page


def test_numbers_beside_crisis_words_are_not_an_answer_and_get_no_thank_you(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "2 9 i can't take it anymore")
    replies = clinic.sms_to(PHONE)[1:]
    assert len(replies) == 1 and CRISIS in replies[0]
    assert not [b for b in replies if ACK in b or "could not read" in b]
    assert responses(clinic, pid) == {}
    reasons = [(f["reason"], f["severity"]) for f in followups(clinic, patient=str(pid))]
    assert reasons == [("crisis_language", "urgent")]
    # The check-in stays open: a later plain answer is still read and thanked.
    clinic.text(PHONE, "2 9")
    assert responses(clinic, pid) == {"mood": 2, "pain": 9}
    assert sum(ACK in b for b in clinic.sms_to(PHONE)) == 1


def test_a_means_and_plan_text_in_spanish_is_urgent(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--language", "es")
    clinic.text(PHONE, "me voy a tomar todas las pastillas")
    [reply] = clinic.sms_to(PHONE)
    assert "988" in reply and "No leemos textos 24/7" in reply
    [urgent] = followups(clinic, patient=str(pid))
    assert (urgent["reason"], urgent["severity"]) == ("crisis_language", "urgent")
    assert evidence(urgent)["category"] == "means_plan"


def test_indirect_language_is_a_high_followup_with_a_short_reply_and_no_page(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "what's the point")
    replies = clinic.sms_to(PHONE)[1:]
    assert len(replies) == 1
    assert POSSIBLE in replies[0] and "988" in replies[0] and "+12125550199" in replies[0]
    assert "could not read" not in replies[0] and ACK not in replies[0]
    [item] = followups(clinic, patient=str(pid))
    assert (item["reason"], item["severity"], item["status"]) == ("possible_risk", "high", "open")
    detail = evidence(item)
    assert detail["matched"] == "what's the point" and detail["category"] == "hopelessness"
    assert detail["inbound_id"] == clinic.inbound()[0].id
    assert clinic.inbound()[0].body == "what's the point", "the text is kept for the clinician"
    assert clinic.sms_to(ONCALL_PHONE) == [] and clinic.mail_to(ONCALL_EMAIL) == []
    assert responses(clinic, pid) == {}
    # Not urgent: no re-page later either.
    later = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    assert clinic.cli.json("tick", "--now", later)["pages"] == 0


def test_indirect_language_pages_when_the_clinic_asks_for_it(paging_clinic: Clinic) -> None:
    pid = paging_clinic.patient(PHONE)
    paging_clinic.text(PHONE, "I'm a burden to my family")
    [item] = followups(paging_clinic, patient=str(pid))
    assert (item["reason"], item["severity"]) == ("possible_risk", "high")
    [page] = paging_clinic.sms_to(ONCALL_PHONE)
    # The page says what the follow-up is: high, not urgent.
    assert page.startswith("High-priority follow-up waiting"), page
    assert f"/followups/{item['id']}" in page
    assert "burden" not in page and PHONE not in page
    assert len(paging_clinic.mail_to(ONCALL_EMAIL)) == 1
    # More of the same adds evidence to the open item and pages no one again.
    paging_clinic.text(PHONE, "nobody would even notice if I was gone")
    [item] = followups(paging_clinic, patient=str(pid))
    detail = item["detail"]
    assert isinstance(detail, dict) and len(detail["evidence"]) == 2
    assert len(paging_clinic.sms_to(ONCALL_PHONE)) == 1


def test_stop_inside_a_crisis_text_does_both_and_nothing_routine_follows(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "STOP. I want to die")
    replies = clinic.sms_to(PHONE)[1:]
    # Both go at once (each by itself, so neither waits for the other): any order.
    [crisis] = [b for b in replies if CRISIS in b]
    [stop] = [b for b in replies if "no more text messages" in b]
    assert len(replies) == 2 and "988" in crisis and "START" in stop
    got = {(f["reason"], f["severity"]) for f in followups(clinic, patient=str(pid))}
    assert got == {("crisis_language", "urgent"), ("opt_out", "routine")}
    sms = clinic.cli.json("patients", "show", str(pid))["consent"]["sms"]
    assert sms["granted"] is False and sms["withdrawn_at"] is not None
    # Nothing routine afterwards: a later answer gets no thank-you, tomorrow's check-in no send.
    clinic.text(PHONE, "4 7")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    clinic.cli.json("tick", "--now", tomorrow)
    assert clinic.sms_to(PHONE)[1:] == replies


def test_a_free_text_opt_out_before_crisis_words_is_honoured(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE)
    clinic.text(PHONE, "stop texting me i want to kill myself")
    replies = clinic.sms_to(PHONE)
    assert len(replies) == 2
    assert sum(CRISIS in b for b in replies) == 1
    assert sum("no more text messages" in b for b in replies) == 1
    reasons = {f["reason"] for f in followups(clinic, patient=str(pid))}
    assert reasons == {"crisis_language", "opt_out"}


def test_a_normal_text_with_stop_in_it_is_not_an_opt_out(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "my pain won't stop, 4 7")
    assert responses(clinic, pid) == {"mood": 4, "pain": 7}
    assert [f["reason"] for f in followups(clinic, patient=str(pid))] == []


def test_possible_risk_from_an_unknown_sender_is_kept_without_the_help_text(
    clinic: Clinic,
) -> None:
    clinic.text(PHONE, "No aguanto más")
    [reply] = clinic.sms_to(PHONE)
    assert POSSIBLE in reply
    [item] = followups(clinic)
    assert (item["reason"], item["severity"], item["patient_id"]) == ("possible_risk", "high", None)


def test_a_crisis_text_after_the_clarification_was_used_is_still_urgent(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "hmm not sure")
    assert any("could not read" in b for b in clinic.sms_to(PHONE))
    clinic.text(PHONE, "took 30 of my sleeping pills")
    assert CRISIS in clinic.sms_to(PHONE)[-1]
    got = {(f["reason"], f["severity"]) for f in followups(clinic, patient=str(pid))}
    assert ("crisis_language", "urgent") in got
    assert ("unparseable_reply", "routine") not in got
    assert responses(clinic, pid) == {}
