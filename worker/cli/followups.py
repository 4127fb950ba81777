"""`checkin messages`, `checkin followups` and `checkin responses`: what the check-ins produced,
the messages in and out, the clinicians' follow-up queue (acknowledge, resolve), stored answers."""

from __future__ import annotations

import typer

from worker.cli.common import (
    JsonOpt,
    audit_read,
    emit,
    runtime,
    service_errors,
    table,
    transaction,
)

messages_app = typer.Typer(help="Messages in and out.", no_args_is_help=True)
followups_app = typer.Typer(help="The clinicians' follow-up queue.", no_args_is_help=True)
responses_app = typer.Typer(help="Stored answers.", no_args_is_help=True)


@messages_app.command("list")
def messages_list(
    patient: int | None = typer.Option(None, "--patient"),
    limit: int = typer.Option(50, "--limit", min=1, max=10000),
    as_json: bool = JsonOpt,
) -> None:
    """Messages out and in, newest first."""
    from worker.services.read.views import list_messages

    with runtime() as rt, transaction(rt) as session:
        rows = list_messages(session, patient_id=patient, limit=limit)
        audit_read(session, "view" if patient else "search", patient, entity="messages")
    emit(
        rows,
        as_json,
        lambda d: table(
            d, ["id", "direction", "patient_id", "channel", "kind", "status", "at", "body"]
        ),
    )


# ---------------------------------------------------------------- follow-ups and responses


@followups_app.command("list")
def followups_list(
    status: str | None = typer.Option(None, "--status", help="open, acknowledged or resolved"),
    patient: int | None = typer.Option(None, "--patient"),
    as_json: bool = JsonOpt,
) -> None:
    """The queue: urgent first, then high, then routine; oldest first within each."""
    from worker.services.read.followup_queue import followup_queue
    from worker.services.read.views import followup_dict

    with runtime() as rt, service_errors(), transaction(rt) as session:
        # The console is the operator's: it sees what an admin sees.
        items = followup_queue(session, role="admin", status=status, patient_id=patient)
        rows = [followup_dict(f) for f in items]
    emit(
        rows,
        as_json,
        lambda d: table(d, ["id", "severity", "reason", "status", "patient_id", "created_at"]),
    )


@followups_app.command("ack")
def followups_ack(
    followup_id: int,
    by: str = typer.Option(..., "--by", help="who is taking it"),
    as_json: bool = JsonOpt,
) -> None:
    """Acknowledge a follow-up (stops re-paging)."""
    from worker.services.clinical.followups import acknowledge
    from worker.services.read.views import followup_dict

    with runtime() as rt, transaction(rt) as session:
        data = followup_dict(acknowledge(session, followup_id, by=by, now=rt.now()))
    emit(data, as_json, lambda d: f"follow-up {d['id']} acknowledged by {d['acknowledged_by']}")


@followups_app.command("resolve")
def followups_resolve(
    followup_id: int,
    by: str = typer.Option(..., "--by"),
    note: str | None = typer.Option(None, "--note", help="the action taken (required if urgent)"),
    as_json: bool = JsonOpt,
) -> None:
    """Resolve a follow-up; an urgent one needs a --note of the action taken."""
    from worker.services.clinical.followups import resolve
    from worker.services.read.views import followup_dict

    with runtime() as rt, transaction(rt) as session:
        data = followup_dict(resolve(session, followup_id, by=by, note=note, now=rt.now()))
    emit(data, as_json, lambda d: f"follow-up {d['id']} resolved by {d['resolved_by']}")


@responses_app.command("list")
def responses_list(
    patient: int = typer.Option(..., "--patient"),
    as_json: bool = JsonOpt,
) -> None:
    """Every stored answer of a patient, one row per item value, oldest first."""
    from worker.services.read.views import all_responses
    from worker.services.records.patients import get_patient

    with runtime() as rt, transaction(rt) as session:
        get_patient(session, patient)
        rows = all_responses(session, patient)
        audit_read(session, "view", patient, entity="responses")
    emit(
        rows, as_json, lambda d: table(d, ["answered_at", "instrument", "item", "value", "partial"])
    )
