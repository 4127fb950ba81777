"""Sign-in throttling: per account and per source address.

- Every refused attempt is a `signin_failures` row (reason: password, unknown_account,
  second_factor, backoff, locked, address).
- Back-off: from the 3rd failure of an account within the window, the next attempt must wait
  2, 4, 8 ... seconds (at most 60) after the last one; an attempt sooner is refused unchecked
  and counts as a failure too, so hammering does not help.
- Lock: ACCOUNT_LIMIT failures within WINDOW lock the account for LOCK, refused with 429 even
  with the right password, until then or until `checkin users unlock ID`.
- An address with ADDRESS_LIMIT failures within WINDOW is refused (429) for every account.
A successful sign-in or an unlock clears the account's count (the rows stay, for /metrics).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from worker.services.errors import NotFound
from worker.services.records import audit
from worker.store.models import SignInFailure, User

log = logging.getLogger(__name__)

WINDOW: Final = timedelta(minutes=15)
LOCK: Final = timedelta(minutes=15)
ACCOUNT_LIMIT: Final = 10
ADDRESS_LIMIT: Final = 50
BACKOFF_AFTER: Final = 3
BACKOFF_MAX_SECONDS: Final = 60
# argon2 takes 64 MiB per hash: at most this many at once per process; the rest wait.
HASH_SLOTS: Final = 4
HASH_WAIT_SECONDS: Final = 20.0

_slots = threading.BoundedSemaphore(HASH_SLOTS)


class Busy(Exception):
    """Too many password checks in progress: try again shortly."""


@contextmanager
def hash_slot() -> Iterator[None]:
    """Hold one of the process's password-hash slots (raises Busy after HASH_WAIT_SECONDS)."""
    if not _slots.acquire(timeout=HASH_WAIT_SECONDS):
        raise Busy("too many sign-ins at once: try again in a few seconds")
    try:
        yield
    finally:
        _slots.release()


@dataclass(frozen=True)
class Refusal:
    reason: str  # locked | address | backoff
    retry_after: int  # seconds
    message: str


def _minutes(seconds: float) -> int:
    return max(1, int(seconds + 59) // 60)


def check(session: Session, user: User | None, address: str, now: datetime) -> Refusal | None:
    """Why this attempt must be refused before any password is checked, or None."""
    if user is not None and user.locked_until is not None and user.locked_until > now:
        left = (user.locked_until - now).total_seconds()
        return Refusal(
            "locked",
            int(left) + 1,
            "This account is locked after too many failed sign-ins. Try again in "
            f"{_minutes(left)} minutes, or ask an administrator to unlock it.",
        )
    since = now - WINDOW
    by_address = session.scalar(
        select(func.count())
        .select_from(SignInFailure)
        .where(SignInFailure.address == address, SignInFailure.at > since, ~SignInFailure.cleared)
    )
    if int(by_address or 0) >= ADDRESS_LIMIT:
        return Refusal(
            "address",
            int(WINDOW.total_seconds()),
            "Too many failed sign-ins from this network. Try again in 15 minutes.",
        )
    if user is None:
        return None
    count, last = session.execute(
        select(func.count(), func.max(SignInFailure.at)).where(
            SignInFailure.user_id == user.id, SignInFailure.at > since, ~SignInFailure.cleared
        )
    ).one()
    if int(count or 0) >= BACKOFF_AFTER and last is not None:
        wait = min(2 ** (int(count) - BACKOFF_AFTER + 1), BACKOFF_MAX_SECONDS)
        last_at = last if last.tzinfo is not None else last.replace(tzinfo=now.tzinfo)
        left = (last_at + timedelta(seconds=wait) - now).total_seconds()
        if left > 0:
            return Refusal(
                "backoff",
                int(left) + 1,
                f"Too many failed sign-ins: wait {int(left) + 1} seconds before trying again.",
            )
    return None


def fail(session: Session, user: User | None, address: str, reason: str, now: datetime) -> bool:
    """Record a refused attempt (and the audit row); lock the account when it reaches the
    limit. Returns True if this failure locked it."""
    session.add(
        SignInFailure(
            at=now, user_id=user.id if user else None, address=address[:64], reason=reason
        )
    )
    session.flush()
    who = audit.Who(
        actor="user" if user else "anonymous",
        via="web",
        user_id=user.id if user else None,
        address=address[:64],
    )
    audit.record(
        session,
        now=now,
        actor="anonymous",
        action="sign_in_failed",
        entity="user",
        entity_id=user.id if user else None,
        detail={"reason": reason},
        who=who,
    )
    log.warning(
        "sign-in refused: account=%s address=%s reason=%s",
        user.id if user else "unknown",
        address,
        reason,
    )
    if user is None or (user.locked_until is not None and user.locked_until > now):
        return False
    count = session.scalar(
        select(func.count())
        .select_from(SignInFailure)
        .where(
            SignInFailure.user_id == user.id,
            SignInFailure.at > now - WINDOW,
            ~SignInFailure.cleared,
        )
    )
    if int(count or 0) >= ACCOUNT_LIMIT:
        user.locked_until = now + LOCK
        audit.record(
            session,
            now=now,
            actor="system",
            action="locked",
            entity="user",
            entity_id=user.id,
            detail={"until": user.locked_until.isoformat()},
            who=who,
        )
        log.warning(
            "account %d locked until %s (too many failed sign-ins)", user.id, user.locked_until
        )
        return True
    return False


def clear(session: Session, user_id: int) -> None:
    session.execute(
        update(SignInFailure)
        .where(SignInFailure.user_id == user_id, ~SignInFailure.cleared)
        .values(cleared=True)
    )


def unlock(session: Session, user_id: int, now: datetime) -> User:
    """Lift a lock and forget the account's recent failures (`checkin users unlock`)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    was = user.locked_until
    user.locked_until = None
    clear(session, user_id)
    audit.record(
        session,
        now=now,
        actor="cli",
        action="unlock",
        entity="user",
        entity_id=user_id,
        detail={"was_locked_until": was.isoformat() if was else None},
    )
    session.flush()
    return user


def failures_by_reason(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(SignInFailure.reason, func.count()).group_by(SignInFailure.reason)
    ).all()
    return {str(reason): int(n) for reason, n in rows}
