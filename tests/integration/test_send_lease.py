"""Send leases (services/outbound/lease.py) on real Redis and a real database: a row whose worker's lease
has lapsed is settled at once, a row under a live lease (or an unknown one) is left to the stale
rule, a worker that cannot vouch for its lease disowns its row before calling the provider, and
urgent rows left `queued` go back to the broker within seconds."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from checkin_emulator import TwilioEmulator
from sqlalchemy import select, update

from tests.integration.clinic import Clinic, open_clinic
from worker.services.outbound import lease as leases
from worker.services.outbound.claim import Prepared
from worker.services.outbound.dispatch import stale_queued
from worker.services.outbound.lease import Lease, lapsed
from worker.services.outbound.reconcile import reconcile
from worker.services.outbound.send import Attempt, _attempt, _lease_covers
from worker.store.db import session_scope
from worker.store.models import Message


@pytest.fixture
def clinic(
    db_url: str, redis_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_BROKER_URL=redis_url)
    yield c
    c.close()


def _client(clinic: Clinic) -> redis.Redis:
    assert clinic.rt.redis is not None
    return clinic.rt.redis


def _owner(label: str) -> str:
    return f"test-{label}-{secrets.token_hex(4)}"


def _lease_at(clinic: Clinic, owner: str, seconds_from_now: float) -> None:
    """Write `owner`'s lease as lapsing `seconds_from_now` (negative: lapsed that long ago)."""
    client = _client(clinic)
    s, us = client.time()
    client.zadd(leases.KEY, {owner: s * 1_000_000 + us + round(seconds_from_now * 1e6)})


def _sending_rows(clinic: Clinic, owners: list[str | None], now: datetime) -> list[int]:
    """One `sending` row per owner, claimed a second ago, to numbers the provider never saw."""
    ids = []
    with session_scope(clinic.rt.sessions) as session:
        for i, owner in enumerate(owners):
            m = Message(
                patient_id=None,
                channel="sms",
                kind="reply",
                template="help_reply",
                priority="urgent",
                exempt_quiet_hours=True,
                due_at=now,
                dedupe_key=f"lease-test:{secrets.token_hex(6)}",
                context={},
                to_address=f"+1212555{7000 + i:04d}",
                body=f"lease test {i}",
                status="sending",
                attempts=1,
                created_at=now,
                queued_at=now,
                sending_at=now - timedelta(seconds=1),
                sending_by=owner,
                updated_at=now,
            )
            session.add(m)
            session.flush()
            ids.append(m.id)
    return ids


