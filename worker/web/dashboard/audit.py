"""The audit trail page (/audit), for administrators."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from worker.services.errors import InvalidInput
from worker.services.records import audit
from worker.web.dashboard.common import Ctx, Dashboard, int_param


def routes(d: Dashboard) -> APIRouter:
    render, handle = d.render, d.handle
    router = APIRouter(include_in_schema=False)

    @router.get("/audit")
    def audit_page(request: Request) -> Response:
        q = request.query_params

        def body(ctx: Ctx) -> Response:
            patient = int_param(q.get("patient"), 0) or None
            user_id = int_param(q.get("user"), 0) or None
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

    return router
