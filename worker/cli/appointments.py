"""`checkin appointments`: booking, moving, cancelling and listing appointments (their reminders
follow). `no-show` and `attended` are in worker/cli/visits.py."""

from __future__ import annotations

import typer

from worker.cli.common import (
    JsonOpt,
    appointment_dict,
    emit,
    runtime,
    table,
    transaction,
)

appointments_app = typer.Typer(help="Appointments and their reminders.", no_args_is_help=True)


@appointments_app.command("add")
def appointments_add(
    patient_id: int,
    kind: str = typer.Option(..., "--kind", help="infusion, therapy, physical_therapy, consult"),
    at: str = typer.Option(..., "--at", help="YYYY-MM-DDTHH:MM, patient-local"),
    location: str | None = typer.Option(None, "--location"),
    as_json: bool = JsonOpt,
) -> None:
    """Book an appointment; reminders are planned automatically."""
    from worker.services.records.appointments import add_appointment

    with runtime() as rt, transaction(rt) as session:
        a = add_appointment(session, patient_id, now=rt.now(), kind=kind, at=at, location=location)
        aid = a.id
    emit({"id": aid}, as_json, lambda d: f"appointment {d['id']} booked")


@appointments_app.command("reschedule")
def appointments_reschedule(
    appointment_id: int,
    at: str = typer.Option(..., "--at", help="YYYY-MM-DDTHH:MM, patient-local"),
    as_json: bool = JsonOpt,
) -> None:
    """Move an appointment: old reminders never go, new ones are planned."""
    from worker.services.records.appointments import reschedule
    from worker.services.records.patients import get_patient

    with runtime() as rt, transaction(rt) as session:
        a = reschedule(session, appointment_id, now=rt.now(), at=at)
        data = appointment_dict(a, get_patient(session, a.patient_id).tz)
    emit(data, as_json, lambda d: f"appointment {d['id']} moved to {d['local_time']}")


@appointments_app.command("cancel")
def appointments_cancel(appointment_id: int, as_json: bool = JsonOpt) -> None:
    """Cancel an appointment and its pending reminders."""
    from worker.services.records.appointments import cancel

    with runtime() as rt, transaction(rt) as session:
        a = cancel(session, appointment_id, now=rt.now())
        data = appointment_dict(a)
    emit(data, as_json, lambda d: f"appointment {d['id']} cancelled")


@appointments_app.command("list")
def appointments_list(
    patient_id: int | None = typer.Argument(None), as_json: bool = JsonOpt
) -> None:
    """Appointments, for one patient or all."""
    from worker.services.records.appointments import list_appointments
    from worker.store.models import Patient

    with runtime() as rt, transaction(rt) as session:
        rows = []
        for a in list_appointments(session, patient_id):
            p = session.get(Patient, a.patient_id)
            rows.append(appointment_dict(a, p.tz if p else None))
    emit(rows, as_json, lambda d: table(d, ["id", "patient_id", "kind", "local_time", "status"]))
