"""Patients: the list and search, adding and editing one, their page, consent, and the preview
of what will be sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from worker.domain.forms import QUESTIONNAIRE_MODES
from worker.domain.names import CHANNELS, LANGUAGES
from worker.services.read import patient_record, wording
from worker.services.records import accounts, audit
from worker.web.dashboard.common import (
    Ctx,
    Dashboard,
    form_str,
    int_param,
    message,
    opt,
    read_form,
    redirect,
)
from worker.web.dashboard.patient_page import patient_action, patient_page, planned


def routes(d: Dashboard) -> APIRouter:
    rt, settings, render, handle = d.rt, d.settings, d.render, d.handle
    router = APIRouter(include_in_schema=False)

    @router.get("/patients")
    def patients_page(request: Request) -> Response:
        q = (request.query_params.get("q") or "").strip()[:100]

        def body(ctx: Ctx) -> Response:
            audit.access(ctx.db, now=ctx.now, action="search", entity="patients", detail={"q": q})
            return render(
                "patients.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                rows=patient_record.patient_rows(ctx.db, ctx.user, q, ctx.now),
                q=q,
            )

        return handle(request, body)

    def _patient_form(
        request: Request,
        ctx: Ctx,
        *,
        values: Mapping[str, Any],
        patient_id: int | None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        return render(
            "patient_form.html.j2",
            ctx.user,
            ctx.session,
            status,
            request=request,
            values=values,
            patient_id=patient_id,
            error=error,
            channels=CHANNELS,
            languages=LANGUAGES,
            questionnaire_modes=QUESTIONNAIRE_MODES,
            zones=_zones(),
            default_window=settings.send_window,
        )

    @router.get("/patients/new")
    def new_patient_page(request: Request) -> Response:
        def body(ctx: Ctx) -> Response:
            values = {
                "name": "",
                "phone": "",
                "email": "",
                "tz": "America/New_York",
                "channel": "sms",
                "language": "en",
                "send_window": "",
                "questionnaire_mode": "link",
                "consent_sms": "",
                "consent_email": "",
                "consent_source": "",
            }
            return _patient_form(request, ctx, values=values, patient_id=None)

        return handle(request, body)

    def _add_patient(request: Request, form: dict[str, str]) -> Response:
        from worker.services.records.patients import add_patient

        def body(ctx: Ctx) -> Response:
            consent = [c for c in CHANNELS if form_str(form, f"consent_{c}")]
            patient = add_patient(
                ctx.db,
                now=ctx.now,
                name=form_str(form, "name"),
                tz=form_str(form, "tz"),
                channel=form_str(form, "channel"),
                phone=opt(form, "phone"),
                email=opt(form, "email"),
                consent=consent,
                consent_source=opt(form, "consent_source") or f"recorded by {ctx.actor}",
                send_window=opt(form, "send_window"),
                language=form_str(form, "language") or "en",
                actor=ctx.actor,
                confirm_optin=rt.settings.optin_confirmation,
                questionnaire_mode=form_str(form, "questionnaire_mode") or "link",
            )
            return redirect(f"/patients/{patient.id}?done=patient_added")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return _patient_form(
                request, ctx, values=form, patient_id=None, error=message(exc), status=422
            )

        return handle(request, body, form=form, on_error=on_error)

    @router.post("/patients/new")
    async def add_patient_route(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_add_patient, request, form)

    @router.get("/patients/{patient_id}/edit")
    def edit_patient_page(request: Request, patient_id: int) -> Response:
        from worker.services.records.patients import get_patient

        def body(ctx: Ctx) -> Response:
            p = get_patient(ctx.db, patient_id)
            values = {
                "name": p.name,
                "phone": p.phone or "",
                "email": p.email or "",
                "tz": p.tz,
                "channel": p.channel,
                "language": p.language,
                "send_window": p.send_window or "",
                "questionnaire_mode": p.questionnaire_mode,
            }
            return _patient_form(request, ctx, values=values, patient_id=patient_id)

        return handle(request, body)

    def _edit_patient(request: Request, form: dict[str, str], patient_id: int) -> Response:
        from worker.services.records.patient_updates import update_patient

        def body(ctx: Ctx) -> Response:
            _, changed = update_patient(
                ctx.db,
                patient_id,
                now=ctx.now,
                actor=ctx.actor,
                name=form_str(form, "name"),
                tz=form_str(form, "tz"),
                channel=form_str(form, "channel"),
                phone=opt(form, "phone"),
                email=opt(form, "email"),
                send_window=opt(form, "send_window"),
                language=form_str(form, "language") or "en",
                questionnaire_mode=opt(form, "questionnaire_mode"),
            )
            done = "patient_saved" if changed else "patient_unchanged"
            return redirect(f"/patients/{patient_id}?done={done}")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return _patient_form(
                request, ctx, values=form, patient_id=patient_id, error=message(exc), status=422
            )

        return handle(request, body, form=form, on_error=on_error)

    @router.post("/patients/{patient_id}/edit")
    async def edit_patient_route(request: Request, patient_id: int) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_edit_patient, request, form, patient_id)

    @router.get("/patients/{patient_id}")
    def patient_route(request: Request, patient_id: int) -> Response:
        return handle(
            request,
            lambda ctx: patient_page(d, request, ctx, patient_id),
            prefetch=lambda now: planned(d, patient_id, now),
        )

    @router.post("/patients/{patient_id}/consent")
    async def consent_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.patients import grant_consent, withdraw_consent

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            channel = form_str(form, "channel")
            source = opt(form, "source") or f"recorded by {ctx.actor}"
            if form_str(form, "action") == "withdraw":
                withdraw_consent(
                    ctx.db, patient_id, channel, now=ctx.now, source=source, actor=ctx.actor
                )
                return patient_id, "consent_withdrawn"
            changed = grant_consent(
                ctx.db,
                patient_id,
                channel,
                now=ctx.now,
                source=source,
                actor=ctx.actor,
                confirm_optin=rt.settings.optin_confirmation,
            )
            return patient_id, "consent_granted" if changed else "consent_unchanged"

        return await run_in_threadpool(
            patient_action, d, request, form, patient_id, "consent", action
        )

    @router.get("/patients/{patient_id}/preview")
    def preview_page(request: Request, patient_id: int) -> Response:
        from worker.services.outbound.preview import preview
        from worker.services.records.patients import get_patient

        days = int_param(request.query_params.get("days"), 14, (1, 2, 3, 7, 14, 30, 60, 90))

        def body(ctx: Ctx) -> Response:
            p = get_patient(ctx.db, patient_id)
            items = ctx.pre
            if not accounts.can_see_clinical(ctx.user):
                items = [i for i in items if i["kind"] == "reminder"]
            return render(
                "preview.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                p=p,
                items=items,
                days=days,
                kind_labels=wording.KIND_LABELS,
            )

        return handle(
            request,
            body,
            prefetch=lambda now: [i.as_dict() for i in preview(rt, patient_id, now, days)],
        )

    return router


_ZONES: list[str] = []


def _zones() -> list[str]:
    if not _ZONES:
        from zoneinfo import available_timezones

        _ZONES.extend(
            sorted(
                z
                for z in available_timezones()
                if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
            )
        )
    return _ZONES
