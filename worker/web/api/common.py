"""The clinician API under /api (JSON; OpenAPI at /api/openapi.json).

Every route needs `Authorization: Bearer <token>`: the installation's CHECKIN_API_TOKEN (a
bootstrap credential: acts as an admin, recorded as `installation_token` in the audit trail; to
be replaced by personal tokens) or a personal API token of an active user (`checkin users
token`), who then acts with their role, recorded by user and token id. Every request is
audited (`audit_access`): reads of patient data as view/search/export, the rest as token_used. Tokens are compared in constant
time; without a valid one nothing is shown. Errors are RFC 9457 problem details
(`application/problem+json`); a request that fails validation lists every field error.

The routes live in patients.py (patients, consent, protocols, enrollments, schedules,
appointments, preview), records.py (messages, check-ins, responses, follow-ups, export) and
fhir.py; router.py puts them under /api; this module holds what they share.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Final, Generic, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from worker.config import Settings
from worker.services.errors import InvalidInput, NotFound
from worker.services.records import audit
from worker.services.runtime import Runtime
from worker.store.db import session_scope

log = logging.getLogger(__name__)

# Ids are 32-bit integers in the database; anything larger names nothing (422, not a crash).
MAX_ID: Final = 2_147_483_647
# Dates and times the API accepts: wide enough for any clinic, narrow enough that expanding a
# daily rule from its start date stays cheap.
FIRST_DAY: Final = date(2000, 1, 1)
LAST_DAY: Final = date(2099, 12, 31)
PROBLEM_JSON: Final = "application/problem+json"

T = TypeVar("T")


# ---------------------------------------------------------------- problems


class FieldError(BaseModel):
    field: str = Field(description="Where: body.name, query.limit, path.patient_id, ...")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="Every field that failed validation (422 only)."
    )


def problem(
    status: int, title: str, detail: str | None = None, errors: list[FieldError] | None = None
) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON
    )


ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": Problem, "description": "No valid bearer token"},
    422: {"model": Problem, "description": "Invalid input (every field error listed)"},
}
NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": Problem, "description": "No such record"},
}
FORBIDDEN: Final[dict[int | str, dict[str, Any]]] = {
    403: {"model": Problem, "description": "Not allowed for the caller's role"},
}


# ---------------------------------------------------------------- input types


def _clean_text(value: str | None) -> str | None:
    # PostgreSQL refuses NUL in text and no database stores a lone surrogate: say so as a 422.
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _in_range(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value


Clean = AfterValidator(_clean_text)
# The year range in the OpenAPI document too, so that generated "valid" dates are valid here.
YEAR_PATTERN: Final = r"^20\d\d-"
ApiDate = Annotated[
    date, AfterValidator(_in_range), Field(json_schema_extra={"pattern": YEAR_PATTERN})
]
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A record id.")]
OptionalPatient = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Only this patient's records.")
]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size (1-500).")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Rows to skip.")]
IsoTime = Annotated[
    str | None,
    Field(description="ISO 8601 with a UTC offset", json_schema_extra={"format": "date-time"}),
]


class Input(BaseModel):
    """Request bodies: unknown fields are refused, so a misspelt field is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Rows matching the filters, on all pages.")
    limit: int
    offset: int


def page_of(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def slice_page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    return page_of(items[offset : offset + limit], len(items), limit, offset)


# ---------------------------------------------------------------- who is calling


@dataclass(frozen=True)
class Principal:
    """The caller: the installation token (role admin, name "api") or a user's own token."""

    name: str
    role: str
    user_id: int | None
    token_id: int | None = None

    @property
    def clinical(self) -> bool:
        """Answers, scores, conversations and clinical follow-ups (not the front desk)."""
        return self.role in ("clinician", "admin")


# Declared as a dependency so that the OpenAPI document names the scheme; checked below.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="CHECKIN_API_TOKEN, or a personal token from `checkin users token`.",
)


