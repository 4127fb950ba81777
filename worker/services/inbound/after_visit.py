"""Reading the answer to a day-after-visit check-in (docs/after-visit.md; planned by
services/outbound/after_visit.py).

The answer is a `mood` value (0-10, 10 = very good), stored and flagged as every mood answer is;
an answer of the protocol's `low` or less, any words sent with it, or words alone also open an
`after_visit` follow-up for a clinician (the words stay in the inbound message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.protocols import AfterVisit
from worker.services.outbound.after_visit import INSTRUMENT, TEMPLATE
from worker.store.models import CheckIn, Message

__all__ = ["INSTRUMENT", "VisitCheckin", "has_words", "needs_clinician", "of_checkin"]


@dataclass(frozen=True)
class VisitCheckin:
    """An open check-in that is a day-after-visit one: its visit and its `low` threshold."""

    appointment_id: int | None
    low: int


def of_checkin(session: Session, checkin: CheckIn) -> VisitCheckin | None:
    """The after-visit facts of this check-in, or None when it is an ordinary one."""
    if checkin.instrument != INSTRUMENT:
        return None
    row = session.execute(
        select(Message.appointment_id, Message.context)
        .where(Message.checkin_id == checkin.id, Message.template == TEMPLATE)
        .limit(1)
    ).first()
    if row is None:
        return None
    context = row.context or {}
    return VisitCheckin(row.appointment_id, int(context.get("low", AfterVisit.low)))


# Words that say nothing beyond the number ("7/10", "7 out of 10", "about a 6, thanks").
_FILLER = frozenset(
    [
        "out",
        "of",
        "of",
        "a",
        "an",
        "about",
        "around",
        "maybe",
        "i",
        "im",
        "i'm",
        "am",
        "feel",
        "feeling",
        "feels",
        "it",
        "its",
        "it's",
        "is",
        "today",
        "thanks",
        "thank",
        "you",
        "thx",
        "ok",
        "okay",
        "de",
        "del",
        "sobre",
        "como",
        "me",
        "siento",
        "estoy",
        "hoy",
        "gracias",
        "un",
        "una",
        "y",
        "and",
        "so",
    ]
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def has_words(body: str) -> bool:
    """True when the reply says something beyond its number: a clinician should read it."""
    return any(w.lower() not in _FILLER for w in _WORD.findall(body))


def needs_clinician(value: int | None, words: bool, low: int) -> bool:
    return words or value is None or value <= low
