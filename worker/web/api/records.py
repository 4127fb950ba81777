"""API routes for what happened: messages, check-ins and their answers, the follow-up queue, and
a patient's record as FHIR or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.services.errors import NotFound
from worker.store.models import CheckIn, FollowUp
from worker.web.api.common import (
    DB,
    FORBIDDEN,
    NOT_FOUND,
    Caller,
    Clean,
    Clinical,
    Id,
    Input,
    IsoTime,
    Limit,
    Now,
    Offset,
    OptionalPatient,
    Page,
    Principal,
    page_of,
)

FollowUpStatus = Literal["open", "acknowledged", "resolved"]


# ---------------------------------------------------------------- models


class MessageOut(BaseModel):
    id: int | str = Field(description="Outbound: an integer; inbound: 'in-<id>'.")
    direction: Literal["out", "in"]
    patient_id: int | None
    channel: str
    kind: str
    template: str | None
    instrument: str | None
    appointment_id: int | None
    status: str
    status_reason: str | None
    body: str | None
    at: IsoTime
    due_at: IsoTime
    sent_at: IsoTime
    local_time: str | None
    provider_id: str | None
    error_code: str | None
    attempts: int


class ResponseOut(BaseModel):
    instrument: str
    item: str
    value: int
    answered_at: IsoTime
    checkin_id: int | None
    partial: bool
    late: bool


class ScoreOut(BaseModel):
    total: float | None = Field(description="null until every item is answered")
    band: str | None


class CheckInOut(BaseModel):
    id: int
    patient_id: int
    instrument: str
    channel: str
    status: Literal["open", "answered", "partial", "expired"] | str
    sent_at: IsoTime
    window_closes_at: IsoTime
    answered_at: IsoTime
    answers: dict[str, int] = Field(description="item -> value, as stored so far")
    score: ScoreOut | None = Field(description="null for instruments without a total")


class FollowUpOut(BaseModel):
    id: int
    patient_id: int | None
    reason: str
    severity: str
    status: str
    created_at: IsoTime
    detail: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: IsoTime
    resolved_by: str | None
    resolved_at: IsoTime
    resolution_note: str | None


class AckBody(Input):
    by: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            max_length=200,
            description=(
                "Ignored: the token's user is recorded (the installation token as "
                "'installation token'). Accepted for older clients."
            ),
        ),
        Clean,
    ] = None


class ResolveBody(AckBody):
    note: Annotated[
        str | None,
        Field(
            default=None,
            max_length=10_000,
            description="The action taken; required for an urgent follow-up.",
        ),
        Clean,
    ] = None


# ---------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _patient(session: Session, patient_id: int | None) -> None:
    if patient_id is not None:
        from worker.services.records.patients import get_patient

        get_patient(session, patient_id)


def followups_stmt(
    caller: Principal, *, status: str | None, patient_id: int | None
) -> Select[FollowUp]:
    """The queue as the caller may see it: urgent first, then high, then routine, oldest first
    within each. The front desk sees only appointment requests."""
    from worker.services.read.views import SEVERITY_ORDER
    from worker.services.records.accounts import FRONTDESK_REASONS

    stmt = select(FollowUp).order_by(SEVERITY_ORDER, FollowUp.created_at, FollowUp.id)
    if status is not None:
        stmt = stmt.where(FollowUp.status == status)
    if patient_id is not None:
        stmt = stmt.where(FollowUp.patient_id == patient_id)
    if not caller.clinical:
        stmt = stmt.where(FollowUp.reason.in_(sorted(FRONTDESK_REASONS)))
    return stmt


def visible_followups(
    session: Session, caller: Principal, *, status: str | None, patient_id: int | None
) -> list[dict[str, Any]]:
    from worker.services.read.views import followup_dict

    stmt = followups_stmt(caller, status=status, patient_id=patient_id)
    return [followup_dict(f) for f in session.scalars(stmt)]


def _followup(session: Session, caller: Principal, followup_id: int) -> FollowUp:
    from worker.services.clinical.followups import get_followup
    from worker.services.records.accounts import FRONTDESK_REASONS

    item = get_followup(session, followup_id)
    if not caller.clinical and item.reason not in FRONTDESK_REASONS:
        # Hidden, not forbidden: the front desk does not learn that a clinical item exists.
        raise NotFound(f"no follow-up with id {followup_id}")
    return item


# Who acknowledged or resolved is who called: the token's user, or the installation token as
# itself. A `by` in the body is ignored (it was a free-text name anyone could type).
INSTALLATION_TOKEN_BY = "installation token"  # noqa: S105 (a label)


def _by(caller: Principal, given: str | None) -> str:
    del given
    if caller.user_id is not None:
        return caller.name
    return INSTALLATION_TOKEN_BY


def checkin_out(checkin: CheckIn, answers: dict[str, int]) -> dict[str, Any]:
    from worker.domain.instruments import score

    result = None
    if checkin.instrument not in ("mood_pain",):
        try:
            s = score(checkin.instrument, answers)
            result = {"total": s.total, "band": s.band}
        except ValueError:
            result = None
    return {
        "id": checkin.id,
        "patient_id": checkin.patient_id,
        "instrument": checkin.instrument,
        "channel": checkin.channel,
        "status": checkin.status,
        "sent_at": _iso(checkin.sent_at),
        "window_closes_at": _iso(checkin.window_closes_at),
        "answered_at": _iso(checkin.answered_at),
        "answers": answers,
        "score": result,
    }


# ---------------------------------------------------------------- routes


def records_router() -> APIRouter:
    router = APIRouter()

    # ------------------------------------------------------------ messages

    @router.get(
        "/messages",
        tags=["messages"],
        response_model=Page[MessageOut],
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def list_messages_api(
        session: DB,
        _c: Clinical,
        patient_id: OptionalPatient = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Messages out and in, newest first (outbound by due time, inbound by receipt), as
        `checkin messages list`."""
        from worker.services.read.listing import messages_page

        _patient(session, patient_id)
        rows, total = messages_page(session, patient_id=patient_id, limit=limit, offset=offset)
        for row in rows:
            row.pop("outcome", None)
        return page_of(rows, total, limit, offset)

    # ------------------------------------------------------------ check-ins and responses

    @router.get(
        "/patients/{patient_id}/checkins",
        tags=["check-ins"],
        response_model=Page[CheckInOut],
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def list_checkins_api(
        patient_id: Id,
        session: DB,
        _c: Clinical,
        status: Literal["open", "answered", "partial", "expired"] | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Check-ins sent to the patient, newest first, with the answers stored so far and the
        score once complete."""
        from worker.services.read.listing import answers_by_checkin, checkins_stmt, page

        _patient(session, patient_id)
        rows, total = page(session, checkins_stmt(patient_id, status), limit=limit, offset=offset)
        answers = answers_by_checkin(session, [c.id for c in rows])
        items = [checkin_out(c, {r.item: r.value for r in answers[c.id]}) for c in rows]
        return page_of(items, total, limit, offset)

    @router.get(
        "/checkins/{checkin_id}",
        tags=["check-ins"],
        response_model=CheckInOut,
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def get_checkin_api(checkin_id: Id, session: DB, _c: Clinical) -> dict[str, Any]:
        from worker.services.read.listing import answers_by_checkin

        checkin = session.get(CheckIn, checkin_id)
        if checkin is None:
            raise NotFound(f"no check-in with id {checkin_id}")
        rows = answers_by_checkin(session, [checkin.id])[checkin.id]
        return checkin_out(checkin, {r.item: r.value for r in rows})

    @router.get(
        "/patients/{patient_id}/responses",
        tags=["check-ins"],
        response_model=Page[ResponseOut],
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def responses_api(
        patient_id: Id,
        session: DB,
        _c: Clinical,
        instrument: Literal[
            "mood", "pain", "mood_pain", "sleep", "phq2", "phq9", "gad2", "gad7", "peg"
        ]
        | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Every stored answer, one row per item value, oldest first (as `checkin responses
        list`)."""
        from worker.services.read.listing import page, responses_stmt
        from worker.services.read.views import response_dict

        _patient(session, patient_id)
        rows, total = page(
            session, responses_stmt(patient_id, instrument), limit=limit, offset=offset
        )
        return page_of([response_dict(r) for r in rows], total, limit, offset)

    # ------------------------------------------------------------ follow-ups

    @router.get(
        "/followups",
        tags=["follow-ups"],
        response_model=Page[FollowUpOut],
        responses=NOT_FOUND,
    )
    def list_followups_api(
        session: DB,
        caller: Caller,
        status: FollowUpStatus | None = None,
        patient_id: OptionalPatient = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """The queue: urgent first, then high, then routine; oldest first within each. The
        front desk role sees only appointment requests (confirm, reschedule, cancel)."""
        from worker.services.read.listing import page
        from worker.services.read.views import followup_dict

        _patient(session, patient_id)
        stmt = followups_stmt(caller, status=status, patient_id=patient_id)
        rows, total = page(session, stmt, limit=limit, offset=offset)
        return page_of([followup_dict(f) for f in rows], total, limit, offset)

    @router.get(
        "/followups/{followup_id}",
        tags=["follow-ups"],
        response_model=FollowUpOut,
        responses=NOT_FOUND,
    )
    def get_followup_api(followup_id: Id, session: DB, caller: Caller) -> dict[str, Any]:
        from worker.services.read.views import followup_dict

        return followup_dict(_followup(session, caller, followup_id))

    @router.post(
        "/followups/{followup_id}/ack",
        tags=["follow-ups"],
        response_model=FollowUpOut,
        responses=NOT_FOUND,
        summary="Acknowledge a follow-up (stops re-paging)",
    )
    def ack_api(
        followup_id: Id, body: AckBody, session: DB, caller: Caller, now: Now
    ) -> dict[str, Any]:
        from worker.services.clinical.followups import acknowledge
        from worker.services.read.views import followup_dict

        _followup(session, caller, followup_id)
        item = acknowledge(session, followup_id, by=_by(caller, body.by), now=now)
        return followup_dict(item)

    @router.post(
        "/followups/{followup_id}/resolve",
        tags=["follow-ups"],
        response_model=FollowUpOut,
        responses=NOT_FOUND,
        summary="Resolve a follow-up (an urgent one needs a note)",
    )
    def resolve_api(
        followup_id: Id, body: ResolveBody, session: DB, caller: Caller, now: Now
    ) -> dict[str, Any]:
        from worker.services.clinical.followups import resolve
        from worker.services.read.views import followup_dict

        _followup(session, caller, followup_id)
        item = resolve(
            session,
            followup_id,
            by=_by(caller, body.by),
            note=body.note,
            now=now,
        )
        return followup_dict(item)

    # ------------------------------------------------------------ export

    @router.get(
        "/patients/{patient_id}/export",
        tags=["export"],
        response_class=Response,
        responses={
            200: {
                "description": "A FHIR R4 Bundle (collection) or a CSV of answers",
                "content": {
                    "application/fhir+json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            **NOT_FOUND,
            **FORBIDDEN,
        },
        summary="A patient's record as FHIR or CSV (as `checkin export`)",
    )
    def export_api(
        patient_id: Id,
        request: Request,
        session: DB,
        _c: Clinical,
        now: Now,
        format: Annotated[Literal["fhir", "csv"], Query()] = "fhir",
    ) -> Response:
        """`fhir`: a Bundle with the Patient, a QuestionnaireResponse per answered check-in,
        Observations for scores (LOINC codes), Appointments, a Communication per reminder sent
        and a Task per follow-up. `csv`: one row per stored answer (patient_id, checkin_id,
        instrument, item, loinc, value, answered_at, partial, late)."""
        from worker.services.clinical.export import MEDIA_TYPES, export_patient

        settings: Settings = request.app.state.settings
        text = export_patient(session, patient_id, format, now=now, base_url=settings.public_url)
        headers = {}
        if format == "csv":
            headers["Content-Disposition"] = f'attachment; filename="patient-{patient_id}.csv"'
        return Response(text, media_type=MEDIA_TYPES[format], headers=headers)

    return router
