"""The dashboard's sign-in (password, then the second factor), sign-out, and one's own account:
live sessions, signing them out, changing the password."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from worker.services.errors import InvalidInput, NotFound
from worker.services.records import accounts, audit, twofactor
from worker.services.records import signin_throttle as throttle
from worker.store.db import session_scope
from worker.store.models import User
from worker.web.auth import (
    SessionData,
    anonymous,
    complete,
    current_session_id,
    live_sessions,
    pending_user,
    revoke_session,
    sign_in,
    sign_out,
)
from worker.web.dashboard.common import (
    Ctx,
    Dashboard,
    Outcome,
    form_str,
    log,
    message,
    read_form,
    redirect,
    safe_next,
)


def routes(d: Dashboard) -> APIRouter:
    rt, settings, render, handle, finish = d.rt, d.settings, d.render, d.handle, d.finish
    router = APIRouter(include_in_schema=False)

    # ------------------------------------------------------------------ sign in / out

    @router.get("/")
    def home() -> RedirectResponse:
        return redirect("/queue")

    @router.get("/login")
    def login_page(request: Request) -> Response:
        now = rt.now()
        session, is_new = d.sessions().read(request, now)
        with session_scope(rt.sessions) as db:
            if d.current_user(db, session) is not None:
                return finish(
                    Outcome(redirect(safe_next(request.query_params.get("next")))),
                    session,
                    is_new,
                )
            if session.signed_in:
                session, is_new = anonymous(now), True
            page = render(
                "login.html.j2",
                None,
                session,
                request=request,
                next=safe_next(request.query_params.get("next")),
                email="",
                error=None,
            )
        return finish(Outcome(page), session, is_new)

    @router.post("/login")
    async def login_submit(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_login, request, form)

    def _login_page(
        request: Request, session: SessionData, code: int, target: str, email: str, error: str
    ) -> Response:
        return render(
            "login.html.j2",
            None,
            session,
            code,
            request=request,
            next=target,
            email=email,
            error=error,
        )

    def _login(request: Request, form: dict[str, str]) -> Response:
        """Password step. Throttled per account and address (worker/services/records/signin_throttle.py)
        before any hash is computed; then either signed in, or on to the second factor."""
        now = rt.now()
        session, is_new = d.sessions().read(request, now)
        target = safe_next(form_str(form, "next"))
        email = form_str(form, "email").strip()[:320]
        address = d.client_address(request)
        if not d.post_ok(request, form, session):
            return finish(Outcome(d.forbidden(request, None, session)), session, is_new)
        with session_scope(rt.sessions) as db:
            user = accounts.find_user(db, email)
            refusal = throttle.check(db, user, address, now)
            if refusal is not None:
                throttle.fail(db, user, address, refusal.reason, now)
                page = _login_page(request, session, 429, target, email, refusal.message)
                return finish(
                    Outcome(page, extra_headers={"Retry-After": str(refusal.retry_after)}),
                    session,
                    is_new,
                )
        with session_scope(rt.sessions) as db:
            user = accounts.find_user(db, email)
            try:
                ok = accounts.check_password(db, user, form_str(form, "password")[:1024])
            except throttle.Busy as exc:
                page = _login_page(request, session, 503, target, email, str(exc))
                return finish(Outcome(page, extra_headers={"Retry-After": "5"}), session, is_new)
            if not ok or user is None or user.disabled_at is not None:
                reason = "unknown_account" if user is None else ("disabled" if ok else "password")
                locked = throttle.fail(db, user, address, reason, now)
                error = "Email or password is wrong, or the account is disabled."
                if locked:
                    error = (
                        "Email or password is wrong. This account is now locked for 15 minutes "
                        "after too many failed sign-ins; an administrator can unlock it."
                    )
                page = _login_page(request, session, 401, target, email, error)
                return finish(Outcome(page), session, is_new)
            agent = request.headers.get("user-agent")
            if twofactor.required(settings, user):
                twofactor.ensure_secret(user)
                stage = "totp" if user.totp_confirmed_at is not None else "enrol"
                fresh = sign_in(db, user, now, stage=stage, address=address, user_agent=agent)
                log.info("dashboard: user %d passed the password step", user.id)
                return finish(
                    Outcome(redirect(f"/login/2fa?{urlencode({'next': target})}"), session=fresh),
                    session,
                    is_new,
                )
            fresh = sign_in(db, user, now, address=address, user_agent=agent)
            _signed_in(db, user, address, now, "password")
        return finish(Outcome(redirect(target), session=fresh), session, is_new)

    def _signed_in(db: Session, user: User, address: str, now: datetime, method: str) -> None:
        throttle.clear(db, user.id)
        audit.record(
            db,
            now=now,
            actor="user",
            action="sign_in",
            entity="user",
            entity_id=user.id,
            detail={"method": method},
            who=audit.Who("user", "web", user_id=user.id, address=address),
        )
        log.info("dashboard: user %d signed in from %s", user.id, address)

    def _second_factor_page(
        request: Request,
        session: SessionData,
        user: User,
        stage: str,
        target: str,
        *,
        code: int = 200,
        error: str | None = None,
    ) -> Response:
        uri = twofactor.otpauth_uri(user, settings.clinic_name or twofactor.ISSUER)
        return render(
            "login_2fa.html.j2",
            None,
            session,
            code,
            request=request,
            next=target,
            stage=stage,
            qr=twofactor.qr_svg(uri) if stage == "enrol" else "",
            secret=user.totp_secret if stage == "enrol" else "",
            error=error,
        )

    @router.get("/login/2fa")
    def second_factor_page(request: Request) -> Response:
        now = rt.now()
        session, is_new = d.sessions().read(request, now)
        target = safe_next(request.query_params.get("next"))
        with session_scope(rt.sessions) as db:
            pending = pending_user(db, session, now)
            if pending is None:
                return finish(
                    Outcome(redirect(f"/login?{urlencode({'next': target})}")), session, is_new
                )
            row, user = pending
            if row.stage == "enrol":
                twofactor.ensure_secret(user)
            page = _second_factor_page(request, session, user, row.stage, target)
        return finish(Outcome(page), session, is_new)

    @router.post("/login/2fa")
    async def second_factor_submit(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_second_factor, request, form)

    def _second_factor(request: Request, form: dict[str, str]) -> Response:
        """The code step: a TOTP code (enrolment confirms the first one and shows the recovery
        codes once) or, once enrolled, a recovery code. Wrong codes count as failed sign-ins."""
        now = rt.now()
        session, is_new = d.sessions().read(request, now)
        target = safe_next(form_str(form, "next"))
        address = d.client_address(request)
        if not d.post_ok(request, form, session):
            return finish(Outcome(d.forbidden(request, None, session)), session, is_new)
        code = form_str(form, "code").strip()[:64]
        with session_scope(rt.sessions) as db:
            pending = pending_user(db, session, now)
            if pending is None:
                return finish(
                    Outcome(redirect(f"/login?{urlencode({'next': target})}")), session, is_new
                )
            row, user = pending
            refusal = throttle.check(db, user, address, now)
            if refusal is not None and refusal.reason != "backoff":
                row.revoked_at = now
                throttle.fail(db, user, address, refusal.reason, now)
                page = _login_page(
                    request, anonymous(now), 429, target, user.email, refusal.message
                )
                return finish(Outcome(page, session=anonymous(now)), session, is_new)
            enrol = row.stage == "enrol"
            method = "totp"
            ok = twofactor.check_code(user, code, now)
            if not ok and not enrol and twofactor.use_recovery_code(user, code):
                ok, method = True, "recovery_code"
            if not ok:
                locked = throttle.fail(db, user, address, "second_factor", now)
                if locked:
                    row.revoked_at = now
                    page = _login_page(
                        request,
                        anonymous(now),
                        429,
                        target,
                        user.email,
                        "This account is now locked for 15 minutes after too many failed "
                        "sign-ins; an administrator can unlock it.",
                    )
                    return finish(Outcome(page, session=anonymous(now)), session, is_new)
                page = _second_factor_page(
                    request,
                    session,
                    user,
                    row.stage,
                    target,
                    code=401,
                    error="That code is not right. Enter the 6-digit code your app shows now.",
                )
                return finish(Outcome(page), session, is_new)
            codes: list[str] = []
            if enrol:
                user.totp_confirmed_at = now
                codes = twofactor.new_recovery_codes(user)
                audit.record(
                    db,
                    now=now,
                    actor="user",
                    action="2fa_enrolled",
                    entity="user",
                    entity_id=user.id,
                    who=audit.Who("user", "web", user_id=user.id, address=address),
                )
            fresh = complete(db, row, user, now)
            _signed_in(db, user, address, now, method)
            if codes:
                page = render(
                    "recovery_codes.html.j2",
                    user,
                    fresh,
                    request=request,
                    codes=codes,
                    next=target,
                )
                return finish(Outcome(page, session=fresh), session, is_new)
        return finish(Outcome(redirect(target), session=fresh), session, is_new)

    # ------------------------------------------------------------------ one's own account

    @router.get("/account/sessions")
    def sessions_page(request: Request) -> Response:
        def body(ctx: Ctx) -> Response:
            mine = current_session_id(ctx.db, ctx.session)
            return render(
                "sessions.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                rows=live_sessions(ctx.db, ctx.user.id, ctx.now, d.idle),
                current=mine,
                error=None,
            )

        return handle(request, body)

    @router.post("/account/sessions/{session_id}/revoke")
    async def revoke_route(request: Request, session_id: int) -> Response:
        form = await read_form(request)

        def body(ctx: Ctx) -> Outcome | Response:
            if not revoke_session(ctx.db, ctx.user.id, session_id, ctx.now):
                raise NotFound(f"no session {session_id} of yours is signed in")
            audit.record(
                ctx.db,
                now=ctx.now,
                actor="user",
                action="session_revoked",
                entity="session",
                entity_id=session_id,
            )
            if session_id == current_session_id(ctx.db, ctx.session):
                return Outcome(redirect("/login?done=signed_out"), session=anonymous(ctx.now))
            return redirect("/account/sessions?done=session_revoked")

        return await run_in_threadpool(handle, request, body, form=form)

    @router.post("/account/sessions/revoke-others")
    async def revoke_others_route(request: Request) -> Response:
        form = await read_form(request)

        def body(ctx: Ctx) -> Response:
            mine = current_session_id(ctx.db, ctx.session)
            for row in live_sessions(ctx.db, ctx.user.id, ctx.now, d.idle):
                if row.id != mine:
                    revoke_session(ctx.db, ctx.user.id, row.id, ctx.now)
            audit.record(
                ctx.db,
                now=ctx.now,
                actor="user",
                action="signed_out_elsewhere",
                entity="user",
                entity_id=ctx.user.id,
            )
            return redirect("/account/sessions?done=signed_out_elsewhere")

        return await run_in_threadpool(handle, request, body, form=form)

    @router.post("/logout/everywhere")
    async def logout_everywhere(request: Request) -> Response:
        form = await read_form(request)

        def body(ctx: Ctx) -> Outcome:
            accounts.end_web_sessions(ctx.db, ctx.user.id, now=ctx.now)
            audit.record(
                ctx.db,
                now=ctx.now,
                actor="user",
                action="sign_out_everywhere",
                entity="user",
                entity_id=ctx.user.id,
            )
            return Outcome(redirect("/login?done=signed_out"), session=anonymous(ctx.now))

        return await run_in_threadpool(handle, request, body, form=form)

    @router.post("/account/password")
    async def password_route(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_change_password, request, form)

    def _change_password(request: Request, form: dict[str, str]) -> Response:
        def body(ctx: Ctx) -> Response:
            if not accounts.check_password(ctx.db, ctx.user, form_str(form, "current")[:1024]):
                raise InvalidInput("the current password is not right")
            new = form_str(form, "new")
            if new != form_str(form, "repeat"):
                raise InvalidInput("the new passwords differ")
            accounts.set_password(
                ctx.db,
                ctx.user.id,
                new,
                now=ctx.now,
                keep_session_id=current_session_id(ctx.db, ctx.session),
            )
            audit.record(
                ctx.db,
                now=ctx.now,
                actor="user",
                action="password_changed",
                entity="user",
                entity_id=ctx.user.id,
            )
            return redirect("/account/sessions?done=password_changed")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return render(
                "sessions.html.j2",
                ctx.user,
                ctx.session,
                422,
                request=request,
                rows=live_sessions(ctx.db, ctx.user.id, ctx.now, d.idle),
                current=current_session_id(ctx.db, ctx.session),
                error=message(exc),
            )

        return handle(request, body, form=form, on_error=on_error)

    def _end_session(session: SessionData, now: datetime) -> None:
        with session_scope(rt.sessions) as db:
            sign_out(db, session, now)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        now = rt.now()
        session, is_new = d.sessions().read(request, now)
        if not d.post_ok(request, form, session):
            return finish(Outcome(d.forbidden(request, None, session)), session, is_new)
        await run_in_threadpool(_end_session, session, now)
        return finish(
            Outcome(redirect("/login?done=signed_out"), session=anonymous(now)),
            session,
            is_new,
        )

    return router