def _status(clinic: Clinic, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    with session_scope(clinic.rt.sessions) as session:
        rows = session.execute(
            select(Message.id, Message.status, Message.sending_by).where(Message.id.in_(ids))
        ).all()
    return {mid: (status, by) for mid, status, by in rows}


def test_a_lapsed_lease_lets_its_rows_be_settled_at_once_and_nothing_else(clinic: Clinic) -> None:
    now = datetime.now(UTC)
    dead, live, unknown = _owner("dead"), _owner("live"), _owner("unknown")
    _lease_at(clinic, dead, -10)
    _lease_at(clinic, live, 60)
    found_dead, not_found_dead, live_row, unknown_row, no_owner = _sending_rows(
        clinic, [dead, dead, live, unknown, None], now
    )
    # The provider has the first dead row's message (it was sent just before the worker died).
    with session_scope(clinic.rt.sessions) as session:
        to, body = session.execute(
            select(Message.to_address, Message.body).where(Message.id == found_dead)
        ).one()
    sid = clinic.rt.channels.sms.send_sms(to, body).provider_id

    result = reconcile(clinic.rt, now)

    assert result.resolved == [found_dead]
    assert result.to_send == [(not_found_dead, True)]
    got = _status(clinic, [found_dead, not_found_dead, live_row, unknown_row, no_owner])
    assert got[found_dead][0] == "sent"
    assert got[not_found_dead][0] == "queued"
    # A live lease, a lease Redis does not know (restarted empty) and no lease at all: the stale
    # rule (CHECKIN_SENDING_STALE_SECONDS after the claim) alone decides.
    assert got[live_row] == ("sending", live)
    assert got[unknown_row] == ("sending", unknown)
    assert got[no_owner] == ("sending", None)
    with session_scope(clinic.rt.sessions) as session:
        assert session.scalar(select(Message.provider_id).where(Message.id == found_dead)) == sid


def test_a_lapse_counts_only_once_it_is_past_the_settle_margin(clinic: Clinic) -> None:
    client = _client(clinic)
    just, long_ago, ahead = _owner("just"), _owner("long"), _owner("ahead")
    _lease_at(clinic, just, -leases.SETTLE / 4)
    _lease_at(clinic, long_ago, -(leases.SETTLE + 5))
    _lease_at(clinic, ahead, 30)
    assert lapsed(client, [just, long_ago, ahead, _owner("never")], ttl=1.0) == {long_ago}


def test_a_lease_renewed_vouches_for_a_call_shorter_than_its_life(clinic: Clinic) -> None:
    client = _client(clinic)
    lease = Lease(client, ttl=20.0, owner=_owner("renewed"))
    assert not lease.valid_for(1.0), "never renewed: vouches for nothing"
    assert lease.renew()
    assert lease.valid_for(15.0)
    assert not lease.valid_for(25.0)
    s, us = client.time()
    score = client.zscore(leases.KEY, lease.owner)
    assert score is not None
    assert 19.0 < (score - (s * 1_000_000 + us)) / 1e6 <= 20.0
    assert lapsed(client, [lease.owner], ttl=20.0) == set()


def test_a_worker_that_cannot_vouch_for_its_lease_disowns_its_row_first(clinic: Clinic) -> None:
    now = datetime.now(UTC)
    lease = Lease(_client(clinic), ttl=20.0, owner=_owner("silent"))  # never renewed
    mine, taken = _sending_rows(clinic, [lease.owner, _owner("other")], now)
    clinic.rt.lease = lease
    try:

        def prepared(mid: int) -> Prepared:
            return Prepared(
                mid, "sms", "+12125557000", "x", None, None, "<x>", "urgent", owner=lease.owner
            )

        assert _lease_covers(clinic.rt, prepared(mine)), "disowned, then it may go"
        assert not _lease_covers(clinic.rt, prepared(taken)), "not ours: never sent from here"
    finally:
        clinic.rt.lease = None
    got = _status(clinic, [mine, taken])
    assert got[mine] == ("sending", None), "left to the stale rule"
    assert got[taken][0] == "sending" and got[taken][1] is not None


class _Clock:
    """A monotonic clock the test steps."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_lease_redis_saw_lapse_is_never_renewed_its_holder_takes_a_new_name(
    clinic: Clinic,
) -> None:
    client = _client(clinic)
    first = _owner("partitioned")
    lease = Lease(client, ttl=20.0, owner=first)
    assert lease.renew() and lease.covers(first, 5.0)
    _lease_at(clinic, first, -3)  # the holder was cut off for longer than its lease's life
    lapsed_score = client.zscore(leases.KEY, first)

    assert lease.renew(), "renewed, under a new name"
    assert lease.owner != first and lease.rotations == 1
    assert client.zscore(leases.KEY, first) == lapsed_score, "the lapsed entry stays lapsed"
    assert lapsed(client, [first, lease.owner], ttl=1.0) == {first}
    assert not lease.covers(first, 1.0), "rows claimed under the old name need the database"
    assert lease.covers(lease.owner, 1.0)


def test_a_holder_that_may_have_lapsed_by_its_own_clock_takes_a_new_name(clinic: Clinic) -> None:
    # Redis restarted empty has no entry to refuse the renewal: the holder's own clock decides.
    clock = _Clock()
    first = _owner("paused")
    lease = Lease(_client(clinic), ttl=20.0, owner=first, clock=clock)
    assert lease.renew()
    clock.t += 18.0
    assert lease.renew() and lease.owner == first, "renewed in time: the same lease"
    clock.t += 20.0 - leases.BEAT
    assert lease.renew() and lease.owner != first
    assert not lease.covers(first, 0.0) and lease.covers(lease.owner, 5.0)


def test_a_row_claimed_under_a_lapsed_lease_is_not_sent_when_its_holder_comes_back(
    clinic: Clinic, twilio_emulator: TwilioEmulator
) -> None:
    # CI once saw this (the multi-host fault): a worker cut off from Redis and the database for
    # 30 s held a claimed row; its lease lapsed, reconciliation found nothing at the provider
    # and the row went to another worker, which sent it. When the network came back, the first
    # worker renewed the same lease and sent the row a second time.
    now = datetime.now(UTC)
    clock = _Clock()
    held = _owner("cut-off")
    lease = Lease(_client(clinic), ttl=20.0, owner=held, clock=clock)
    assert lease.renew()
    (taken,) = _sending_rows(clinic, [held], now)
    _lease_at(clinic, held, -10)  # cut off: the lease lapsed
    # Another dispatcher settles the row: not found at the provider, back to `queued`.
    assert reconcile(clinic.rt, now).to_send == [(taken, True)]
    # A second row the holder claimed, which no reconciliation pass has come to yet.
    (untouched,) = _sending_rows(clinic, [held], now)

    clock.t += 30.0  # the network is back; the holder renews
    assert lease.renew() and lease.owner != held
    clinic.rt.lease = lease
    sent_before = twilio_emulator.count_by_to()
    try:

        def attempt(mid: int) -> Attempt:
            with session_scope(clinic.rt.sessions) as session:
                to, body = session.execute(
                    select(Message.to_address, Message.body).where(Message.id == mid)
                ).one()
            row = Prepared(mid, "sms", to, body, None, None, "<x>", "urgent", owner=held)
            return _attempt(clinic.rt, row, lambda: now)

        gone, kept = attempt(taken), attempt(untouched)
    finally:
        clinic.rt.lease = None
    assert gone.lost and gone.result is None, "reconciliation took it back: not sent from here"
    assert kept.result is not None, "still its own: disowned first, then sent"
    sent = sum(twilio_emulator.count_by_to().values()) - sum(sent_before.values())
    assert sent == 1, "one provider call: the row still its own"
    got = _status(clinic, [taken, untouched])
    assert got[taken][0] == "queued"
    assert got[untouched] == ("sending", None), "only the stale rule can judge it now"
    again = reconcile(clinic.rt, now + timedelta(seconds=1))
    assert untouched not in again.resolved + [i for i, _ in again.to_send]


def test_urgent_rows_left_queued_go_back_to_the_broker_within_seconds(clinic: Clinic) -> None:
    now = datetime.now(UTC)
    urgent, bulk = _sending_rows(clinic, [None, None], now)
    with session_scope(clinic.rt.sessions) as session:
        session.execute(
            update(Message)
            .where(Message.id.in_([urgent, bulk]))
            .values(status="queued", queued_at=now - timedelta(seconds=11))
        )
        session.execute(update(Message).where(Message.id == bulk).values(priority="bulk"))
    assert stale_queued(clinic.rt, now, 100) == [(urgent, "urgent")]
    assert stale_queued(clinic.rt, now + timedelta(seconds=5), 100) == [], "once per interval"
    later = now + timedelta(seconds=clinic.settings.requeue_after_seconds)
    assert stale_queued(clinic.rt, later, 100) == [(urgent, "urgent"), (bulk, "bulk")]
