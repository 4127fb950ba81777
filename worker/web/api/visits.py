"""POST /api/appointments/{id}/no-show and /attended (as `checkin appointments no-show|attended`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from worker.services.read import views
from worker.services.runtime import Runtime
from worker.web.api.common import DB, NOT_FOUND, Caller, Id, runtime
from worker.web.api.patients import AppointmentOut

Rt = Annotated[Runtime, Depends(runtime)]


class MarkedOut(AppointmentOut):
    changed: bool = Field(description="False when the appointment was already marked so.")
    text_queued: bool = Field(
        default=False, description='A "we missed you" text was queued (CHECKIN_NOSHOW_TEXT=1).'
    )


def visits_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/appointments/{appointment_id}/no-show",
        tags=["appointments"],
        response_model=MarkedOut,
        responses=NOT_FOUND,
    )
    def no_show_api(appointment_id: Id, session: DB, caller: Caller, rt: Rt) -> dict[str, Any]:
        """Record a no-show: pending messages for the visit stop, the front desk gets a
        `no_show` follow-up and, with CHECKIN_NOSHOW_TEXT=1, the patient a "we missed you,
        reply R to rebook" text. Again: nothing changes (`changed` false). A cancelled or
        attended visit, or one not yet started, is refused (422)."""
        from worker.services.records.visits import mark_no_show

        marked = mark_no_show(
            session,
            appointment_id,
            now=rt.now(),
            actor=caller.name,
            source="api",
            text=rt.settings.noshow_text,
        )
        return _out(session, marked.appointment, marked.changed, marked.text_id is not None)

    @router.post(
        "/appointments/{appointment_id}/attended",
        tags=["appointments"],
        response_model=MarkedOut,
        responses=NOT_FOUND,
    )
    def attended_api(appointment_id: Id, session: DB, caller: Caller, rt: Rt) -> dict[str, Any]:
        """Record that the patient came; the protocol's day-after check-in follows. Again:
        nothing changes. A cancelled or no-show visit, or one not yet started, is refused (422)."""
        from worker.services.records.visits import mark_attended

        marked = mark_attended(session, appointment_id, now=rt.now(), actor=caller.name)
        return _out(session, marked.appointment, marked.changed, False)

    return router


def _out(session: Any, appt: Any, changed: bool, text: bool) -> dict[str, Any]:
    from worker.services.records.patients import get_patient

    tz = get_patient(session, appt.patient_id).tz
    return {**views.appointment_dict(appt, tz), "changed": changed, "text_queued": text}
