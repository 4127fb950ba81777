"""`POST /api/fhir`: a FHIR R4 transaction Bundle of Patient and Appointment resources.

Answered with a transaction-response Bundle (200), or an OperationOutcome (400 not a valid
transaction Bundle, 422 an entry that cannot be applied) with nothing written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.web.api.common import Caller

FHIR_JSON = "application/fhir+json"
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            FHIR_JSON: {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_OUTCOME = {"description": "OperationOutcome: refused, nothing written", "content": {FHIR_JSON: {}}}


def fhir_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/fhir",
        tags=["fhir"],
        summary="Import a FHIR R4 transaction Bundle of Patient and Appointment resources",
        openapi_extra=_BODY,
        responses={
            200: {"description": "transaction-response Bundle", "content": {FHIR_JSON: {}}},
            400: _OUTCOME,
            422: _OUTCOME,
        },
    )
    async def post_fhir(request: Request, caller: Caller) -> JSONResponse:
        raw = await request.body()
        rt: Runtime = request.app.state.runtime
        status, body = await run_in_threadpool(_apply, rt, raw, caller.name)
        return JSONResponse(body, status_code=status, media_type=FHIR_JSON)

    return router


def _apply(rt: Runtime, raw: bytes, actor: str) -> tuple[int, dict[str, Any]]:
    from worker.domain.hl7_mapping import load_mapping
    from worker.services.records.fhir_import import (
        FhirRefused,
        apply_bundle,
        operation_outcome,
        parse_bundle,
        response_bundle,
    )

    now = rt.settings.now()
    try:
        bundle = parse_bundle(raw)
        # Audit call site (issue: access): the import is recorded per patient/appointment
        # change by the services; a read/export audit hook belongs here too.
        with session_scope(rt.sessions) as session:
            result = apply_bundle(
                session,
                bundle,
                now=now,
                clinic_tz=rt.settings.clinic_tz,
                mapping=load_mapping(rt.settings.hl7_mapping),
                actor=actor,
                noshow_text=rt.settings.noshow_text,
            )
    except FhirRefused as exc:
        return exc.status, operation_outcome(exc.issues)
    return 200, response_bundle(result, now)
