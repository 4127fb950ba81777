"""A patient's page, shared by the forms on it (patients, schedules, appointments): render it,
and run one of its forms (redirect back with a notice, or the page again with the error next
to the form that caused it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import Response

from worker.domain.names import APPOINTMENT_KINDS, INSTRUMENTS
from worker.services.read import patient_record, queue_rows, wording
from worker.services.records import accounts, audit
from worker.store.models import User
from worker.web.dashboard import chart
from worker.web.dashboard.common import WEEKDAYS, Ctx, Dashboard, int_param, message, redirect

CHART_DAYS = (14, 30, 60, 90, 180, 365)


def planned(d: Dashboard, patient_id: int, now: datetime) -> tuple[int, list[dict[str, object]]]:
    """What the next 7 days will send (the preview service opens its own transaction)."""
    from worker.services.outbound.preview import preview

    return patient_id, [i.as_dict() for i in preview(d.rt, patient_id, now, 7)]


def patient_page(
    d: Dashboard,
    request: Request,
    ctx: Ctx,
    patient_id: int,
    *,
    error: tuple[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    from worker.services.records.appointments import list_appointments
    from worker.services.records.patients import consent_state, get_patient
    from worker.services.records.schedules import list_schedules

    p = get_patient(ctx.db, patient_id)
    audit.access(ctx.db, now=ctx.now, action="view", patient_id=patient_id)
    clinical = accounts.can_see_clinical(ctx.user)
    days = int_param(request.query_params.get("days"), 30, CHART_DAYS)
    limit = int_param(request.query_params.get("messages"), 50, (50, 200, 1000))
    svg, table = chart.chart(ctx.db, p, ctx.now, days) if clinical else ("", {})
    items: list[dict[str, object]] = ctx.pre[1] if ctx.pre else []
    if not clinical:
        items = [i for i in items if i["kind"] == "reminder"]
    appointments = list_appointments(ctx.db, patient_id)
    local_now = ctx.now.astimezone(ZoneInfo(p.tz))
    return d.render(
        "patient.html.j2",
        ctx.user,
        ctx.session,
        status,
        request=request,
        p=p,
        local_now=local_now,
        consent=consent_state(ctx.db, patient_id),
        followups=queue_rows.queue(ctx.db, ctx.user, ctx.now, patient_id=patient_id),
        svg=svg,
        chart_table=table,
        days=days,
        chart_days=CHART_DAYS,
        messages=patient_record.conversation(ctx.db, patient_id, limit) if clinical else [],
        message_limit=limit,
        planned=items[:15],
        planned_total=len(items),
        appointments=[a for a in appointments if a.starts_at >= ctx.now],
        past_appointments=[a for a in appointments if a.starts_at < ctx.now][-10:],
        schedules=list_schedules(ctx.db, patient_id) if clinical else [],
        protocols=sorted(d.rt.protocols.values(), key=lambda pr: pr.name) if clinical else [],
        instruments=INSTRUMENTS,
        kinds=APPOINTMENT_KINDS,
        kind_labels=wording.KIND_LABELS,
        weekdays=WEEKDAYS,
        audit=patient_record.audit_trail(ctx.db, patient_id) if clinical else [],
        error=error,
        values=values or {},
        back=f"/patients/{patient_id}",
        today=local_now.date().isoformat(),
    )


def patient_action(
    d: Dashboard,
    request: Request,
    form: dict[str, str],
    patient_id: int | Callable[[], int],
    form_name: str,
    action: Callable[[Ctx], tuple[int, str]],
    need: Callable[[User], bool] | None = None,
) -> Response:
    """Run a patient-page form: redirect back with a notice, or show the page again with
    the error next to the form that caused it."""

    def body(ctx: Ctx) -> Response:
        pid, done = action(ctx)
        return redirect(f"/patients/{pid}?done={done}#{form_name}")

    def prefetch(now: datetime) -> tuple[int, list[dict[str, object]]]:
        return planned(d, patient_id if isinstance(patient_id, int) else patient_id(), now)

    def on_error(ctx: Ctx, exc: Exception) -> Response:
        return patient_page(
            d, request, ctx, ctx.pre[0], error=(form_name, message(exc)), values=form, status=422
        )

    return d.handle(request, body, form=form, need=need, on_error=on_error, prefetch=prefetch)
