"""Crisis replies first (issue 9, item 7): the pacer's waiting room on real Redis decides who
takes a sender's next slot (crisis > page > other urgent > bulk) without ever exceeding the
rate or starving anyone, and pages go from CHECKIN_ONCALL_FROM with a budget of their own.

No test sleeps against the limiter's clock: windows are made long (a margin of many seconds), so
nothing frees during a test, and "another process waiting" is a ticket in the waiting room,
written as the limiter itself writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from checkin_emulator import TwilioEmulator

from tests.conftest import make_settings
from worker.config import ConfigError, load_settings
from worker.services.outbound import priority as send_priority
from worker.services.outbound.claim import Prepared
from worker.services.outbound.pacing import BULK, CRISIS, KEY_PREFIX, PAGE, URGENT, Pacer
from worker.services.outbound.send_now import queue_now, send_now
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def sender() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def waiting(client: redis.Redis, who: str, level: int, *, lapses_in: float = 30.0) -> str:
    """A message of `level` waiting for `who`'s next slot in another process: its ticket."""
    ticket = uuid.uuid4().hex
    s, us = client.time()
    client.zadd(
        f"{KEY_PREFIX}:{{{who}}}:wait{level}",
        {ticket: s * 1_000_000 + us + round(lapses_in * 1e6)},
    )
    return ticket


def pacer(client: redis.Redis, rate: float = 1.0, **kw: object) -> Pacer:
    # A long window: whatever is taken stays taken for the whole test.
    return Pacer(client, rate=rate, urgent_share=0.2, margin=30.0, **kw)  # type: ignore[arg-type]


def test_a_waiting_crisis_reply_takes_the_next_slot_before_anything_else(
    client: redis.Redis,
) -> None:
    p, who = pacer(client), sender()
    crisis = waiting(client, who, CRISIS)
    for level, ahead in ((PAGE, 1), (URGENT, 2), (BULK, 3)):
        d = p.try_acquire(who, urgent=level > BULK, level=level)
        # Each one that gives way waits in its turn (bulk does not enter the waiting room).
        assert not d.granted and d.ahead == ahead, f"level {level} gives way"
    d = p.try_acquire(who, urgent=True, level=CRISIS, ticket=crisis)
    assert d.granted, "the free slot is the crisis reply's"
    assert client.zcard(f"{KEY_PREFIX}:{{{who}}}:wait3") == 0, "served: out of the waiting room"
    # The slot is taken now: the rate holds for everyone, the crisis level included.
    again = p.try_acquire(who, urgent=True, level=CRISIS)
    assert not again.granted and again.ahead == 0


def test_a_page_goes_before_other_replies_and_bulk_and_a_reply_before_bulk(
    client: redis.Redis,
) -> None:
    p, who = pacer(client, rate=3), sender()
    waiting(client, who, PAGE)
    assert p.try_acquire(who, urgent=True, level=URGENT).ahead == 1
    assert p.try_acquire(who, urgent=False, level=BULK).ahead == 2, "the page and the reply"
    assert p.try_acquire(who, urgent=True, level=CRISIS).granted, "a crisis reply never yields"
    other = sender()
    waiting(client, other, URGENT)
    assert not p.try_acquire(other, urgent=False).granted, "bulk yields to a waiting reply"
    assert p.try_acquire(other, urgent=True, level=PAGE).granted


def test_the_waiting_room_never_lets_a_sender_exceed_its_rate(client: redis.Redis) -> None:
    p, who = pacer(client, rate=3), sender()
    waiting(client, who, CRISIS)
    grants = [p.try_acquire(who, urgent=True, level=CRISIS).granted for _ in range(5)]
    assert grants == [True, True, True, False, False]
    for level in (PAGE, URGENT, BULK):
        assert not p.try_acquire(who, urgent=level > BULK, level=level, yields=False).granted


def test_one_that_has_given_way_long_enough_competes_again(client: redis.Redis) -> None:
    p, who = pacer(client), sender()
    waiting(client, who, CRISIS)
    assert not p.try_acquire(who, urgent=True, level=PAGE).granted
    turn = p.turn(1, urgent=True, sender=who, level=PAGE, yield_for=0.0)
    assert turn.grant is not None, "past its time to give way: on equal terms"


def test_a_waiter_whose_worker_died_stops_blocking_when_its_ticket_lapses(
    client: redis.Redis,
) -> None:
    p, who = pacer(client), sender()
    waiting(client, who, CRISIS, lapses_in=-0.001)  # its worker stopped renewing it
    assert p.try_acquire(who, urgent=True, level=PAGE).granted


