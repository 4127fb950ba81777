"""The staff dashboard (server-rendered HTML, plain forms). `common.py` holds what every page
shares (the request plumbing, the renderer, the security headers); each resource has its own
module returning its routes (auth, api_docs, audit, queue, patients, schedules, appointments,
ops, imports), assembled here; their read queries are in worker/services/read/ (queue_rows,
patient_record, ops_page, wording), the patient chart in chart.py."""

from __future__ import annotations

from fastapi import APIRouter

from worker.services.runtime import Runtime
from worker.web.dashboard import (
    api_docs,
    appointments,
    audit,
    auth,
    ops,
    patients,
    queue,
    schedules,
)
from worker.web.dashboard.common import SECURITY_HEADERS, STATIC, Dashboard
from worker.web.dashboard.imports import import_routes

__all__ = ["SECURITY_HEADERS", "STATIC", "dashboard_router"]


def dashboard_router(rt: Runtime) -> APIRouter:
    """Every dashboard page, in one router (no page in the API's schema)."""
    d = Dashboard(rt)
    router = APIRouter(include_in_schema=False)
    for resource in (auth, api_docs, audit, queue, patients, schedules, appointments, ops):
        router.include_router(resource.routes(d))
    import_routes(router, handle=d.handle, render=d.render, clinic_tz=d.settings.clinic_tz)
    return router
