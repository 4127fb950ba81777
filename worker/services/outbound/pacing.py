"""Provider pacing: one limit per sender, shared by every worker on every machine, kept in Redis.

A US long code sends about 1 segment a second, toll-free about 3, a short code 100; beyond that
Twilio queues at its end, where an urgent message would wait behind the bulk ones we pushed.
Celery's `rate_limit` is per worker process, so it cannot keep N workers on M machines under one
sender's limit: this does.

The limit: in any one-second window the segments that reach the provider from one sender never
exceed its rate. It is a sliding-window log in Redis, one sorted-set entry ("slot") per segment,
checked and recorded by Lua scripts (atomic) with Redis's clock, so the clocks of the worker
machines do not matter. (A `clock` given to the Pacer replaces Redis's: tests step time with it.)

What counts is when a request *arrives* at the provider, which lies somewhere between the grant
and the provider's answer: a worker may take a while to send after its grant (a cold process
importing the SDK, a new TLS connection, a busy CPU). So a slot is held from its grant until the
answer, and is then dated at the latest instant the request can have arrived: the answer, less
the shortest grant-to-answer time this process has seen lately (the provider's own share of
every request; a thread's first request, which opens its connection, is not counted), but never
before the grant. It then counts for one window from that date. A
process that has not yet seen an answer dates slots at the answer itself (exact, and a little
slow); once warm, a slot costs about one window, so a sender runs at close to its rate. Each
window is lengthened by a margin (CHECKIN_SMS_PACE_MARGIN_SECONDS) for the network's one-way
time, which nothing here can observe.

A message of n segments takes n slots, `1/rate` apart, as the provider itself sends them: a
two-segment message on a 1/s long code holds the sender for two seconds.

Urgent share: bulk messages may use at most `1 - CHECKIN_URGENT_SHARE` of the rate, so the rest
is always free for urgent ones, which may also take whatever bulk leaves. An urgent message never
waits behind bulk traffic for more than about one window.

Priority: a waiting room per sender (one sorted set of tickets per level) orders who takes the
next free slot, crisis replies before pages before other urgent replies before bulk
(services/outbound/priority.py chooses the level). A message that must wait leaves a ticket that
lapses shortly after the wait it was told; a lower level that finds a live ticket above it does
not take the slot. It only chooses among messages that may go: the limit above is unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

    from worker.config import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "checkin:pace"
#: Priority levels, lowest first: what takes a sender's next slot when several wait for it.
BULK, URGENT, PAGE, CRISIS = 0, 1, 2, 3
#: A waiting ticket lapses this long after the wait it was told, unless renewed (its worker
#: died, or stopped waiting without saying so).
WAITER_LINGER = 1.0
#: How many recent answers the provider's shortest answer time is taken over.
ANSWER_SAMPLES = 32
#: When Redis cannot be asked, a bulk message is put back for this long (urgent ones go anyway).
UNAVAILABLE_RETRY_SECONDS = 30.0

# Shared by both scripts. KEYS: every slot of the sender, its bulk slots, a sequence.
# Times are integer microseconds (exact in a double; seconds with a fraction would be rounded to
# 14 digits by Lua's tostring). A slot with score s counts while s > now - window. Slots of
# requests still in flight are named "f:<id>" and scored `hold` ahead (they count, and they
# lapse by themselves if the worker dies mid-request); answered ones are named "<id>" and scored
# at the answer.
# The last ARGV of every script is the time to use (microseconds), or '' for Redis's own.
_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[#ARGV])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(x) return string.format('%.0f', x) end
local function expire(horizon)
  local ttl = math.ceil(horizon / 1000) + 1000
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl) end
end
"""

