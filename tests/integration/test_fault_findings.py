"""What the fault-injection suite (tests/faults, `make faults`) found, pinned down in fast tests:
replies racing a send whose outcome is not recorded yet, replies overtaking a STOP, crisis words
while a check-in is open, and the rehearsal clock (CHECKIN_CLOCK) the DST faults run on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.integration.clinic import Clinic, open_clinic
from tests.integration.test_replies import PHONE, responses, send_checkin
from worker.config import ConfigError, load_settings, parse_clock
from worker.store.db import session_scope
from worker.store.models import CheckIn, InboundMessage, Message


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


def acks(clinic: Clinic) -> list[str]:
    return [b for b in clinic.sms_to(PHONE) if "Thank you" in b]


def inbound_outcomes(clinic: Clinic) -> list[tuple[str | None, bool]]:
    return [(i.outcome, i.processed_at is not None) for i in clinic.inbound()]


def checkin_row(clinic: Clinic) -> Message:
    with session_scope(clinic.rt.sessions) as session:
        row = session.scalar(select(Message).where(Message.kind == "checkin"))
        assert row is not None
        return row


def test_an_answer_that_overtook_the_stop_is_stored_and_not_acknowledged(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood")
    # The patient wrote "7", then STOP; Twilio delivered them the other way round.
    clinic.text(PHONE, "STOP")
    clinic.text(PHONE, "7")
    assert responses(clinic, pid) == {"mood": 7}
    assert acks(clinic) == []
    assert sum("no more text messages" in b for b in clinic.sms_to(PHONE)) == 1


def test_an_answer_after_a_new_start_is_acknowledged_again(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    clinic.text(PHONE, "STOP")
    clinic.text(PHONE, "START")
    send_checkin(clinic, pid, "mood")
    clinic.text(PHONE, "6")
    assert responses(clinic, pid) == {"mood": 6}
    assert len(acks(clinic)) == 1


def test_crisis_words_during_a_check_in_get_the_crisis_reply_and_no_clarifying_question(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "mood")
    clinic.text(PHONE, "I want to end my life")
    replies = clinic.sms_to(PHONE)[1:]  # after the check-in itself
    assert len(replies) == 1 and "988" in replies[0]
    # The check-in stays open: a number sent next is still its answer.
    clinic.text(PHONE, "2")
    assert responses(clinic, pid) == {"mood": 2}


def test_a_reply_to_a_check_in_whose_send_timed_out_waits_for_reconciliation(
    clinic: Clinic,
) -> None:
    """The provider accepted the check-in but the answer never came back (`unknown`); the
    patient replies at once. The reply waits, unprocessed, until reconciliation has found the
    message at the provider (and opened its check-in); then it is read as the answer."""
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    clinic.emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=2.0)
    with pytest.raises(AssertionError):  # nothing counts as sent: the outcome is unknown
        send_checkin(clinic, pid, "mood")
    clinic.emulator.configure(timeout_after_accept_rate=0.0)
    row = checkin_row(clinic)
    assert row.status == "unknown" and row.sending_at is not None
    assert len(clinic.sms_to(PHONE)) == 1, "the provider has it"

    clinic.text(PHONE, "8")
    assert inbound_outcomes(clinic) == [(None, False)], "waiting, not read as a stray text"
    assert responses(clinic, pid) == {}

    later = row.sending_at + timedelta(seconds=5)
    clinic.cli.json("tick", "--now", later.isoformat())  # reconciles: found, sent
    row = checkin_row(clinic)
    assert (row.status, row.status_reason) == ("sent", "reconciled")
    with session_scope(clinic.rt.sessions) as session:
        [opened] = session.scalars(select(CheckIn).where(CheckIn.patient_id == pid)).all()
    assert row.checkin_id == opened.id and opened.status == "open"

    clinic.cli.json("tick", "--now", (later + timedelta(seconds=5)).isoformat())
    assert responses(clinic, pid) == {"mood": 8}
    assert inbound_outcomes(clinic) == [("answer", True)]
    assert len(acks(clinic)) == 1
    assert len(clinic.sms_to(PHONE)) == 2, "the check-in was never sent again"


def test_a_reply_waiting_for_a_send_is_read_as_it_stands_after_ten_minutes(
    clinic: Clinic,
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    clinic.emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=2.0)
    with pytest.raises(AssertionError):
        send_checkin(clinic, pid, "mood")
    clinic.emulator.configure(timeout_after_accept_rate=0.0)
    clinic.text(PHONE, "8")
    assert inbound_outcomes(clinic) == [(None, False)]
    # Nobody reconciles (no dispatch runs): the reply is not held forever.
    from worker.services.inbound.receive import process_inbound

    [inbound] = clinic.inbound()
    result = process_inbound(clinic.rt, inbound.id, inbound.received_at + timedelta(minutes=11))
    assert result.outcome == "unparseable"


def test_crisis_words_are_never_held_back_by_an_unsettled_send(clinic: Clinic) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
    clinic.emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=2.0)
    with pytest.raises(AssertionError):
        send_checkin(clinic, pid, "mood")
    clinic.emulator.configure(timeout_after_accept_rate=0.0)
    started = time.monotonic()
    clinic.text(PHONE, "I can't go on")
    assert any("988" in b for b in clinic.sms_to(PHONE))
    assert time.monotonic() - started < 5
    assert inbound_outcomes(clinic)[0][1], "processed at once"


def test_a_transient_error_is_retried_after_the_configured_backoff(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> None:
    clinic = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_RETRY_BACKOFF_SECONDS="7")
    try:
        pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
        twilio_emulator.configure(error_rate=1.0, errors=[[500, 20500]])
        with pytest.raises(AssertionError):  # nothing sent
            send_checkin(clinic, pid, "mood")
        row = checkin_row(clinic)
    finally:
        clinic.close()
    assert (row.status, row.error_code, row.attempts) == ("scheduled", "20500", 1)
    assert row.sending_at is not None
    assert row.due_at - row.sending_at == timedelta(seconds=7)


# -- CHECKIN_CLOCK, the rehearsal clock ----------------------------------------------------------


def test_the_rehearsal_clock_starts_at_its_instant_and_runs_at_its_speed() -> None:
    anchor = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    clock = parse_clock(f"2027-03-14T06:50:00+00:00@60@{anchor.isoformat()}")
    assert (clock.start, clock.speed, clock.anchor) == (
        datetime(2027, 3, 14, 6, 50, tzinfo=UTC),
        60.0,
        anchor,
    )
    now = clock()
    elapsed = datetime.now(UTC) - anchor
    assert abs((now - clock.start) - elapsed * 60) < timedelta(seconds=60)
    default = parse_clock("2027-03-14T01:50:00-05:00@2")
    assert default.start == datetime(2027, 3, 14, 6, 50, tzinfo=UTC)
    assert abs(default() - default.start) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2027-03-14T06:50:00+00:00", "START@SPEED"),
        ("2027-03-14T06:50:00@60", "UTC offset"),
        ("yesterday@60", "START@SPEED"),
        ("2027-03-14T06:50:00+00:00@fast", "START@SPEED"),
        ("2027-03-14T06:50:00+00:00@0", "SPEED"),
        ("2027-03-14T06:50:00+00:00@60@noon", "START@SPEED"),
    ],
)
def test_a_bad_rehearsal_clock_is_one_line_naming_the_variable(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(clock=value, _env_file=None)
    message = str(err.value)
    assert message.startswith("CHECKIN_CLOCK:") and says in message and "\n" not in message


def test_unset_the_clock_is_real_time() -> None:
    settings = load_settings(_env_file=None)
    assert settings.clock is None
    assert abs(settings.now() - datetime.now(UTC)) < timedelta(seconds=1)


def test_the_web_app_stamps_replies_with_the_rehearsal_clock(
    sqlite_url: str, twilio_emulator: TwilioEmulator, smtp_server: Any
) -> None:
    clinic = open_clinic(
        sqlite_url, twilio_emulator, smtp_server, CHECKIN_CLOCK="2027-11-07T05:30:00+00:00@60"
    )
    try:
        clinic.patient(PHONE)
        clinic.text(PHONE, "HELP")
        with session_scope(clinic.rt.sessions) as session:
            received = session.scalar(select(InboundMessage.received_at))
    finally:
        clinic.close()
    assert received is not None
    assert (
        timedelta(0) <= received - datetime(2027, 11, 7, 5, 30, tzinfo=UTC) < timedelta(minutes=10)
    )


# -- a reply that arrives while the database is unreachable ------------------------------------


def test_without_a_broker_a_reply_the_database_cannot_take_gets_503(
    twilio_emulator: TwilioEmulator, smtp_server: Any, closed_port: int
) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/nowhere"
    clinic = open_clinic(unreachable, twilio_emulator, smtp_server)
    try:
        assert clinic.text(PHONE, "STOP", wait=False).status_code == 503
    finally:
        clinic.close()


@pytest.mark.slow
def test_with_a_broker_a_reply_the_database_cannot_take_is_kept_and_stored_later(
    sqlite_url: str,
    redis_url: str,
    twilio_emulator: TwilioEmulator,
    smtp_server: Any,
    closed_port: int,
    tmp_path: Any,
) -> None:
    """The web app cannot reach the database (its URL points nowhere); the broker keeps the
    text, and a worker that can reach the database stores and answers it: a STOP confirmed."""
    import redis as redis_client

    from tests.integration.procs import Procs, base_env, wait_for

    redis_client.Redis.from_url(redis_url).flushdb()
    good = open_clinic(sqlite_url, twilio_emulator, smtp_server)
    good.patient(PHONE)
    good.close()
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/nowhere"
    web = open_clinic(
        unreachable, twilio_emulator, smtp_server, celery=True, CHECKIN_BROKER_URL=redis_url
    )
    procs = Procs(base_env(tmp_path, sqlite_url, redis_url, twilio_emulator), tmp_path)
    try:
        assert web.text(PHONE, "STOP", sid="SM" + "5" * 32, wait=False).status_code == 200
        procs.start("worker", "-Q", "urgent", "-c", "2", "--name", "u", log="u.log")
        wait_for(lambda: bool(web.sms_to(PHONE)), 60, "the STOP confirmation")
    finally:
        procs.close()
        web.close()
    [confirmation] = web.sms_to(PHONE)
    assert "no more text messages" in confirmation
    stored = open_clinic(sqlite_url, twilio_emulator, smtp_server)
    try:
        [row] = stored.inbound()
    finally:
        stored.close()
    assert (row.provider_sid, row.body, row.outcome) == ("SM" + "5" * 32, "STOP", "opt_out")
