"""The outbox state machine: every state a message row can be in, every move between them, the
groups of states the rest of the code asks about, and the one way a row changes state.

No other module spells a state: they use `MessageStatus` (named in store/message_status.py, a
leaf the models can import; re-exported here) and the groups below (a test greps for strays). A
move is a conditional UPDATE on the states it may come from, and the caller trusts the row count: a task delivered twice, a report applied late, two dispatchers at once all find the row
already moved and change nothing. `move()` refuses a pair that is not in `MOVES`, so a new move is
a line in the table (with its reason) before it is a line of code.

The values are the strings the `messages.status` column has always held: nothing is migrated.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Update, bindparam, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from worker.store.message_status import MessageStatus
from worker.store.models import Message

S = MessageStatus


@dataclass(frozen=True)
class Move:
    """One allowed move. `back`: it returns the row to an earlier step of the send, so the same
    message may go out later (each such move says why it is safe)."""

    from_: MessageStatus
    to: MessageStatus
    why: str
    back: bool = False


#: Every move the code makes, and why. Anything else is refused by `move()`.
MOVES: tuple[Move, ...] = (
    Move(S.SCHEDULED, S.QUEUED, "claimed: due, by the dispatcher; urgent, by whoever wrote it"),
    Move(S.SCHEDULED, S.SUPPRESSED, "consent withdrawn; the page's follow-up acknowledged"),
    Move(S.SCHEDULED, S.CANCELLED, "schedule paused or removed; appointment moved or cancelled"),
    Move(S.QUEUED, S.SENDING, "a worker claims it for the provider call"),
    Move(S.QUEUED, S.SUPPRESSED, "the page's follow-up acknowledged before the send"),
    Move(
        S.QUEUED,
        S.SCHEDULED,
        "the broker refused the task: unclaimed, the next dispatch claims it again",
        back=True,
    ),
    Move(S.SENDING, S.SENT, "the provider accepted it; or reconciliation found it there"),
    Move(S.SENDING, S.UNKNOWN, "the provider call timed out; or the worker died mid-send"),
    Move(S.SENDING, S.FAILED, "no address, rejected for good, out of retries, or reported"),
    Move(S.SENDING, S.SUPPRESSED, "send-time re-check: too late, no consent; carrier opt-out"),
    Move(S.SENDING, S.CANCELLED, "send-time re-check: patient, appointment or schedule changed"),
    Move(S.SENDING, S.DELIVERED, "the delivery report arrived before the send was recorded"),
    Move(S.SENDING, S.UNDELIVERED, "the delivery report arrived before the send was recorded"),
    Move(
        S.SENDING,
        S.SCHEDULED,
        "retry backoff after a transient error; quiet hours began (deferred to their end); "
        "the sender is busy (paced): not an attempt, nothing reached the provider",
        back=True,
    ),
    Move(
        S.SENDING,
        S.QUEUED,
        "reconciliation: the worker died and the provider has no such message: send again",
        back=True,
    ),
    Move(S.SENT, S.DELIVERED, "delivery report"),
    Move(S.SENT, S.UNDELIVERED, "delivery report"),
    Move(S.SENT, S.FAILED, "delivery report"),
    Move(S.UNKNOWN, S.SENT, "reconciliation found it at the provider"),
    Move(
        S.UNKNOWN,
        S.QUEUED,
        "reconciliation: the provider has no such message (the request never arrived): send again",
        back=True,
    ),
    Move(S.UNKNOWN, S.DELIVERED, "a delivery report settles it"),
    Move(S.UNKNOWN, S.UNDELIVERED, "a delivery report settles it"),
    Move(S.UNKNOWN, S.FAILED, "a delivery report settles it"),
    Move(S.UNDELIVERED, S.DELIVERED, "a late report: carriers report out of order, delivered wins"),
    Move(
        S.SUPPRESSED,
        S.SCHEDULED,
        "consent given again: rows the withdrawal suppressed, still ahead, go after all",
        back=True,
    ),
    Move(
        S.CANCELLED,
        S.SCHEDULED,
        "schedule resumed: rows the pause cancelled, still ahead, go after all",
        back=True,
    ),
)

ALLOWED: frozenset[tuple[MessageStatus, MessageStatus]] = frozenset((m.from_, m.to) for m in MOVES)

# Groups: what other modules ask about a row. Tuples, so SQL `IN (...)` lists keep one order.

#: Still on its way out: "due but not yet sent" counts these (ops, dashboard, metrics).
PENDING = (S.SCHEDULED, S.QUEUED, S.SENDING)
#: Waiting: no worker has it yet, so it can still be stopped before any provider call.
WAITING = (S.SCHEDULED, S.QUEUED)
#: Past waiting: handed to a worker, or settled. The preview leaves these occurrences out.
DONE = tuple(s for s in S if s not in WAITING)
#: Went out: the provider accepted it and nobody reported a failure since.
WENT_OUT = (S.SENT, S.DELIVERED)
#: The provider accepted it, whatever the carrier said afterwards.
ACCEPTED = (S.SENT, S.DELIVERED, S.UNDELIVERED)
#: It did not go: the provider refused it for good, or the carrier could not deliver it.
FAILURES = (S.FAILED, S.UNDELIVERED)
#: Needs a look: did not go, or nobody knows whether it went.
PROBLEMS = (S.FAILED, S.UNDELIVERED, S.UNKNOWN)
#: A provider call under way, or one whose outcome is not known yet.
IN_FLIGHT = (S.SENDING, S.UNKNOWN)
#: Never recorded as claimed by a worker, and not left behind by one: a history shows the rest.
NOT_TRIED = (S.SCHEDULED, S.QUEUED, S.CANCELLED)

#: The provider's delivery reports (Twilio's own words, which are ours) and the states each may
#: move a row from: forward only, so a report applied twice, late or out of order is harmless.
REPORTS: Mapping[MessageStatus, tuple[MessageStatus, ...]] = {
    S.DELIVERED: (S.SENDING, S.SENT, S.UNKNOWN, S.UNDELIVERED),
    S.UNDELIVERED: (S.SENDING, S.SENT, S.UNKNOWN),
    S.FAILED: (S.SENDING, S.SENT, S.UNKNOWN),
}


class MoveRefused(ValueError):
    """A move that is not in `MOVES`: a programming error, not bad input."""


#: Which rows: their ids, or a SQL condition on the messages table that picks them.
Rows = Iterable[int] | ColumnElement[bool]
From = MessageStatus | Iterable[MessageStatus]


def move(session: Session, ids: Rows, from_: From, to: MessageStatus, **values: Any) -> int:
    """Move the given rows that are in `from_` to `to`, setting `values` too, with one UPDATE.

    Returns how many rows moved: rows in another state (someone moved them first) are left
    alone, and the caller trusts the count. Runs in the caller's transaction (the ORM's UPDATE,
    so pending changes are flushed first and loaded rows see the new state). Raises
    `MoveRefused` for a pair that is not in `MOVES`, before touching anything.
    """
    if isinstance(ids, ColumnElement):
        where = ids
    else:
        ids = list(ids)
        where = Message.id == ids[0] if len(ids) == 1 else Message.id.in_(ids)
    stmt = _guarded(update(Message), Message.status, from_, to, values).where(where)
    return int(getattr(session.execute(stmt), "rowcount", 0) or 0)


def move_returning(
    session: Session,
    ids: Collection[int],
    from_: From,
    to: MessageStatus,
    columns: Sequence[str],
    **values: Any,
) -> Sequence[Row[*tuple[Any, ...]]]:
    """`move()` for a claim that reads back what it claimed: the moved rows' `columns` (by
    name, RETURNING), in one statement. A Core UPDATE: the claims run in a session of their own,
    on the hot path, with no loaded rows to keep in step."""
    table = _messages()
    stmt = _guarded(update(table), table.c.status, from_, to, values)
    stmt = stmt.where(table.c.id.in_(list(ids))).returning(*(table.c[c] for c in columns))
    return session.execute(stmt).all()


def move_each(
    session: Session,
    rows: Sequence[Mapping[str, Any]],
    from_: From,
    to: MessageStatus,
    **values: Any,
) -> int:
    """`move()` with values that differ from row to row, as one executemany: each of `rows`
    holds the row's id as `m_id` and the values `values` refer to with `bindparam("m_...")`.
    Returns the rows moved, as the driver counts them."""
    if not rows:
        return 0
    table = _messages()
    stmt = _guarded(update(table), table.c.status, from_, to, values)
    stmt = stmt.where(table.c.id == bindparam("m_id"))
    return int(getattr(session.execute(stmt, list(rows)), "rowcount", 0) or 0)


def check(from_: From, to: MessageStatus) -> tuple[MessageStatus, ...]:
    """The `from_` states as a tuple, once every (from, to) pair is known to be allowed."""
    # A state read back from the database is a plain string: one state, not its letters.
    froms = (S(from_),) if isinstance(from_, str) else tuple(S(f) for f in from_)
    if not froms:
        raise MoveRefused(f"a move to {to!s} needs at least one state to move from")
    refused = [f for f in froms if (f, to) not in ALLOWED]
    if refused:
        pairs = ", ".join(f"{f!s} -> {to!s}" for f in refused)
        raise MoveRefused(f"not an allowed outbox move: {pairs} (see worker/store/outbox.py)")
    return froms


def _guarded(
    stmt: Update, status: Any, from_: From, to: MessageStatus, values: dict[str, Any]
) -> Update:
    if "status" in values:
        raise MoveRefused("the new status is `to`, not a value")
    froms = check(from_, to)
    # One state: `status = ?`, the statement every claim used before this module existed.
    guard = status == froms[0] if len(froms) == 1 else status.in_(froms)
    return stmt.where(guard).values(status=to, **values)


def _messages() -> Table:
    return cast(Table, Message.__table__)


__all__ = [
    "ACCEPTED",
    "ALLOWED",
    "DONE",
    "FAILURES",
    "IN_FLIGHT",
    "MOVES",
    "NOT_TRIED",
    "PENDING",
    "PROBLEMS",
    "REPORTS",
    "WAITING",
    "WENT_OUT",
    "MessageStatus",
    "Move",
    "MoveRefused",
    "check",
    "move",
    "move_each",
    "move_returning",
]