# KEYS[4..6]: the waiting room, one set per level above bulk (other urgent, page, crisis) of
# tickets scored with the instant they lapse.
# ARGV: capacity, window, bulk capacity, bulk window, segments, urgent (0|1), hold, level
# (0 bulk .. 3 crisis), ticket, yields (0|1), how long a waiting ticket outlives its wait.
# Returns {granted 0|1, wait, Redis time, first slot id, waiters ahead} as strings.
_ACQUIRE = (
    _PRELUDE
    + """
local cap, w = tonumber(ARGV[1]), tonumber(ARGV[2])
local bcap, bw = tonumber(ARGV[3]), tonumber(ARGV[4])
local n, urgent, hold = tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local level, ticket, yields, linger = tonumber(ARGV[8]), ARGV[9], ARGV[10] == '1', tonumber(ARGV[11])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - w))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now - bw))
local ahead = 0
for l = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[3 + l], '-inf', fmt(now))
  if yields and l > level then ahead = ahead + redis.call('ZCARD', KEYS[3 + l]) end
end
local function wait_for(key, limit, win)
  local count = redis.call('ZCARD', key)
  if count == 0 then return 0 end
  local excess = count + n - limit
  if excess <= 0 then return 0 end
  -- A message larger than the whole window waits for an empty window.
  if excess > count then excess = count end
  local slot = redis.call('ZRANGE', key, excess - 1, excess - 1, 'WITHSCORES')
  -- Still in flight: it will be answered at the earliest now, so it frees a window from now.
  if string.sub(slot[1], 1, 2) == 'f:' then return win end
  return tonumber(slot[2]) + win - now
end
local wait = wait_for(KEYS[1], cap, w)
if not urgent then
  local bwait = wait_for(KEYS[2], bcap, bw)
  if bwait > wait then wait = bwait end
end
-- Someone of a higher level is waiting: the next slot is theirs. Look again a slot later.
if ahead > 0 and wait < w / cap then wait = w / cap end
if wait > 0 then
  if level > 0 then
    redis.call('ZADD', KEYS[3 + level], fmt(now + wait + linger), ticket)
    local ttl = math.ceil((wait + linger) / 1000) + 1000
    if redis.call('PTTL', KEYS[3 + level]) < ttl then redis.call('PEXPIRE', KEYS[3 + level], ttl) end
  end
  return {'0', fmt(wait), fmt(now), '0', tostring(ahead)}
end
if level > 0 then redis.call('ZREM', KEYS[3 + level], ticket) end
local last = redis.call('INCRBY', KEYS[3], n)
local first = last - n + 1
local step, bstep = w / cap, bw / bcap
for i = 0, n - 1 do
  local member = 'f:' .. fmt(first + i)
  redis.call('ZADD', KEYS[1], fmt(now + hold + i * step), member)
  if not urgent then redis.call('ZADD', KEYS[2], fmt(now + hold + i * bstep), member) end
end
expire(hold + math.max(w, bw) + n * math.max(step, bstep))
return {'1', '0', fmt(now), fmt(first), '0'}
"""
)

# ARGV: first slot id, segments, urgent (0|1), step, bulk step, longest window, the grant's
# time, the provider's shortest answer time. Dates the slots of one grant at the latest instant
# the request can have arrived: now less that answer time, never before the grant.
# Returns Redis time.
_ANSWERED = (
    _PRELUDE
    + """
local first, n, urgent = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local step, bstep, w = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local at = math.max(tonumber(ARGV[7]), now - tonumber(ARGV[8]))
for i = 0, n - 1 do
  local id = fmt(first + i)
  redis.call('ZREM', KEYS[1], 'f:' .. id)
  redis.call('ZADD', KEYS[1], fmt(at + i * step), id)
  if not urgent then
    redis.call('ZREM', KEYS[2], 'f:' .. id)
    redis.call('ZADD', KEYS[2], fmt(at + i * bstep), id)
  end
end
expire(w + n * math.max(step, bstep))
return fmt(now)
"""
)


