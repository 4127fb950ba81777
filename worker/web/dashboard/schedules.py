"""A patient's schedules: enrolling in a protocol, adding one check-in schedule (built from the
form's frequency and time, or a raw RRULE), pausing, resuming or removing one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from worker.services.errors import InvalidInput
from worker.services.records import accounts
from worker.store.db import session_scope
from worker.web.dashboard.common import (
    WEEKDAYS,
    Ctx,
    Dashboard,
    date_param,
    form_str,
    opt,
    read_form,
)
from worker.web.dashboard.patient_page import patient_action


def build_rrule(form: Mapping[str, Any]) -> str:
    """The RRULE from the schedule form: the raw rule when given, else frequency + time."""
    raw = opt(form, "rrule")
    if raw:
        return raw
    at = form_str(form, "time").strip()
    try:
        hour, minute = (int(x) for x in at.split(":"))
    except ValueError:
        raise InvalidInput(f"time must be HH:MM (patient-local), got {at!r}") from None
    freq = form_str(form, "frequency") or "DAILY"
    if freq not in ("DAILY", "WEEKLY", "MONTHLY"):
        raise InvalidInput(f"frequency must be daily, weekly or monthly, got {freq!r}")
    rule = f"FREQ={freq};BYHOUR={hour};BYMINUTE={minute}"
    if freq == "WEEKLY":
        day = form_str(form, "weekday") or "MO"
        if day not in dict(WEEKDAYS):
            raise InvalidInput(f"weekday must be one of {', '.join(dict(WEEKDAYS))}")
        rule += f";BYDAY={day}"
    return rule


def routes(d: Dashboard) -> APIRouter:
    rt = d.rt
    router = APIRouter(include_in_schema=False)

    def _of_schedule(schedule_id: int) -> Callable[[], int]:
        from worker.services.records.schedules import get_schedule

        def pid() -> int:
            with session_scope(rt.sessions) as db:
                return get_schedule(db, schedule_id).patient_id

        return pid

    @router.post("/patients/{patient_id}/enroll")
    async def enroll_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.schedules import enroll, protocol_named

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            protocol = protocol_named(rt.protocols, form_str(form, "protocol"))
            start = date_param(form_str(form, "start"), "start", "the start date")
            if start is None:
                raise InvalidInput(
                    "the start date is required (YYYY-MM-DD, the protocol's day 0)", field="start"
                )
            enroll(ctx.db, patient_id, protocol, start=start, now=ctx.now, actor=ctx.actor)
            return patient_id, "enrolled"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            patient_id,
            "schedules",
            action,
            accounts.can_see_clinical,
        )

    @router.post("/patients/{patient_id}/schedules")
    async def add_schedule_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.schedules import add_schedule

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            rule = build_rrule(form)
            start = date_param(opt(form, "start"), "start", "the start date")
            until = date_param(opt(form, "until"), "until", "the end date")
            add_schedule(
                ctx.db,
                patient_id,
                now=ctx.now,
                instrument=form_str(form, "instrument"),
                rrule=rule,
                start=start,
                until=until,
                actor=ctx.actor,
            )
            return patient_id, "schedule_added"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            patient_id,
            "schedules",
            action,
            accounts.can_see_clinical,
        )

    @router.post("/schedules/{schedule_id}/status")
    async def schedule_status_route(request: Request, schedule_id: int) -> Response:
        from worker.services.records.schedules import set_schedule_status

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            status = form_str(form, "status")
            s = set_schedule_status(ctx.db, schedule_id, status, now=ctx.now, actor=ctx.actor)
            return s.patient_id, f"schedule_{status}"

        return await run_in_threadpool(
            patient_action,
            d,
            request,
            form,
            _of_schedule(schedule_id),
            "schedules",
            action,
            accounts.can_see_clinical,
        )

    return router
