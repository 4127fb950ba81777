"""The dashboard's CSV import page (`/import`): the same import and report as
`checkin import patients|appointments FILE.csv`, for the admin and front-desk roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

ROLES = ("admin", "frontdesk")


def import_routes(
    router: APIRouter,
    *,
    handle: Callable[..., Response],
    render: Callable[..., Response],
    clinic_tz: str | None,
) -> None:
    def allowed(user: Any) -> bool:
        return str(user.role) in ROLES

    @router.get("/import")
    def import_page(request: Request) -> Response:
        def body(ctx: Any) -> Response:
            return render(
                "import.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                report=None,
                kind="appointments",
                dry_run=True,
                filename="",
            )

        return handle(request, body, need=allowed)

    def _run(request: Request, form: dict[str, str], content: str, filename: str) -> Response:
        from worker.services.records.csv_import import import_csv

        chosen = form.get("kind", "appointments")
        kind: Literal["appointments", "patients"] | None = (
            chosen if chosen in ("appointments", "patients") else None  # type: ignore[assignment]
        )
        dry_run = bool(form.get("dry_run"))

        def body(ctx: Any) -> Response:
            if kind is None:
                report_dict: dict[str, Any] = {
                    "rows": 0,
                    "counts": {},
                    "errors": [{"line": 0, "reason": "choose appointments or patients"}],
                    "written": False,
                    "dry_run": dry_run,
                }
            else:
                report = import_csv(
                    ctx.db,
                    content,
                    kind,
                    now=ctx.now,
                    clinic_tz=clinic_tz,
                    dry_run=dry_run,
                    actor=ctx.actor,
                )
                if not report.written:
                    ctx.db.rollback()
                # Audit call site (issue: access): the rows' own patient/appointment events are
                # recorded by the services in this transaction.
                report_dict = report.as_dict()
            code = 422 if report_dict["errors"] else 200
            return render(
                "import.html.j2",
                ctx.user,
                ctx.session,
                code=code,
                request=request,
                report=report_dict,
                kind=kind,
                dry_run=dry_run,
                filename=filename,
            )

        return handle(request, body, form=form, need=allowed)

    @router.post("/import")
    async def import_submit(request: Request) -> Response:
        data = await request.form()
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        upload = data.get("file")
        content, filename = "", ""
        if isinstance(upload, UploadFile):
            filename = upload.filename or ""
            raw = await upload.read()
            content = raw.decode("utf-8-sig", errors="replace")
        return await run_in_threadpool(_run, request, form, content, filename)
