"""Replies end to end: signed webhooks to the running app, the emulator in the loop, the public
commands to look at the result."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.integration.clinic import ONCALL_EMAIL, ONCALL_PHONE, Clinic, open_clinic
from worker.store.db import session_scope
from worker.store.models import Message

PHONE = "+12125550111"


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    yield c
    c.close()


def send_checkin(clinic: Clinic, pid: int, instrument: str, tz: str = "America/New_York") -> None:
    """Give the patient a check-in two minutes from now and send it through `checkin tick`."""
    at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    local = at.astimezone(ZoneInfo(tz))
    rule = f"FREQ=WEEKLY;BYHOUR={local.hour};BYMINUTE={local.minute}"
    clinic.cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        instrument,
        "--rrule",
        rule,
        "--start",
        local.date().isoformat(),
        "--until",
        local.date().isoformat(),
    )
    assert clinic.cli.json("tick", "--now", at.isoformat())["sent"] >= 1


def responses(clinic: Clinic, pid: int) -> dict[str, int]:
    return {
        r["item"]: r["value"] for r in clinic.cli.json("responses", "list", "--patient", str(pid))
    }


def followups(clinic: Clinic, **filters: str) -> list[dict[str, object]]:
    args = [x for k, v in filters.items() for x in (f"--{k}", v)]
    return list(clinic.cli.json("followups", "list", *args))


@pytest.mark.parametrize(
    "reply",
    [
        "4 7",
        "4,7",
        "4/7",
        "mood 4 pain 7",
        "pain 7 mood 4",
        "m4 p7",
        "4 and 7",
        "Mood 4, pain 7 😩 long day",
        "mood: 4 / pain: 7/10",
    ],
)
def test_a_mood_and_pain_reply_is_read_in_every_common_form(clinic: Clinic, reply: str) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    assert clinic.text(PHONE, reply).status_code == 200
    assert responses(clinic, pid) == {"mood": 4, "pain": 7}
    acks = [b for b in clinic.sms_to(PHONE) if "Thank you" in b]
    assert len(acks) == 1 and "4" not in acks[0] and "7" not in acks[0].replace("Riverside", "")


def test_a_single_item_answer_may_be_a_word(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "pain")
    clinic.text(PHONE, "seven")
    assert responses(clinic, pid) == {"pain": 7}


def test_an_out_of_range_reply_gets_one_clarification_then_a_followup(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "mood 14 pain 7")
    clinic.text(PHONE, "fourteen!!")
    clarifications = [b for b in clinic.sms_to(PHONE) if "could not read" in b]
    assert len(clarifications) == 1
    assert [f["reason"] for f in followups(clinic, patient=str(pid))] == ["unparseable_reply"]
    bodies = [i.body for i in clinic.inbound()]
    assert bodies == ["mood 14 pain 7", "fourteen!!"], "the text is kept for the clinician"


def test_a_partial_answer_is_stored_as_partial_and_completed_later(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "mood 5")
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert [(r["item"], r["value"], r["partial"]) for r in rows] == [("mood", 5, True)]
    clinic.text(PHONE, "pain 3")
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert sorted((r["item"], r["value"], r["partial"]) for r in rows) == [
        ("mood", 5, False),
        ("pain", 3, False),
    ]


def test_stop_sends_one_confirmation_and_nothing_else_ever_after(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    tz = ZoneInfo("America/New_York")
    start = (datetime.now(tz) + timedelta(days=1)).date()
    clinic.cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        "--start",
        start.isoformat(),
    )
    nine = datetime(start.year, start.month, start.day, 9, tzinfo=tz)
    clinic.cli.json("tick", "--now", (nine - timedelta(hours=1)).isoformat())  # planned
    clinic.text(PHONE, "Stop.")
    clinic.text(PHONE, "STOP")  # a second STOP: no second confirmation
    for day in range(3):
        clinic.cli.json("tick", "--now", (nine + timedelta(days=day)).isoformat())
    sent = clinic.sms_to(PHONE)
    assert len(sent) == 1 and "no more text messages" in sent[0] and "START" in sent[0]
    assert sent[0].startswith("Riverside Pain & Wellness: You are unsubscribed.")
    # The month's STOP notice never rides on the confirmation of a STOP.
    assert "opt out" not in sent[0], sent[0]
    assert [f["reason"] for f in followups(clinic, patient=str(pid))] == ["opt_out"]
    rows = [
        m
        for m in clinic.cli.json("messages", "list", "--patient", str(pid))
        if m["kind"] == "checkin"
    ]
    last_tick = (nine + timedelta(days=2)).astimezone(UTC)
    came_due = [m for m in rows if datetime.fromisoformat(m["due_at"]) <= last_tick]
    assert len(came_due) == 3 and {m["status"] for m in came_due} == {"suppressed"}


def test_stop_also_stops_a_message_already_queued(clinic: Clinic) -> None:
    """A message claimed by the dispatcher before the STOP arrived is suppressed at send time."""
    from worker.services.outbound.dispatch import claim_due
    from worker.services.outbound.send import send_one

    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    tz = ZoneInfo("America/New_York")
    start = (datetime.now(tz) + timedelta(days=1)).date()
    clinic.cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        "--start",
        start.isoformat(),
    )
    nine = datetime(start.year, start.month, start.day, 9, tzinfo=tz).astimezone(UTC)
    clinic.cli.json("tick", "--now", (nine - timedelta(hours=1)).isoformat())
    [(mid, _queue)] = claim_due(clinic.rt, nine, 10)  # in the broker now
    clinic.text(PHONE, "stop texting me")
    assert send_one(clinic.rt, mid, nine) == "suppressed"
    assert len(clinic.sms_to(PHONE)) == 1


def test_a_hurried_stpo_opts_out_like_stop(clinic: Clinic) -> None:
    """Found by texting the running system as a patient typing fast: "stpo" was stored, joined
    an open follow-up and nothing else happened. It is an opt-out: one confirmation, consent
    withdrawn, an opt_out follow-up for staff."""
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    clinic.text(PHONE, "stpo!!")
    sent = clinic.sms_to(PHONE)
    assert len(sent) == 1 and "You are unsubscribed." in sent[0], sent
    assert [f["reason"] for f in followups(clinic, patient=str(pid))] == ["opt_out"]
    clinic.text(PHONE, "hi?")  # nothing is sent after an opt-out
    assert len(clinic.sms_to(PHONE)) == 1


def test_start_resumes_after_stop(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    clinic.text(PHONE, "STOP")
    clinic.text(PHONE, "START")
    shown = clinic.cli.json("patients", "show", str(pid))
    assert shown["consent"]["sms"]["granted"] is True
    send_checkin(clinic, pid, "mood")
    assert len(clinic.sms_to(PHONE)) == 3  # stop confirmation, start confirmation, check-in


def test_help_answers_with_the_clinic_and_988(clinic: Clinic) -> None:
    clinic.patient(PHONE)
    clinic.text(PHONE, "help")
    [reply] = clinic.sms_to(PHONE)
    assert "Riverside Pain & Wellness" in reply and "988" in reply and "STOP" in reply
    assert "Reply STOP to opt out." in reply and "Emergency? Call/text 988 or 911." in reply


def test_an_unknown_sender_gets_help_at_most_once_a_day_and_nothing_is_attached(
    clinic: Clinic,
) -> None:
    stranger = "+12125550777"
    clinic.text(stranger, "hi who is this")
    clinic.text(stranger, "hello?")
    assert len(clinic.sms_to(stranger)) == 1
    assert all(i.patient_id is None for i in clinic.inbound())
    assert followups(clinic) == []


def etc_zone_at(hour: int, minute: int) -> tuple[str, datetime]:
    """A zone where the local time is now hh:mm-ish (Etc/GMT zones cover every whole hour)."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        zone = f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "Etc/GMT"
        local = now.astimezone(ZoneInfo(zone))
        if local.hour == hour:
            return zone, local
    raise AssertionError("no zone found")


