"""The clinicians' dashboard: server-rendered pages (Jinja2, autoescaped) and plain HTML forms.

Every page needs a signed-in account; without one a page redirects to /login and a script call
gets 401, before any query runs. Every POST carries the session's CSRF token. Actions call the
same service functions as the command line, with the signed-in user's name as the actor, so
the audit trail records who did what. Role rules (see worker/services/records/accounts.py) are enforced
here, server-side, on every route; the templates only hide what a role cannot use.

Forms work without JavaScript (POST, then a 303 redirect back); the small script in
/static/dashboard.js acknowledges and resolves follow-ups in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from worker.domain.forms import QUESTIONNAIRE_MODES
from worker.domain.names import APPOINTMENT_KINDS, CHANNELS, INSTRUMENTS, LANGUAGES
from worker.rendering import shipped_templates_dir
from worker.services.errors import InvalidInput, NotFound
from worker.services.records import accounts, audit, twofactor
from worker.services.records import signin_throttle as throttle
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import User
from worker.web.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    SessionData,
    Sessions,
    anonymous,
    complete,
    csrf_ok,
    current_session_id,
    live_sessions,
    pending_user,
    revoke_session,
    same_origin,
    session_user,
    sign_in,
    sign_out,
)
from worker.web.dashboard import data

log = logging.getLogger(__name__)

TEMPLATES = shipped_templates_dir() / "web"
STATIC = Path(__file__).resolve().parents[1] / "static"

# Content-Security-Policy: scripts, styles and images from this app only; nothing inline runs.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

NOTICES = {
    "acknowledged": "Follow-up acknowledged.",
    "resolved": "Follow-up resolved.",
    "patient_added": "Patient added.",
    "patient_saved": "Patient details saved.",
    "patient_unchanged": "Nothing changed.",
    "consent_granted": "Consent recorded.",
    "consent_unchanged": "Consent was already recorded on that channel.",
    "consent_withdrawn": "Consent withdrawn; pending messages on that channel are suppressed.",
    "enrolled": "Enrolled; the protocol's schedules are added.",
    "schedule_added": "Schedule added.",
    "schedule_active": "Schedule resumed.",
    "schedule_paused": "Schedule paused; its pending check-ins are cancelled.",
    "schedule_removed": "Schedule removed; its pending check-ins are cancelled.",
    "appointment_booked": "Appointment booked; its reminders are planned.",
    "appointment_moved": "Appointment moved; the old reminders will not be sent.",
    "appointment_cancelled": "Appointment cancelled; its reminders will not be sent.",
    "appointment_no_show": "Marked as a no-show; the front desk has a follow-up.",
    "appointment_attended": "Marked as attended.",
    "signed_out": "Signed out.",
    "idle": "You were signed out after a period without activity. Sign in again.",
    "session_revoked": "That session is signed out.",
    "signed_out_elsewhere": "Every other session is signed out.",
    "password_changed": "Password changed; your other sessions are signed out.",
}

WEEKDAYS = (("MO", "Monday"), ("TU", "Tuesday"), ("WE", "Wednesday"), ("TH", "Thursday"),
            ("FR", "Friday"), ("SA", "Saturday"), ("SU", "Sunday"))  # fmt: skip
CHART_DAYS = (14, 30, 60, 90, 180, 365)
# The escalation ladder's steps, as recorded in a follow-up's detail["escalation"].
STEP_LABELS = {"oncall": "On-call paged", "backup": "Backup paged", "admins": "Admins paged"}


class Denied(Exception):
    """The signed-in account's role may not do this."""


@dataclass
class Ctx:
    request: Request
    now: datetime
    db: Session
    user: User
    session: SessionData
    pre: Any = None  # what `prefetch` computed, outside the transaction

    @property
    def actor(self) -> str:
        return self.user.name


@dataclass
class Outcome:
    response: Response
    session: SessionData | None = None  # a new session to write back (sign-in, sign-out)
    extra_headers: dict[str, str] = field(default_factory=dict)


