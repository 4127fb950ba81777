"""The clinician API under /api (JSON; OpenAPI at /api/openapi.json).

Every route needs `Authorization: Bearer <CHECKIN_API_TOKEN>`; with no token configured every
request is refused. Tokens are compared in constant time. Errors are RFC 9457 problem details.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.config import Settings
from worker.services.errors import InvalidInput, NotFound
from worker.services.runtime import Runtime
from worker.store.db import session_scope


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


def problem(status: int, title: str, detail: str | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class AckBody(BaseModel):
    by: str = Field(min_length=1, max_length=200)


class ResolveBody(BaseModel):
    by: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=10_000)


class FollowUpOut(BaseModel):
    id: int
    patient_id: int | None
    reason: str
    severity: str
    status: str
    created_at: str | None
    detail: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: str | None
    resolved_by: str | None
    resolved_at: str | None
    resolution_note: str | None


class ResponseOut(BaseModel):
    instrument: str
    item: str
    value: int
    answered_at: str | None
    checkin_id: int | None
    partial: bool
    late: bool


def authorised(request: Request) -> None:
    """Bearer CHECKIN_API_TOKEN, compared in constant time; no token configured: no access."""
    settings: Settings = request.app.state.settings
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if (
        expected is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), expected.encode())
    ):
        raise HTTPException(401, "a valid bearer token is required")


def get_session(request: Request) -> Iterator[Session]:
    rt: Runtime = request.app.state.runtime
    with session_scope(rt.sessions) as session:
        yield session


DB = Annotated[Session, Depends(get_session)]


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[Depends(authorised)])

    @router.get("/followups", response_model=list[FollowUpOut])
    def list_followups_api(
        session: DB,
        status: Literal["open", "acknowledged", "resolved"] | None = None,
        patient_id: int | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        from worker.services.followups import list_followups
        from worker.services.views import followup_dict

        items = list_followups(session, status=status, patient_id=patient_id)
        return [followup_dict(f) for f in items[offset : offset + limit]]

    @router.post("/followups/{followup_id}/ack", response_model=FollowUpOut)
    def ack_api(followup_id: int, body: AckBody, session: DB) -> dict[str, Any]:
        from worker.services.followups import acknowledge
        from worker.services.views import followup_dict

        return followup_dict(acknowledge(session, followup_id, by=body.by, now=datetime.now(UTC)))

    @router.post("/followups/{followup_id}/resolve", response_model=FollowUpOut)
    def resolve_api(followup_id: int, body: ResolveBody, session: DB) -> dict[str, Any]:
        from worker.services.followups import resolve
        from worker.services.views import followup_dict

        item = resolve(session, followup_id, by=body.by, note=body.note, now=datetime.now(UTC))
        return followup_dict(item)

    @router.get("/patients/{patient_id}/responses", response_model=list[ResponseOut])
    def responses_api(patient_id: int, session: DB) -> list[dict[str, Any]]:
        from worker.services.patients import get_patient
        from worker.services.views import all_responses

        get_patient(session, patient_id)
        return all_responses(session, patient_id)

    return router


def install_error_handlers(app: FastAPI) -> None:
    """Problem details (RFC 9457) for every error the API and the services raise."""

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        return problem(422, "Invalid input", str(exc))

    async def missing(_request: Request, exc: Exception) -> JSONResponse:
        return problem(404, "Not found", str(exc).strip("'\""))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 413: "Too large"}
        response = problem(exc.status_code, title.get(exc.status_code, "Error"), str(exc.detail))
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def bad_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, "Invalid request", f"{where}: {first.get('msg', 'invalid')}")

    app.add_exception_handler(InvalidInput, invalid)
    app.add_exception_handler(NotFound, missing)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