def test_a_crisis_text_at_night_gets_the_crisis_reply_and_a_page_within_seconds(
    clinic: Clinic,
) -> None:
    zone, local = etc_zone_at(23, 30)
    assert not 8 <= local.hour < 21, "the default window 08:00-21:00: it is quiet hours there"
    pid = clinic.patient(PHONE, tz=zone)
    started = time.monotonic()
    clinic.text(PHONE, "I want to end my life")
    elapsed = time.monotonic() - started
    [reply] = clinic.sms_to(PHONE)
    assert (
        "988" in reply and "911" in reply and "+12125550199" in reply and "not monitored" in reply
    )
    [page] = clinic.sms_to(ONCALL_PHONE)
    assert page.startswith("Urgent follow-up waiting") and "/followups/" in page
    assert "Pat" not in page and PHONE not in page and "life" not in page
    [mail] = clinic.mail_to(ONCALL_EMAIL)
    assert b"/followups/" in mail and b"Pat Doe" not in mail and PHONE.encode() not in mail
    print(f"\ncrisis reply and page accepted by the provider {elapsed:.2f}s after the text")
    [urgent] = followups(clinic, status="open")
    assert (urgent["reason"], urgent["severity"], urgent["patient_id"]) == (
        "crisis_language",
        "urgent",
        pid,
    )

    # Re-paged every 15 minutes until acknowledged.
    now = datetime.now(UTC)
    assert clinic.cli.json("tick", "--now", (now + timedelta(minutes=10)).isoformat())["pages"] == 0
    assert clinic.cli.json("tick", "--now", (now + timedelta(minutes=16)).isoformat())["pages"] == 2
    assert len(clinic.sms_to(ONCALL_PHONE)) == 2
    clinic.cli.json("followups", "ack", str(urgent["id"]), "--by", "Dr. Lee")
    assert clinic.cli.json("tick", "--now", (now + timedelta(minutes=40)).isoformat())["pages"] == 0
    assert len(clinic.sms_to(ONCALL_PHONE)) == 2
    assert "--note" in clinic.cli.fails(
        "followups", "resolve", str(urgent["id"]), "--by", "Dr. Lee"
    )
    done = clinic.cli.json(
        "followups",
        "resolve",
        str(urgent["id"]),
        "--by",
        "Dr. Lee",
        "--note",
        "Called patient; safety plan reviewed.",
    )
    assert done["status"] == "resolved" and done["resolution_note"].startswith("Called")


