"""The operations page (/ops): queues, delivery, the feeds, for the roles that run the clinic's
operations."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from worker.services.read.ops_page import operations
from worker.services.records import accounts
from worker.web.dashboard.common import Ctx, Dashboard


def routes(d: Dashboard) -> APIRouter:
    settings, render, handle = d.settings, d.render, d.handle
    router = APIRouter(include_in_schema=False)

    @router.get("/ops")
    def ops_page(request: Request) -> Response:
        def body(ctx: Ctx) -> Response:
            return render(
                "ops.html.j2",
                ctx.user,
                ctx.session,
                request=request,
                ops=operations(ctx.db, settings, ctx.now),
                now=ctx.now,
            )

        return handle(request, body, need=accounts.can_see_operations)

    return router
