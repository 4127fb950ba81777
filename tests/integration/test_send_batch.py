"""The batched send path (services/outbound/send.py): a chunk is claimed, re-checked and rendered in one
transaction and its outcomes recorded in another, yet every row keeps its own verdict, the real
SDK talks to the emulator, and a repeated task sends nothing twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select, update

from tests.integration.clinic import Clinic, open_clinic
from worker.channels import ProviderMessage, SendResult
from worker.services.outbound.claim import claim_and_prepare
from worker.services.outbound.dispatch import claim_due
from worker.services.outbound.reconcile import _move, _resolve_sent
from worker.services.outbound.record import Attempt, record
from worker.services.outbound.send import STRAGGLER_SECONDS, SendPool, send_chunk, send_many
from worker.store.db import session_scope
from worker.store.models import CheckIn, Consent, Message, Patient

NY = ZoneInfo("America/New_York")


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    yield c
    c.close()


def _daily_nine(clinic: Clinic, phones: list[str]) -> tuple[dict[str, int], datetime]:
    """Patients with a daily 09:00 mood check-in from tomorrow, planned; returns their ids
    and that 09:00 (UTC). Far enough ahead that the hour the test runs at does not matter."""
    start = (datetime.now(NY) + timedelta(days=2)).date()
    pids = {}
    for phone in phones:
        pid = clinic.patient(phone, "--send-window", "00:00-24:00")
        clinic.cli.json(
            "schedules", "add", str(pid), "--instrument", "mood",
            "--rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "--start", start.isoformat(),
        )  # fmt: skip
        pids[phone] = pid
    nine = datetime(start.year, start.month, start.day, 9, tzinfo=NY).astimezone(UTC)
    clinic.cli.json("tick", "--now", (nine - timedelta(hours=1)).isoformat())
    return pids, nine


def _rows(clinic: Clinic, ids: list[int]) -> dict[int, Message]:
    with session_scope(clinic.rt.sessions) as session:
        return {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}


def test_one_chunk_gives_every_row_its_own_verdict_and_a_repeat_sends_nothing(
    clinic: Clinic,
) -> None:
    ok, archived, stopped, night, carrier_stop, invalid = (
        f"+1212555{n:04d}" for n in range(201, 207)
    )
    pids, nine = _daily_nine(clinic, [ok, archived, stopped, night, carrier_stop, invalid])
    clinic.emulator.configure(
        numbers={
            carrier_stop: {"code": 21610, "status": 400},
            invalid: {"code": 21211, "status": 400},
        }
    )
    claimed = claim_due(clinic.rt, nine, 50)
    assert len(claimed) == 6
    ids = [mid for mid, _ in claimed]
    by_patient = {m.patient_id: m.id for m in _rows(clinic, ids).values()}
    # Between the claim and the send: one patient archived, one texts STOP, one's window changes.
    with session_scope(clinic.rt.sessions) as session:
        session.execute(
            update(Patient).where(Patient.id == pids[archived]).values(archived_at=nine)
        )
        session.execute(
            update(Patient).where(Patient.id == pids[night]).values(send_window="10:00-20:00")
        )
    clinic.text(stopped, "STOP")

    pool = SendPool(8)
    pool.acquire(len(ids))
    outcomes = send_chunk(clinic.rt, ids, lambda: nine, pool)

    expected = {
        ok: "sent",
        archived: "cancelled",
        stopped: "suppressed",
        night: "deferred",
        carrier_stop: "suppressed",
        invalid: "failed",
    }
    assert {phone: outcomes[by_patient[pid]] for phone, pid in pids.items()} == expected
    rows = {m.patient_id: m for m in _rows(clinic, ids).values()}
    assert rows[pids[ok]].status == "sent" and rows[pids[ok]].provider_id
    assert rows[pids[archived]].status_reason == "patient_archived"
    assert rows[pids[stopped]].status_reason == "no_consent_sms"
    assert rows[pids[night]].status == "scheduled"
    assert rows[pids[night]].due_at == datetime.combine(
        nine.astimezone(NY).date(), datetime.min.time().replace(hour=10), NY
    ).astimezone(UTC)
    assert rows[pids[carrier_stop]].status_reason == "opted_out_at_carrier"
    assert rows[pids[invalid]].status == "failed" and rows[pids[invalid]].error_code == "21211"
    with session_scope(clinic.rt.sessions) as session:
        checkins = list(session.scalars(select(CheckIn)))
        open_consent = set(
            session.scalars(
                select(Consent.patient_id).where(
                    Consent.channel == "sms", Consent.withdrawn_at.is_(None)
                )
            )
        )
    # The sent check-in opened exactly one CheckIn, linked from its row.
    assert [(c.patient_id, c.status) for c in checkins] == [(pids[ok], "open")]
    assert rows[pids[ok]].checkin_id == checkins[0].id
    assert pids[carrier_stop] not in open_consent, "carrier opt-out withdrew consent"
    assert len(clinic.sms_to(ok)) == 1
    assert clinic.sms_to(archived) == [] and clinic.sms_to(night) == []
    assert len(clinic.sms_to(stopped)) == 1, "only the STOP confirmation"

    # The same task delivered again (a redelivery after a lost ack): nothing is ours to send.
    pool.acquire(len(ids))
    again = send_chunk(clinic.rt, ids, lambda: nine, pool)
    assert set(again.values()) == {"skipped"}
    assert len(clinic.sms_to(ok)) == 1
    with session_scope(clinic.rt.sessions) as session:
        assert len(list(session.scalars(select(CheckIn)))) == 1
    assert pool.free == 8, "every thread the chunks took is free again"
    pool.shutdown()


def test_a_hung_provider_call_does_not_hold_its_chunk(clinic: Clinic) -> None:
    """Every call hangs longer than the task waits for its chunk: the task returns with them
    `in_flight`, and each is recorded by itself when the provider answers."""
    phones = [f"+1212555{n:04d}" for n in range(501, 505)]
    _pids, nine = _daily_nine(clinic, phones)
    ids = [mid for mid, _ in claim_due(clinic.rt, nine, 50)]
    clinic.emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=STRAGGLER_SECONDS + 1)
    pool = SendPool(8)
    counts = send_many(clinic.rt, ids, lambda: nine, pool)
    assert counts == {"in_flight": 4}
    assert {m.status for m in _rows(clinic, ids).values()} == {"sending"}
    deadline = time.monotonic() + 30
    while {m.status for m in _rows(clinic, ids).values()} != {"sent"}:
        assert time.monotonic() < deadline, _rows(clinic, ids)
        time.sleep(0.1)
    while pool.free != 8:
        assert time.monotonic() < deadline, pool.free
        time.sleep(0.05)
    pool.shutdown()
    assert Counter(m["to"] for m in clinic.emulator.messages) == Counter(dict.fromkeys(phones, 1))


def test_a_chunk_larger_than_the_pool_goes_in_parts_each_message_once(clinic: Clinic) -> None:
    phones = [f"+1212555{n:04d}" for n in range(301, 311)]
    _pids, nine = _daily_nine(clinic, phones)
    ids = [mid for mid, _ in claim_due(clinic.rt, nine, 50)]
    pool = SendPool(3)
    counts = send_many(clinic.rt, ids, lambda: nine, pool)
    # Only the last part is waited for; the earlier ones are recorded by the pool's recorder.
    assert sum(counts.values()) == 10 and set(counts) <= {"sent", "in_flight"}
    deadline = time.monotonic() + 30
    while {m.status for m in _rows(clinic, ids).values()} != {"sent"}:
        assert time.monotonic() < deadline, _rows(clinic, ids)
        time.sleep(0.05)
    pool.shutdown()
    assert Counter(m["to"] for m in clinic.emulator.messages) == Counter(dict.fromkeys(phones, 1))
    assert {m.status for m in _rows(clinic, ids).values()} == {"sent"}


def test_the_pool_lets_a_chunk_claim_only_when_every_message_has_a_thread() -> None:
    pool = SendPool(3)
    with pytest.raises(ValueError, match="cannot reserve 4 of 3"), pool.reserve(4):
        pass
    got_in = threading.Event()

    def second() -> None:
        with pool.reserve(2):
            got_in.set()

    with pool.reserve(2):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not got_in.wait(0.3), "2 more of 3 must wait while 2 are taken"
    waiter.join(5)
    assert got_in.is_set(), "and get in once they are free"
    pool.shutdown()


def test_reconciliation_leaves_alone_a_row_that_was_sent_again_meanwhile(clinic: Clinic) -> None:
    """Reconciliation looks at a stale `sending` row, asks the provider (slow), and meanwhile
    another dispatcher settled the row and a worker claimed it again: moving that new attempt
    back to `queued` would send it twice. The move is conditional on the attempt it saw."""
    pids, nine = _daily_nine(clinic, ["+12125550401"])
    [(mid, _q)] = claim_due(clinic.rt, nine, 10)
    seen = nine - timedelta(minutes=10)
    with session_scope(clinic.rt.sessions) as session:
        session.execute(
            update(Message).where(Message.id == mid).values(status="sending", sending_at=nine)
        )
    # The snapshot saw the earlier attempt (sending_at = seen): the row is a new one now.
    assert not _move(clinic.rt, mid, "sending", "queued", nine, attempt=seen, reason="test")
    assert _rows(clinic, [mid])[mid].status == "sending"
    # The attempt it did see is moved.
    assert _move(clinic.rt, mid, "sending", "queued", nine, attempt=nine, reason="test")
    assert _rows(clinic, [mid])[mid].status == "queued"
    assert pids


def test_a_row_reconciled_first_keeps_its_own_checkin_and_none_is_left_over(
    clinic: Clinic,
) -> None:
    """The record step opens each sent check-in's CheckIn before it writes the rows `sent`, in
    the same transaction. A row that reconciliation found at the provider and settled first
    (with its own CheckIn) is not written again, and the CheckIn made for it is dropped: one
    CheckIn per message, each linked from its row."""
    first, second = "+12125550501", "+12125550502"
    pids, nine = _daily_nine(clinic, [first, second])
    ids = [mid for mid, _ in claim_due(clinic.rt, nine, 10)]
    with session_scope(clinic.rt.sessions) as session:
        claimed = claim_and_prepare(clinic.rt, session, ids, nine)
    assert len(claimed.prepared) == 2
    by_patient = {p.patient_id: p for p in claimed.prepared}
    settled_first = by_patient[pids[first]]
    # Reconciliation finds the first row at the provider while its send is still answering.
    assert _resolve_sent(
        clinic.rt,
        settled_first.id,
        "sending",
        _rows(clinic, [settled_first.id])[settled_first.id].sending_at,
        None,
        ProviderMessage("SMreconciled", first, settled_first.body, nine, "queued"),
        nine,
    )
    attempts = [
        Attempt(p, nine, result=SendResult(provider_id=f"SM{p.id}", segments=1))
        for p in claimed.prepared
    ]
    outcomes = record(clinic.rt, attempts)

    assert outcomes == {p.id: "sent" for p in claimed.prepared}
    rows = {m.patient_id: m for m in _rows(clinic, ids).values()}
    assert rows[pids[first]].provider_id == "SMreconciled", "the reconciled row is left alone"
    assert rows[pids[second]].provider_id == f"SM{by_patient[pids[second]].id}"
    with session_scope(clinic.rt.sessions) as session:
        checkins = {c.id: c.patient_id for c in session.scalars(select(CheckIn))}
    assert sorted(checkins.values()) == sorted(pids.values()), "one CheckIn per patient"
    for phone in (first, second):
        assert checkins[rows[pids[phone]].checkin_id] == pids[phone]
