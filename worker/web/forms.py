"""GET /q/{token} shows the questionnaire form; POST /q/{token} records it (services/inbound/forms.py).

Thin: the page is rendered from what the service returns. No cookie and no CSRF token are
needed: the unguessable token itself is what a forged cross-site POST would have to know. The
dashboard's strict Content-Security-Policy applies (no script at all; the stylesheet is a file).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool

from worker.config import Settings
from worker.domain.forms import DOB_ATTEMPTS
from worker.domain.instruments import answer_options
from worker.rendering import shipped_templates_dir
from worker.services.inbound.forms import FormPage, open_form
from worker.services.inbound.handle import submit_form_and_reply
from worker.services.runtime import Runtime
from worker.web.dashboard.common import SECURITY_HEADERS

TEMPLATES = shipped_templates_dir() / "web"
STATUS_CODES = {"invalid": 404, "expired": 410, "locked": 403, "unverifiable": 403}
# The link's token must not travel on in a Referer header to anything the page links to.
HEADERS = {**SECURITY_HEADERS, "Referrer-Policy": "no-referrer"}


def forms_router(settings: Settings, rt: Runtime) -> APIRouter:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["answer_options"] = answer_options
    page = env.get_template("form.html.j2")
    router = APIRouter(include_in_schema=False)

    def render(view: FormPage) -> HTMLResponse:
        html = page.render(
            view=view,
            clinic_name=settings.clinic_name,
            clinic_phone=settings.clinic_phone,
            dob_attempts=DOB_ATTEMPTS,
        )
        return HTMLResponse(html, status_code=STATUS_CODES.get(view.status, 200), headers=HEADERS)

    @router.get("/q/{token}")
    def show(token: str) -> HTMLResponse:
        return render(open_form(rt, token, rt.now()))

    def record(token: str, fields: dict[str, str]) -> FormPage:
        # The crisis reply and the on-call page go from here, now: not at the next tick.
        return submit_form_and_reply(rt, token, fields, rt.now)

    @router.post("/q/{token}")
    async def submit(token: str, request: Request) -> HTMLResponse:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return render(await run_in_threadpool(record, token, fields))

    return router
