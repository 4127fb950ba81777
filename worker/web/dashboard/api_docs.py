"""The API's documentation page (/api/docs), drawn on the server from /api/openapi.json."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from worker.web.dashboard.common import Ctx, Dashboard


def routes(d: Dashboard) -> APIRouter:
    settings, render, handle = d.settings, d.render, d.handle
    router = APIRouter(include_in_schema=False)

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

    return router
