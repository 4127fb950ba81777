"""Messages that go now: replies to a patient who just wrote, crisis replies, on-call pages.

They are rows like every other message (written before they are sent, deduplicated by key), but
urgent and exempt from quiet hours (CLINICAL.md), and sent straight away by whoever created them
instead of waiting for the next dispatch; the dispatcher is only the safety net.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.services.outbound.send import send_one
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Message

log = logging.getLogger(__name__)


def queue_now(
    session: Session,
    *,
    now: datetime,
    dedupe_key: str,
    template: str,
    kind: str,
    channel: str,
    patient_id: int | None,
    language: str = "en",
    to_address: str | None = None,
    context: dict[str, Any] | None = None,
    urgent: bool = True,
    exempt: bool = True,
    instrument: str | None = None,
    checkin_id: int | None = None,
    followup_id: int | None = None,
    appointment_id: int | None = None,
) -> int | None:
    """Add a message due now; returns its id, or None when the dedupe key already exists."""
    exists = session.scalar(select(Message.id).where(Message.dedupe_key == dedupe_key))
    if exists is not None:
        return None
    msg = Message(
        patient_id=patient_id,
        channel=channel,
        kind=kind,
        template=template,
        language=language,
        instrument=instrument,
        checkin_id=checkin_id,
        followup_id=followup_id,
        appointment_id=appointment_id,
        priority="urgent" if urgent else "bulk",
        exempt_quiet_hours=exempt,
        due_at=now,
        not_after=None,
        dedupe_key=dedupe_key,
        context=context or {},
        to_address=to_address,
        status="scheduled",
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(msg)
    session.flush()
    return msg.id


def send_now(rt: Runtime, ids: list[int], now: datetime) -> dict[str, int]:
    """Claim and send these rows in this process, now. Rows someone else claimed are skipped.

    Several rows (a crisis reply and the on-call pages) go concurrently, each by itself: the page
    must not wait a provider round trip behind the reply, nor fail with it."""
    claimed = [mid for mid in ids if _claim(rt, mid, now)]
    if len(claimed) <= 1:
        results = [_send(rt, mid, now) for mid in claimed]
    else:
        with ThreadPoolExecutor(len(claimed), thread_name_prefix="send-now") as pool:
            results = list(pool.map(lambda mid: _send(rt, mid, now), claimed))
    outcomes: dict[str, int] = {}
    for outcome in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _claim(rt: Runtime, mid: int, now: datetime) -> bool:
    with session_scope(rt.sessions) as session:
        claimed = session.execute(
            update(Message)
            .where(Message.id == mid, Message.status == "scheduled")
            .values(status="queued", queued_at=now, updated_at=now)
        )
    return getattr(claimed, "rowcount", 0) == 1


def _send(rt: Runtime, mid: int, now: datetime) -> str:
    try:
        return send_one(rt, mid, now)
    except Exception:
        log.exception("immediate send of message %d failed; recovery will retry", mid)
        return "error"
