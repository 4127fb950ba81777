"""CSV import of patients and appointments, for clinics without a feed.

All or nothing: every row is checked and applied inside one transaction, each in a savepoint so
that every bad line is found (not only the first); if any line is bad, or on `dry_run`, the
transaction is rolled back and nothing is written. The report says what would be or was done.

Idempotent: a row is matched to what an earlier import created by its external id column when
the file has one, else a patient by name + phone (or name + email) and an appointment by that
patient + the same start. Importing the same file twice changes nothing the second time.
Imported patients get **no consent**.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from worker.domain.schedule import local_to_utc
from worker.services.errors import InvalidInput, NotFound
from worker.services.records.intake import (
    AppointmentIn,
    PatientIn,
    upsert_appointment,
    upsert_patient,
)

Kind = Literal["appointments", "patients"]
DEFAULT_SYSTEM = "urn:checkin-worker:import"
COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("name", "phone", "email", "tz", "language", "birth_date", "external_id"),
    "appointments": (
        "name",
        "phone",
        "email",
        "tz",
        "language",
        "kind",
        "at",
        "location",
        "external_id",
        "patient_external_id",
    ),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "patients": ("name",),
    "appointments": ("name", "kind", "at"),
}
MAX_ROWS = 200_000


@dataclass
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    dry_run: bool = False
    written: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[LineError] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "dry_run": self.dry_run,
            "written": self.written,
            "counts": dict(sorted(self.counts.items())),
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


def _rows(text: str, kind: Kind, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        report.errors.append(LineError(1, "the file is empty (a header line is required)"))
        return []
    reader.fieldnames = header
    unknown = [h for h in header if h not in COLUMNS[kind]]
    missing = [h for h in REQUIRED[kind] if h not in header]
    if "phone" not in header and "email" not in header:
        missing.append("phone or email")
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(
                f"unknown column(s) {', '.join(unknown)} (expected {', '.join(COLUMNS[kind])})"
            )
        report.errors.append(LineError(1, "; ".join(parts)))
        return []
    rows = []
    for record in reader:
        line = reader.line_num
        if None in record:
            report.errors.append(LineError(line, "more fields than the header has"))
            continue
        values = {k: (v or "").strip() for k, v in record.items() if k}
        if not any(values.values()):
            continue
        rows.append((line, values))
        if len(rows) > MAX_ROWS:
            report.errors.append(LineError(line, f"more than {MAX_ROWS} rows: split the file"))
            break
    return rows


def _patient(values: dict[str, str], clinic_tz: str | None, system: str, key: str) -> PatientIn:
    tz = values.get("tz") or clinic_tz
    if not tz:
        raise InvalidInput("tz is empty and CHECKIN_CLINIC_TZ is not set")
    if not values.get("phone") and not values.get("email"):
        raise InvalidInput("a phone or an email is required")
    birth: date | None = None
    if values.get("birth_date"):
        try:
            birth = date.fromisoformat(values["birth_date"])
        except ValueError:
            raise InvalidInput(
                f"birth_date must be YYYY-MM-DD, got {values['birth_date']!r}"
            ) from None
    ext = values.get(key)
    return PatientIn(
        name=values.get("name", ""),
        tz=tz,
        phone=values.get("phone") or None,
        email=values.get("email") or None,
        language=(values.get("language") or "en").lower(),
        birth_date=birth,
        ids=((system, ext),) if ext else (),
    )


def _parse_at(text: str, tz: str) -> datetime:
    """Patient-local YYYY-MM-DDTHH:MM (or a space for the T), or ISO 8601 with an offset."""
    value = text.strip().replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"at must be YYYY-MM-DDTHH:MM (patient-local), got {text!r}") from None
    if parsed.tzinfo is not None:
        return parsed
    return local_to_utc(parsed.replace(second=0, microsecond=0), tz)


def import_csv(
    session: Session,
    text: str,
    kind: Kind,
    *,
    now: datetime,
    clinic_tz: str | None,
    dry_run: bool,
    actor: str,
    system: str = DEFAULT_SYSTEM,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check and apply every row in `session`'s transaction. The caller commits only when the
    report says `written` (no errors, not a dry run), and rolls back otherwise."""
    report = ImportReport(kind=kind, dry_run=dry_run)
    rows = _rows(text, kind, report)
    report.rows = len(rows)
    seen: dict[str, int] = {}
    for done, (line, values) in enumerate(rows, 1):
        if progress is not None and (done % 500 == 0 or done == len(rows)):
            progress(done, len(rows))
        try:
            with session.begin_nested():
                _apply_row(session, kind, values, line, seen, report, now, clinic_tz, actor, system)
        except (InvalidInput, NotFound) as exc:
            report.errors.append(LineError(line, str(exc).strip("'\"")))
    report.written = not report.errors and not dry_run
    return report


def _apply_row(
    session: Session,
    kind: Kind,
    values: dict[str, str],
    line: int,
    seen: dict[str, int],
    report: ImportReport,
    now: datetime,
    clinic_tz: str | None,
    actor: str,
    system: str,
) -> None:
    key = "external_id" if kind == "patients" else "patient_external_id"
    patient_in = _patient(values, clinic_tz, system, key)
    patient, outcome = upsert_patient(
        session, patient_in, now=now, actor=actor, update_contacts=True, match_contact=True
    )
    report.count(f"patients_{outcome}")
    if kind == "patients":
        return
    at = _parse_at(values["at"], patient.tz)
    ext = values.get("external_id")
    if ext:
        if ext in seen:
            raise InvalidInput(f"external_id {ext!r} is also on line {seen[ext]}")
        seen[ext] = line
    appt_in = AppointmentIn(
        kind=values["kind"].strip().lower().replace(" ", "_"),
        starts_at=at,
        location=values.get("location") or None,
        ids=((system, ext),) if ext else (),
    )
    _appt, a_outcome = upsert_appointment(
        session, patient, appt_in, now=now, actor=actor, match_time=True, allow_past_new=False
    )
    report.count(f"appointments_{a_outcome}")
