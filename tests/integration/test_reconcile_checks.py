"""Reconciliation checks what the provider's list returns: a message counts as the row's only
when its recipient, sender and body are the row's. The emulator's `list_ignores_to` answers a
list for one number with everyone's messages, as a faulty proxy or a changed API might."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.integration.clinic import CLINIC_NUMBER, Clinic, open_clinic
from tests.integration.procs import seed_due
from worker.channels import ProviderMessage
from worker.services.outbound.claim import claim_and_prepare
from worker.services.outbound.dispatch import claim_due
from worker.services.outbound.reconcile import _ours, reconcile
from worker.services.outbound.send import send_one
from worker.store.db import session_scope
from worker.store.models import Message, Patient

FIRST = 700  # seed_due's patients: +12125550700 and +12125550701


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(
        db_url,
        twilio_emulator,
        smtp_server,
        CHECKIN_TWILIO_TIMEOUT_SECONDS="1",
        CHECKIN_RECONCILE_SETTLE_SECONDS="0",
    )
    yield c
    c.close()


def _rows(clinic: Clinic) -> dict[str, Message]:
    """Each patient's one message, by the patient's phone."""
    with session_scope(clinic.rt.sessions) as session:
        found = session.execute(
            select(Patient.phone, Message).join(Patient, Patient.id == Message.patient_id)
        ).all()
        return {str(phone): m for phone, m in found}


def test_a_list_that_ignores_its_filter_does_not_make_one_patients_message_anothers(
    clinic: Clinic, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two patients get the same check-in text. B's worker died after committing the body and
    before calling the provider; A's call reached the provider but timed out (unknown). B is
    older, so it is looked up first, and the faulty list answers with A's message: trusted, it
    would make B `sent` with A's sid, then A look unsent and go out twice, and B never go."""
    now = datetime.now(UTC).replace(microsecond=0)
    seed_due(db_url, now, 2, first_phone=FIRST)
    a, b = f"+1212555{FIRST:04d}", f"+1212555{FIRST + 1:04d}"
    rows = _rows(clinic)
    assert set(rows) == {a, b}
    assert len(claim_due(clinic.rt, now, 10)) == 2
    # B: claimed, rendered, committed `sending`; then the worker is gone (no provider call).
    with session_scope(clinic.rt.sessions) as session:
        claimed = claim_and_prepare(clinic.rt, session, [rows[b].id], now)
    assert [p.id for p in claimed.prepared] == [rows[b].id]
    # A: the provider accepts it but the answer never comes back in time.
    clinic.emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=2.0)
    assert send_one(clinic.rt, rows[a].id, now + timedelta(seconds=1)) == "unknown"
    clinic.emulator.configure(timeout_after_accept_rate=0.0, list_ignores_to=True)
    rows = _rows(clinic)
    assert rows[a].body == rows[b].body, "the same text: only the recipient tells them apart"
    assert (rows[a].status, rows[b].status) == ("unknown", "sending")
    assert clinic.emulator.count_by_to() == {a: 1}

    later = now + timedelta(minutes=3)  # B is stale, A has settled
    with caplog.at_level(logging.INFO, logger="worker.services.outbound.reconcile"):
        result = reconcile(clinic.rt, later)
    assert result.resolved == [rows[a].id]
    assert result.to_send == [(rows[b].id, False)]
    mismatch = [r.getMessage() for r in caplog.records if "another recipient" in r.getMessage()]
    assert mismatch, "the mismatch is logged"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert a not in logged and b not in logged and rows[a].body not in logged

    # B goes now (what dispatch does with `to_send`), and only now.
    assert send_one(clinic.rt, rows[b].id, later) == "sent"
    rows = _rows(clinic)
    assert clinic.emulator.count_by_to() == {a: 1, b: 1}, "each patient's message sent once"
    sids = {m["to"]: m["sid"] for m in clinic.emulator.messages}
    assert (rows[a].status, rows[a].status_reason) == ("sent", "reconciled")
    assert rows[a].provider_id == sids[a]
    assert rows[b].status == "sent" and rows[b].provider_id == sids[b]

    # Nothing is left for another pass to send again.
    again = reconcile(clinic.rt, later + timedelta(minutes=5))
    assert (again.resolved, again.to_send) == ([], [])
    assert clinic.emulator.count_by_to() == {a: 1, b: 1}


def test_only_a_message_to_the_recipient_from_our_sender_with_the_body_is_ours() -> None:
    from tests.conftest import make_settings

    settings = make_settings("sqlite://", twilio_from_number=CLINIC_NUMBER)

    def listed(sid: str, to: str, frm: str | None, body: str) -> ProviderMessage:
        return ProviderMessage(sid, to, body, None, "sent", from_=frm)

    found = [
        listed("SM1", "+12125550702", CLINIC_NUMBER, "How is your mood?"),  # someone else
        listed("SM2", "+12125550701", "+18005550100", "How is your mood?"),  # another sender
        listed("SM3", "+12125550701", CLINIC_NUMBER, "Your appointment is tomorrow"),
        listed("SM4", "+12125550701", CLINIC_NUMBER, "How is your mood?"),
    ]
    ours, other_recipient, other_sender = _ours(
        settings, found, "+12125550701", "How is your mood?"
    )
    assert [p.provider_id for p in ours] == ["SM4"]
    assert (other_recipient, other_sender) == (1, 1)


def test_a_messaging_service_sender_is_matched_on_its_sid() -> None:
    from tests.conftest import make_settings

    service = "MG" + "a" * 32
    settings = make_settings("sqlite://", twilio_messaging_service_sid=service)

    def listed(sid: str, via: str | None) -> ProviderMessage:
        return ProviderMessage(
            sid, "+12125550701", "Hi", None, "sent", from_="+15005550006", messaging_service_sid=via
        )

    found = [listed("SM1", "MG" + "b" * 32), listed("SM2", None), listed("SM3", service)]
    ours, other_recipient, other_sender = _ours(settings, found, "+12125550701", "Hi")
    assert [p.provider_id for p in ours] == ["SM3"]
    assert (other_recipient, other_sender) == (0, 2)


def test_the_twilio_channel_lists_the_sender_of_each_message(
    twilio_emulator: TwilioEmulator,
) -> None:
    """What the real SDK reads from the list: the From number, or the Messaging Service."""
    from worker.channels.twilio_sms import TwilioSms

    service = "MG" + "c" * 32
    since = datetime.now(UTC) - timedelta(minutes=1)
    by_number = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=CLINIC_NUMBER,
        messaging_service_sid=None,
        api_url=twilio_emulator.base_url,
    )
    by_service = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=None,
        messaging_service_sid=service,
        api_url=twilio_emulator.base_url,
    )
    try:
        by_number.send_sms("+12125550710", "one")
        by_service.send_sms("+12125550711", "two")
        [first] = by_number.find_sent("+12125550710", since)
        [second] = by_number.find_sent("+12125550711", since)
    finally:
        by_number.close()
        by_service.close()
    assert (first.from_, first.messaging_service_sid, first.body) == (CLINIC_NUMBER, None, "one")
    # Through a service Twilio may not have picked the number yet (`accepted`, no From): the
    # service is what identifies the sender.
    assert second.messaging_service_sid == service
