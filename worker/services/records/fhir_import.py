"""FHIR in: an R4 transaction Bundle of Patient and Appointment resources (`POST /api/fhir`,
`checkin import fhir FILE.json`).

The Bundle is validated with fhir.resources (R4B models, identical to R4 for these resources)
and then applied entry by entry in one transaction, with the identity rules of every source
(worker/services/records/intake.py): a Patient is found by one of its identifiers (the MRN's system and
value), an Appointment by one of its identifiers. Any bad entry refuses the whole Bundle with an
OperationOutcome naming each entry, and nothing is written. Patients get **no consent**.

Appointment.status: `cancelled` and `entered-in-error` cancel, `noshow` and `fulfilled` record
the visit's outcome exactly as staff marking it would (services/records/visits.py: idempotent,
audited, a no-show cancels what was pending and opens the front desk's follow-up), the other
statuses book. A no-show or an attended mark that staff could not make (a cancelled visit; a
visit still ahead marked fulfilled) refuses the entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.domain.hl7_mapping import Hl7Mapping
from worker.domain.names import APPOINTMENT_KINDS
from worker.services.errors import InvalidInput, NotFound
from worker.services.records import appointments as appts
from worker.services.records.intake import (
    AppointmentIn,
    PatientIn,
    find_appointment,
    upsert_appointment,
    upsert_patient,
)
from worker.services.records.visits import mark_attended, mark_no_show
from worker.store.models import Patient

TZ_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
BOOKED = ("proposed", "pending", "booked", "arrived", "checked-in", "waitlist")
#: The visit took place: what our own export says of an attended visit (services/clinical/fhir.py),
#: so a Bundle read back in means the same thing.
FULFILLED = "fulfilled"


class FhirRefused(Exception):
    """The Bundle cannot be applied: `issues` are (FHIRPath-ish location, diagnostics)."""

    def __init__(self, issues: list[tuple[str, str]], status: int = 422) -> None:
        super().__init__("; ".join(f"{where}: {text}" for where, text in issues))
        self.issues = issues
        self.status = status


@dataclass
class FhirResult:
    entries: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def operation_outcome(issues: list[tuple[str, str]], code: str = "invalid") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": code, "diagnostics": text, "expression": [where]}
            for where, text in issues
        ],
    }


def parse_bundle(raw: bytes | str) -> dict[str, Any]:
    """The Bundle as a dict, validated against the R4B models; FhirRefused(400) otherwise."""
    from fhir.resources.R4B.bundle import Bundle

    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FhirRefused([("Bundle", "the body is not JSON")], 400) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FhirRefused([("Bundle", "expected a FHIR Bundle resource")], 400)
    if data.get("type") != "transaction":
        raise FhirRefused([("Bundle.type", "only a transaction Bundle is accepted")], 400)
    try:
        Bundle.model_validate(data)
    except Exception as exc:  # pydantic and fhir.resources' own errors: all mean invalid FHIR
        lines = str(exc).splitlines()
        raise FhirRefused([("Bundle", " ".join(lines[:6])[:1000])], 400) from None
    return data


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _patient_in(resource: dict[str, Any], clinic_tz: str | None) -> PatientIn:
    ids = tuple(
        (_text(i.get("system")), _text(i.get("value")))
        for i in resource.get("identifier") or []
        if _text(i.get("system")) and _text(i.get("value"))
    )
    if not ids:
        raise InvalidInput("Patient.identifier needs a system and a value (the MRN)")
    names = resource.get("name") or []
    name = ""
    if names:
        n = names[0]
        name = _text(n.get("text")) or " ".join(
            [*(_text(g) for g in n.get("given") or []), _text(n.get("family"))]
        )
    phone = email = None
    for t in resource.get("telecom") or []:
        if t.get("system") == "phone" and (t.get("use") in (None, "mobile")) and phone is None:
            phone = _text(t.get("value")) or None
        elif t.get("system") == "email" and email is None:
            email = _text(t.get("value")) or None
    tz = (
        next(
            (
                _text(e.get("valueCode"))
                for e in resource.get("extension") or []
                if e.get("url") == TZ_EXTENSION
            ),
            "",
        )
        or clinic_tz
    )
    if not tz:
        raise InvalidInput(
            f"no time zone: add the {TZ_EXTENSION} extension or set CHECKIN_CLINIC_TZ"
        )
    language = "en"
    for c in resource.get("communication") or []:
        for coding in (c.get("language") or {}).get("coding") or []:
            code = _text(coding.get("code")).lower()[:2]
            if code in ("en", "es"):
                language = code
                break
    birth = None
    if resource.get("birthDate"):
        try:
            birth = datetime.strptime(str(resource["birthDate"])[:10], "%Y-%m-%d").date()
        except ValueError:
            birth = None  # a year or year-month alone: FHIR allows it, we keep none
    return PatientIn(name or f"MRN {ids[0][1]}", tz, phone, email, language, birth, ids)


def _kind(resource: dict[str, Any], mapping: Hl7Mapping) -> str:
    codes: list[str] = []
    for concept in [resource.get("appointmentType") or {}, *(resource.get("serviceType") or [])]:
        codes += [_text(c.get("code")) for c in concept.get("coding") or []]
        codes.append(_text(concept.get("text")))
    codes = [c for c in codes if c]
    for code in codes:
        if code.lower().replace(" ", "_") in APPOINTMENT_KINDS:
            return code.lower().replace(" ", "_")
    kind = mapping.kind_for(*codes)
    if kind is None:
        raise InvalidInput(
            f"unknown appointment type {codes[0] if codes else '(none)'!r}: use "
            f"{', '.join(APPOINTMENT_KINDS)} or a code of the mapping file"
        )
    return kind


def apply_bundle(
    session: Session,
    bundle: dict[str, Any],
    *,
    now: datetime,
    clinic_tz: str | None,
    mapping: Hl7Mapping,
    actor: str,
    noshow_text: bool = False,
) -> FhirResult:
    """Apply every entry in `session`'s transaction; FhirRefused naming each bad entry (the
    caller rolls back). Patients come first, so Appointments may point at them by fullUrl.
    `noshow_text`: a `noshow` entry also queues "we missed you" (CHECKIN_NOSHOW_TEXT)."""
    result = FhirResult()
    issues: list[tuple[str, str]] = []
    entries = bundle.get("entry") or []
    if not entries:
        raise FhirRefused([("Bundle.entry", "the Bundle has no entries")], 400)
    by_url: dict[str, Patient] = {}
    responses: dict[int, dict[str, Any]] = {}
    order = sorted(
        range(len(entries)),
        key=lambda i: (entries[i].get("resource") or {}).get("resourceType") != "Patient",
    )
    for index in order:
        entry = entries[index]
        resource = entry.get("resource") or {}
        rtype = resource.get("resourceType")
        where = f"Bundle.entry[{index}]"
        try:
            with session.begin_nested():
                if rtype == "Patient":
                    patient, outcome = upsert_patient(
                        session,
                        _patient_in(resource, clinic_tz),
                        now=now,
                        actor=actor,
                        update_contacts=True,
                    )
                    if entry.get("fullUrl"):
                        by_url[str(entry["fullUrl"])] = patient
                    responses[index] = _response(outcome, f"Patient/{patient.id}")
                elif rtype == "Appointment":
                    status, location = _appointment(
                        session, resource, by_url, now, mapping, actor, noshow_text
                    )
                    responses[index] = _response(status, location)
                else:
                    raise InvalidInput(f"{rtype} is not accepted (Patient and Appointment only)")
                kind = responses[index]["response"]["status"]
                result.counts[f"{rtype}:{kind}"] = result.counts.get(f"{rtype}:{kind}", 0) + 1
        except (InvalidInput, NotFound) as exc:
            issues.append((where, str(exc).strip("'\"")))
    if issues:
        raise FhirRefused(issues)
    result.entries = [responses[i] for i in range(len(entries))]
    return result


def _response(outcome: str, location: str) -> dict[str, Any]:
    status = "201 Created" if outcome == "created" else "200 OK"
    return {"response": {"status": status, "location": location, "outcome": None}}


def _appointment(
    session: Session,
    resource: dict[str, Any],
    by_url: dict[str, Patient],
    now: datetime,
    mapping: Hl7Mapping,
    actor: str,
    noshow_text: bool,
) -> tuple[str, str]:
    ids = tuple(
        (_text(i.get("system")), _text(i.get("value")))
        for i in resource.get("identifier") or []
        if _text(i.get("system")) and _text(i.get("value"))
    )
    patient = None
    for p in resource.get("participant") or []:
        ref = _text((p.get("actor") or {}).get("reference"))
        if ref in by_url:
            patient = by_url[ref]
        elif ref.startswith("Patient/") and ref[8:].isdigit():
            patient = session.get(Patient, int(ref[8:]))
            if patient is None:
                raise NotFound(f"no patient {ref}")
    if patient is None:
        raise InvalidInput(
            "Appointment.participant needs the patient (a Patient entry's fullUrl or Patient/<id>)"
        )
    status = resource.get("status")
    known = find_appointment(session, ids) if ids else None
    if status == "noshow":
        if known is None:
            raise NotFound("no such appointment to mark as a no-show (unknown identifier)")
        # As the HL7 S26 does: the EHR's word is taken even if its clock is a little ahead.
        marked = mark_no_show(
            session,
            known.id,
            now=now,
            actor=actor,
            source="fhir",
            text=noshow_text,
            before_start=True,
        )
        return ("updated" if marked.changed else "unchanged"), f"Appointment/{known.id}"
    if status in ("cancelled", "entered-in-error"):
        if known is None:
            raise NotFound("no such appointment to cancel (unknown identifier)")
        appts.cancel(session, known.id, now=now, actor=actor)
        return "updated", f"Appointment/{known.id}"
    if status not in BOOKED and status != FULFILLED:
        raise InvalidInput(f"Appointment.status {status!r} is not accepted")
    start = resource.get("start")
    if not start:
        raise InvalidInput("Appointment.start is required")
    starts_at = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    if starts_at.tzinfo is None:
        raise InvalidInput("Appointment.start needs a UTC offset")
    location = None
    for p in resource.get("participant") or []:
        actor_ref = p.get("actor") or {}
        if (
            _text(actor_ref.get("reference")).startswith("Location/")
            or actor_ref.get("type") == "Location"
        ):
            location = _text(actor_ref.get("display")) or None
    appt, outcome = upsert_appointment(
        session,
        patient,
        AppointmentIn(_kind(resource, mapping), starts_at, location, ids),
        now=now,
        actor=actor,
        existing=known,
    )
    if status == FULFILLED:
        try:
            marked = mark_attended(session, appt.id, now=now, actor=actor)
        except InvalidInput as exc:
            raise InvalidInput(f"Appointment.status 'fulfilled': {exc}") from None
        if marked.changed and outcome == "unchanged":
            outcome = "updated"
    return outcome, f"Appointment/{appt.id}"


def response_bundle(result: FhirResult, now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "timestamp": now.isoformat(),
        "entry": [
            {"response": {k: v for k, v in e["response"].items() if v is not None}}
            for e in result.entries
        ],
    }