def test_a_reply_behind_a_crisis_is_put_back_at_once_without_holding_its_thread(
    client: redis.Redis,
) -> None:
    slept: list[float] = []
    p, who = Pacer(client, rate=1, urgent_share=0.2, sleep=slept.append), sender()
    waiting(client, who, CRISIS)
    turn = p.turn(1, urgent=True, sender=who, level=URGENT, yield_for=30.0, defer_when_behind=True)
    assert turn.grant is None and turn.defer is not None and turn.behind == 1
    assert slept == [], "no wait in the worker thread"
    assert client.zcard(f"{KEY_PREFIX}:{{{who}}}:wait1") == 0, "it left the waiting room"


def test_the_level_and_the_time_to_give_way_come_from_the_row() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)

    def row(kind: str, priority: str = "urgent", age: float = 0.0) -> Prepared:
        return Prepared(
            1, "sms", "+12125550100", "x", None, None, "<x>", priority,
            kind=kind, created_at=now - timedelta(seconds=age),
        )  # fmt: skip

    assert [send_priority.level(row(k)) for k in ("crisis", "page", "reply")] == [
        CRISIS,
        PAGE,
        URGENT,
    ]
    assert send_priority.level(row("checkin", "bulk")) == BULK
    assert send_priority.level(row("page", "bulk")) == BULK
    assert send_priority.yield_for(row("crisis"), now) == 0.0
    assert send_priority.yield_for(row("reply", age=10), now) == send_priority.YIELD_SECONDS - 10
    assert send_priority.yield_for(row("reply", age=600), now) == 0.0
    assert send_priority.yield_for(row("checkin", "bulk"), now) is None


@pytest.mark.parametrize(
    ("value", "stored"),
    [("+1 212 555 0188", "+12125550188"), ("MG" + "a1" * 16, "MG" + "a1" * 16), ("", None)],
)
def test_oncall_from_takes_a_phone_or_a_messaging_service(value: str, stored: str | None) -> None:
    assert load_settings(_env_file=None, oncall_from=value).oncall_from == stored


@pytest.mark.parametrize("value", ["2125550188", "+1 555", "MG123", "clinic"])
def test_a_bad_oncall_from_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^CHECKIN_ONCALL_FROM: expected an E\.164"):
        load_settings(_env_file=None, oncall_from=value)


def _runtime(db_url: str, emulator: TwilioEmulator, broker: str, **kw: object) -> Runtime:
    settings = make_settings(
        db_url,
        broker_url=broker,
        sms_backend="twilio",
        twilio_account_sid=emulator.account_sid,
        twilio_auth_token=emulator.auth_token,
        twilio_from_number=sender(),
        twilio_api_url=emulator.base_url,
        twilio_timeout_seconds=2,
        **kw,
    )
    return build_runtime(settings)


def _urgent(rt: Runtime, kind: str, template: str, to: str, context: dict[str, str]) -> int:
    with session_scope(rt.sessions) as session:
        mid = queue_now(
            session,
            now=datetime.now(UTC),
            dedupe_key=f"test:{uuid.uuid4().hex}",
            template=template,
            kind=kind,
            channel="sms",
            patient_id=None,
            to_address=to,
            context=context,
        )
    assert mid is not None
    return mid


def test_a_page_goes_from_the_oncall_sender_on_its_own_budget(
    db_url: str, redis_url: str, twilio_emulator: TwilioEmulator
) -> None:
    oncall_from = f"+1212555{uuid.uuid4().int % 10**4:04d}"
    rt = _runtime(
        db_url,
        twilio_emulator,
        redis_url,
        sms_rate=1,
        sms_pace_margin_seconds=5,  # the patient sender is busy for six seconds per text
        sms_pace_max_wait_seconds=0.5,
        oncall_from=oncall_from,
    )
    link = {"link": "http://127.0.0.1:8000/followups/1"}
    try:
        first = _urgent(rt, "reply", "oncall_page", "+16465550101", link)
        assert send_now(rt, [first], datetime.now(UTC)) == {"sent": 1}
        # The patient sender's slot is taken for 6 s: another reply waits (deferred) ...
        second = _urgent(rt, "reply", "oncall_page", "+16465550102", link)
        assert send_now(rt, [second], datetime.now(UTC)) == {"deferred": 1}
        # ... and a page does not: it goes from its own sender, at once.
        page = _urgent(rt, "page", "oncall_page", "+16465550199", link)
        assert send_now(rt, [page], datetime.now(UTC)) == {"sent": 1}
    finally:
        rt.close()
    froms = {m["to"]: m["from"] for m in twilio_emulator.messages}
    assert froms["+16465550199"] == oncall_from
    assert froms["+16465550101"] != oncall_from
    assert "+16465550102" not in froms
