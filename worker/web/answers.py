"""GET /r/{token} shows the answer and a button; POST /r/{token} records it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from worker.config import Settings
from worker.rendering import shipped_templates_dir
from worker.services.inbound.email_answers import LinkView, view_link
from worker.services.outbound.send_now import send_now
from worker.services.runtime import Runtime

TEMPLATES = shipped_templates_dir() / "web"
STATUS = {"ask": 200, "recorded": 200, "already": 200, "invalid": 410}


def answers_router(settings: Settings, rt: Runtime) -> APIRouter:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    page = env.get_template("answer.html.j2")
    router = APIRouter(include_in_schema=False)

    def render(view: LinkView) -> HTMLResponse:
        html = page.render(
            view=view, clinic_name=settings.clinic_name, clinic_phone=settings.clinic_phone
        )
        return HTMLResponse(
            html,
            status_code=STATUS[view.status],
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    @router.get("/r/{token}")
    def show(token: str) -> HTMLResponse:
        return render(view_link(rt, token, rt.now(), record=False))

    @router.post("/r/{token}")
    def record(token: str) -> HTMLResponse:
        view = view_link(rt, token, rt.now(), record=True)
        if view.send:
            send_now(rt, list(view.send), rt.now())
        return render(view)

    return router
