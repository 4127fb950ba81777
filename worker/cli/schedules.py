"""`checkin protocols list`, `checkin enroll` (a patient in a protocol) and `checkin schedules`: the
check-in schedules, added one by one or by a protocol, paused, resumed, removed."""

from __future__ import annotations

import typer

from worker.cli.common import (
    JsonOpt,
    emit,
    fail,
    parse_date,
    runtime,
    schedule_dict,
    settings,
    table,
    transaction,
)

protocols_app = typer.Typer(help="Check-in protocols.", no_args_is_help=True)
schedules_app = typer.Typer(help="Check-in schedules.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """`checkin enroll`, a top-level command."""
    app.command("enroll")(enroll_cmd)


@protocols_app.command("list")
def protocols_list(as_json: bool = JsonOpt) -> None:
    """The protocols available (shipped and from CHECKIN_PROTOCOLS_DIR)."""
    from worker.domain.protocols import ProtocolError, load_protocols

    s = settings()
    from pathlib import Path

    try:
        protocols = load_protocols(Path(s.protocols_dir) if s.protocols_dir else None)
    except ProtocolError as exc:
        fail(str(exc))
    rows = [
        {
            "name": p.name,
            "title": p.title,
            "description": p.description,
            "steps": [
                {
                    "instrument": st.instrument,
                    "rrule": st.rrule,
                    "start_day": st.start_day,
                    "days": st.days,
                }
                for st in p.steps
            ],
            "source": p.source,
        }
        for p in sorted(protocols.values(), key=lambda p: p.name)
    ]
    emit(rows, as_json, lambda d: table(d, ["name", "title"]))


def enroll_cmd(
    patient_id: int,
    protocol: str,
    start: str = typer.Option(..., "--start", help="YYYY-MM-DD, the protocol's day 0"),
    as_json: bool = JsonOpt,
) -> None:
    """Enroll a patient in a protocol."""
    from worker.domain.protocols import ProtocolError
    from worker.services.records.schedules import enroll, protocol_named

    start_date = parse_date(start, "--start")
    assert start_date is not None
    with runtime() as rt:
        try:
            protocols = rt.protocols
        except ProtocolError as exc:
            fail(str(exc))
        with transaction(rt) as session:
            enrollment, schedules = enroll(
                session,
                patient_id,
                protocol_named(protocols, protocol),
                start=start_date,
                now=rt.now(),
            )
            data = {"id": enrollment.id, "schedules": [s.id for s in schedules]}
    emit(data, as_json, lambda d: f"enrollment {d['id']} with {len(d['schedules'])} schedules")


# ---------------------------------------------------------------- schedules


@schedules_app.command("add")
def schedules_add(
    patient_id: int,
    instrument: str = typer.Option(..., "--instrument"),
    rrule: str = typer.Option(
        ..., "--rrule", help="e.g. FREQ=DAILY;BYHOUR=9;BYMINUTE=0 (patient-local)"
    ),
    start: str | None = typer.Option(None, "--start", help="YYYY-MM-DD (default today)"),
    until: str | None = typer.Option(None, "--until", help="YYYY-MM-DD, inclusive"),
    as_json: bool = JsonOpt,
) -> None:
    """Add a check-in schedule."""

    from worker.services.records.schedules import add_schedule

    start_date = parse_date(start, "--start")
    until_date = parse_date(until, "--until")
    with runtime() as rt, transaction(rt) as session:
        s = add_schedule(
            session,
            patient_id,
            now=rt.now(),
            instrument=instrument,
            rrule=rrule,
            start=start_date,
            until=until_date,
        )
        sid = s.id
    emit({"id": sid}, as_json, lambda d: f"schedule {d['id']} added")


@schedules_app.command("list")
def schedules_list(patient_id: int, as_json: bool = JsonOpt) -> None:
    """A patient's schedules."""
    from worker.services.records.schedules import list_schedules

    with runtime() as rt, transaction(rt) as session:
        rows = [schedule_dict(s) for s in list_schedules(session, patient_id)]
    emit(
        rows, as_json, lambda d: table(d, ["id", "instrument", "rrule", "start", "until", "status"])
    )


def _set_schedule(schedule_id: int, status: str, as_json: bool) -> None:
    from worker.services.records.schedules import set_schedule_status

    with runtime() as rt, transaction(rt) as session:
        s = set_schedule_status(session, schedule_id, status, now=rt.now())
        data = schedule_dict(s)
    emit(data, as_json, lambda d: f"schedule {d['id']} is {d['status']}")


@schedules_app.command("pause")
def schedules_pause(schedule_id: int, as_json: bool = JsonOpt) -> None:
    """Pause a schedule (pending check-ins are cancelled)."""
    _set_schedule(schedule_id, "paused", as_json)


@schedules_app.command("resume")
def schedules_resume(schedule_id: int, as_json: bool = JsonOpt) -> None:
    """Resume a paused schedule from now on."""
    _set_schedule(schedule_id, "active", as_json)


@schedules_app.command("remove")
def schedules_remove(schedule_id: int, as_json: bool = JsonOpt) -> None:
    """Remove a schedule (pending check-ins are cancelled)."""
    _set_schedule(schedule_id, "removed", as_json)
