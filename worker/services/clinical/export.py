"""A patient's record for another system: a FHIR R4 Bundle (see worker.services.clinical.fhir) or a CSV
of answers, one row per stored item value.

CSV columns: patient_id, checkin_id, instrument, item, loinc, value, answered_at (ISO 8601 in
UTC), partial, late (`true`/`false`). `loinc` is the item's LOINC code, empty for the project's
own items (mood, sleep). Rows are oldest first. RFC 4180 (CRLF line ends, UTF-8).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from worker.domain.instruments import get_instrument
from worker.services.errors import InvalidInput
from worker.services.read.listing import responses_stmt
from worker.services.records.patients import get_patient

FORMATS: Final = ("fhir", "csv")
CSV_COLUMNS: Final = (
    "patient_id",
    "checkin_id",
    "instrument",
    "item",
    "loinc",
    "value",
    "answered_at",
    "partial",
    "late",
)
MEDIA_TYPES: Final = {"fhir": "application/fhir+json", "csv": "text/csv; charset=utf-8"}


def _loinc(instrument: str, item: str) -> str:
    try:
        return get_instrument(instrument).item(item).loinc or ""
    except ValueError:
        return ""


def answers_csv(session: Session, patient_id: int) -> str:
    """Every stored answer of the patient as CSV with a header row; NotFound if unknown."""
    get_patient(session, patient_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in session.scalars(responses_stmt(patient_id)):
        writer.writerow(
            [
                r.patient_id,
                "" if r.checkin_id is None else r.checkin_id,
                r.instrument,
                r.item,
                _loinc(r.instrument, r.item),
                r.value,
                r.answered_at.isoformat(),
                "true" if r.partial else "false",
                "true" if r.late else "false",
            ]
        )
    return out.getvalue()


def export_patient(
    session: Session, patient_id: int, fmt: str, *, now: datetime, base_url: str
) -> str:
    """The patient's record in `fmt` ("fhir" or "csv") as text. Raises InvalidInput for another
    format and NotFound for an unknown patient."""
    if fmt not in FORMATS:
        raise InvalidInput(f"the export format must be fhir or csv, got {fmt!r}", field="format")
    if fmt == "csv":
        return answers_csv(session, patient_id)
    from worker.services.clinical.fhir import patient_bundle

    bundle = patient_bundle(session, patient_id, now=now, base_url=base_url)
    return json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
