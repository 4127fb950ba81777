"""Pacing: one limit per sender, shared through Redis by every process.

The core property is checked as a property, not as a timing: whatever the processes do, no
one-second window (sliding, at the Redis time of each grant) holds more segments than the rate.
Where a test needs time to pass (a window, a provider's answer time, a lapse), it passes it in: a
`StepClock` stands for Redis's clock and the pacer's sleep, so answers are exact, not timed.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.conftest import make_settings
from tests.integration.procs import Procs, base_env, seed_due, statuses, wait_for
from tests.ops.pacing_load import hammer
from worker.services.outbound.pacing import Limits, Pacer, sender_for
from worker.services.outbound.send_now import queue_now, send_now
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import Message

FROM = "+12125550000"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    # Every test paces a sender of its own (a random number): nothing is shared between tests.
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


#: Redis's scripts count whole microseconds.
US = 1e-6


class StepClock:
    """Time that passes only when told: the pacer's clock (instead of Redis's) and its sleep."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # whole microseconds from here on: exact in the scripts

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def sender() -> str:
    return f"+1212{uuid.uuid4().int % 10**7:07d}"


def max_in_any_window(grants: list[tuple[float, int]], width: float = 1.0) -> float:
    """The most segments granted in any window [t, t + width) starting at a grant."""
    grants = sorted(grants)
    best, total, j = 0, 0, 0
    for i, (start, _) in enumerate(grants):
        while j < len(grants) and grants[j][0] < start + width:
            total += grants[j][1]
            j += 1
        best = max(best, total)
        total -= grants[i][1]
    return best


# ---------------------------------------------------------------- the limits


def test_limits_for_the_usual_senders() -> None:
    assert Limits.for_rate(1, 0.2) == Limits(1, 1.0, 1, 1.25)  # long code: bulk 0.8/s
    assert Limits.for_rate(3, 0.2) == Limits(3, 1.0, 2, 1.0)  # toll-free: one kept for urgent
    assert Limits.for_rate(100, 0.2) == Limits(100, 1.0, 80, 1.0)  # short code
    assert Limits.for_rate(0.5, 0.0) == Limits(1, 2.0, 1, 2.0)
    assert Limits.for_rate(2.7, 0.0, margin=0.1) == Limits(2, 1.1, 2, 1.1)
    with pytest.raises(ValueError):
        Limits.for_rate(0, 0.2)
    with pytest.raises(ValueError):
        Limits.for_rate(1, 1.0)


def test_the_sender_is_the_from_number_else_the_messaging_service() -> None:
    twilio = {"sms_backend": "twilio", "twilio_account_sid": "AC1", "twilio_auth_token": "t"}
    assert sender_for(make_settings("sqlite://", **twilio, twilio_from_number=FROM)) == FROM
    only_service = make_settings("sqlite://", **twilio, twilio_messaging_service_sid="MG1")
    assert sender_for(only_service) == "MG1"
    assert sender_for(make_settings("sqlite://")) == "console"


# ---------------------------------------------------------------- the limiter on real Redis