def test_repaging_goes_on_after_four_until_someone_acknowledges(clinic: Clinic) -> None:
    # No backup and no admin configured: the on-call is the last rung of the ladder, so it is
    # re-paged past CHECKIN_REPAGE_COUNT (escalation ends only when a human acknowledges).
    clinic.patient(PHONE)
    clinic.text(PHONE, "I can't go on")
    now = datetime.now(UTC)
    pages = [
        clinic.cli.json("tick", "--now", (now + timedelta(minutes=16 * n)).isoformat())["pages"]
        for n in range(1, 8)
    ]
    assert pages == [2] * 7  # each by SMS and email
    assert len(clinic.sms_to(ONCALL_PHONE)) == 8
    [urgent] = followups(clinic, status="open")
    clinic.cli.json("followups", "ack", str(urgent["id"]), "--by", "Dr. Lee")
    later = (now + timedelta(minutes=16 * 9)).isoformat()
    assert clinic.cli.json("tick", "--now", later)["pages"] == 0


def test_crisis_and_stop_in_one_message_get_the_crisis_reply_then_the_opt_out(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE)
    clinic.text(PHONE, "stop. I want to kill myself")
    bodies = clinic.sms_to(PHONE)
    assert any("988" in b for b in bodies)
    reasons = {f["reason"] for f in followups(clinic, patient=str(pid))}
    assert "crisis_language" in reasons


