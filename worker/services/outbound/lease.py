"""Send leases: which worker process holds a `sending` row, and whether it is still alive.

A row caught `sending` when its worker dies must be settled soon (found at the provider, or
sent again), but a row a live worker is still sending must never be sent twice. Time alone
cannot tell the two apart quickly: a live attempt may wait for its pacing turn and then for the
provider for tens of seconds, so the stale rule (CHECKIN_SENDING_STALE_SECONDS) is long.

So each worker process holds a lease in Redis, renewed every BEAT seconds: one entry in a sorted
set, scored with the instant it lapses (Redis's clock). A claimed row names its holder
(`messages.sending_by`). The holder fences itself: it starts a provider call only while its
lease, by its own last successful renewal, outlives the call's timeout; when it cannot vouch for
that (Redis unreachable), it first disowns the row, which then falls back to the stale rule. So
once a lease has lapsed (plus a settle margin for the provider to record a request already in
flight), no call of its holder can still reach the provider, and its rows may be reconciled.

A lease that has lapsed is never renewed: once others may have judged it lapsed (and settled
its rows, and sent them again from elsewhere), a holder that comes back (a network partition
healed, a process paused for longer than the lease) must not send what it claimed under it. The
renewal is refused by Redis itself when the entry's score is already past (atomically, so a
renewal that arrives late cannot revive it), and the holder refuses to renew a lease its own
clock says may have lapsed (a Redis restarted empty has no entry to refuse); either way the
holder takes a new name. Its rows keep the old one, so a send goes without asking the database
again only when the row's lease is the holder's current one (send.py `_lease_covers`); any other
row is first disowned in the database, a compare-and-set that fails when reconciliation took it.

A lapse counts only as positive evidence: an entry that is missing (Redis restarted empty) says
nothing, and while Redis has been up for less than a lease's life, a restored old entry may hide
a later renewal that the restart lost; in both cases the stale rule applies.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

KEY = "checkin:leases"
#: Seconds between renewals.
BEAT = 1.0
#: A lease outlives the provider call's timeout by this much (renewals late by a few beats).
SPARE = 4.0
#: After a lease has lapsed, this long for a request already in flight to be recorded.
SETTLE = 1.0
#: Entries of holders gone for this long are dropped.
FORGET_SECONDS = 86_400

# KEYS: the lease set. ARGV: owner, ttl (microseconds). Returns Redis time (microseconds), or
# "lapsed" (nothing written) when the owner's entry is already past: a lapsed lease stays lapsed.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held and tonumber(held) <= now then
  return 'lapsed'
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - 86400000000))
return string.format('%.0f', now)
"""


def lease_ttl(call_timeout: float) -> float:
    """How long a lease lasts: longer than one provider call plus a few late renewals."""
    return call_timeout + SPARE


def new_owner() -> str:
    """A name unique to this process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """This process's lease. `start()` renews it in a daemon thread; `valid_for(s)` says whether
    a call of `s` seconds started now surely ends while the lease holds (by this process's own
    view: the time of its last renewal that Redis confirmed)."""

    def __init__(
        self,
        client: Redis,
        *,
        ttl: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._clock = clock
        self.ttl = ttl
        self.owner = owner or new_owner()
        self._renew = client.register_script(_RENEW)
        self._ok: float | None = None  # time.monotonic() just before the last confirmed renewal
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: Times this process gave up a lapsed lease for a new one.
        self.rotations = 0

    def renew(self) -> bool:
        import redis

        started = self._clock()
        with self._lock:
            # By this holder's own clock the lease may have lapsed (no renewal confirmed for a
            # lease's life, less a beat for clocks that run at slightly different rates).
            if self._ok is not None and started - self._ok >= self.ttl - BEAT:
                self._rotate("not renewed for a lease's life")
            owner = self.owner
        try:
            answer = self._renew(keys=[KEY], args=[owner, round(self.ttl * 1e6)])
            if answer in (b"lapsed", "lapsed"):
                with self._lock:
                    if self.owner == owner:
                        self._rotate("Redis says it lapsed")
                    owner = self.owner
                answer = self._renew(keys=[KEY], args=[owner, round(self.ttl * 1e6)])
        except redis.RedisError as exc:
            log.warning("lease: could not renew (%s)", type(exc).__name__)
            return False
        if answer in (b"lapsed", "lapsed"):  # a fresh name cannot have lapsed; stay safe
            return False
        with self._lock:
            if self.owner == owner:
                self._ok = started
        return True

    def _rotate(self, why: str) -> None:
        """Give up this lease for good and hold a new one (under self._lock): rows claimed under
        the old name are no longer this process's to send without asking the database."""
        old = self.owner
        self.owner = new_owner()
        self._ok = None
        self.rotations += 1
        log.warning("lease: %s; %s is given up, now %s", why, old, self.owner)

    def start(self) -> None:
        """Renew now and then every BEAT seconds, in a daemon thread (once per process)."""
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="lease", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self.renew()
            time.sleep(BEAT)

    def valid_for(self, seconds: float) -> bool:
        """Whether a call of `seconds` started now surely ends while this lease holds."""
        return self.covers(self.owner, seconds)

    def covers(self, owner: str | None, seconds: float) -> bool:
        """Whether a row claimed under `owner` may be sent now by a call of `seconds` without
        asking the database: `owner` is still this process's lease, and it surely holds."""
        with self._lock:
            ok, current = self._ok, self.owner
        return owner == current and ok is not None and self._clock() - ok + seconds < self.ttl


def lapsed(client: Redis, owners: Iterable[str], *, ttl: float) -> set[str]:
    """Those of `owners` whose lease has surely lapsed (see the module's note): an empty set when
    Redis cannot be asked, or has not been up for a lease's life."""
    import redis

    wanted = sorted(set(owners))
    if not wanted:
        return set()
    try:
        uptime = float(client.info("server").get("uptime_in_seconds", 0))
        if uptime < ttl + SETTLE + BEAT:
            return set()
        seconds, micros = client.time()
        now = seconds * 1_000_000 + micros
        scores = client.zmscore(KEY, wanted)
    except redis.RedisError as exc:
        log.warning("lease: could not read leases (%s)", type(exc).__name__)
        return set()
    limit = now - round(SETTLE * 1e6)
    return {o for o, s in zip(wanted, scores, strict=True) if s is not None and s < limit}
