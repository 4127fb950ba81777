"""What every dashboard page shares: the security headers, the notices, the request plumbing
(session → user → role → CSRF → body in one transaction) and the page renderer.

`Dashboard` holds what the old single closure held (the runtime, the Jinja environment, the
session store); each resource module (auth, queue, patients, schedules, appointments, audit,
ops, api_docs, imports) takes one and returns its routes. Role rules (see
worker/services/records/accounts.py) are enforced server-side on every route through
`Dashboard.handle`; the templates only hide what a role cannot use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from worker.rendering import shipped_templates_dir
from worker.services.errors import InvalidInput, NotFound
from worker.services.read import wording
from worker.services.records import accounts, audit
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import User
from worker.web.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    SessionData,
    Sessions,
    anonymous,
    csrf_ok,
    pending_user,
    same_origin,
    session_user,
)

log = logging.getLogger("worker.web.dashboard")

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


def is_script(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "fetch"


def safe_next(target: str | None) -> str:
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


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def form_str(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def opt(form: Mapping[str, Any], key: str) -> str | None:
    value = form_str(form, key).strip()
    return value or None


def int_param(value: str | None, default: int, allowed: tuple[int, ...] | None = None) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        return default
    if allowed is not None and n not in allowed:
        return default
    return n


def date_param(value: str | None, field: str, label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{label} must be YYYY-MM-DD, got {value!r}", field=field) from None


def message(exc: Exception) -> str:
    return str(exc).strip("'\"")


async def read_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


class Dashboard:
    """The state every dashboard route shares: the runtime, the page templates, the session
    store (built on first use: its key may live in the database, which a test migrates after
    creating the app) and the idle limit."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html", "j2"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["local"] = wording.local
        self.env.filters["urlq"] = lambda v: quote(str(v), safe="")
        self.idle = timedelta(minutes=self.settings.session_idle_minutes)
        self._sessions: Sessions | None = None

    def sessions(self) -> Sessions:
        if self._sessions is None:
            self._sessions = Sessions(self.rt)
        return self._sessions

    def render(
        self,
        name: str,
        ctx_user: User | None,
        session: SessionData,
        code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        request: Request | None = values.pop("request", None)
        notice_key = request.query_params.get("done") if request is not None else None
        html = self.env.get_template(name).render(
            user=ctx_user,
            csrf=session.csrf,
            clinic_name=self.settings.clinic_name,
            notice=NOTICES.get(notice_key or ""),
            can=self.can(ctx_user),
            path=request.url.path if request is not None else "",
            **values,
        )
        return HTMLResponse(html, status_code=code)

    @staticmethod
    def can(user: User | None) -> dict[str, bool]:
        if user is None:
            return {"clinical": False, "ops": False, "admin": False}
        return {
            "clinical": accounts.can_see_clinical(user),
            "ops": accounts.can_see_operations(user),
            "admin": user.role == "admin",
        }

    def current_user(self, db: Session, session: SessionData) -> User | None:
        return session_user(db, session, self.rt.now(), self.idle)

    @staticmethod
    def client_address(request: Request) -> str:
        # The peer uvicorn reports: the proxy's X-Forwarded-For only when it comes from an
        # address in FORWARDED_ALLOW_IPS (uvicorn's own rule), never a header any caller sets.
        return (request.client.host if request.client else "unknown")[:64]

    def who_for(self, request: Request, user: User | None) -> audit.Who:
        return audit.Who(
            actor="user" if user else "anonymous",
            via="web",
            user_id=user.id if user else None,
            address=self.client_address(request),
        )

    def finish(self, outcome: Outcome, session: SessionData, is_new: bool) -> Response:
        response = outcome.response
        for k, v in {**SECURITY_HEADERS, **outcome.extra_headers}.items():
            response.headers.setdefault(k, v)
        if outcome.session is not None:
            self.sessions().write(response, outcome.session)
        elif is_new:
            self.sessions().write(response, session)
        return response

    def handle(
        self,
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
        rt, finish = self.rt, self.finish
        now = rt.now()
        session, is_new = self.sessions().read(request, now)
        with session_scope(rt.sessions) as db:
            user = self.current_user(db, session)
            pending = user is None and pending_user(db, session, now) is not None
        if pending and not is_script(request) and form is None:
            # Password given, code outstanding: back to the code, the session kept.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return finish(
                Outcome(redirect(f"/login/2fa?{urlencode({'next': target})}")), session, is_new
            )
        if user is None:
            was_signed_in = session.signed_in and not pending
            if session.signed_in and not pending:
                session, is_new = anonymous(now), True
            if is_script(request):
                response = JSONResponse({"error": "sign in first"}, status_code=401)
                return finish(Outcome(response), session, is_new)
            if form is not None:
                return finish(Outcome(redirect("/login")), session, is_new)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query = {"next": target, **({"done": "idle"} if was_signed_in else {})}
            return finish(Outcome(redirect(f"/login?{urlencode(query)}")), session, is_new)
        if form is not None and not self.post_ok(request, form, session):
            return finish(Outcome(self.forbidden(request, user, session)), session, is_new)
        if need is not None and not need(user):
            return finish(Outcome(self.denied(request, user, session)), session, is_new)
        try:
            pre = prefetch(now) if prefetch is not None and form is None else None
            with audit.acting(self.who_for(request, user)), session_scope(rt.sessions) as db:
                result = body(Ctx(request, now, db, user, session, pre))
        except Denied:
            return finish(Outcome(self.denied(request, user, session)), session, is_new)
        except (InvalidInput, NotFound) as exc:
            if isinstance(exc, NotFound) or on_error is None:
                return finish(Outcome(self.not_found(request, user, session, exc)), session, is_new)
            if is_script(request):
                return finish(
                    Outcome(JSONResponse({"error": message(exc)}, status_code=422)),
                    session,
                    is_new,
                )
            try:
                pre = prefetch(now) if prefetch is not None else None
                with audit.acting(self.who_for(request, user)), session_scope(rt.sessions) as db:
                    result = on_error(Ctx(request, now, db, user, session, pre), exc)
            except NotFound as missing:
                page = self.not_found(request, user, session, missing)
                return finish(Outcome(page), session, is_new)
        outcome = result if isinstance(result, Outcome) else Outcome(result)
        return finish(outcome, session, is_new)

    def post_ok(self, request: Request, form: Mapping[str, Any], session: SessionData) -> bool:
        token = request.headers.get(CSRF_HEADER) or form_str(form, CSRF_FIELD)
        return csrf_ok(session, token) and same_origin(request, self.settings.public_url)

    def forbidden(self, request: Request, user: User | None, session: SessionData) -> Response:
        log.warning("dashboard: POST %s refused (CSRF token or origin)", request.url.path)
        if is_script(request):
            return JSONResponse(
                {"error": "the form has expired: reload the page and try again"}, status_code=403
            )
        return self.render(
            "error.html.j2",
            user,
            session,
            403,
            request=request,
            title="Form expired",
            message="This form has expired or did not come from this site. Reload the page and try again.",
        )

    def denied(self, request: Request, user: User | None, session: SessionData) -> Response:
        if is_script(request):
            return JSONResponse({"error": "your role does not allow this"}, status_code=403)
        return self.render(
            "error.html.j2",
            user,
            session,
            403,
            request=request,
            title="Not allowed",
            message="Your role does not allow this page or action. Ask an administrator if you need it.",
        )

    def not_found(
        self, request: Request, user: User | None, session: SessionData, exc: Exception
    ) -> Response:
        if is_script(request):
            return JSONResponse({"error": message(exc)}, status_code=404)
        return self.render(
            "error.html.j2",
            user,
            session,
            404,
            request=request,
            title="Not found",
            message=message(exc),
        )