def test_phq9_item9_positive_with_a_low_total_is_urgent_and_stops_the_questionnaire(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00", "--questionnaire-mode", "sms")
    send_checkin(clinic, pid, "phq9")
    for answer in ["1", "1", "1", "1", "1", "0", "0", "0", "1"]:  # total 6, item 9 = 1
        clinic.text(PHONE, answer)
    prompts = [b for b in clinic.sms_to(PHONE) if "9/9" in b or "988" in b]
    assert any("988" in b for b in prompts)
    urgent = [f for f in followups(clinic, patient=str(pid)) if f["severity"] == "urgent"]
    assert [f["reason"] for f in urgent] == ["phq9_item9"]
    assert len(clinic.sms_to(ONCALL_PHONE)) == 1
    assert responses(clinic, pid)["phq9_9"] == 1


def test_severe_pain_raises_a_high_followup(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "pain")
    clinic.text(PHONE, "9")
    [f] = followups(clinic, patient=str(pid))
    assert (f["reason"], f["severity"]) == ("high_pain", "high")


def test_three_missed_checkins_raise_a_routine_followup(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    tz = ZoneInfo("America/New_York")
    start = (datetime.now(tz) + timedelta(days=1)).date()
    clinic.cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=10;BYMINUTE=0",
        "--start",
        start.isoformat(),
    )
    ten = datetime(start.year, start.month, start.day, 10, tzinfo=tz)
    for day in range(4):
        clinic.cli.json("tick", "--now", (ten + timedelta(days=day)).isoformat())
    [f] = followups(clinic, patient=str(pid))
    assert (f["reason"], f["severity"]) == ("missed_checkins", "routine")


def test_c_confirms_the_next_appointment(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE)
    day = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=3)).date()
    aid = clinic.cli.json(
        "appointments", "add", str(pid), "--kind", "therapy", "--at", f"{day}T15:00"
    )["id"]
    # The 24-hour reminder goes out; the patient answers it.
    reminder_at = datetime(
        day.year, day.month, day.day, 15, tzinfo=ZoneInfo("America/New_York")
    ) - timedelta(days=1)
    clinic.cli.json("tick", "--now", reminder_at.isoformat())
    clinic.text(PHONE, "C")
    [appt] = clinic.cli.json("appointments", "list", str(pid))
    assert appt["id"] == aid and appt["confirmed_at"] is not None
    # The audit row a reminder email's confirm link writes too (test_email_appointment_links.py).
    [event] = [e for e in clinic.cli.json("audit", "list") if e["action"] == "appointment.confirm"]
    assert (event["actor"], event["detail"]["via"]) == ("patient", "sms")


def test_cancel_opts_out_and_asks_staff_to_check_intent(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE)
    clinic.text(PHONE, "CANCEL")
    [f] = followups(clinic, patient=str(pid))
    assert f["reason"] == "opt_out"
    assert f["detail"]["evidence"][0]["check_intent"] is True  # type: ignore[index]
    assert clinic.cli.json("patients", "show", str(pid))["consent"]["sms"]["granted"] is False


def test_a_replayed_message_sid_changes_nothing(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "pain")
    first = clinic.text(PHONE, "6", sid="SM" + "a" * 32)
    again = clinic.text(PHONE, "6", sid="SM" + "a" * 32)
    assert first.status_code == again.status_code == 200
    assert len(clinic.inbound()) == 1
    assert len(clinic.cli.json("responses", "list", "--patient", str(pid))) == 1
    assert len([b for b in clinic.sms_to(PHONE) if "Thank you" in b]) == 1


