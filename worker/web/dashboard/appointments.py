"""A patient's appointments: booking, moving, cancelling, and the no-show and attended buttons."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from worker.store.db import session_scope
from worker.web.dashboard.common import Ctx, Dashboard, form_str, opt, read_form
from worker.web.dashboard.patient_page import patient_action


def routes(d: Dashboard) -> APIRouter:
    rt = d.rt
    router = APIRouter(include_in_schema=False)

    def _of_appointment(appointment_id: int) -> Callable[[], int]:
        from worker.services.records.appointments import get_appointment

        def pid() -> int:
            with session_scope(rt.sessions) as db:
                return get_appointment(db, appointment_id).patient_id

        return pid

    @router.post("/patients/{patient_id}/appointments")
    async def book_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.appointments import add_appointment

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            add_appointment(
                ctx.db,
                patient_id,
                now=ctx.now,
                kind=form_str(form, "kind"),
                at=form_str(form, "at"),
                location=opt(form, "location"),
                actor=ctx.actor,
            )
            return patient_id, "appointment_booked"

        return await run_in_threadpool(
            patient_action, d, request, form, patient_id, "appointments", action
        )

    @router.post("/appointments/{appointment_id}/reschedule")
    async def reschedule_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.appointments import reschedule

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            a = reschedule(
                ctx.db, appointment_id, now=ctx.now, at=form_str(form, "at"), actor=ctx.actor
            )
            return a.patient_id, "appointment_moved"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            _of_appointment(appointment_id),
            "appointments",
            action,
        )

    @router.post("/appointments/{appointment_id}/cancel")
    async def cancel_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.appointments import cancel

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            a = cancel(ctx.db, appointment_id, now=ctx.now, actor=ctx.actor)
            return a.patient_id, "appointment_cancelled"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            _of_appointment(appointment_id),
            "appointments",
            action,
        )

    @router.post("/appointments/{appointment_id}/no-show")
    async def no_show_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.visits import mark_no_show

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            marked = mark_no_show(
                ctx.db,
                appointment_id,
                now=ctx.now,
                actor=ctx.actor,
                source="dashboard",
                text=rt.settings.noshow_text,
            )
            return marked.appointment.patient_id, "appointment_no_show"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            _of_appointment(appointment_id),
            "appointments",
            action,
        )

    @router.post("/appointments/{appointment_id}/attended")
    async def attended_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.visits import mark_attended

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            marked = mark_attended(ctx.db, appointment_id, now=ctx.now, actor=ctx.actor)
            return marked.appointment.patient_id, "appointment_attended"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            _of_appointment(appointment_id),
            "appointments",
            action,
        )

    return router
