"""Which SMS carries the month's STOP notice (CHECKIN_STOP_REMINDER=monthly; docs/consent.md).

The first SMS a patient is sent in each calendar month of their own time zone ends with "Reply
STOP to opt out." (or a shorter form: domain/stop_notice.py). A month counts as reminded once an
SMS with `stop_notice` set has gone (sending, sent, delivered or unknown) since the month began
there; a body that names STOP itself (the opt-in confirmation, a HELP reply) counts too. When the
notice does not fit in one segment the body goes unchanged and the next short SMS carries it.
Crisis and possible-risk replies, STOP confirmations and on-call pages are never touched.

Two chunks sending to one patient at the same instant may both carry it: a harmless repeat,
cheaper than a lock on every send.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.store.models import Message
from worker.store.outbox import IN_FLIGHT, WENT_OUT

UNTOUCHED_KINDS = frozenset({"crisis", "page"})
# The STOP confirmation too: "STOP to opt out" under "You are unsubscribed" contradicts it.
UNTOUCHED_TEMPLATES = frozenset(
    {"crisis_reply", "possible_risk_reply", "oncall_page", "stop_confirmation"}
)
# What may have reached the phone this month: handed over, accepted, delivered, or not known.
WENT = (*IN_FLIGHT, *WENT_OUT)


def month_start(now: datetime, tz: str) -> datetime:
    """The instant the patient's current calendar month began, in their zone."""
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def eligible(m: Any) -> bool:
    return bool(
        m.channel == "sms"
        and m.patient_id is not None
        and m.kind not in UNTOUCHED_KINDS
        and m.template not in UNTOUCHED_TEMPLATES
    )


def owed(
    session: Session,
    patients: Iterable[tuple[int, str]],
    now: datetime,
    preparing: Iterable[int] = (),
) -> set[int]:
    """Of these (patient id, zone) pairs, the patients whose month has no STOP notice yet.

    One query for the whole chunk (the send path reads each table once per chunk). `preparing`:
    the rows being rendered now; a retry of a row that carried the notice on its failed attempt
    must carry it again, not count as having sent it."""
    starts = {pid: month_start(now, tz) for pid, tz in patients}
    if not starts:
        return set()
    rows = session.execute(
        select(Message.patient_id, func.max(Message.sending_at))
        .where(
            Message.patient_id.in_(list(starts)),
            Message.channel == "sms",
            Message.stop_notice.is_(True),
            Message.status.in_(WENT),
            Message.sending_at >= min(starts.values()),
            Message.id.not_in(list(preparing)),
        )
        .group_by(Message.patient_id)
    ).all()
    last: dict[int | None, datetime | None] = {pid: at for pid, at in rows}
    out: set[int] = set()
    for pid, since in starts.items():
        seen = last.get(pid)
        if seen is None or seen < since:
            out.add(pid)
    return out
