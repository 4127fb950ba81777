"""What will be sent to a patient, computed exactly as the planner would, written nowhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from worker.domain.planning import (
    AppointmentView,
    MessageSpec,
    ScheduleView,
    checkin_specs,
    reminder_specs,
)
from worker.services.outbound.after_visit import after_visit_specs
from worker.services.outbound.plan import patient_view
from worker.services.outbound.segment_cost import sms_cost
from worker.services.records.patients import get_patient, has_consent
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, Message, Schedule
from worker.store.outbox import DONE
from worker.store.record_status import AppointmentStatus


@dataclass(frozen=True)
class PreviewItem:
    spec: MessageSpec
    # As it will be rendered: a questionnaire by link goes as `checkin_link` (segment_cost.py).
    template: str = ""
    # SMS segments it will cost (a questionnaire in questionnaire_mode=sms: every item's text
    # added up); None for email.
    segments: int | None = None

    def as_dict(self) -> dict[str, object]:
        s = self.spec
        return {
            "due_at": s.due_at.isoformat(),
            "local_time": s.local_time,
            "kind": s.kind,
            "channel": s.channel,
            "template": self.template or s.template,
            "instrument": s.instrument,
            "appointment_id": s.appointment_id,
            "segments": self.segments,
        }


def preview(rt: Runtime, patient_id: int, now: datetime, days: int) -> list[PreviewItem]:
    """Messages that will be sent from `now` for `days` days, in order.

    Left out: occurrences already sent or settled, and everything on a channel the patient has
    not consented to (it would be suppressed, not sent).
    """
    end = now + timedelta(days=days)
    max_late = timedelta(minutes=rt.settings.checkin_max_late_minutes)
    with session_scope(rt.sessions) as session:
        patient = get_patient(session, patient_id)
        view = patient_view(patient, rt.settings.send_window)
        if not has_consent(session, patient.id, patient.channel):
            return []
        specs: list[MessageSpec] = []
        mode = patient.questionnaire_mode
        booked: dict[int, tuple[datetime, str | None, str, str]] = {}
        for sch in session.scalars(
            select(Schedule).where(Schedule.patient_id == patient_id, Schedule.status == "active")
        ):
            specs += checkin_specs(
                view,
                ScheduleView(sch.id, sch.instrument, sch.rrule, sch.start_date, sch.until_date),
                after=max(now, sch.created_at),
                before=end,
                max_late=max_late,
            )
        for appt in session.scalars(
            select(Appointment).where(
                Appointment.patient_id == patient_id,
                Appointment.status == AppointmentStatus.BOOKED,
                Appointment.starts_at > now,
            )
        ):
            booked[appt.id] = (appt.starts_at, appt.location, appt.kind, patient.tz)
            specs += reminder_specs(
                view,
                AppointmentView(appt.id, appt.kind, appt.starts_at, appt.version, appt.location),
                after=max(now, appt.updated_at),
                before=end,
                max_late=max_late,
            )
        # The check-in the day after a visit (services/outbound/after_visit.py), for the visits
        # already in the database.
        for _, spec in after_visit_specs(rt, session, now, end, patient_id=patient_id):
            if spec.due_at >= now:
                specs.append(spec)
        keys = [s.dedupe_key for s in specs]
        settled = (
            set(
                session.scalars(
                    select(Message.dedupe_key).where(
                        Message.dedupe_key.in_(keys), Message.status.in_(DONE)
                    )
                )
            )
            if keys
            else set()
        )
    items = []
    for s in specs:
        if s.dedupe_key in settled:
            continue
        when = booked.get(s.appointment_id) if s.appointment_id is not None else None
        template, cost = sms_cost(rt, s, mode=mode, appointment=when)
        items.append(PreviewItem(s, template, cost))
    items.sort(key=lambda i: (i.spec.due_at, i.spec.dedupe_key))
    return items
