"""A reminder email's confirm / request-a-new-time link (GET and POST /a/{token}/{action}).

GET shows the appointment's day and time and a button, and records nothing: mail scanners and
link previews fetch every link. POST records the patient's answer through the same service an
SMS reply uses (appointment_outcome.py): "confirm" confirms the appointment as "yes I'll be
there" does, "reschedule" opens the front desk's `reschedule_request` follow-up as "can we move
it" does. A link records one answer: it is claimed with a conditional UPDATE, so a second POST
(or two at once) shows "already received" and changes nothing. Once the appointment has started,
or been rescheduled or cancelled since the email (its version or status changed), the link
records nothing and the page gives the clinic's phone number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.domain.forms import token_hash, well_formed
from worker.services.inbound import appointment_outcome
from worker.services.outbound.appointment_links import ACTIONS
from worker.store.models import Appointment, AppointmentLink, Patient
from worker.store.record_status import AppointmentStatus

log = logging.getLogger(__name__)

# What the page shows. "ask": the button (GET); "done": recorded now; "already": this link
# recorded an answer before; "expired": the appointment started, moved or was cancelled;
# "invalid": no such link or action.
STATUSES = ("ask", "done", "already", "expired", "invalid")
# Statuses in which an appointment can still be confirmed or moved.
_LIVE = (AppointmentStatus.BOOKED,)


@dataclass(frozen=True)
class LinkPage:
    status: str
    action: str = "confirm"
    language: str = "en"
    when: str = ""  # the appointment's day and time in the patient's zone and language
    recorded: str | None = None  # the action this link recorded, when it has


def open_link(session: Session, token: str, action: str, now: datetime) -> LinkPage:
    """What GET shows; writes nothing."""
    page, _, _ = _read(session, token, action, now)
    return page


def answer(session: Session, token: str, action: str, now: datetime) -> LinkPage:
    """Record the patient's answer, once. Runs in the caller's transaction."""
    page, link, appt = _read(session, token, action, now)
    if page.status != "ask" or link is None or appt is None:
        return page
    claimed = session.execute(
        update(AppointmentLink)
        .where(AppointmentLink.id == link.id, AppointmentLink.used_at.is_(None))
        .values(used_at=now, action=action)
    )
    if getattr(claimed, "rowcount", 0) != 1:  # a concurrent POST of the same link got there first
        return LinkPage("already", action, page.language, page.when, action)
    via = {"via": "email link", "message_id": link.message_id}
    if action == "confirm":
        appointment_outcome.confirm(session, appt, now=now, via=via)
    else:
        appointment_outcome.ask_for_new_time(session, appt, now=now, via=via)
    log.info("appointment link %d: %s recorded", link.id, action)
    return LinkPage("done", action, page.language, page.when, action)


def _read(
    session: Session, token: str, action: str, now: datetime
) -> tuple[LinkPage, AppointmentLink | None, Appointment | None]:
    if action not in ACTIONS or not well_formed(token):
        return LinkPage("invalid", action if action in ACTIONS else "confirm"), None, None
    link = session.scalar(
        select(AppointmentLink).where(AppointmentLink.token_hash == token_hash(token))
    )
    if link is None:
        return LinkPage("invalid", action), None, None
    appt = session.get(Appointment, link.appointment_id)
    patient = session.get(Patient, link.patient_id)
    assert appt is not None and patient is not None  # foreign keys
    language = patient.language
    when = appointment_outcome.local_when(appt, patient.tz, language)
    if (
        now >= link.expires_at
        or appt.status not in _LIVE
        or appt.version != link.appointment_version
        or patient.archived_at is not None
    ):
        # The time on the page would be wrong (moved) or moot (started, cancelled): no time.
        return LinkPage("expired", action, language), link, appt
    if link.used_at is not None:
        return LinkPage("already", action, language, when, link.action), link, appt
    return LinkPage("ask", action, language, when), link, appt
