"""GET /u/{token}: the unsubscribe confirmation page; POST /u/{token}: stop the emails.

The POST is RFC 8058's one-click request (a mail provider posts `List-Unsubscribe=One-Click`)
and the page's own button alike: the random token in the path is the whole authority, so no
session or CSRF token applies. No script, no inline style: the strict CSP below holds.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from worker.rendering import shipped_templates_dir
from worker.services.records import unsubscribe
from worker.services.runtime import Runtime
from worker.store.db import session_scope

TEMPLATES = shipped_templates_dir() / "web"
STATUS = {"ask": 200, "done": 200, "invalid": 404}
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


def unsubscribe_router(rt: Runtime) -> APIRouter:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    page = env.get_template("unsubscribe.html.j2")
    router = APIRouter(include_in_schema=False)

    def render(view: unsubscribe.UnsubscribeView) -> HTMLResponse:
        html = page.render(view=view, clinic_name=rt.settings.clinic_name)
        return HTMLResponse(html, status_code=STATUS[view.status], headers=HEADERS)

    @router.get("/u/{token}")
    def show(token: str) -> HTMLResponse:
        with session_scope(rt.sessions) as session:
            view, _ = unsubscribe.view(session, token)
        return render(view)

    @router.post("/u/{token}")
    def stop(token: str) -> HTMLResponse:
        with session_scope(rt.sessions) as session:
            view = unsubscribe.unsubscribe(session, token, rt.now())
        return render(view)

    return router
