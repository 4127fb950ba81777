"""`checkin appointments no-show ID` and `checkin appointments attended ID` (docs/after-visit.md)."""

from __future__ import annotations

from typing import Any

import typer

from worker.cli.common import JsonOpt, NowOpt


def register(appointments: typer.Typer) -> None:
    appointments.command("no-show")(no_show)
    appointments.command("attended")(attended)


def no_show(appointment_id: int, now: str | None = NowOpt, as_json: bool = JsonOpt) -> None:
    """Record a no-show: pending messages for the visit stop, the front desk gets a follow-up,
    and with CHECKIN_NOSHOW_TEXT=1 the patient a "we missed you, reply R to rebook" text.
    Marking it again changes nothing."""
    from worker.cli.common import appointment_dict, emit, parse_now, runtime, transaction
    from worker.services.records.visits import mark_no_show

    with runtime() as rt, transaction(rt) as session:
        at = parse_now(now) if now else rt.now()
        marked = mark_no_show(
            session,
            appointment_id,
            now=at,
            actor="cli",
            source="checkin appointments no-show",
            text=rt.settings.noshow_text,
        )
        data: dict[str, Any] = {
            **appointment_dict(marked.appointment),
            "changed": marked.changed,
            "text_queued": marked.text_id is not None,
        }
    emit(data, as_json, lambda d: f"appointment {d['id']} marked no-show")


def attended(appointment_id: int, now: str | None = NowOpt, as_json: bool = JsonOpt) -> None:
    """Record that the patient came; the day-after check-in follows if the protocol has one.
    Marking it again changes nothing."""
    from worker.cli.common import appointment_dict, emit, parse_now, runtime, transaction
    from worker.services.records.visits import mark_attended

    with runtime() as rt, transaction(rt) as session:
        at = parse_now(now) if now else rt.now()
        marked = mark_attended(session, appointment_id, now=at, actor="cli")
        data: dict[str, Any] = {**appointment_dict(marked.appointment), "changed": marked.changed}
    emit(data, as_json, lambda d: f"appointment {d['id']} marked attended")
