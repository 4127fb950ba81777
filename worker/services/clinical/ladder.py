"""The escalation ladder for an urgent follow-up nobody has acknowledged (CLINICAL.md: escalation
ends only when a human acknowledges).

Rungs, in order: the on-call clinician (CHECKIN_ONCALL_PHONE / _EMAIL) gets the first page and
CHECKIN_REPAGE_COUNT re-pages, one every CHECKIN_REPAGE_MINUTES; then the backup on-call
(CHECKIN_ONCALL_BACKUP_PHONE / _EMAIL) is paged; then every active admin user, by email. A rung
with nobody to reach is skipped at once (its turn goes to the next rung). After the last rung,
the last reachable rung is re-paged every CHECKIN_REPAGE_MINUTES until someone acknowledges.

Where the item stands is read from its own record, `detail["escalation"]`: one entry per page,
`{"at", "step", "page", "channels", "message_ids"}`, which the follow-up page shows. So the
ladder needs no state of its own, and a restart or a second worker carries on where it was.
Every page carries only the link (template `oncall_page`): no patient identifier, no content.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.services.outbound.send_now import queue_now
from worker.store.models import FollowUp, User

log = logging.getLogger(__name__)

STEPS: Final = ("oncall", "backup", "admins")


@dataclass(frozen=True)
class Target:
    """One address on a rung. `key` tells it apart in the message's dedupe key."""

    channel: str  # "sms" or "email"
    address: str
    key: str


def targets(settings: Settings, session: Session) -> dict[str, list[Target]]:
    """Who each rung reaches now (an empty list: nobody configured there)."""
    rungs: dict[str, list[Target]] = {step: [] for step in STEPS}
    for step, phone, email in (
        ("oncall", settings.oncall_phone, settings.oncall_email),
        ("backup", settings.oncall_backup_phone, settings.oncall_backup_email),
    ):
        # The on-call keys stay "sms"/"email" as before the ladder, so a page queued by an
        # older worker is not sent twice by a newer one.
        prefix = "" if step == "oncall" else f"{step}:"
        if phone:
            rungs[step].append(Target("sms", phone, f"{prefix}sms"))
        if email:
            rungs[step].append(Target("email", email, f"{prefix}email"))
    admins = session.execute(
        select(User.id, User.email)
        .where(User.role == "admin", User.disabled_at.is_(None))
        .order_by(User.id)
    ).all()
    rungs["admins"] = [Target("email", email, f"admin:{uid}") for uid, email in admins if email]
    return rungs


def history(item: FollowUp) -> list[dict[str, Any]]:
    """The pages recorded on the follow-up, oldest first."""
    entries = (item.detail or {}).get("escalation", [])
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def next_step(
    done: Sequence[Mapping[str, Any]], reachable: Mapping[str, bool], repage_count: int
) -> str | None:
    """The rung the next page goes to, given the pages already sent; None: nobody to page."""
    counts = Counter(str(entry.get("step")) for entry in done)
    if reachable.get("oncall") and counts["oncall"] < 1 + repage_count:
        return "oncall"
    if reachable.get("backup") and counts["backup"] == 0:
        return "backup"
    if reachable.get("admins") and counts["admins"] == 0:
        return "admins"
    for step in reversed(STEPS):  # the last reachable rung, again and again
        if reachable.get(step):
            return step
    return None


def current_step(item: FollowUp) -> str | None:
    """The rung the latest page went to (None before the first page)."""
    done = history(item)
    return str(done[-1].get("step")) if done else None


def page(
    settings: Settings, session: Session, item: FollowUp, link: str, now: datetime
) -> list[int]:
    """Send the follow-up's next page: queue a row per address on the next rung, record the step
    on the follow-up. Returns the ids of the rows to send now."""
    done = history(item)
    rungs = targets(settings, session)
    step = next_step(done, {s: bool(t) for s, t in rungs.items()}, settings.repage_count)
    n = max(item.page_count, len(done)) + 1
    item.page_count = n
    item.last_paged_at = now
    if step is None:
        # Retried every REPAGE_MINUTES: an admin added meanwhile is paged on the next turn.
        log.error("urgent follow-up %d: nobody to page (no on-call, backup or admin)", item.id)
        return []
    send: list[int] = []
    for target in rungs[step]:
        mid = queue_now(
            session,
            now=now,
            dedupe_key=f"page:{item.id}:{n}:{target.key}",
            template="oncall_page",
            kind="page",
            channel=target.channel,
            patient_id=None,
            to_address=target.address,
            # A possible-risk page (CHECKIN_PAGE_ON_POSSIBLE_RISK) is for a high follow-up.
            context={"link": link, "urgent": item.severity == "urgent"},
            followup_id=item.id,
        )
        if mid is not None:
            send.append(mid)
    entry = {
        "at": now.isoformat(),
        "step": step,
        "page": n,
        "channels": sorted({t.channel for t in rungs[step]}),
        "message_ids": send,
    }
    # A new dict, so that the JSON column is seen as changed.
    item.detail = {**(item.detail or {}), "escalation": [*done, entry]}
    log.warning("urgent follow-up %d: page %d to the %s rung", item.id, n, step)
    return send
