"""GET /a/{token}/{action}: a reminder email's confirm or request-a-new-time page; POST records
it (services/inbound/appointment_links.py).

Thin, like the unsubscribe page: the random token in the path is the whole authority, so no
session or CSRF token applies. No script and no inline style: the strict CSP below holds; the
token must not travel on in a Referer header.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from worker.rendering import shipped_templates_dir
from worker.services.inbound import appointment_links
from worker.services.runtime import Runtime
from worker.store.db import session_scope

TEMPLATES = shipped_templates_dir() / "web"
STATUS_CODES = {"invalid": 404, "expired": 410}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}


def appointment_links_router(rt: Runtime) -> APIRouter:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("appointment_link.html.j2")
    router = APIRouter(include_in_schema=False)

    def render(view: appointment_links.LinkPage) -> HTMLResponse:
        html = page.render(
            view=view, clinic_name=rt.settings.clinic_name, clinic_phone=rt.settings.clinic_phone
        )
        return HTMLResponse(html, status_code=STATUS_CODES.get(view.status, 200), headers=HEADERS)

    @router.get("/a/{token}/{action}")
    def show(token: str, action: str) -> HTMLResponse:
        with session_scope(rt.sessions) as session:
            view = appointment_links.open_link(session, token, action, rt.now())
        return render(view)

    @router.post("/a/{token}/{action}")
    def record(token: str, action: str) -> HTMLResponse:
        with session_scope(rt.sessions) as session:
            view = appointment_links.answer(session, token, action, rt.now())
        return render(view)

    return router