@dataclass(frozen=True)
class Limits:
    """What one sender may do: `capacity` segments in any `window` seconds, of which bulk may use
    `bulk_capacity` in any `bulk_window` seconds."""

    capacity: int
    window: float
    bulk_capacity: int
    bulk_window: float

    @classmethod
    def for_rate(cls, rate: float, urgent_share: float, margin: float = 0.0) -> Limits:
        """Limits for `rate` segments per second. A rate above 1 allows floor(rate) segments in
        any second (a window cannot hold part of a segment); below 1, one segment every 1/rate
        seconds. Bulk gets floor(capacity * (1 - urgent_share)) of each window, or, when that is
        less than one segment, one segment in a window stretched to the same average.
        `margin` lengthens every window (the network's one-way time to the provider)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= urgent_share < 1:
            raise ValueError("urgent_share must be in [0, 1)")
        if rate >= 1:
            capacity, base = math.floor(rate + 1e-9), 1.0
        else:
            capacity, base = 1, 1.0 / rate
        window = base + margin
        bulk_share = capacity * (1 - urgent_share)
        if urgent_share == 0:
            return cls(capacity, window, capacity, window)
        if bulk_share >= 1:
            return cls(capacity, window, math.floor(bulk_share + 1e-9), window)
        return cls(capacity, window, 1, window / bulk_share)


@dataclass(frozen=True)
class Grant:
    """Slots taken for one message; hand it back to `Pacer.answered` once the provider replied.
    `at`: Redis's clock at the grant."""

    sender: str
    first: int
    segments: int
    urgent: bool
    limits: Limits
    at: float = 0.0


@dataclass(frozen=True)
class Decision:
    """One attempt: a grant, or the seconds to wait before asking again. `at` is Redis's clock
    (seconds since the epoch) when the script ran."""

    grant: Grant | None
    wait: float
    at: float
    #: Messages of a higher level waiting for this sender, which this one gave way to.
    ahead: int = 0

    @property
    def granted(self) -> bool:
        return self.grant is not None


@dataclass(frozen=True)
class Turn:
    """The outcome of waiting for a turn: `waited` seconds, then either go with `grant` (None
    when the sender is not paced) or, when `defer` is set, put the message back for that many
    seconds without sending it."""

    waited: float
    grant: Grant | None = None
    defer: float | None = None
    #: Deferred while this many messages of a higher level were waiting.
    behind: int = 0


class PacingUnavailable(Exception):
    """Redis could not be asked."""


def sender_for(settings: Settings) -> str:
    """The sender a provider paces by: the From number, else the Messaging Service."""
    if settings.sms_backend != "twilio":
        return settings.sms_backend
    return settings.twilio_from_number or settings.twilio_messaging_service_sid or "twilio"


def _us(seconds: float) -> int:
    return round(seconds * 1e6)


