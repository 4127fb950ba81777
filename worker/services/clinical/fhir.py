"""A patient's record as a FHIR R4 Bundle (type `collection`), validated with fhir.resources.

The mapping (CLINICAL.md, "Records"):
- the patient is a Patient;
- each check-in with at least one stored answer is a QuestionnaireResponse whose
  `questionnaire` is the LOINC canonical (`http://loinc.org/q/44249-1` for the PHQ-9) or, for the
  project's own items (mood, pain, sleep, mood_pain, GAD-2), a local one; PHQ/GAD answers are
  LOINC answer codes carrying their score as the `ordinalValue` extension, numeric scales are
  integers. `completed` when every item was answered, `in-progress` while the reply window is
  open, `stopped` otherwise (abandoned part-way, or stopped by a positive PHQ-9 item 9).
  Answers stored without a check-in get one response per instrument and time;
- scores are Observations (category `survey`, `derivedFrom` the response): each instrument's
  total once every item is answered (PHQ-9 44261-6, PHQ-2 55758-7, GAD-7 70274-6, PEG 91147-9,
  GAD-2 a local code), and the single 0-10 items whenever answered (pain 72514-3; mood and
  sleep, local codes);
- each appointment is an Appointment; a confirmation by the patient sets the patient
  participant's status to `accepted` (otherwise `needs-action`). The store keeps no end time, so
  `end` is the start plus a nominal length per kind (`NOMINAL_MINUTES`), as FHIR requires an end
  for a booked appointment;
- each appointment reminder that was sent is a Communication (category `reminder`, medium SMS or
  email, `about` the appointment);
- each follow-up is a Task (open -> requested, acknowledged -> in-progress, resolved ->
  completed; urgent -> stat, high -> urgent, routine -> routine priority), focused on the
  check-in's response when the follow-up came from one.

Entries have `urn:uuid:` full URLs derived from the installation's public URL and the record
ids, so exporting the same data twice gives the same ids. Bundles use the R4B models of
fhir.resources (R4B changed none of the resources used here from R4).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.instruments import Instrument, get_instrument, score
from worker.services.read.listing import answers_by_checkin
from worker.services.records.patients import get_patient
from worker.store.models import Appointment, CheckIn, FollowUp, Message, Patient, Response
from worker.store.outbox import WENT_OUT
from worker.store.record_status import AppointmentStatus, CheckinStatus, FollowupStatus

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
COMMUNICATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/communication-category"
PARTICIPATION_MODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
ORDINAL_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
BCP47: Final = "urn:ietf:bcp:47"
# The project's own codes: the same meaning in every installation, so not tied to its URL.
LOCAL_ITEMS: Final = "urn:checkin-worker:item"
LOCAL_REASONS: Final = "urn:checkin-worker:followup-reason"
LOCAL_QUESTIONNAIRE: Final = "urn:checkin-worker:questionnaire:"

NOMINAL_MINUTES: Final = {"infusion": 120, "therapy": 60, "physical_therapy": 60, "consult": 30}
TOTAL_TEXT: Final = {
    "phq9": "PHQ-9 total score",
    "phq2": "PHQ-2 total score",
    "gad7": "GAD-7 total score",
    "gad2": "GAD-2 total score",
    "peg": "PEG 3-item pain scale score (mean)",
}
SINGLE_ITEMS: Final = {
    "mood": "Mood today, 0-10 (10 = best)",
    "pain": "Pain severity, 0-10 numeric rating",
    "sleep": "Sleep quality last night, 0-10 (10 = best)",
}
REASON_TEXT: Final = {
    "crisis_language": "Crisis language in a reply",
    "phq9_item9": "PHQ-9 item 9 positive",
    "high_pain": "High pain",
    "low_mood": "Low mood",
    "positive_screen": "Positive screen",
    "worsening": "Worsening against baseline",
    "missed_checkins": "Missed check-ins",
    "unparseable_reply": "Reply could not be read",
    "confirm_request": "Appointment confirmation",
    "reschedule_request": "Reschedule request",
    "cancel_request": "Cancellation request",
    "late_arrival": "Running late",
    "opt_out": "Opted out of messages",
    "delivery_failed": "Message delivery failed",
    "phq9_item9_unanswered": "PHQ-9 item 9 unanswered",
    "no_show": "Missed appointment",
    "after_visit": "Day-after-visit check-in to read",
}
TASK_STATUS: Final[dict[str, str]] = {
    FollowupStatus.OPEN: "requested",
    FollowupStatus.ACKNOWLEDGED: "in-progress",
    FollowupStatus.RESOLVED: "completed",
}
TASK_PRIORITY: Final = {"urgent": "stat", "high": "urgent", "routine": "routine"}


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _prune(value: Any) -> Any:
    """Drop None values and empty lists/dicts: FHIR allows no empty elements."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [p for p in (_prune(v) for v in value) if p is not None and p != {}]
    return value


