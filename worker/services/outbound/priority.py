"""Which message takes a sender's next pacing slot: crisis replies, then on-call pages, then
other urgent replies (acknowledgements, STOP/HELP confirmations), then bulk (services/outbound/pacing.py,
the waiting room). And from which sender a message goes: pages from CHECKIN_ONCALL_FROM when it
is set, so that they have their own budget and never wait behind patient traffic.

No message waits forever: an urgent one gives way to higher levels only while younger than
YIELD_SECONDS, a bulk one only during the first half of its longest wait; after that it competes
for slots on equal terms. And none of it ever lets a sender exceed its rate: the waiting room only
decides who takes a free slot.
"""

from __future__ import annotations

from datetime import datetime

from worker.config import Settings
from worker.services.outbound.claim import Prepared
from worker.services.outbound.pacing import BULK, CRISIS, PAGE, URGENT

#: An urgent message younger than this (since its row was written) gives way to higher levels.
YIELD_SECONDS = 30.0


def level(p: Prepared) -> int:
    if p.priority != "urgent":
        return BULK
    if p.kind == "crisis":
        return CRISIS
    if p.kind == "page":
        return PAGE
    return URGENT


def yield_for(p: Prepared, now: datetime) -> float | None:
    """Seconds this message may still give way to higher levels (None: the pacer's default)."""
    lvl = level(p)
    if lvl == BULK:
        return None
    if lvl == CRISIS or p.created_at is None:
        return 0.0
    return max(0.0, YIELD_SECONDS - (now - p.created_at).total_seconds())


def sender(settings: Settings, p: Prepared) -> str | None:
    """The From a message goes from, when not the default sender: pages from
    CHECKIN_ONCALL_FROM (E.164 number or Messaging Service SID)."""
    if p.kind == "page" and p.channel == "sms" and settings.oncall_from:
        return settings.oncall_from
    return None