def _user_for(request: Request, token: str) -> Principal | None:
    from worker.services.records.accounts import token_lookup

    rt: Runtime = request.app.state.runtime
    with session_scope(rt.sessions) as session:
        found = token_lookup(session, token, now=rt.now())
        if found is None:
            return None
        user, row = found
        return Principal(user.name, user.role, user.id, row.id)


def authorised(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, or 401. The installation token is compared in constant time; a personal token
    is looked up by its SHA-256 (worker.services.records.accounts.token_user)."""
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise HTTPException(401, "a valid bearer token is required")
    settings: Settings = request.app.state.settings
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        principal = Principal("api", "admin", None)
    else:
        found = _user_for(request, token)
        if found is None:
            raise HTTPException(401, "a valid bearer token is required")
        principal = found
    request.state.principal = principal
    who = audit.current()
    if who is not None:  # bound per request by worker/web/access.py; filled in here
        who.actor = "token" if principal.user_id is not None else "installation_token"
        who.user_id = principal.user_id
        who.token_id = principal.token_id
    return principal


# Path templates of routes that read one patient's data, by the patient id parameter's name;
# lists filtered by ?patient_id= count as a view of that patient, unfiltered ones as a search.
_PATIENT_PARAM = "patient_id"


def audit_access(request: Request) -> None:
    """One audit row per API request, before the route runs (so a read is on record even if
    the response is lost): GET of patient data is `view` (one patient), `search` (a list) or
    `export`; any other call is `token_used` (the change itself is recorded by the service)."""

    rt: Runtime = request.app.state.runtime
    path = request.url.path
    raw = request.path_params.get(_PATIENT_PARAM) or request.query_params.get(_PATIENT_PARAM)
    try:
        patient_id = int(raw) if raw is not None else None
    except ValueError:
        patient_id = None
    if patient_id is not None and not 1 <= patient_id <= MAX_ID:
        patient_id = None
    if request.method != "GET":
        action = "token_used"
    elif path.endswith("/export"):
        action = "export"
    elif path in ("/api/me", "/api/protocols"):
        action = "token_used"
    elif path == "/api/audit":
        action = "view"
    elif patient_id is None and not any(k.endswith("_id") for k in request.path_params):
        action = "search"
    else:
        action = "view"
    entity = path.removeprefix("/api/").split("/", 1)[0][:30] or "api"
    detail: dict[str, Any] = {"method": request.method, "path": path[:200]}
    if action == "export":
        detail["format"] = request.query_params.get("format", "")[:10]
    with session_scope(rt.sessions) as session:
        audit.record(
            session,
            now=rt.now(),
            actor="api",
            action=action,
            entity=entity,
            entity_id=patient_id,
            patient_id=patient_id if _patient_exists(session, patient_id) else None,
            detail=detail,
        )


def _patient_exists(session: Session, patient_id: int | None) -> bool:
    # The audit row's patient_id is a foreign key: an id that names nobody goes in `detail`.
    if patient_id is None:
        return False
    from worker.store.models import Patient

    return session.get(Patient, patient_id) is not None


def current(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def clinical_only(request: Request) -> Principal:
    """403 for roles that may not see answers, scores or conversations (the front desk)."""
    principal = current(request)
    if not principal.clinical:
        raise HTTPException(403, f"the {principal.role} role cannot see clinical records")
    return principal


Caller = Annotated[Principal, Depends(current)]
Clinical = Annotated[Principal, Depends(clinical_only)]


def get_session(request: Request) -> Iterator[Session]:
    rt: Runtime = request.app.state.runtime
    with session_scope(rt.sessions) as session:
        yield session


# "function" scope: the transaction commits before the response goes out, so a caller that
# reads right after a write sees it, and a failed commit is an error response, not a lost write.
DB = Annotated[Session, Depends(get_session, scope="function")]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def request_now(request: Request) -> datetime:
    """The instant a request acts at, read once from the runtime's clock: real time, or the
    CHECKIN_CLOCK rehearsal clock that the workers and the dashboard read too."""
    return runtime(request).now()


Now = Annotated[datetime, Depends(request_now)]


# Where each input a service may name in InvalidInput.field is in an API request, when it is
# not a body field of the same name.
API_FIELDS: Final[dict[str, str]] = {"format": "query.format", "status": "query.status"}


def install_error_handlers(app: FastAPI) -> None:
    """Problem details (RFC 9457) for every error the API and the services raise."""

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidInput)
        message = str(exc)
        if exc.field is None:
            return problem(422, "Invalid input", message)
        # The service names the input in the domain's words; the caller gets the API's name.
        where = API_FIELDS.get(exc.field, f"body.{exc.field}")
        return problem(422, "Invalid input", message, [FieldError(field=where, message=message)])

    async def missing(_request: Request, exc: Exception) -> JSONResponse:
        return problem(404, "Not found", str(exc).strip("'\""))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = {
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not found",
            405: "Method not allowed",
            413: "Too large",
        }
        response = problem(exc.status_code, title.get(exc.status_code, "Error"), str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette lists only the methods of the first route on the path; list them all.
            response.headers["Allow"] = ", ".join(_allowed(request))
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def bad_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            FieldError(
                field=".".join(str(p) for p in e.get("loc", ())) or "request",
                message=str(e.get("msg", "invalid")),
            )
            for e in exc.errors()
        ]
        first = f"{errors[0].field}: {errors[0].message}" if errors else "invalid request"
        return problem(422, "Invalid request", first, errors)

    async def crashed(request: Request, exc: Exception) -> JSONResponse | PlainTextResponse:
        from worker.store.db import deadline_passed

        deadline = deadline_passed(exc)
        if deadline is not None and request.url.path.startswith("/api/"):
            # A PostgreSQL deadline passed (CHECKIN_DB_*_TIMEOUT_MS): rolled back, worth a retry.
            log.warning("database deadline on %s %s", request.method, request.url.path)
            response = problem(503, "Database timeout", deadline)
            response.headers["Retry-After"] = "5"
            return response
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        if request.url.path.startswith("/api/"):
            return problem(500, "Internal error", "the error was logged")
        return PlainTextResponse("Internal Server Error", status_code=500)

    _document_problems(app)
    app.add_exception_handler(InvalidInput, invalid)
    app.add_exception_handler(NotFound, missing)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(Exception, crashed)


API_DESCRIPTION: Final = """\
The clinician API: everything the `checkin` command does for patients, consent, enrollments,
schedules, appointments, the preview, messages, check-ins and answers, follow-ups and export.

* **Auth**: `Authorization: Bearer <token>` on every call, either `CHECKIN_API_TOKEN` (a
  bootstrap credential: acts as an admin, audited as `installation_token`; replace it with
  personal tokens) or a personal token from `checkin users token` (acts with the user's role,
  audited by user and token id). Every call is recorded in the audit trail (`GET /api/audit`). Without a valid token every call is a 401 and shows nothing. The
  front desk role sees contact details, consent, appointments and appointment requests only
  (403 elsewhere).
* **Lists** take `limit` (1-500, default 50) and `offset` and return
  `{"items": [...], "total": n, "limit": l, "offset": o}`.
* **Times** are ISO 8601 with a UTC offset; appointment times you send are patient-local
  `YYYY-MM-DDTHH:MM`; dates are between 2000-01-01 and 2099-12-31.
* **Errors** are RFC 9457 problem details (`application/problem+json`): 401 no valid token,
  403 not for your role, 404 no such record, 422 invalid input with every field error under
  `errors`. A refused request changes nothing.
"""


def _document_problems(app: FastAPI) -> None:
    """Errors under /api are sent as application/problem+json: say so in the OpenAPI document
    (FastAPI documents every response model as application/json)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("info", {}).setdefault("description", API_DESCRIPTION)
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(code)[0] in "45" and "application/json" in content:
                        response["content"] = {PROBLEM_JSON: content["application/json"]}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _allowed(request: Request) -> list[str]:
    methods = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return methods