# Our appointment statuses as FHIR's (no_show comes from an HL7 S26 or the front desk).
APPOINTMENT_STATUS: Final[dict[str, str]] = {
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.ATTENDED: "fulfilled",  # FHIR: the patient came and the visit took place
}


class _Builder:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.entries: list[dict[str, Any]] = []

    def full_url(self, resource_type: str, record_id: int | str) -> str:
        name = f"{self.base_url}/{resource_type}/{record_id}"
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"

    def identifier(self, kind: str, record_id: int) -> list[dict[str, Any]]:
        return [{"system": f"{self.base_url}/fhir/sid/{kind}", "value": str(record_id)}]

    def add(self, resource_type: str, record_id: int | str, resource: dict[str, Any]) -> str:
        url = self.full_url(resource_type, record_id)
        body = _prune({"resourceType": resource_type, **resource})
        self.entries.append({"fullUrl": url, "resource": body})
        return url


def _questionnaire(instrument: Instrument) -> str:
    if instrument.panel_loinc is not None:
        return f"http://loinc.org/q/{instrument.panel_loinc}"
    return f"{LOCAL_QUESTIONNAIRE}{instrument.name}"


def _answer(instrument: Instrument, value: int) -> dict[str, Any]:
    labels, codes = instrument.answer_labels, instrument.answer_loinc
    if labels is not None and codes is not None and 0 <= value < len(codes):
        return {
            "valueCoding": {
                "extension": [{"url": ORDINAL_VALUE, "valueDecimal": value}],
                "system": LOINC,
                "code": codes[value],
                "display": labels[value],
            }
        }
    return {"valueInteger": value}


def _code(loinc: str | None, local: str, text: str) -> dict[str, Any]:
    coding = {"system": LOINC, "code": loinc} if loinc else {"system": LOCAL_ITEMS, "code": local}
    return {"coding": [coding], "text": text}


def _status(complete: bool, open_until: datetime | None, now: datetime) -> str:
    if complete:
        return "completed"
    if open_until is not None and open_until > now:
        return "in-progress"
    return "stopped"


