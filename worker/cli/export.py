"""`checkin export --patient ID --format fhir|csv`: a patient's record on stdout.

Kept apart from worker/cli.py so that the FHIR models (a heavy import) load only here.
"""

from __future__ import annotations

import sys

import typer


def export_cmd(
    patient: int = typer.Option(..., "--patient", help="The patient's id."),
    fmt: str = typer.Option("fhir", "--format", help="fhir (an R4 Bundle, JSON) or csv."),
    now: str | None = typer.Option(
        None, "--now", help="The Bundle's timestamp (ISO 8601 with offset); default now."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="One JSON document on one line: the Bundle, or for csv a list of row objects.",
    ),
) -> None:
    """A patient's record: a FHIR R4 Bundle (Patient, QuestionnaireResponse, Observation,
    Appointment, Communication, Task) or a CSV of answers, one row per item value."""
    import csv
    import io
    import json

    from worker.cli.common import fail, parse_now, runtime, transaction
    from worker.services.clinical.export import FORMATS, export_patient

    if fmt not in FORMATS:
        fail(f"--format must be fhir or csv, got {fmt!r}")
    at = parse_now(now)
    from worker.services.records import audit

    with runtime() as rt, transaction(rt) as session:
        text = export_patient(session, patient, fmt, now=at, base_url=rt.settings.public_url)
        # Recorded with the OS user who ran the command (bound by worker.cli.runtime).
        audit.access(session, now=rt.now(), action="export", patient_id=patient,
                     detail={"format": fmt})  # fmt: skip
    if as_json:
        data = json.loads(text) if fmt == "fhir" else list(csv.DictReader(io.StringIO(text)))
        text = json.dumps(data, ensure_ascii=False) + "\n"
    sys.stdout.write(text)
