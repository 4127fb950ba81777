"""`checkin import appointments|patients FILE.csv [--dry-run]` and `checkin import fhir FILE.json`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import patients and appointments (CSV, FHIR).", no_args_is_help=True)


def _read(path: str) -> str:
    from pathlib import Path

    from worker.cli.common import fail

    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")


def _csv(kind: str, path: str, dry_run: bool, system: str, as_json: bool) -> None:
    import json
    import sys

    from worker.cli.common import parse_now, runtime, service_errors
    from worker.services.records.csv_import import import_csv
    from worker.store.db import session_scope

    text = _read(path)
    now = parse_now(None)

    def progress(done: int, total: int) -> None:
        if total >= 1000:  # small files finish before anyone would read it
            sys.stderr.write(f"\r{done}/{total} rows checked")
            if done == total:
                sys.stderr.write("\n")

    with runtime() as rt, service_errors(), session_scope(rt.sessions) as session:
        report = import_csv(
            session,
            text,
            kind,  # type: ignore[arg-type]
            now=now,
            clinic_tz=rt.settings.clinic_tz,
            dry_run=dry_run,
            actor="import",
            system=system,
            progress=progress,
        )
        if not report.written:
            session.rollback()
        # Audit call site (issue: access): one import event per file is recorded with the rows'
        # own patient.add / appointment.add events, in the same transaction.
    data = report.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        for err in report.errors:
            sys.stderr.write(f"{path}: {err}\n")
        verb = "would change" if dry_run or report.errors else "changed"
        counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items()) or "nothing"
        sys.stdout.write(f"{report.rows} rows; {verb}: {counts}\n")
    if report.errors:
        if as_json:
            for err in report.errors:
                sys.stderr.write(f"{path}: {err}\n")
        sys.stderr.write(f"error: {len(report.errors)} bad line(s); nothing was written\n")
        raise typer.Exit(1)


SystemOpt = typer.Option(
    "urn:checkin-worker:import",
    "--system",
    help="The identifier system of the file's external_id columns (e.g. your PM system's URI).",
)
DryRunOpt = typer.Option(False, "--dry-run", help="Check and report only; write nothing.")
JsonOpt = typer.Option(False, "--json", help="The report as one JSON document.")


@app.command("appointments")
def import_appointments(
    path: str = typer.Argument(..., metavar="FILE.csv"),
    dry_run: bool = DryRunOpt,
    system: str = SystemOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Columns: name, phone and/or email, tz, language, kind, at (patient-local
    YYYY-MM-DDTHH:MM), location; optional external_id (the appointment's) and
    patient_external_id. All or nothing: any bad line is named and nothing is written."""
    _csv("appointments", path, dry_run, system, as_json)


@app.command("patients")
def import_patients(
    path: str = typer.Argument(..., metavar="FILE.csv"),
    dry_run: bool = DryRunOpt,
    system: str = SystemOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Columns: name, phone and/or email, tz, language, birth_date; optional external_id.
    Patients are added with no consent. All or nothing, as for appointments."""
    _csv("patients", path, dry_run, system, as_json)


@app.command("fhir")
def import_fhir(
    path: str = typer.Argument(..., metavar="FILE.json"),
    as_json: bool = JsonOpt,
) -> None:
    """A FHIR R4 transaction Bundle of Patient and Appointment resources (as POST /api/fhir).
    Prints the transaction-response Bundle; a refused Bundle prints its OperationOutcome on
    stderr, exits 1 and writes nothing."""
    import json
    import sys

    from worker.cli.common import parse_now, runtime, service_errors
    from worker.domain.hl7_mapping import load_mapping
    from worker.services.records.fhir_import import (
        FhirRefused,
        apply_bundle,
        operation_outcome,
        parse_bundle,
        response_bundle,
    )
    from worker.store.db import session_scope

    text = _read(path)
    now = parse_now(None)
    try:
        bundle = parse_bundle(text)
        with runtime() as rt, service_errors(), session_scope(rt.sessions) as session:
            result = apply_bundle(
                session,
                bundle,
                now=now,
                clinic_tz=rt.settings.clinic_tz,
                mapping=load_mapping(rt.settings.hl7_mapping),
                actor="import",
                noshow_text=rt.settings.noshow_text,
            )
    except FhirRefused as exc:
        for where, why in exc.issues:
            sys.stderr.write(f"{path}: {where}: {why}\n")
        if as_json:
            sys.stderr.write(json.dumps(operation_outcome(exc.issues)) + "\n")
        sys.stderr.write("error: the Bundle was refused; nothing was written\n")
        raise typer.Exit(1) from None
    sys.stdout.write(json.dumps(response_bundle(result, now)) + "\n")