def _observations(
    b: _Builder,
    patient_ref: str,
    key: str,
    instrument: Instrument,
    answers: dict[str, int],
    complete: bool,
    response_ref: str,
    when: datetime,
) -> None:
    def add(suffix: int, code: dict[str, Any], value: dict[str, Any], band: str | None) -> None:
        b.add(
            "Observation",
            f"{key}-{suffix}",
            {
                "identifier": [
                    {"system": f"{b.base_url}/fhir/sid/observation", "value": f"{key}-{suffix}"}
                ],
                "status": "final",
                "category": [
                    {"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]},
                ],
                "code": code,
                "subject": {"reference": patient_ref},
                "effectiveDateTime": _ts(when),
                "issued": _ts(when),
                **value,
                "interpretation": [{"text": band.replace("_", " ")}] if band else None,
                "derivedFrom": [{"reference": response_ref}],
            },
        )

    for n, item_key in enumerate(("mood", "pain", "sleep"), start=1):
        if item_key in answers and item_key in instrument.keys:
            item = instrument.item(item_key)
            code = _code(item.loinc, item_key, SINGLE_ITEMS[item_key])
            add(n, code, {"valueInteger": answers[item_key]}, None)
    if complete and instrument.name in TOTAL_TEXT:
        result = score(instrument.name, answers)
        if result.total is None:
            return
        code = _code(
            instrument.total_loinc, f"{instrument.name}_total", TOTAL_TEXT[instrument.name]
        )
        if instrument.name == "peg":
            mean = Decimal(str(round(result.total, 2)))
            value: dict[str, Any] = {
                "valueQuantity": {
                    "value": mean,
                    "unit": "{score}",
                    "system": UCUM,
                    "code": "{score}",
                }
            }
        else:
            value = {"valueInteger": int(result.total)}
        add(10, code, value, result.band)


def _checkins(
    session: Session,
    b: _Builder,
    patient: Patient,
    patient_ref: str,
    now: datetime,
) -> dict[int, str]:
    """A QuestionnaireResponse (and its Observations) per check-in with answers; answers stored
    without a check-in are grouped by instrument and time, so that nothing is left out."""
    checkins = list(
        session.scalars(
            select(CheckIn)
            .where(CheckIn.patient_id == patient.id)
            .order_by(CheckIn.sent_at, CheckIn.id)
        )
    )
    answers = answers_by_checkin(session, [c.id for c in checkins])
    refs: dict[int, str] = {}
    for checkin in checkins:
        rows = answers.get(checkin.id, [])
        if not rows:
            continue
        open_until = checkin.window_closes_at if checkin.status == CheckinStatus.OPEN else None
        refs[checkin.id] = _response(
            b,
            patient,
            patient_ref,
            ("checkin", str(checkin.id)),
            checkin.instrument,
            rows,
            checkin.answered_at,
            open_until,
            now,
        )
    loose: dict[tuple[str, datetime], list[Response]] = {}
    for r in session.scalars(
        select(Response)
        .where(Response.patient_id == patient.id, Response.checkin_id.is_(None))
        .order_by(Response.answered_at, Response.id)
    ):
        loose.setdefault((r.instrument, r.answered_at), []).append(r)
    for (instrument, _at), rows in loose.items():
        key = ("response", str(rows[0].id))
        _response(b, patient, patient_ref, key, instrument, rows, None, None, now)
    return refs


def _response(
    b: _Builder,
    patient: Patient,
    patient_ref: str,
    key: tuple[str, str],
    instrument_name: str,
    rows: list[Response],
    answered_at: datetime | None,
    open_until: datetime | None,
    now: datetime,
) -> str:
    instrument = get_instrument(instrument_name, patient.language)
    values = {r.item: r.value for r in rows}
    complete = all(k in values for k in instrument.keys)
    when = answered_at or max(r.answered_at for r in rows)
    items = []
    for item in instrument.items:
        if item.key not in values:
            continue
        items.append(
            {
                "linkId": item.loinc or item.key,
                "text": item.text,
                "answer": [_answer(instrument, values[item.key])],
            }
        )
    kind, value = key
    ref = b.add(
        "QuestionnaireResponse",
        f"{kind}-{value}",
        {
            "identifier": {"system": f"{b.base_url}/fhir/sid/{kind}", "value": value},
            "questionnaire": _questionnaire(instrument),
            "status": _status(complete, open_until, now),
            "subject": {"reference": patient_ref},
            "authored": _ts(when),
            "source": {"reference": patient_ref},
            "item": items,
        },
    )
    _observations(b, patient_ref, f"{kind}-{value}", instrument, values, complete, ref, when)
    return ref


def _appointments(
    session: Session, b: _Builder, patient: Patient, patient_ref: str
) -> dict[int, str]:
    refs: dict[int, str] = {}
    for appt in session.scalars(
        select(Appointment)
        .where(Appointment.patient_id == patient.id)
        .order_by(Appointment.starts_at, Appointment.id)
    ):
        minutes = NOMINAL_MINUTES.get(appt.kind, 60)
        participants: list[dict[str, Any]] = [
            {
                "actor": {"reference": patient_ref, "display": patient.name},
                "required": "required",
                "status": "accepted" if appt.confirmed_at is not None else "needs-action",
            }
        ]
        if appt.location:
            participants.append(
                {"actor": {"type": "Location", "display": appt.location}, "status": "accepted"}
            )
        refs[appt.id] = b.add(
            "Appointment",
            appt.id,
            {
                "identifier": b.identifier("appointment", appt.id)
                + _external(session, "appointment", appt.id),
                "status": APPOINTMENT_STATUS.get(appt.status, "booked"),
                "serviceType": [{"text": appt.kind.replace("_", " ")}],
                "start": _ts(appt.starts_at),
                "end": _ts(appt.starts_at + timedelta(minutes=minutes)),
                "minutesDuration": minutes,
                "created": _ts(appt.created_at),
                "participant": participants,
            },
        )
    return refs


def _reminders(
    session: Session,
    b: _Builder,
    patient: Patient,
    patient_ref: str,
    appointments: dict[int, str],
) -> None:
    for msg in session.scalars(
        select(Message)
        .where(
            Message.patient_id == patient.id,
            Message.kind == "reminder",
            Message.status.in_(WENT_OUT),
        )
        .order_by(Message.sent_at, Message.id)
    ):
        about = appointments.get(msg.appointment_id) if msg.appointment_id is not None else None
        mode = "SMSWRIT" if msg.channel == "sms" else "EMAILWRIT"
        b.add(
            "Communication",
            msg.id,
            {
                "identifier": b.identifier("message", msg.id),
                "status": "completed",
                "category": [{"coding": [{"system": COMMUNICATION_CATEGORY, "code": "reminder"}]}],
                "medium": [{"coding": [{"system": PARTICIPATION_MODE, "code": mode}]}],
                "subject": {"reference": patient_ref},
                "about": [{"reference": about}] if about else None,
                "sent": _ts(msg.sent_at),
                "received": _ts(msg.delivered_at),
                "recipient": [{"reference": patient_ref}],
                "payload": [{"contentString": msg.body}] if msg.body else None,
            },
        )


def _evidence_checkins(item: FollowUp) -> Iterable[int]:
    for evidence in (item.detail or {}).get("evidence", []):
        value = evidence.get("checkin_id") if isinstance(evidence, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            yield value


def _followups(
    session: Session, b: _Builder, patient: Patient, patient_ref: str, responses: dict[int, str]
) -> None:
    for item in session.scalars(
        select(FollowUp)
        .where(FollowUp.patient_id == patient.id)
        .order_by(FollowUp.created_at, FollowUp.id)
    ):
        focus = next((responses[c] for c in _evidence_checkins(item) if c in responses), None)
        note = None
        if item.resolution_note:
            note = [
                {
                    "authorString": item.resolved_by,
                    "time": _ts(item.resolved_at),
                    "text": item.resolution_note,
                }
            ]
        text = REASON_TEXT.get(item.reason, item.reason)
        b.add(
            "Task",
            item.id,
            {
                "identifier": b.identifier("followup", item.id),
                "status": TASK_STATUS.get(item.status, "requested"),
                "businessStatus": {"text": item.status},
                "intent": "order",
                "priority": TASK_PRIORITY.get(item.severity, "routine"),
                "code": {"coding": [{"system": LOCAL_REASONS, "code": item.reason}], "text": text},
                "description": text,
                "focus": {"reference": focus} if focus else None,
                "for": {"reference": patient_ref},
                "authoredOn": _ts(item.created_at),
                "lastModified": _ts(item.updated_at),
                "owner": {"display": item.acknowledged_by} if item.acknowledged_by else None,
                "executionPeriod": {
                    "start": _ts(item.acknowledged_at),
                    "end": _ts(item.resolved_at),
                },
                "note": note,
            },
        )


def _external(
    session: Session, entity: Literal["patient", "appointment"], row_id: int
) -> list[dict[str, Any]]:
    from worker.services.records.external_ids import ids_of

    return [dict(i) for i in ids_of(session, entity, [row_id]).get(row_id, [])]


def _patient(session: Session, b: _Builder, patient: Patient) -> str:
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone, "use": "mobile"})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    return b.add(
        "Patient",
        patient.id,
        {
            # Ours first, then the source systems' (an MRN), so the EHR can match the export.
            "identifier": b.identifier("patient", patient.id)
            + _external(session, "patient", patient.id),
            "active": patient.archived_at is None,
            "name": [{"text": patient.name}],
            "telecom": telecom,
            "communication": [
                {
                    "language": {"coding": [{"system": BCP47, "code": patient.language}]},
                    "preferred": True,
                }
            ],
        },
    )


def patient_bundle(
    session: Session, patient_id: int, *, now: datetime, base_url: str
) -> dict[str, Any]:
    """The patient's record as a FHIR Bundle (JSON-ready dict), validated against the R4B
    models. Raises NotFound for an unknown patient; a validation error here is a bug."""
    from fhir.resources.R4B.bundle import Bundle

    patient = get_patient(session, patient_id)
    b = _Builder(base_url)
    patient_ref = _patient(session, b, patient)
    responses = _checkins(session, b, patient, patient_ref, now)
    appointments = _appointments(session, b, patient, patient_ref)
    _reminders(session, b, patient, patient_ref, appointments)
    _followups(session, b, patient, patient_ref, responses)
    data = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now.isoformat(),
        "entry": b.entries,
    }
    bundle = Bundle.model_validate(data)
    dumped: dict[str, Any] = bundle.model_dump(mode="json")
    return dumped
