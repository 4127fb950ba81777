"""The follow-up queue (/queue), one follow-up's page, and acknowledging or resolving one (a
form post, or in place from /static/dashboard.js)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from worker.services.errors import NotFound
from worker.services.read import queue_rows, wording
from worker.services.records import accounts, audit
from worker.store.record_status import FollowupStatus
from worker.web.dashboard.common import (
    Ctx,
    Dashboard,
    Denied,
    form_str,
    is_script,
    message,
    opt,
    read_form,
    redirect,
    safe_next,
)

# The escalation ladder's steps, as recorded in a follow-up's detail["escalation"].
STEP_LABELS = {"oncall": "On-call paged", "backup": "Backup paged", "admins": "Admins paged"}


def routes(d: Dashboard) -> APIRouter:
    settings, render, handle = d.settings, d.render, d.handle
    router = APIRouter(include_in_schema=False)

    @router.get("/queue")
    def queue_page(request: Request) -> Response:
        status = request.query_params.get("status", "active")
        if status not in ("active", *FollowupStatus):
            status = "active"

        def body(ctx: Ctx) -> Response:
            rows = queue_rows.queue(ctx.db, ctx.user, ctx.now, status=status)
            audit.access(ctx.db, now=ctx.now, action="search", entity="followups")
            return render(
                "queue.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                rows=rows,
                status=status,
                counts=queue_rows.queue_counts(ctx.db, ctx.user),
                now=ctx.now,
                back="/queue" + (f"?status={status}" if status != "active" else ""),
            )

        return handle(request, body)

    def _followup_page(
        request: Request,
        ctx: Ctx,
        followup_id: int,
        *,
        error: str | None = None,
        note: str = "",
        status: int = 200,
    ) -> Response:
        from worker.services.read.followup_detail import FollowupHidden, followup_page

        try:
            # CHECKIN_CLINIC_TZ (when set) places an unknown sender's text in the clinic's time.
            view = followup_page(
                ctx.db, ctx.user, followup_id, ctx.now, getattr(settings, "clinic_tz", None)
            )
        except FollowupHidden:
            raise Denied from None
        sla = wording.SLA.get(view.item.severity)
        return render(
            "followup.html.j2",
            ctx.user,
            ctx.session,
            status,
            request=request,
            v=view,
            reason_label=wording.REASON_LABELS.get(view.item.reason, view.item.reason),
            reason_labels=wording.REASON_LABELS,
            step_labels=STEP_LABELS,
            ago=lambda at: wording.human_age(ctx.now - at),
            fmt=lambda x: f"{x:.1f}".removesuffix(".0"),
            sla=wording.sla_text(sla) if sla is not None else None,
            error=error,
            note=note,
        )

    @router.get("/followups/{followup_id:int}")
    def followup_route(request: Request, followup_id: int) -> Response:
        return handle(request, lambda ctx: _followup_page(request, ctx, followup_id))

    def _followup_action(
        request: Request, form: dict[str, str], followup_id: int, action: str
    ) -> Response:
        from worker.services.clinical.followups import acknowledge, get_followup, resolve
        from worker.services.read.followup_detail import MAX_ID

        back = safe_next(form_str(form, "back") or "/queue")

        def allowed(ctx: Ctx) -> None:
            if not 0 < followup_id <= MAX_ID:
                raise NotFound(f"no follow-up with id {followup_id}")
            item = get_followup(ctx.db, followup_id)
            if not accounts.can_see_followup(ctx.user, item.reason):
                raise Denied

        def body(ctx: Ctx) -> Response:
            allowed(ctx)
            if action == "ack":
                acknowledge(ctx.db, followup_id, by=ctx.actor, now=ctx.now)
            else:
                resolve(ctx.db, followup_id, by=ctx.actor, note=opt(form, "note"), now=ctx.now)
            ctx.db.flush()
            if is_script(request):
                row = queue_rows.one_queue_row(ctx.db, ctx.user, followup_id, ctx.now)
                html = d.env.get_template("_followup_row.html.j2").render(
                    r=row, csrf=ctx.session.csrf, back=back, can=d.can(ctx.user)
                )
                return JSONResponse({"ok": True, "status": row.status, "html": html})
            done = "acknowledged" if action == "ack" else "resolved"
            sep = "&" if "?" in back else "?"
            return redirect(f"{back}{sep}done={done}#f{followup_id}")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            if back == f"/followups/{followup_id}":
                # Sent from the follow-up's own page: show it again, the note kept.
                return _followup_page(
                    request,
                    ctx,
                    followup_id,
                    error=message(exc),
                    note=form_str(form, "note"),
                    status=422,
                )
            rows = queue_rows.queue(ctx.db, ctx.user, ctx.now)
            return render(
                "queue.html.j2",
                ctx.user,
                ctx.session,
                422,
                request=request,
                rows=rows,
                status="active",
                counts=queue_rows.queue_counts(ctx.db, ctx.user),
                now=ctx.now,
                back="/queue",
                error=message(exc),
                error_id=followup_id,
            )

        return handle(request, body, form=form, on_error=on_error)

    @router.post("/followups/{followup_id}/ack")
    async def ack(request: Request, followup_id: int) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_followup_action, request, form, followup_id, "ack")

    @router.post("/followups/{followup_id}/resolve")
    async def resolve_route(request: Request, followup_id: int) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_followup_action, request, form, followup_id, "resolve")

    return router