def test_a_forged_signature_changes_nothing(clinic: Clinic) -> None:
    clinic.patient(PHONE)
    url = f"{clinic.base_url}/webhooks/twilio/sms"
    form = {"MessageSid": "SM" + "b" * 32, "From": PHONE, "To": "+12125550000", "Body": "STOP"}
    forged = httpx.post(url, data=form, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    unsigned = httpx.post(url, data=form)
    tampered_sig = clinic.emulator.sign(url, {**form, "Body": "hello"})
    tampered = httpx.post(url, data=form, headers={"X-Twilio-Signature": tampered_sig})
    assert (forged.status_code, unsigned.status_code, tampered.status_code) == (403, 403, 403)
    assert clinic.inbound() == []
    assert clinic.emulator.messages == []


def test_status_callbacks_move_messages_and_unknown_ids_get_200(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood")
    [msg] = [
        m
        for m in clinic.cli.json("messages", "list", "--patient", str(pid))
        if m["status"] == "sent"
    ]
    url = f"{clinic.base_url}/webhooks/twilio/status"
    assert clinic.emulator.send_status(url, msg["provider_id"], "delivered").status_code == 200
    assert clinic.emulator.send_status(url, "SM" + "0" * 32, "delivered").status_code == 200
    [after] = [
        m
        for m in clinic.cli.json("messages", "list", "--patient", str(pid))
        if m["id"] == msg["id"]
    ]
    assert after["status"] == "delivered"


def test_the_followup_api_needs_the_token_and_works_the_queue(clinic: Clinic) -> None:
    clinic.patient(PHONE)
    clinic.text(PHONE, "I want to die")
    api = f"{clinic.base_url}/api/followups"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": "Bearer test-token-123"}
    items = httpx.get(api, headers=auth).json()["items"]
    assert [i["reason"] for i in items] == ["crisis_language"], items
    [item] = items
    assert item["severity"] == "urgent"
    no_note = httpx.post(f"{api}/{item['id']}/resolve", json={"by": "Dr. Lee"}, headers=auth)
    assert no_note.status_code == 422 and no_note.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert (
        httpx.post(f"{api}/{item['id']}/ack", json={"by": "Dr. Lee"}, headers=auth).json()["status"]
        == "acknowledged"
    )
    done = httpx.post(
        f"{api}/{item['id']}/resolve", json={"by": "Dr. Lee", "note": "Called, safe."}, headers=auth
    )
    assert done.json()["status"] == "resolved"


def test_a_reply_after_the_window_is_stored_against_the_latest_checkin_and_flagged_late(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood")
    later = datetime.now(UTC) + timedelta(hours=25)
    assert clinic.cli.json("tick", "--now", later.isoformat())["expired"] == 1
    clinic.text(PHONE, "6")
    [row] = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert (row["item"], row["value"], row["late"]) == ("mood", 6, True)


def test_an_abandoned_questionnaire_expires_and_is_kept_as_partial(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00", "--questionnaire-mode", "sms")
    send_checkin(clinic, pid, "gad7")
    for answer in ["2", "1", "nearly every day"]:
        clinic.text(PHONE, answer)
    items = [b for b in clinic.sms_to(PHONE)]
    assert len(items) == 4, "three answers, each followed by the next item"
    later = datetime.now(UTC) + timedelta(hours=25)
    clinic.cli.json("tick", "--now", later.isoformat())
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert [(r["item"], r["value"], r["partial"]) for r in rows] == [
        ("gad7_1", 2, True),
        ("gad7_2", 1, True),
        ("gad7_3", 3, True),
    ]
    assert followups(clinic, patient=str(pid)) == [], (
        "one abandoned questionnaire is not three missed"
    )


def test_a_positive_phq2_screen_offers_the_full_phq9_next(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00", "--questionnaire-mode", "sms")
    send_checkin(clinic, pid, "phq2")
    clinic.text(PHONE, "2")
    clinic.text(PHONE, "2")
    [f] = followups(clinic, patient=str(pid))
    assert (f["reason"], f["severity"]) == ("positive_screen", "routine")
    clinic.cli.json("tick", "--now", (datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    offered = [
        m
        for m in clinic.cli.json("messages", "list", "--patient", str(pid))
        if m["instrument"] == "phq9"
    ]
    assert len(offered) == 1 and offered[0]["status"] == "sent"


def _reminded(clinic: Clinic, pid: int) -> tuple[int, datetime]:
    """A therapy appointment three days out at 15:00 New York, and its 24-hour reminder sent."""
    day = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=3)).date()
    starts = datetime(day.year, day.month, day.day, 15, tzinfo=ZoneInfo("America/New_York"))
    aid = clinic.cli.json(
        "appointments", "add", str(pid), "--kind", "therapy", "--at", f"{day}T15:00"
    )["id"]
    clinic.cli.json("tick", "--now", (starts - timedelta(days=1)).isoformat())
    return int(aid), starts


@pytest.mark.parametrize(
    ("language", "text", "verdict"),
    [
        ("en", "Yes I'll be there", "confirm"),
        ("en", "👍", "confirm"),
        ("es", "ahí estaré", "confirm"),
        ("en", "can we move it?", "reschedule"),
        ("es", "otro día?", "reschedule"),
        ("en", "I can't make it", "cancel_request"),
        ("es", "no puedo ir", "cancel_request"),
        ("en", "running 10 min late", "late"),
        ("es", "llego tarde", "late"),
    ],
)
def test_appointment_replies_in_the_patients_own_words(
    clinic: Clinic, language: str, text: str, verdict: str
) -> None:
    from worker.rendering import format_when
    from worker.services.records.accounts import FRONTDESK_REASONS

    pid = clinic.patient(PHONE, "--language", language)
    aid, starts = _reminded(clinic, pid)
    before = len(clinic.sms_to(PHONE))
    clinic.text(PHONE, text)
    replies = clinic.sms_to(PHONE)[before:]
    [appt] = clinic.cli.json("appointments", "list", str(pid))
    found = followups(clinic, patient=str(pid))
    assert len(replies) == 1
    reply = replies[0]
    assert "we got your answer" not in reply and "recibimos su respuesta" not in reply
    if verdict == "confirm":
        when = format_when(starts.replace(tzinfo=None), language)
        assert reply.endswith(f"{'Confirmed' if language == 'en' else 'Confirmada'}: {when}.")
        assert appt["confirmed_at"] is not None and found == []
        return
    assert appt["confirmed_at"] is None
    reason = {
        "reschedule": "reschedule_request",
        "cancel_request": "cancel_request",
        "late": "late_arrival",
    }[verdict]
    [f] = found
    assert (f["reason"], f["severity"]) == (reason, "routine")
    assert reason in FRONTDESK_REASONS  # the front-desk queue shows it
    assert f["detail"]["evidence"][0]["appointment_id"] == aid  # type: ignore[index]
    expected = {
        ("en", "late"): "Thanks for letting us know, see you soon.",
        ("es", "late"): "Gracias por avisarnos, hasta pronto.",
    }.get((language, verdict), "call you" if language == "en" else "Le llamaremos")
    assert expected in reply
    # Not an opt-out: texts still go.
    assert clinic.cli.json("patients", "show", str(pid))["consent"]["sms"]["granted"] is True


def test_own_words_without_a_recent_reminder_are_left_to_a_human(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE)
    clinic.text(PHONE, "I can't make it")
    assert [f["reason"] for f in followups(clinic, patient=str(pid))] == ["unparseable_reply"]


PASSED_ON = {"en": "we passed your message to our care team", "es": "pasamos su mensaje al equipo"}


@pytest.mark.parametrize("language", ["en", "es"])
def test_words_we_cannot_read_go_to_a_clinician_and_the_patient_is_told_once_an_hour(
    clinic: Clinic, language: str
) -> None:
    # A crisis phrasing the detector misses lands here too (docs/risk-language.md): the patient
    # hears at once that a person will read it and that 988 and 911 are there now.
    pid = clinic.patient(PHONE, "--language", language, "--send-window", "00:00-24:00")
    clinic.text(PHONE, "sitting in the car again, dont know anymore")
    [reply] = [b for b in clinic.sms_to(PHONE) if PASSED_ON[language] in b]
    assert "988" in reply and "911" in reply and "sitting" not in reply and "anymore" not in reply
    assert [f["reason"] for f in followups(clinic, patient=str(pid))] == ["unparseable_reply"]

    # More words in the same conversation: kept for the clinician, no second reply.
    clinic.text(PHONE, "sorry for the texts")
    assert len([b for b in clinic.sms_to(PHONE) if PASSED_ON[language] in b]) == 1
    assert [i.body for i in clinic.inbound()][-1] == "sorry for the texts"

    # An hour later (the first reply's row moved back an hour), a new text gets its own.
    with session_scope(clinic.rt.sessions) as session:
        [first] = session.scalars(select(Message).where(Message.template == "passed_on"))
        first.created_at -= timedelta(minutes=61)
    clinic.text(PHONE, "still here")
    assert len([b for b in clinic.sms_to(PHONE) if PASSED_ON[language] in b]) == 2

    # After STOP: its confirmation, and nothing more however much is written.
    clinic.text(PHONE, "STOP")
    sent = len(clinic.sms_to(PHONE))
    clinic.text(PHONE, "ok whatever, talk later")
    assert len(clinic.sms_to(PHONE)) == sent


def test_cancelar_opts_out_and_asks_staff_to_check_intent(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--language", "es")
    clinic.text(PHONE, "Cancelar")
    [f] = followups(clinic, patient=str(pid))
    assert f["reason"] == "opt_out"
    assert f["detail"]["evidence"][0]["check_intent"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("5 out of 10 mood, pain 9", {"mood": 5, "pain": 9}),
        ("pain 9, couldn't sleep, mood 5/10", {"mood": 5, "pain": 9}),
        ("hurts 9, mood 5", {"mood": 5, "pain": 9}),
        ("pain 8-9 mood 5", {"mood": 5, "pain": 9}),  # a range: the worse end
    ],
)
def test_a_score_is_never_hidden_and_high_pain_is_flagged(
    clinic: Clinic, reply: str, expected: dict[str, int]
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, reply)
    assert responses(clinic, pid) == expected
    assert "high_pain" in [f["reason"] for f in followups(clinic, patient=str(pid))]
    assert [i.body for i in clinic.inbound()] == [reply]  # the range stays in the text


def test_unclear_labels_are_asked_about_once_and_nothing_is_stored(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "mood and sleep 4 and 7")
    assert responses(clinic, pid) == {}
    assert len([b for b in clinic.sms_to(PHONE) if "could not read" in b]) == 1
