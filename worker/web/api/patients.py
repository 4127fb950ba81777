"""API routes for patients, consent, protocols, enrollments, schedules, appointments and the
preview: the same operations and the same validation as the `checkin` command."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select

from worker.domain.protocols import ProtocolError
from worker.services.read import views
from worker.services.runtime import Runtime
from worker.store.models import Appointment, Enrollment, Patient, Schedule
from worker.store.outbox import MessageStatus
from worker.store.record_status import FollowupStatus
from worker.web.api.common import (
    DB,
    FIRST_DAY,
    FORBIDDEN,
    LAST_DAY,
    NOT_FOUND,
    YEAR_PATTERN,
    ApiDate,
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
    page_of,
    runtime,
    slice_page,
)
from worker.web.api.records import FollowUpOut, ResponseOut, visible_followups

Channel = Literal["sms", "email"]
Kind = Literal["infusion", "therapy", "physical_therapy", "consult"]
Instrument = Literal["mood", "pain", "mood_pain", "sleep", "phq2", "phq9", "gad2", "gad7", "peg"]
QuestionnaireMode = Literal["link", "sms"]

_LOCAL = re.compile(r"^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}$")


def _local_time(value: str) -> str:
    """A patient-local YYYY-MM-DDTHH:MM within the dates the API accepts."""
    match = _LOCAL.match(value.strip())
    if match is None:
        raise ValueError("must be YYYY-MM-DDTHH:MM (patient-local wall-clock time)")
    if not FIRST_DAY.year <= int(match.group(1)) <= LAST_DAY.year:
        raise ValueError(f"the year must be between {FIRST_DAY.year} and {LAST_DAY.year}")
    return value.strip()


LocalTime = Annotated[
    str,
    Field(
        max_length=40,
        pattern=r"^20\d{2}-\d{2}-\d{2}T\d{2}:\d{2}$",
        description="Patient-local wall-clock time, YYYY-MM-DDTHH:MM",
        examples=["2026-12-03T14:00"],
    ),
    AfterValidator(_local_time),
]


# ---------------------------------------------------------------- models


class PatientIn(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Alex Rivera",
                    "phone": "+12125550101",
                    "tz": "America/New_York",
                    "channel": "sms",
                    "consent": ["sms"],
                    "send_window": "09:00-20:00",
                    "language": "en",
                }
            ]
        },
    )

    name: Annotated[str, Field(min_length=1, max_length=200), Clean]
    tz: Annotated[str, Field(min_length=1, max_length=64, examples=["America/New_York"]), Clean]
    channel: Channel
    phone: Annotated[
        str | None, Field(default=None, max_length=40, examples=["+12125550101"]), Clean
    ] = None
    email: Annotated[str | None, Field(default=None, max_length=254), Clean] = None
    consent: list[Channel] = Field(
        default_factory=list,
        max_length=2,
        description="Channels the patient consented to; without consent nothing is sent.",
    )
    consent_source: Annotated[str, Field(min_length=1, max_length=200), Clean] = (
        "recorded at enrollment"
    )
    send_window: Annotated[
        str | None,
        Field(
            default=None,
            max_length=11,
            pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
            description="HH:MM-HH:MM, patient-local",
        ),
        Clean,
    ] = None
    language: Literal["en", "es"] = "en"
    questionnaire_mode: QuestionnaireMode = "link"


class PatientPatch(BaseModel):
    """The settings that can be changed here (for now, how questionnaires go by SMS)."""

    model_config = ConfigDict(extra="forbid")
    questionnaire_mode: QuestionnaireMode


class ExternalIdOut(BaseModel):
    system: str
    value: str


class PatientOut(BaseModel):
    id: int
    name: str
    phone: str | None
    email: str | None
    tz: str
    channel: str
    language: str
    send_window: str | None
    questionnaire_mode: QuestionnaireMode = Field(
        description="link: questionnaires go as one text with a private form link; "
        "sms: one item per text (for phones without data)"
    )
    created_at: IsoTime
    external_ids: list[ExternalIdOut] = Field(
        default_factory=list, description="The source systems' identifiers (MRNs)."
    )


class ConsentState(BaseModel):
    granted: bool
    granted_at: IsoTime
    source: str
    withdrawn_at: IsoTime
    withdrawn_source: str | None


class ConsentIn(Input):
    channel: Channel
    source: Annotated[str, Field(min_length=1, max_length=200), Clean] = "recorded by staff"
    withdraw: StrictBool = Field(default=False, description="Withdraw instead of grant.")


class ConsentResult(BaseModel):
    channel: str
    granted: bool = Field(description="Consent is in force on the channel after this call.")
    changed: bool = Field(description="False when nothing needed to change.")
    suppressed: int = Field(description="Pending messages suppressed by a withdrawal.")
    consent: dict[str, ConsentState]


class StepOut(BaseModel):
    instrument: str
    rrule: str
    start_day: int
    days: int | None


class ProtocolOut(BaseModel):
    name: str
    title: str
    description: str
    steps: list[StepOut]


class EnrollmentIn(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"protocol": "ketamine-induction", "start": "2026-12-01"}]},
    )

    protocol: Annotated[str, Field(min_length=1, max_length=100), Clean]
    start: ApiDate = Field(description="The protocol's day 0 (patient-local date).")


class EnrollmentOut(BaseModel):
    id: int
    patient_id: int
    protocol: str
    start: str
    created_at: IsoTime
    ended_at: IsoTime
    schedules: list[int]


class ScheduleIn(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"instrument": "mood_pain", "rrule": "FREQ=DAILY;BYHOUR=19;BYMINUTE=0"}]
        },
    )

    instrument: Instrument
    rrule: Annotated[
        str,
        Field(min_length=1, max_length=500, examples=["FREQ=DAILY;BYHOUR=9;BYMINUTE=0"]),
        Clean,
    ]
    start: ApiDate | None = Field(default=None, description="Default: today, patient-local.")
    until: ApiDate | None = Field(default=None, description="Inclusive.")


class ScheduleOut(BaseModel):
    id: int
    patient_id: int
    instrument: str
    rrule: str
    start: str
    until: str | None
    status: str
    enrollment_id: int | None


class AppointmentIn(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "infusion", "at": "2026-12-03T14:00", "location": "Suite 200"}]
        },
    )

    kind: Kind
    at: LocalTime
    location: Annotated[str | None, Field(default=None, max_length=200), Clean] = None


class RescheduleIn(Input):
    at: LocalTime


class AppointmentOut(BaseModel):
    id: int
    patient_id: int
    kind: str
    starts_at: IsoTime
    local_time: IsoTime = Field(description="The start in the patient's zone.")
    location: str | None
    status: str
    version: int
    confirmed_at: IsoTime
    external_ids: list[ExternalIdOut] = Field(
        default_factory=list, description="The source systems' ids (placer/filler, import)."
    )


class PreviewOut(BaseModel):
    due_at: str
    local_time: str | None
    kind: str
    channel: str
    template: str
    instrument: str | None
    appointment_id: int | None
    segments: int | None = Field(
        default=None,
        description="SMS segments it will cost (a questionnaire sent one item per text: all "
        "of them); null for email",
    )


class PatientDetail(PatientOut):
    consent: dict[str, ConsentState]
    appointments: list[AppointmentOut]
    open_followups: list[FollowUpOut]
    schedules: list[ScheduleOut] | None = Field(description="null for the front desk role")
    enrollments: list[EnrollmentOut] | None = Field(description="null for the front desk role")
    recent_responses: list[ResponseOut] | None = Field(
        description="The latest 20 answers; null for the front desk role"
    )
    next_messages: list[PreviewOut] | None = Field(
        description="The next 10 messages over 2 days; null for the front desk role"
    )


# ---------------------------------------------------------------- serialisers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


patient_out = views.patient_dict
schedule_out = views.schedule_dict
appointment_out = views.appointment_dict


def enrollment_out(e: Enrollment, schedules: list[int]) -> dict[str, Any]:
    return {
        "id": e.id,
        "patient_id": e.patient_id,
        "protocol": e.protocol,
        "start": e.start_date.isoformat(),
        "created_at": _iso(e.created_at),
        "ended_at": _iso(e.ended_at),
        "schedules": schedules,
    }


def _enrollments(session: DB, patient_id: int) -> list[dict[str, Any]]:
    from worker.services.read.listing import list_enrollments

    enrollments = list_enrollments(session, patient_id)
    ids = [e.id for e in enrollments]
    by_enrollment: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for sid, eid in session.execute(
            select(Schedule.id, Schedule.enrollment_id)
            .where(Schedule.enrollment_id.in_(ids))
            .order_by(Schedule.id)
        ):
            if eid is not None:
                by_enrollment[eid].append(sid)
    return [enrollment_out(e, by_enrollment[e.id]) for e in enrollments]


def _tz(session: DB, patient_id: int) -> str:
    from worker.services.records.patients import get_patient

    return get_patient(session, patient_id).tz


def _protocols(rt: Runtime) -> dict[str, Any]:
    try:
        return dict(rt.protocols)
    except ProtocolError as exc:
        raise HTTPException(503, f"the protocol files cannot be loaded: {exc.reason}") from None


Rt = Annotated[Runtime, Depends(runtime)]


# ---------------------------------------------------------------- routes


def patients_router() -> APIRouter:
    router = APIRouter()

    # ------------------------------------------------------------ patients

    @router.get("/patients", tags=["patients"], response_model=Page[PatientOut])
    def list_patients(session: DB, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        """Patients, oldest first."""
        from worker.services.read.listing import page

        rows, total = page(
            session, select(Patient).order_by(Patient.id), limit=limit, offset=offset
        )
        return page_of([patient_out(p) for p in rows], total, limit, offset)

    @router.post(
        "/patients",
        tags=["patients"],
        status_code=201,
        response_model=PatientOut,
        summary="Add a patient (as `checkin patients add`)",
    )
    def add_patient_api(
        body: PatientIn, session: DB, caller: Caller, now: Now, rt: Rt
    ) -> dict[str, Any]:
        """Phones are stored in E.164 (a number without `+` is read as a US number); an invalid
        phone, email, zone or send window is refused with 422 and nothing is written. Without
        `consent` nothing is sent on any channel until consent is recorded."""
        from worker.services.records.patients import add_patient

        patient = add_patient(
            session,
            now=now,
            name=body.name,
            tz=body.tz,
            channel=body.channel,
            phone=body.phone,
            email=body.email,
            consent=list(body.consent),
            consent_source=body.consent_source,
            send_window=body.send_window,
            language=body.language,
            actor=caller.name,
            confirm_optin=rt.settings.optin_confirmation,
            questionnaire_mode=body.questionnaire_mode,
        )
        return patient_out(patient)

    @router.patch(
        "/patients/{patient_id}",
        tags=["patients"],
        response_model=PatientOut,
        responses=NOT_FOUND,
        summary="Change a patient's questionnaire mode (as `checkin patients update`)",
    )
    def patch_patient(
        patient_id: Id, body: PatientPatch, session: DB, caller: Caller, now: Now
    ) -> dict[str, Any]:
        """`questionnaire_mode`: `link` (the default) sends a questionnaire as one text with a
        private link to the form; `sms` keeps one item per text. Applies to every message not
        yet sent; recorded in the audit trail."""
        from worker.services.records.questionnaire_mode import set_questionnaire_mode

        patient, _ = set_questionnaire_mode(
            session, patient_id, body.questionnaire_mode, now=now, actor=caller.name
        )
        return patient_out(patient)

    @router.get(
        "/patients/{patient_id}",
        tags=["patients"],
        response_model=PatientDetail,
        responses=NOT_FOUND,
        summary="A patient with consent, appointments, follow-ups, schedules, answers",
    )
    def show_patient(patient_id: Id, session: DB, caller: Caller, rt: Rt) -> dict[str, Any]:
        """As `checkin patients show`. The front desk role gets contact details, consent,
        appointments and appointment follow-ups only; the clinical parts are null."""
        from worker.services.outbound.preview import preview
        from worker.services.read.views import recent_responses
        from worker.services.records.appointments import list_appointments
        from worker.services.records.patients import consent_state, get_patient
        from worker.services.records.schedules import list_schedules

        # The preview runs in its own transaction: first, because on SQLite a second writer
        # transaction would wait for this request's own.
        upcoming = (
            [i.as_dict() for i in preview(rt, patient_id, rt.now(), 2)][:10]
            if caller.clinical
            else None
        )
        p = get_patient(session, patient_id)
        data = patient_out(p)
        data["consent"] = consent_state(session, patient_id)
        data["appointments"] = [
            appointment_out(a, p.tz) for a in list_appointments(session, patient_id)
        ]
        data["open_followups"] = [
            f
            for f in visible_followups(session, caller, status=None, patient_id=patient_id)
            if f["status"] != FollowupStatus.RESOLVED
        ]
        data["schedules"] = data["enrollments"] = None
        data["recent_responses"] = data["next_messages"] = None
        if caller.clinical:
            data["schedules"] = [schedule_out(s) for s in list_schedules(session, patient_id)]
            data["enrollments"] = _enrollments(session, patient_id)
            data["recent_responses"] = recent_responses(session, patient_id, limit=20)
            data["next_messages"] = upcoming
        return data

    # ------------------------------------------------------------ consent

    @router.get(
        "/patients/{patient_id}/consent",
        tags=["consent"],
        response_model=dict[str, ConsentState],
        responses=NOT_FOUND,
    )
    def get_consent(patient_id: Id, session: DB) -> dict[str, Any]:
        """Per channel: in force or not, with the latest grant and withdrawal and their sources."""
        from worker.services.records.patients import consent_state, get_patient

        get_patient(session, patient_id)
        return consent_state(session, patient_id)

    @router.post(
        "/patients/{patient_id}/consent",
        tags=["consent"],
        response_model=ConsentResult,
        responses=NOT_FOUND,
        summary="Record or withdraw consent on a channel",
    )
    def record_consent(
        patient_id: Id, body: ConsentIn, session: DB, caller: Caller, now: Now, rt: Rt
    ) -> dict[str, Any]:
        """A withdrawal suppresses every pending message on the channel; a new grant reopens
        the ones a withdrawal had stopped that are still ahead. Recorded in the audit trail under
        the caller's name."""
        from worker.services.records.patients import consent_state, grant_consent, withdraw_consent

        if body.withdraw:
            suppressed = withdraw_consent(
                session, patient_id, body.channel, now=now, source=body.source, actor=caller.name
            )
            changed = True
        else:
            suppressed = 0
            changed = grant_consent(
                session,
                patient_id,
                body.channel,
                now=now,
                source=body.source,
                actor=caller.name,
                confirm_optin=rt.settings.optin_confirmation,
            )
        state = consent_state(session, patient_id)
        granted = bool(state.get(body.channel, {}).get("granted", False))
        return {
            "channel": body.channel,
            "granted": granted,
            "changed": changed,
            MessageStatus.SUPPRESSED: suppressed,
            "consent": state,
        }

    # ------------------------------------------------------------ protocols and enrollments

    @router.get("/protocols", tags=["protocols"], response_model=Page[ProtocolOut])
    def list_protocols(rt: Rt, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        """The protocols available (shipped and from CHECKIN_PROTOCOLS_DIR), by name."""
        rows = [
            {
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "steps": [
                    {
                        "instrument": s.instrument,
                        "rrule": s.rrule,
                        "start_day": s.start_day,
                        "days": s.days,
                    }
                    for s in p.steps
                ],
            }
            for p in sorted(_protocols(rt).values(), key=lambda p: p.name)
        ]
        return slice_page(rows, limit, offset)

    @router.get(
        "/patients/{patient_id}/enrollments",
        tags=["enrollments"],
        response_model=Page[EnrollmentOut],
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def list_enrollments_api(
        patient_id: Id, session: DB, _c: Clinical, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        """A patient's protocol enrollments with the schedules each created, oldest first."""
        return slice_page(_enrollments(session, patient_id), limit, offset)

    @router.post(
        "/patients/{patient_id}/enrollments",
        tags=["enrollments"],
        status_code=201,
        response_model=EnrollmentOut,
        responses={**NOT_FOUND, **FORBIDDEN},
        summary="Enroll a patient in a protocol (as `checkin enroll`)",
    )
    def enroll_api(
        patient_id: Id, body: EnrollmentIn, session: DB, caller: Clinical, rt: Rt, now: Now
    ) -> dict[str, Any]:
        """One schedule per protocol step, relative to `start`. An unknown protocol is a 422."""
        from worker.services.records.schedules import enroll, protocol_named

        enrollment, schedules = enroll(
            session,
            patient_id,
            protocol_named(_protocols(rt), body.protocol),
            start=body.start,
            now=now,
            actor=caller.name,
        )
        return enrollment_out(enrollment, [s.id for s in schedules])

    # ------------------------------------------------------------ schedules

    @router.get(
        "/patients/{patient_id}/schedules",
        tags=["schedules"],
        response_model=Page[ScheduleOut],
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def list_schedules_api(
        patient_id: Id, session: DB, _c: Clinical, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        """A patient's schedules that are not removed, oldest first."""
        from worker.services.records.schedules import list_schedules

        rows = [schedule_out(s) for s in list_schedules(session, patient_id)]
        return slice_page(rows, limit, offset)

    @router.post(
        "/patients/{patient_id}/schedules",
        tags=["schedules"],
        status_code=201,
        response_model=ScheduleOut,
        responses={**NOT_FOUND, **FORBIDDEN},
        summary="Add a check-in schedule (as `checkin schedules add`)",
    )
    def add_schedule_api(
        patient_id: Id, body: ScheduleIn, session: DB, caller: Clinical, now: Now
    ) -> dict[str, Any]:
        """The RRULE's BYHOUR/BYMINUTE are patient-local; DAILY, WEEKLY or MONTHLY only, and
        PHQ/GAD questionnaires at most weekly. Dates are between 2000-01-01 and 2099-12-31."""
        from worker.services.records.schedules import add_schedule

        schedule = add_schedule(
            session,
            patient_id,
            now=now,
            instrument=body.instrument,
            rrule=body.rrule,
            start=body.start,
            until=body.until,
            actor=caller.name,
        )
        return schedule_out(schedule)

    @router.get(
        "/schedules/{schedule_id}",
        tags=["schedules"],
        response_model=ScheduleOut,
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def get_schedule_api(schedule_id: Id, session: DB, _c: Clinical) -> dict[str, Any]:
        from worker.services.records.schedules import get_schedule

        return schedule_out(get_schedule(session, schedule_id))

    def set_status(
        session: DB, schedule_id: int, status: str, actor: str, now: datetime
    ) -> dict[str, Any]:
        from worker.services.records.schedules import set_schedule_status

        schedule = set_schedule_status(session, schedule_id, status, now=now, actor=actor)
        return schedule_out(schedule)

    @router.post(
        "/schedules/{schedule_id}/pause",
        tags=["schedules"],
        response_model=ScheduleOut,
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def pause_schedule(schedule_id: Id, session: DB, caller: Clinical, now: Now) -> dict[str, Any]:
        """Pause: pending check-ins are cancelled."""
        return set_status(session, schedule_id, "paused", caller.name, now)

    @router.post(
        "/schedules/{schedule_id}/resume",
        tags=["schedules"],
        response_model=ScheduleOut,
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def resume_schedule(schedule_id: Id, session: DB, caller: Clinical, now: Now) -> dict[str, Any]:
        """Resume from now on; missed occurrences are not sent late."""
        return set_status(session, schedule_id, "active", caller.name, now)

    @router.delete(
        "/schedules/{schedule_id}",
        tags=["schedules"],
        response_model=ScheduleOut,
        responses={**NOT_FOUND, **FORBIDDEN},
    )
    def remove_schedule(schedule_id: Id, session: DB, caller: Clinical, now: Now) -> dict[str, Any]:
        """Remove: pending check-ins are cancelled; the schedule is then gone (404)."""
        return set_status(session, schedule_id, "removed", caller.name, now)

    # ------------------------------------------------------------ appointments

    @router.get(
        "/appointments",
        tags=["appointments"],
        response_model=Page[AppointmentOut],
        responses=NOT_FOUND,
    )
    def list_appointments_api(
        session: DB,
        patient_id: OptionalPatient = None,
        status: Literal["booked", "cancelled", "no_show", "attended"] | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Appointments by start time, for one patient or all."""
        from worker.services.read.listing import page
        from worker.services.records.patients import get_patient

        stmt = select(Appointment).order_by(Appointment.starts_at, Appointment.id)
        if patient_id is not None:
            get_patient(session, patient_id)
            stmt = stmt.where(Appointment.patient_id == patient_id)
        if status is not None:
            stmt = stmt.where(Appointment.status == status)
        rows, total = page(session, stmt, limit=limit, offset=offset)
        wanted = sorted({a.patient_id for a in rows})
        zones: dict[int, str] = {
            pid: tz
            for pid, tz in session.execute(
                select(Patient.id, Patient.tz).where(Patient.id.in_(wanted))
            )
        }
        items = [appointment_out(a, zones.get(a.patient_id)) for a in rows]
        return page_of(items, total, limit, offset)

    @router.post(
        "/patients/{patient_id}/appointments",
        tags=["appointments"],
        status_code=201,
        response_model=AppointmentOut,
        responses=NOT_FOUND,
        summary="Book an appointment (as `checkin appointments add`)",
    )
    def add_appointment_api(
        patient_id: Id, body: AppointmentIn, session: DB, caller: Caller, now: Now
    ) -> dict[str, Any]:
        """`at` is patient-local wall-clock time and must be in the future; reminders are
        planned automatically (72 h, 24 h, 2 h before; infusions also the evening before)."""
        from worker.services.records.appointments import add_appointment

        appt = add_appointment(
            session,
            patient_id,
            now=now,
            kind=body.kind,
            at=body.at,
            location=body.location,
            actor=caller.name,
        )
        return appointment_out(appt, _tz(session, patient_id))

    @router.get(
        "/appointments/{appointment_id}",
        tags=["appointments"],
        response_model=AppointmentOut,
        responses=NOT_FOUND,
    )
    def get_appointment_api(appointment_id: Id, session: DB) -> dict[str, Any]:
        from worker.services.records.appointments import get_appointment

        appt = get_appointment(session, appointment_id)
        return appointment_out(appt, _tz(session, appt.patient_id))

    @router.post(
        "/appointments/{appointment_id}/reschedule",
        tags=["appointments"],
        response_model=AppointmentOut,
        responses=NOT_FOUND,
    )
    def reschedule_api(
        appointment_id: Id, body: RescheduleIn, session: DB, caller: Caller, now: Now
    ) -> dict[str, Any]:
        """Move an appointment: its pending reminders never go, new ones are planned, and a
        confirmation is cleared. A cancelled appointment cannot be moved (422)."""
        from worker.services.records.appointments import reschedule

        appt = reschedule(session, appointment_id, now=now, at=body.at, actor=caller.name)
        return appointment_out(appt, _tz(session, appt.patient_id))

    @router.post(
        "/appointments/{appointment_id}/cancel",
        tags=["appointments"],
        response_model=AppointmentOut,
        responses=NOT_FOUND,
    )
    def cancel_api(appointment_id: Id, session: DB, caller: Caller, now: Now) -> dict[str, Any]:
        """Cancel an appointment and its pending reminders (cancelling twice changes nothing)."""
        from worker.services.records.appointments import cancel

        appt = cancel(session, appointment_id, now=now, actor=caller.name)
        return appointment_out(appt, _tz(session, appt.patient_id))

    # ------------------------------------------------------------ preview

    @router.get(
        "/patients/{patient_id}/preview",
        tags=["preview"],
        response_model=Page[PreviewOut],
        responses={**NOT_FOUND, **FORBIDDEN},
        summary="What will be sent, in order, without sending (as `checkin preview`)",
    )
    def preview_api(
        patient_id: Id,
        rt: Rt,
        _c: Clinical,
        days: Annotated[int, Query(ge=1, le=90)] = 7,
        now: Annotated[
            AwareDatetime | None,
            Query(
                description="Act as if it were this moment (ISO 8601 with offset).",
                json_schema_extra={"pattern": YEAR_PATTERN},
            ),
        ] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Only what will really be sent: nothing on a channel without consent, nothing already
        sent or settled. `now` must fall between 2000 and 2099."""
        from worker.services.errors import InvalidInput
        from worker.services.outbound.preview import preview

        # Checked before converting: year 1 at +05:00 is not a UTC instant Python can hold.
        if now is not None and not FIRST_DAY.year <= now.year <= LAST_DAY.year:
            raise InvalidInput(f"now must be between {FIRST_DAY.year} and {LAST_DAY.year}")
        at = rt.now() if now is None else now.astimezone(UTC)
        rows = [i.as_dict() for i in preview(rt, patient_id, at, days)]
        return slice_page(rows, limit, offset)

    return router
