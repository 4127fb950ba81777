"""The /api router: every resource's routes under one prefix, token check and audit first."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from worker.services.errors import InvalidInput
from worker.services.records import audit
from worker.web.api.common import (
    DB,
    ERRORS,
    FORBIDDEN,
    MAX_ID,
    Caller,
    Limit,
    Offset,
    OptionalPatient,
    audit_access,
    authorised,
    page_of,
)
from worker.web.api.fhir import fhir_router
from worker.web.api.patients import patients_router
from worker.web.api.records import records_router


@functools.cache  # Stateless (endpoints read the runtime from the request's app): built once
def api_router() -> APIRouter:  # per process, as FastAPI takes a while to build its routes.
    router = APIRouter(
        prefix="/api",
        dependencies=[Depends(authorised), Depends(audit_access)],
        responses=ERRORS,
    )

    @router.get("/me", tags=["auth"], summary="Who the token belongs to")
    def me(caller: Caller) -> dict[str, Any]:
        return {"name": caller.name, "role": caller.role, "user_id": caller.user_id}

    @router.get(
        "/audit",
        tags=["audit"],
        summary="The audit trail, newest first (admin role)",
        responses=FORBIDDEN,
    )
    def audit_api(
        request: Request,
        session: DB,
        caller: Caller,
        limit: Limit = 50,
        offset: Offset = 0,
        patient_id: OptionalPatient = None,
        user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        since: Annotated[
            str | None, Query(max_length=40, description="ISO 8601 with an offset")
        ] = None,
    ) -> dict[str, Any]:
        """Who looked at or changed what (see `checkin audit list`)."""
        from datetime import UTC, datetime

        if caller.role != "admin":
            raise HTTPException(403, "the audit trail is for the admin role")
        start = None
        if since is not None:
            try:
                start = datetime.fromisoformat(since)
                if start.tzinfo is None:
                    raise ValueError(since)
                start = start.astimezone(UTC)
            except (ValueError, OverflowError):
                raise InvalidInput("since must be ISO 8601 with an offset") from None
        items, total = audit.list_events(
            session,
            patient_id=patient_id,
            user_id=user_id,
            since=start,
            limit=limit,
            offset=offset,
        )
        return page_of(items, total, limit, offset)

    router.include_router(patients_router())
    router.include_router(records_router())
    router.include_router(fhir_router())
    return router