def _is_script(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "fetch"


def _safe_next(target: str | None) -> str:
    """Where to go after signing in (and after any later sign-in step that carries `next`
    along): a local path such as /followups/4?x=1, else the queue.

    "//evil.example", "https://...", a backslash and any control or space character (browsers
    drop a tab or newline inside a URL, so "/<tab>/evil.example" becomes "//evil.example")
    would make it an open redirect."""
    if (
        target
        and len(target) <= 2000
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in target)
    ):
        return target
    return "/queue"


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _form_str(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _opt(form: Mapping[str, Any], key: str) -> str | None:
    value = _form_str(form, key).strip()
    return value or None


def _int(value: str | None, default: int, allowed: tuple[int, ...] | None = None) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        return default
    if allowed is not None and n not in allowed:
        return default
    return n


def _date(value: str | None, field: str, label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{label} must be YYYY-MM-DD, got {value!r}", field=field) from None


def build_rrule(form: Mapping[str, Any]) -> str:
    """The RRULE from the schedule form: the raw rule when given, else frequency + time."""
    raw = _opt(form, "rrule")
    if raw:
        return raw
    at = _form_str(form, "time").strip()
    try:
        hour, minute = (int(x) for x in at.split(":"))
    except ValueError:
        raise InvalidInput(f"time must be HH:MM (patient-local), got {at!r}") from None
    freq = _form_str(form, "frequency") or "DAILY"
    if freq not in ("DAILY", "WEEKLY", "MONTHLY"):
        raise InvalidInput(f"frequency must be daily, weekly or monthly, got {freq!r}")
    rule = f"FREQ={freq};BYHOUR={hour};BYMINUTE={minute}"
    if freq == "WEEKLY":
        day = _form_str(form, "weekday") or "MO"
        if day not in dict(WEEKDAYS):
            raise InvalidInput(f"weekday must be one of {', '.join(dict(WEEKDAYS))}")
        rule += f";BYDAY={day}"
    return rule


def dashboard_router(rt: Runtime) -> APIRouter:
    settings = rt.settings
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = data.local
    env.filters["urlq"] = lambda v: quote(str(v), safe="")
    router = APIRouter(include_in_schema=False)
    state: dict[str, Sessions] = {}

    def sessions() -> Sessions:
        # Built on first use: the key may live in the database, which a test migrates after
        # creating the app.
        if "s" not in state:
            state["s"] = Sessions(rt)
        return state["s"]

    # ------------------------------------------------------------------ plumbing

    def render(
        name: str, ctx_user: User | None, session: SessionData, code: int = 200, **values: Any
    ) -> HTMLResponse:
        request: Request | None = values.pop("request", None)
        notice_key = request.query_params.get("done") if request is not None else None
        html = env.get_template(name).render(
            user=ctx_user,
            csrf=session.csrf,
            clinic_name=settings.clinic_name,
            notice=NOTICES.get(notice_key or ""),
            can=_can(ctx_user),
            path=request.url.path if request is not None else "",
            **values,
        )
        return HTMLResponse(html, status_code=code)

    def _can(user: User | None) -> dict[str, bool]:
        if user is None:
            return {"clinical": False, "ops": False, "admin": False}
        return {
            "clinical": accounts.can_see_clinical(user),
            "ops": accounts.can_see_operations(user),
            "admin": user.role == "admin",
        }

    idle = timedelta(minutes=settings.session_idle_minutes)

    def current_user(db: Session, session: SessionData) -> User | None:
        return session_user(db, session, rt.now(), idle)

    def client_address(request: Request) -> str:
        # The peer uvicorn reports: the proxy's X-Forwarded-For only when it comes from an
        # address in FORWARDED_ALLOW_IPS (uvicorn's own rule), never a header any caller sets.
        return (request.client.host if request.client else "unknown")[:64]

    def who_for(request: Request, user: User | None) -> audit.Who:
        return audit.Who(
            actor="user" if user else "anonymous",
            via="web",
            user_id=user.id if user else None,
            address=client_address(request),
        )

    def finish(outcome: Outcome, session: SessionData, is_new: bool) -> Response:
        response = outcome.response
        for k, v in {**SECURITY_HEADERS, **outcome.extra_headers}.items():
            response.headers.setdefault(k, v)
        if outcome.session is not None:
            sessions().write(response, outcome.session)
        elif is_new:
            sessions().write(response, session)
        return response

    def handle(
        request: Request,
        body: Callable[[Ctx], Outcome | Response],
        *,
        form: Mapping[str, Any] | None = None,
        need: Callable[[User], bool] | None = None,
        on_error: Callable[[Ctx, Exception], Outcome | Response] | None = None,
        prefetch: Callable[[datetime], Any] | None = None,
    ) -> Response:
        """Session → user → role → CSRF (for a POST) → body, the body in one transaction.

        InvalidInput from a service rolls the transaction back (nothing written) and `on_error`
        renders the form again with the message, in a fresh transaction. `prefetch` runs
        between the two, outside any transaction, for services that open their own (SQLite
        takes its write lock at BEGIN, so a nested transaction would wait for ours)."""
        now = rt.now()
        session, is_new = sessions().read(request, now)
        with session_scope(rt.sessions) as db:
            user = current_user(db, session)
            pending = user is None and pending_user(db, session, now) is not None
        if pending and not _is_script(request) and form is None:
            # Password given, code outstanding: back to the code, the session kept.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return finish(
                Outcome(_redirect(f"/login/2fa?{urlencode({'next': target})}")), session, is_new
            )
        if user is None:
            was_signed_in = session.signed_in and not pending
            if session.signed_in and not pending:
                session, is_new = anonymous(now), True
            if _is_script(request):
                response = JSONResponse({"error": "sign in first"}, status_code=401)
                return finish(Outcome(response), session, is_new)
            if form is not None:
                return finish(Outcome(_redirect("/login")), session, is_new)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query = {"next": target, **({"done": "idle"} if was_signed_in else {})}
            return finish(Outcome(_redirect(f"/login?{urlencode(query)}")), session, is_new)
        if form is not None and not _post_ok(request, form, session):
            return finish(Outcome(_forbidden(request, user, session)), session, is_new)
        if need is not None and not need(user):
            return finish(Outcome(_denied(request, user, session)), session, is_new)
        try:
            pre = prefetch(now) if prefetch is not None and form is None else None
            with audit.acting(who_for(request, user)), session_scope(rt.sessions) as db:
                result = body(Ctx(request, now, db, user, session, pre))
        except Denied:
            return finish(Outcome(_denied(request, user, session)), session, is_new)
        except (InvalidInput, NotFound) as exc:
            if isinstance(exc, NotFound) or on_error is None:
                return finish(Outcome(_not_found(request, user, session, exc)), session, is_new)
            if _is_script(request):
                return finish(
                    Outcome(JSONResponse({"error": _message(exc)}, status_code=422)),
                    session,
                    is_new,
                )
            try:
                pre = prefetch(now) if prefetch is not None else None
                with audit.acting(who_for(request, user)), session_scope(rt.sessions) as db:
                    result = on_error(Ctx(request, now, db, user, session, pre), exc)
            except NotFound as missing:
                return finish(Outcome(_not_found(request, user, session, missing)), session, is_new)
        outcome = result if isinstance(result, Outcome) else Outcome(result)
        return finish(outcome, session, is_new)

    def _post_ok(request: Request, form: Mapping[str, Any], session: SessionData) -> bool:
        token = request.headers.get(CSRF_HEADER) or _form_str(form, CSRF_FIELD)
        return csrf_ok(session, token) and same_origin(request, settings.public_url)

    def _forbidden(request: Request, user: User | None, session: SessionData) -> Response:
        log.warning("dashboard: POST %s refused (CSRF token or origin)", request.url.path)
        if _is_script(request):
            return JSONResponse(
                {"error": "the form has expired: reload the page and try again"}, status_code=403
            )
        return render(
            "error.html.j2",
            user,
            session,
            403,
            request=request,
            title="Form expired",
            message="This form has expired or did not come from this site. Reload the page and try again.",
        )

    def _denied(request: Request, user: User | None, session: SessionData) -> Response:
        if _is_script(request):
            return JSONResponse({"error": "your role does not allow this"}, status_code=403)
        return render(
            "error.html.j2",
            user,
            session,
            403,
            request=request,
            title="Not allowed",
            message="Your role does not allow this page or action. Ask an administrator if you need it.",
        )

    def _not_found(
        request: Request, user: User | None, session: SessionData, exc: Exception
    ) -> Response:
        if _is_script(request):
            return JSONResponse({"error": _message(exc)}, status_code=404)
        return render(
            "error.html.j2",
            user,
            session,
            404,
            request=request,
            title="Not found",
            message=_message(exc),
        )

    async def read_form(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    # ------------------------------------------------------------------ sign in / out

    @router.get("/")
    def home() -> RedirectResponse:
        return _redirect("/queue")

    @router.get("/login")
    def login_page(request: Request) -> Response:
        now = rt.now()
        session, is_new = sessions().read(request, now)
        with session_scope(rt.sessions) as db:
            if current_user(db, session) is not None:
                return finish(
                    Outcome(_redirect(_safe_next(request.query_params.get("next")))),
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
                next=_safe_next(request.query_params.get("next")),
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
        session, is_new = sessions().read(request, now)
        target = _safe_next(_form_str(form, "next"))
        email = _form_str(form, "email").strip()[:320]
        address = client_address(request)
        if not _post_ok(request, form, session):
            return finish(Outcome(_forbidden(request, None, session)), session, is_new)
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
                ok = accounts.check_password(db, user, _form_str(form, "password")[:1024])
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
                    Outcome(_redirect(f"/login/2fa?{urlencode({'next': target})}"), session=fresh),
                    session,
                    is_new,
                )
            fresh = sign_in(db, user, now, address=address, user_agent=agent)
            _signed_in(db, user, address, now, "password")
        return finish(Outcome(_redirect(target), session=fresh), session, is_new)

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
        session, is_new = sessions().read(request, now)
        target = _safe_next(request.query_params.get("next"))
        with session_scope(rt.sessions) as db:
            pending = pending_user(db, session, now)
            if pending is None:
                return finish(
                    Outcome(_redirect(f"/login?{urlencode({'next': target})}")), session, is_new
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
        session, is_new = sessions().read(request, now)
        target = _safe_next(_form_str(form, "next"))
        address = client_address(request)
        if not _post_ok(request, form, session):
            return finish(Outcome(_forbidden(request, None, session)), session, is_new)
        code = _form_str(form, "code").strip()[:64]
        with session_scope(rt.sessions) as db:
            pending = pending_user(db, session, now)
            if pending is None:
                return finish(
                    Outcome(_redirect(f"/login?{urlencode({'next': target})}")), session, is_new
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
        return finish(Outcome(_redirect(target), session=fresh), session, is_new)

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
                rows=live_sessions(ctx.db, ctx.user.id, ctx.now, idle),
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
                return Outcome(_redirect("/login?done=signed_out"), session=anonymous(ctx.now))
            return _redirect("/account/sessions?done=session_revoked")

        return await run_in_threadpool(handle, request, body, form=form)

    @router.post("/account/sessions/revoke-others")
    async def revoke_others_route(request: Request) -> Response:
        form = await read_form(request)

        def body(ctx: Ctx) -> Response:
            mine = current_session_id(ctx.db, ctx.session)
            for row in live_sessions(ctx.db, ctx.user.id, ctx.now, idle):
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
            return _redirect("/account/sessions?done=signed_out_elsewhere")

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
            return Outcome(_redirect("/login?done=signed_out"), session=anonymous(ctx.now))

        return await run_in_threadpool(handle, request, body, form=form)

    @router.post("/account/password")
    async def password_route(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_change_password, request, form)

    def _change_password(request: Request, form: dict[str, str]) -> Response:
        def body(ctx: Ctx) -> Response:
            if not accounts.check_password(ctx.db, ctx.user, _form_str(form, "current")[:1024]):
                raise InvalidInput("the current password is not right")
            new = _form_str(form, "new")
            if new != _form_str(form, "repeat"):
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
            return _redirect("/account/sessions?done=password_changed")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return render(
                "sessions.html.j2",
                ctx.user,
                ctx.session,
                422,
                request=request,
                rows=live_sessions(ctx.db, ctx.user.id, ctx.now, idle),
                current=current_session_id(ctx.db, ctx.session),
                error=_message(exc),
            )

        return handle(request, body, form=form, on_error=on_error)

    # ------------------------------------------------------------------ the API's documentation

    @router.get("/api/docs")
    def api_docs_page(request: Request) -> Response:
        """The API's operations, drawn on the server from /api/openapi.json: no Swagger UI, no
        script from anywhere, the dashboard's CSP; signed-in users only; off with
        CHECKIN_API_DOCS=0."""
        if not settings.api_docs:
            return JSONResponse({"detail": "Not Found"}, status_code=404)

        def body(ctx: Ctx) -> Response:
            schema = request.app.openapi()
            operations = []
            for path, methods in sorted(schema.get("paths", {}).items()):
                for method, op in methods.items():
                    params = [f"{p.get('name')} ({p.get('in')})" for p in op.get("parameters", [])]
                    operations.append(
                        {
                            "method": method.upper(),
                            "path": path,
                            "summary": op.get("summary", ""),
                            "description": op.get("description", ""),
                            "params": params,
                            "tags": ", ".join(op.get("tags", [])),
                        }
                    )
            return render(
                "api_docs.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                operations=operations,
                description=schema.get("info", {}).get("description", ""),
            )

        return handle(request, body)

    # ------------------------------------------------------------------ the audit trail

    @router.get("/audit")
    def audit_page(request: Request) -> Response:
        q = request.query_params

        def body(ctx: Ctx) -> Response:
            patient = _int(q.get("patient"), 0) or None
            user_id = _int(q.get("user"), 0) or None
            since = None
            if q.get("since"):
                try:
                    since = datetime.fromisoformat(q["since"][:40])
                    if since.tzinfo is None:
                        since = since.replace(tzinfo=UTC)
                    since = since.astimezone(UTC)
                except (ValueError, OverflowError):
                    raise InvalidInput("since must be an ISO 8601 time") from None
            rows, total = audit.list_events(
                ctx.db, patient_id=patient, user_id=user_id, since=since, limit=200
            )
            audit.access(
                ctx.db,
                now=ctx.now,
                action="view",
                entity="audit",
                patient_id=patient,
                detail={"user": user_id},
            )
            return render(
                "audit.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                rows=rows,
                total=total,
                patient=patient or "",
                filter_user=user_id or "",
                since=q.get("since", ""),
            )

        return handle(request, body, need=lambda u: u.role == "admin")

    def _end_session(session: SessionData, now: datetime) -> None:
        with session_scope(rt.sessions) as db:
            sign_out(db, session, now)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        now = rt.now()
        session, is_new = sessions().read(request, now)
        if not _post_ok(request, form, session):
            return finish(Outcome(_forbidden(request, None, session)), session, is_new)
        await run_in_threadpool(_end_session, session, now)
        return finish(
            Outcome(_redirect("/login?done=signed_out"), session=anonymous(now)),
            session,
            is_new,
        )

    # ------------------------------------------------------------------ the queue

    @router.get("/queue")
    def queue_page(request: Request) -> Response:
        status = request.query_params.get("status", "active")
        if status not in ("active", "open", "acknowledged", "resolved"):
            status = "active"

        def body(ctx: Ctx) -> Response:
            rows = data.queue(ctx.db, ctx.user, ctx.now, status=status)
            audit.access(ctx.db, now=ctx.now, action="search", entity="followups")
            return render(
                "queue.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                rows=rows,
                status=status,
                counts=data.queue_counts(ctx.db, ctx.user),
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
        sla = data.SLA.get(view.item.severity)
        return render(
            "followup.html.j2",
            ctx.user,
            ctx.session,
            status,
            request=request,
            v=view,
            reason_label=data.REASON_LABELS.get(view.item.reason, view.item.reason),
            reason_labels=data.REASON_LABELS,
            step_labels=STEP_LABELS,
            ago=lambda at: data.human_age(ctx.now - at),
            fmt=lambda x: f"{x:.1f}".removesuffix(".0"),
            sla=data.sla_text(sla) if sla is not None else None,
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

        back = _safe_next(_form_str(form, "back") or "/queue")

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
                resolve(ctx.db, followup_id, by=ctx.actor, note=_opt(form, "note"), now=ctx.now)
            ctx.db.flush()
            if _is_script(request):
                row = data.one_queue_row(ctx.db, ctx.user, followup_id, ctx.now)
                html = env.get_template("_followup_row.html.j2").render(
                    r=row, csrf=ctx.session.csrf, back=back, can=_can(ctx.user)
                )
                return JSONResponse({"ok": True, "status": row.status, "html": html})
            done = "acknowledged" if action == "ack" else "resolved"
            sep = "&" if "?" in back else "?"
            return _redirect(f"{back}{sep}done={done}#f{followup_id}")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            if back == f"/followups/{followup_id}":
                # Sent from the follow-up's own page: show it again, the note kept.
                return _followup_page(
                    request,
                    ctx,
                    followup_id,
                    error=_message(exc),
                    note=_form_str(form, "note"),
                    status=422,
                )
            rows = data.queue(ctx.db, ctx.user, ctx.now)
            return render(
                "queue.html.j2",
                ctx.user,
                ctx.session,
                422,
                request=request,
                rows=rows,
                status="active",
                counts=data.queue_counts(ctx.db, ctx.user),
                now=ctx.now,
                back="/queue",
                error=_message(exc),
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

    # ------------------------------------------------------------------ patients

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
                rows=data.patient_rows(ctx.db, ctx.user, q, ctx.now),
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
            consent = [c for c in CHANNELS if _form_str(form, f"consent_{c}")]
            patient = add_patient(
                ctx.db,
                now=ctx.now,
                name=_form_str(form, "name"),
                tz=_form_str(form, "tz"),
                channel=_form_str(form, "channel"),
                phone=_opt(form, "phone"),
                email=_opt(form, "email"),
                consent=consent,
                consent_source=_opt(form, "consent_source") or f"recorded by {ctx.actor}",
                send_window=_opt(form, "send_window"),
                language=_form_str(form, "language") or "en",
                actor=ctx.actor,
                confirm_optin=rt.settings.optin_confirmation,
                questionnaire_mode=_form_str(form, "questionnaire_mode") or "link",
            )
            return _redirect(f"/patients/{patient.id}?done=patient_added")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return _patient_form(
                request, ctx, values=form, patient_id=None, error=_message(exc), status=422
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
                name=_form_str(form, "name"),
                tz=_form_str(form, "tz"),
                channel=_form_str(form, "channel"),
                phone=_opt(form, "phone"),
                email=_opt(form, "email"),
                send_window=_opt(form, "send_window"),
                language=_form_str(form, "language") or "en",
                questionnaire_mode=_opt(form, "questionnaire_mode"),
            )
            done = "patient_saved" if changed else "patient_unchanged"
            return _redirect(f"/patients/{patient_id}?done={done}")

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return _patient_form(
                request, ctx, values=form, patient_id=patient_id, error=_message(exc), status=422
            )

        return handle(request, body, form=form, on_error=on_error)

    @router.post("/patients/{patient_id}/edit")
    async def edit_patient_route(request: Request, patient_id: int) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_edit_patient, request, form, patient_id)

    def _planned(patient_id: int, now: datetime) -> tuple[int, list[dict[str, object]]]:
        """What the next 7 days will send (the preview service opens its own transaction)."""
        from worker.services.outbound.preview import preview

        return patient_id, [i.as_dict() for i in preview(rt, patient_id, now, 7)]

    def _patient_page(
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
        days = _int(request.query_params.get("days"), 30, CHART_DAYS)
        limit = _int(request.query_params.get("messages"), 50, (50, 200, 1000))
        svg, table = data.chart(ctx.db, p, ctx.now, days) if clinical else ("", {})
        planned: list[dict[str, object]] = ctx.pre[1] if ctx.pre else []
        if not clinical:
            planned = [i for i in planned if i["kind"] == "reminder"]
        appointments = list_appointments(ctx.db, patient_id)
        local_now = ctx.now.astimezone(ZoneInfo(p.tz))
        return render(
            "patient.html.j2",
            ctx.user,
            ctx.session,
            status,
            request=request,
            p=p,
            local_now=local_now,
            consent=consent_state(ctx.db, patient_id),
            followups=data.queue(ctx.db, ctx.user, ctx.now, patient_id=patient_id),
            svg=svg,
            chart_table=table,
            days=days,
            chart_days=CHART_DAYS,
            messages=data.conversation(ctx.db, patient_id, limit) if clinical else [],
            message_limit=limit,
            planned=planned[:15],
            planned_total=len(planned),
            appointments=[a for a in appointments if a.starts_at >= ctx.now],
            past_appointments=[a for a in appointments if a.starts_at < ctx.now][-10:],
            schedules=list_schedules(ctx.db, patient_id) if clinical else [],
            protocols=sorted(rt.protocols.values(), key=lambda pr: pr.name) if clinical else [],
            instruments=INSTRUMENTS,
            kinds=APPOINTMENT_KINDS,
            kind_labels=data.KIND_LABELS,
            weekdays=WEEKDAYS,
            audit=data.audit_trail(ctx.db, patient_id) if clinical else [],
            error=error,
            values=values or {},
            back=f"/patients/{patient_id}",
            today=local_now.date().isoformat(),
        )

    @router.get("/patients/{patient_id}")
    def patient_page(request: Request, patient_id: int) -> Response:
        return handle(
            request,
            lambda ctx: _patient_page(request, ctx, patient_id),
            prefetch=lambda now: _planned(patient_id, now),
        )

    def _patient_action(
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
            return _redirect(f"/patients/{pid}?done={done}#{form_name}")

        def prefetch(now: datetime) -> tuple[int, list[dict[str, object]]]:
            return _planned(patient_id if isinstance(patient_id, int) else patient_id(), now)

        def on_error(ctx: Ctx, exc: Exception) -> Response:
            return _patient_page(
                request, ctx, ctx.pre[0], error=(form_name, _message(exc)), values=form, status=422
            )

        return handle(request, body, form=form, need=need, on_error=on_error, prefetch=prefetch)

    def _of_schedule(schedule_id: int) -> Callable[[], int]:
        from worker.services.records.schedules import get_schedule

        def pid() -> int:
            with session_scope(rt.sessions) as db:
                return get_schedule(db, schedule_id).patient_id

        return pid

    def _of_appointment(appointment_id: int) -> Callable[[], int]:
        from worker.services.records.appointments import get_appointment

        def pid() -> int:
            with session_scope(rt.sessions) as db:
                return get_appointment(db, appointment_id).patient_id

        return pid

    @router.post("/patients/{patient_id}/consent")
    async def consent_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.patients import grant_consent, withdraw_consent

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            channel = _form_str(form, "channel")
            source = _opt(form, "source") or f"recorded by {ctx.actor}"
            if _form_str(form, "action") == "withdraw":
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
            _patient_action, request, form, patient_id, "consent", action
        )

    @router.post("/patients/{patient_id}/enroll")
    async def enroll_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.schedules import enroll, protocol_named

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            protocol = protocol_named(rt.protocols, _form_str(form, "protocol"))
            start = _date(_form_str(form, "start"), "start", "the start date")
            if start is None:
                raise InvalidInput(
                    "the start date is required (YYYY-MM-DD, the protocol's day 0)", field="start"
                )
            enroll(ctx.db, patient_id, protocol, start=start, now=ctx.now, actor=ctx.actor)
            return patient_id, "enrolled"

        return await run_in_threadpool(
            _patient_action,
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
            start = _date(_opt(form, "start"), "start", "the start date")
            until = _date(_opt(form, "until"), "until", "the end date")
            add_schedule(
                ctx.db,
                patient_id,
                now=ctx.now,
                instrument=_form_str(form, "instrument"),
                rrule=rule,
                start=start,
                until=until,
                actor=ctx.actor,
            )
            return patient_id, "schedule_added"

        return await run_in_threadpool(
            _patient_action,
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
            status = _form_str(form, "status")
            s = set_schedule_status(ctx.db, schedule_id, status, now=ctx.now, actor=ctx.actor)
            return s.patient_id, f"schedule_{status}"

        return await run_in_threadpool(
            _patient_action,
            request,
            form,
            _of_schedule(schedule_id),
            "schedules",
            action,
            accounts.can_see_clinical,
        )

    @router.post("/patients/{patient_id}/appointments")
    async def book_route(request: Request, patient_id: int) -> Response:
        from worker.services.records.appointments import add_appointment

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            add_appointment(
                ctx.db,
                patient_id,
                now=ctx.now,
                kind=_form_str(form, "kind"),
                at=_form_str(form, "at"),
                location=_opt(form, "location"),
                actor=ctx.actor,
            )
            return patient_id, "appointment_booked"

        return await run_in_threadpool(
            _patient_action, request, form, patient_id, "appointments", action
        )

    @router.post("/appointments/{appointment_id}/reschedule")
    async def reschedule_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.appointments import reschedule

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            a = reschedule(
                ctx.db, appointment_id, now=ctx.now, at=_form_str(form, "at"), actor=ctx.actor
            )
            return a.patient_id, "appointment_moved"

        return await run_in_threadpool(
            _patient_action, request, form, _of_appointment(appointment_id), "appointments", action
        )

    @router.post("/appointments/{appointment_id}/cancel")
    async def cancel_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.appointments import cancel

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            a = cancel(ctx.db, appointment_id, now=ctx.now, actor=ctx.actor)
            return a.patient_id, "appointment_cancelled"

        return await run_in_threadpool(
            _patient_action, request, form, _of_appointment(appointment_id), "appointments", action
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
            _patient_action, request, form, _of_appointment(appointment_id), "appointments", action
        )

    @router.post("/appointments/{appointment_id}/attended")
    async def attended_route(request: Request, appointment_id: int) -> Response:
        from worker.services.records.visits import mark_attended

        form = await read_form(request)

        def action(ctx: Ctx) -> tuple[int, str]:
            marked = mark_attended(ctx.db, appointment_id, now=ctx.now, actor=ctx.actor)
            return marked.appointment.patient_id, "appointment_attended"

        return await run_in_threadpool(
            _patient_action, request, form, _of_appointment(appointment_id), "appointments", action
        )

    @router.get("/patients/{patient_id}/preview")
    def preview_page(request: Request, patient_id: int) -> Response:
        from worker.services.outbound.preview import preview
        from worker.services.records.patients import get_patient

        days = _int(request.query_params.get("days"), 14, (1, 2, 3, 7, 14, 30, 60, 90))

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
                kind_labels=data.KIND_LABELS,
            )

        return handle(
            request,
            body,
            prefetch=lambda now: [i.as_dict() for i in preview(rt, patient_id, now, days)],
        )

    # ------------------------------------------------------------------ operations

    @router.get("/ops")
    def ops_page(request: Request) -> Response:
        def body(ctx: Ctx) -> Response:
            return render(
                "ops.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                ops=data.operations(ctx.db, settings, ctx.now),
                now=ctx.now,
            )

        return handle(request, body, need=accounts.can_see_operations)

    from worker.web.dashboard.imports import import_routes

    import_routes(router, handle=handle, render=render, clinic_tz=settings.clinic_tz)
    return router


def _message(exc: Exception) -> str:
    return str(exc).strip("'\"")


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