class Pacer:
    """The shared limiter. Thread-safe (the Redis client is); one per process is enough.

    `hold`: how long a slot of a request still in flight is kept if its answer is never
    reported (the worker died): longer than any provider request may take. `margin`: added to
    every window, for the network's one-way time to the provider. `clock` (seconds since the
    epoch) replaces Redis's clock and the wall time a turn waits, with `sleep` stepping it: for
    tests that pass time in rather than wait for it; None in production (Redis's clock).
    """

    def __init__(
        self,
        client: Redis,
        *,
        rate: float,
        per_sender: dict[str, float] | None = None,
        urgent_share: float = 0.2,
        margin: float = 0.0,
        max_wait: float = 20.0,
        hold: float = 15.0,
        sender: str = "default",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.rate = rate
        self.per_sender = dict(per_sender or {})
        self.urgent_share = urgent_share
        self.margin = margin
        self.max_wait = max_wait
        self.hold = hold
        self.sender = sender
        self._sleep = sleep
        self._clock = clock
        self._elapsed = clock or time.monotonic
        self._acquire = client.register_script(_ACQUIRE)
        self._answered = client.register_script(_ANSWERED)
        self._lock = threading.Lock()
        self._answer_times: deque[float] = deque(maxlen=ANSWER_SAMPLES)
        self._thread = threading.local()
        # Limits per sender, computed once: asked for twice per paced message.
        self._limits: dict[str, Limits | None] = {}

    @classmethod
    def from_settings(cls, client: Redis, settings: Settings) -> Pacer:
        return cls(
            client,
            rate=settings.sms_rate,
            per_sender=settings.sms_rate_per_sender,
            urgent_share=settings.urgent_share,
            margin=settings.sms_pace_margin_seconds,
            # A row waits in `sending`; recovery treats a row that has been `sending` for
            # CHECKIN_SENDING_STALE_SECONDS as a crashed send, so never wait anywhere near that.
            max_wait=min(settings.sms_pace_max_wait_seconds, settings.sending_stale_seconds / 3),
            hold=settings.twilio_timeout_seconds + 5.0,
            sender=sender_for(settings),
        )

    def limits(self, sender: str) -> Limits | None:
        """The limits for `sender`, or None when it is not paced (rate 0)."""
        try:
            return self._limits[sender]
        except KeyError:
            pass
        rate = self.per_sender.get(sender, self.rate)
        limits = None if rate <= 0 else Limits.for_rate(rate, self.urgent_share, self.margin)
        self._limits[sender] = limits  # the same value whichever thread stores it first
        return limits

    def paces(self, sender: str | None = None) -> bool:
        """Whether messages from `sender` (None: this process's own) wait for a turn at all."""
        return self.limits(sender or self.sender) is not None

    @staticmethod
    def _keys(sender: str) -> list[str]:
        # One hash tag per sender: every key lives on one node of a Redis Cluster.
        kinds = ("all", "bulk", "seq", "wait1", "wait2", "wait3")
        return [f"{KEY_PREFIX}:{{{sender}}}:{kind}" for kind in kinds]

    def try_acquire(
        self,
        sender: str,
        segments: int = 1,
        urgent: bool = False,
        *,
        level: int | None = None,
        ticket: str = "",
        yields: bool = True,
    ) -> Decision:
        """Take `segments` slots for `sender` now if the limit allows and no message of a higher
        `level` is waiting (unless `yields` is False), else say how long to wait; a message of
        level 1 or more that must wait is entered in the waiting room under `ticket`. `level`
        defaults to URGENT or BULK. Raises PacingUnavailable when Redis cannot be asked."""
        import redis

        limits = self.limits(sender)
        n = max(1, int(segments))
        if limits is None:
            return Decision(None, 0.0, self._clock() if self._clock else time.time())
        lvl = level if level is not None else (URGENT if urgent else BULK)
        if not BULK <= lvl <= CRISIS:
            raise ValueError(f"level must be {BULK}..{CRISIS}")
        args = [
            limits.capacity,
            _us(limits.window),
            limits.bulk_capacity,
            _us(limits.bulk_window),
            n,
            1 if urgent else 0,
            _us(self.hold),
            lvl,
            ticket or uuid.uuid4().hex,
            1 if yields and lvl < CRISIS else 0,
            _us(WAITER_LINGER),
            self._now_arg(),
        ]
        try:
            granted, wait_us, at_us, first, ahead = self._acquire(
                keys=self._keys(sender), args=args
            )
        except redis.RedisError as exc:
            raise PacingUnavailable(type(exc).__name__) from None
        at = int(at_us) / 1e6
        if int(granted) != 1:
            return Decision(None, max(int(wait_us) / 1e6, 1e-6), at, int(ahead))
        return Decision(Grant(sender, int(first), n, urgent, limits, at), 0.0, at)

    def _now_arg(self) -> str:
        """The scripts' time argument: the given clock's, or '' for Redis's own."""
        return str(_us(self._clock())) if self._clock is not None else ""

    def leave(self, sender: str, level: int, ticket: str) -> None:
        """Take a ticket out of the waiting room (its message stopped waiting)."""
        import redis

        if not URGENT <= level <= CRISIS:
            return
        # When Redis cannot be told, the ticket lapses by itself within WAITER_LINGER.
        with contextlib.suppress(redis.RedisError):
            self.client.zrem(self._keys(sender)[2 + level], ticket)

    @property
    def answer_floor(self) -> float:
        """The shortest grant-to-answer time among this process's recent answers: the provider's
        share of every request, which a request never spends before it arrives. 0.0 (slots dated
        at the answer itself) until an answer has been seen."""
        with self._lock:
            return min(self._answer_times, default=0.0)

    def answered(
        self, grant: Grant, *, learn: bool = False, took: float | None = None
    ) -> float | None:
        """The provider has answered (or the request failed): the grant's slots are dated at the
        latest instant the request can have arrived, and count for one window from then.
        `learn`: the provider really answered (a response, not a timeout or a refused
        connection), so this request's duration may teach the answer floor. `took`: how long
        the provider call itself lasted, timed by the caller from just before the request; it
        is what is learnt when given. Returns Redis's clock then, or None when Redis could not be
        told (the slots then lapse after `hold`)."""
        import redis

        lim = grant.limits
        args = [
            grant.first,
            grant.segments,
            1 if grant.urgent else 0,
            _us(lim.window / lim.capacity),
            _us(lim.bulk_window / lim.bulk_capacity),
            _us(max(lim.window, lim.bulk_window)),
            _us(grant.at),
            _us(self.answer_floor),
            self._now_arg(),
        ]
        try:
            now = int(self._answered(keys=self._keys(grant.sender), args=args)) / 1e6
        except redis.RedisError as exc:
            log.warning("pacing: could not record an answer (%s)", type(exc).__name__)
            return None
        # A thread's first request opens its connection (and may load the SDK): its duration
        # is mostly ours, not the provider's, and would date later slots too early.
        warm = getattr(self._thread, "warm", False)
        self._thread.warm = True
        if learn and warm and now >= grant.at:
            # Grant-to-answer also holds the time between the grant and the request leaving,
            # which a busy process (many send threads woken by the same freed window) stretches
            # by tens of milliseconds: learnt as the provider's share, it would date slots
            # before their requests arrived and let a window overfill. The call's own duration
            # does not hold that wait.
            sample = min(took, now - grant.at) if took is not None else now - grant.at
            with self._lock:
                self._answer_times.append(sample)
        return now

    def acquire(self, sender: str, segments: int = 1, urgent: bool = False) -> float:
        """Take the slots if allowed and return 0.0 (the slots then count from now, as if the
        provider had answered at once); otherwise return the seconds to wait before asking
        again (nothing is taken then)."""
        decision = self.try_acquire(sender, segments, urgent)
        if decision.grant is not None:
            self.answered(decision.grant)
            return 0.0
        return decision.wait

    def turn(
        self,
        segments: int,
        urgent: bool,
        sender: str | None = None,
        *,
        level: int | None = None,
        yield_for: float | None = None,
        defer_when_behind: bool = False,
    ) -> Turn:
        """Wait until one message of `segments` may go to the provider, for at most `max_wait`.

        Returns Turn(waited, grant) when it may go now (report the provider's answer with
        `answered(grant, learn=...)`), or Turn(waited, defer=seconds) when its turn is further off than
        `max_wait` (nothing is taken then). When Redis cannot be asked an urgent message goes
        anyway (a crisis reply is never held by a limiter) and a bulk one is deferred.

        Priority (the waiting room): a message gives way to waiting messages of a higher
        `level` for its first `yield_for` seconds of waiting (default: half of `max_wait`), and
        competes on equal terms after that, so none waits forever. `defer_when_behind`: rather
        than wait (holding a worker thread) behind a higher level, it is deferred at once."""
        who = sender or self.sender
        if self.limits(who) is None:
            # Not paced: no ticket, no Redis (this runs once per message).
            return Turn(0.0)
        lvl = level if level is not None else (URGENT if urgent else BULK)
        give_way = self.max_wait / 2 if yield_for is None else yield_for
        ticket = uuid.uuid4().hex
        started = self._elapsed()
        while True:
            try:
                yields = self._elapsed() - started < give_way
                decision = self.try_acquire(
                    who, segments, urgent, level=lvl, ticket=ticket, yields=yields
                )
            except PacingUnavailable as exc:
                waited = self._elapsed() - started
                if urgent:
                    log.warning("pacing unavailable (%s); urgent message sent unpaced", exc)
                    return Turn(waited)
                log.warning("pacing unavailable (%s); bulk message deferred", exc)
                return Turn(waited, defer=UNAVAILABLE_RETRY_SECONDS)
            waited = self._elapsed() - started
            if decision.granted or decision.wait == 0.0:
                return Turn(waited, grant=decision.grant)
            if (decision.ahead and defer_when_behind) or waited + decision.wait > self.max_wait:
                self.leave(who, lvl, ticket)
                return Turn(waited, defer=max(decision.wait, 1.0), behind=decision.ahead)
            # A little jitter, so that threads woken by the same freed slot do not all collide.
            self._sleep(decision.wait + random.uniform(0.0005, 0.005))