def test_no_one_second_window_holds_more_than_the_rate_across_processes(redis_url: str) -> None:
    rate, share, seconds = 20, 0.25, 4.0
    who = sender()
    url = redis_url
    # Three bulk processes and one urgent, messages of one to three segments, asking again as
    # soon as they may (or sooner): far more demand than the sender allows. Each grant is
    # counted when its request arrives at the "provider", some time after the grant.
    start_at = time.time() + 5  # after every spawned child has imported
    jobs = [(url, who, rate, share, seconds, i == 3, 3, i, start_at) for i in range(4)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        results = pool.starmap(hammer, jobs)
    grants = [g for result in results for g in result]
    assert all(results), "every process was granted turns"
    everything = [(at, n) for at, n, _ in grants]
    bulk = [(at, n) for at, n, urgent in grants if not urgent]
    urgent = [(at, n) for at, n, is_urgent in grants if is_urgent]
    limits = Limits.for_rate(rate, share)
    assert max_in_any_window(everything) <= rate
    assert max_in_any_window(bulk) <= limits.bulk_capacity == 15
    assert sum(n for _, n in everything) > 2 * rate, "the limiter granted real traffic"
    assert sum(n for _, n in urgent) >= seconds - 1, "urgent got its share while bulk pressed"
    print(
        f"\n{len(grants)} grants ({sum(n for _, n in everything)} segments) in {seconds}s at "
        f"{rate}/s; busiest second: {max_in_any_window(everything)}"
    )


def test_urgent_messages_take_their_share_when_bulk_has_drained_the_sender(
    client: redis.Redis,
) -> None:
    # A long window (margin 5 s) so that nothing expires while the test asks.
    pacer = Pacer(client, rate=10, urgent_share=0.2, margin=5.0)
    who = sender()
    assert [pacer.acquire(who) for _ in range(8)] == [0.0] * 8
    bulk_wait = pacer.acquire(who)
    assert bulk_wait > 5, "bulk has used its 80%"
    assert pacer.acquire(who, urgent=True) == 0.0
    assert pacer.acquire(who, urgent=True) == 0.0
    assert pacer.acquire(who, urgent=True) > 5, "the whole rate is used now"
    assert pacer.acquire(who) > 5


def test_urgent_messages_may_use_what_bulk_leaves(client: redis.Redis) -> None:
    pacer = Pacer(client, rate=10, urgent_share=0.2, margin=5.0)
    who = sender()
    assert [pacer.acquire(who, urgent=True) for _ in range(10)] == [0.0] * 10
    assert pacer.acquire(who, urgent=True) > 0
    assert pacer.acquire(who) > 0


def test_a_message_of_several_segments_holds_the_sender_for_as_many_slots(
    client: redis.Redis,
) -> None:
    clock = StepClock()
    pacer = Pacer(client, rate=1, urgent_share=0.0, margin=0.0, clock=clock)
    who = sender()
    assert pacer.acquire(who, segments=2) == 0.0
    assert pacer.acquire(who, urgent=True) == 2.0
    clock.sleep(1.999)
    assert pacer.acquire(who, urgent=True) == pytest.approx(0.001, abs=US)
    clock.sleep(0.001)
    assert pacer.acquire(who, urgent=True) == 0.0


def test_a_message_longer_than_the_window_waits_for_an_empty_one(client: redis.Redis) -> None:
    pacer = Pacer(client, rate=2, urgent_share=0.0, margin=5.0)
    who = sender()
    assert pacer.acquire(who) == 0.0
    assert pacer.acquire(who, segments=5) > 0, "it must not share a window"
    other = sender()
    assert pacer.acquire(other, segments=5) == 0.0, "alone in its window it goes"
    assert pacer.acquire(other) > 0


def test_each_sender_has_its_own_limit_and_rate(client: redis.Redis) -> None:
    toll_free = sender()
    pacer = Pacer(client, rate=1, per_sender={toll_free: 3}, urgent_share=0.0, margin=5.0)
    long_code = sender()
    assert pacer.acquire(long_code) == 0.0
    assert pacer.acquire(long_code) > 0
    assert [pacer.acquire(toll_free) for _ in range(3)] == [0.0] * 3
    assert pacer.acquire(toll_free) > 0


def test_a_rate_of_zero_is_not_paced(client: redis.Redis) -> None:
    unpaced = sender()
    pacer = Pacer(client, rate=0, per_sender={}, urgent_share=0.2)
    assert [pacer.acquire(unpaced) for _ in range(100)] == [0.0] * 100
    assert not client.exists(f"checkin:pace:{{{unpaced}}}:all")


def test_a_slot_in_flight_counts_until_the_provider_answers_and_a_window_after(
    client: redis.Redis,
) -> None:
    clock = StepClock()
    pacer = Pacer(client, rate=1, urgent_share=0.0, clock=clock)
    who = sender()
    first = pacer.try_acquire(who)
    assert first.grant is not None
    clock.sleep(5.0)  # longer than the window: only the missing answer holds the slot now
    assert pacer.acquire(who, urgent=True) == 1.0, "in flight: at least a window from now"
    answered = pacer.answered(first.grant)
    assert answered == pytest.approx(clock.now, abs=US), "cold: dated at the answer itself"
    clock.sleep(0.25)
    later = pacer.try_acquire(who, urgent=True)
    assert later.grant is None
    assert later.wait == pytest.approx(0.75, abs=US), "a window from the answer"
    clock.sleep(0.75)
    assert pacer.acquire(who, urgent=True) == 0.0


def test_once_warm_a_slot_is_dated_when_its_request_can_last_have_arrived(
    client: redis.Redis,
) -> None:
    clock = StepClock()
    pacer = Pacer(client, rate=1, urgent_share=0.0, clock=clock)
    who = sender()
    assert pacer.answer_floor == 0.0, "cold: slots are dated at the answer"
    opening = pacer.try_acquire(who)
    assert opening.grant is not None
    clock.sleep(0.5)  # a thread's first request also opens its connection
    pacer.answered(opening.grant, learn=True)
    assert pacer.answer_floor == 0.0, "a thread's first request teaches nothing"
    clock.sleep(1.0)
    first = pacer.try_acquire(who)
    assert first.grant is not None
    clock.sleep(0.3)  # the provider takes 300 ms to answer
    pacer.answered(first.grant, learn=True)
    assert pacer.answer_floor == pytest.approx(0.3, abs=US)
    clock.sleep(1.0)
    second = pacer.try_acquire(who)
    assert second.grant is not None
    clock.sleep(0.3)
    pacer.answered(second.grant, learn=True)
    third = pacer.try_acquire(who)
    # Dated at the grant (the answer less 300 ms), not at the answer: a window from then.
    assert third.grant is None
    assert third.wait == pytest.approx(0.7, abs=US)
    assert second.at + 1.0 - third.at == pytest.approx(third.wait, abs=US)


def test_a_failed_request_teaches_nothing(client: redis.Redis) -> None:
    pacer = Pacer(client, rate=10, urgent_share=0.0)
    for _ in range(3):
        decision = pacer.try_acquire(sender())
        assert decision.grant is not None
        pacer.answered(decision.grant, learn=False)
    assert pacer.answer_floor == 0.0


def test_the_slot_of_a_request_whose_answer_never_comes_lapses(client: redis.Redis) -> None:
    clock = StepClock()
    pacer = Pacer(client, rate=1, urgent_share=0.0, hold=0.3, clock=clock)
    who = sender()
    assert pacer.try_acquire(who).granted  # and the worker dies before the provider answers
    assert pacer.acquire(who) == 1.0, "in flight: a window from now"
    clock.sleep(0.3 + 1.0 - 0.001)
    assert pacer.acquire(who) > 0, "held until `hold`, then a window"
    clock.sleep(0.001)
    assert pacer.acquire(who) == 0.0


def test_a_turn_waits_for_the_slot_and_gives_up_past_the_longest_wait(
    client: redis.Redis,
) -> None:
    slept: list[float] = []
    pacer = Pacer(client, rate=5, urgent_share=0.0, margin=5.0, max_wait=60, sleep=slept.append)
    who = sender()
    for _ in range(5):
        turn = pacer.turn(1, urgent=False, sender=who)
        assert turn.grant is not None and turn.defer is None
        pacer.answered(turn.grant)
    # The sixth would wait about six seconds: with a longest wait of one it is deferred at once.
    pacer.max_wait = 1.0
    turn = pacer.turn(1, urgent=False, sender=who)
    assert turn.grant is None
    assert turn.defer is not None and 5 < turn.defer <= 6
    assert slept == [], "past the longest wait it does not sleep at all"


def test_a_turn_sleeps_until_the_window_frees_and_says_how_long_it_waited(
    client: redis.Redis,
) -> None:
    clock = StepClock()
    pacer = Pacer(client, rate=1, urgent_share=0.0, max_wait=10, clock=clock, sleep=clock.sleep)
    who = sender()
    first = pacer.turn(1, urgent=False, sender=who)
    assert first.grant is not None and first.waited == 0.0
    clock.sleep(0.4)  # the provider answers after 400 ms: the slot counts a window from then
    pacer.answered(first.grant)
    second = pacer.turn(1, urgent=False, sender=who)
    assert second.grant is not None and second.defer is None
    # One sleep of the window's rest, plus under 5 ms of jitter.
    assert 1.0 <= second.waited < 1.0 + 0.005
    assert second.grant.at - first.grant.at == pytest.approx(0.4 + second.waited, abs=US)


# ---------------------------------------------------------------- sending through the pacer


def _runtime(db_url: str, emulator: TwilioEmulator, broker: str, **overrides: object) -> Runtime:
    settings = make_settings(
        db_url,
        broker_url=broker,
        sms_backend="twilio",
        twilio_account_sid=emulator.account_sid,
        twilio_auth_token=emulator.auth_token,
        twilio_from_number=sender(),
        twilio_api_url=emulator.base_url,
        twilio_timeout_seconds=2,
        **overrides,
    )
    return build_runtime(settings)


def _page(rt: Runtime, n: int, *, urgent: bool) -> int:
    now = datetime.now(UTC)
    with session_scope(rt.sessions) as session:
        mid = queue_now(
            session,
            now=now,
            dedupe_key=f"test:{uuid.uuid4().hex}",
            template="oncall_page",
            kind="page",
            channel="sms",
            patient_id=None,
            to_address=f"+1646555{n:04d}",
            context={"link": "http://127.0.0.1:8000/followups/1"},
            urgent=urgent,
        )
    assert mid is not None
    return mid


def _row(rt: Runtime, mid: int) -> Message:
    with session_scope(rt.sessions) as session:
        row = session.scalar(select(Message).where(Message.id == mid))
        assert row is not None
        session.expunge(row)
        return row


def test_a_busy_sender_puts_bulk_back_and_lets_urgent_through(
    db_url: str, redis_url: str, twilio_emulator: TwilioEmulator
) -> None:
    rt = _runtime(
        db_url,
        twilio_emulator,
        redis_url,
        sms_rate=2,
        urgent_share=0.5,  # bulk one a second, urgent another
        sms_pace_max_wait_seconds=0.01,
    )
    try:
        first, second, crisis = _page(rt, 1, urgent=False), _page(rt, 2, urgent=False), 0
        assert send_now(rt, [first], datetime.now(UTC)) == {"sent": 1}
        before = datetime.now(UTC)
        assert send_now(rt, [second], before) == {"deferred": 1}
        crisis = _page(rt, 3, urgent=True)
        assert send_now(rt, [crisis], datetime.now(UTC)) == {"sent": 1}
        paced = _row(rt, second)
    finally:
        rt.close()
    assert [m["to"] for m in twilio_emulator.messages] == ["+16465550001", "+16465550003"]
    assert paced.status == "scheduled"
    assert paced.status_reason == "paced"
    assert paced.attempts == 0, "waiting for the sender is not an attempt"
    assert paced.queued_at is None
    assert (paced.due_at - before).total_seconds() >= 0.9, "due again when the sender is free"


def test_without_redis_urgent_still_goes_and_bulk_waits(
    db_url: str, twilio_emulator: TwilioEmulator
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    rt = _runtime(db_url, twilio_emulator, dead)
    try:
        bulk, crisis = _page(rt, 1, urgent=False), _page(rt, 2, urgent=True)
        assert send_now(rt, [bulk], datetime.now(UTC)) == {"deferred": 1}
        assert send_now(rt, [crisis], datetime.now(UTC)) == {"sent": 1}
        assert _row(rt, bulk).status_reason == "paced"
    finally:
        rt.close()
    assert [m["to"] for m in twilio_emulator.messages] == ["+16465550002"]


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_real_workers_never_put_more_than_the_rate_into_any_second_at_the_provider(
    sqlite_url: str, redis_url: str, procs: Procs, tmp_path: Path
) -> None:
    import threading
    import time

    n, rate = 100, 10
    redis.Redis.from_url(redis_url).flushdb()
    seed_due(sqlite_url, datetime.now(UTC), n)
    accepted: list[float] = []

    def clock() -> datetime:
        # The emulator reads its clock once per accepted message (status callbacks are off).
        if threading.current_thread().name != "twilio-emulator-callbacks":
            accepted.append(time.time())
        return datetime.now(UTC)

    with TwilioEmulator(clock=clock) as emulator:
        procs.env = {
            **base_env(tmp_path, sqlite_url, redis_url, emulator),
            "CHECKIN_SMS_RATE": str(rate),
            # Bulk may take the whole rate here, so the limit itself is what is tested.
            "CHECKIN_URGENT_SHARE": "0",
            "CHECKIN_SEND_CONCURRENCY": "16",
        }
        procs.start("beat", "--schedule-file", str(tmp_path / "beat"), log="beat.log")
        for name in ("w1", "w2"):
            procs.start("worker", "-Q", "urgent,bulk", "-c", "2", "--name", name, log=f"{name}.log")
        wait_for(lambda: statuses(sqlite_url)["sent"] == n, 120, f"all {n} messages to be sent")
        counts = emulator.count_by_to()
    assert len(counts) == n and set(counts.values()) == {1}
    assert len(accepted) == n
    busiest = max_in_any_window([(t, 1) for t in accepted])
    assert busiest <= rate, f"{busiest} messages accepted within one second"
    span = max(accepted) - min(accepted)
    print(f"\n{n} messages accepted over {span:.1f}s by two workers; busiest second: {busiest}")
