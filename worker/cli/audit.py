"""`checkin audit list`: the audit trail (who looked at or changed what, when, from where)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command("list")
def audit_list(
    patient: int | None = typer.Option(None, "--patient", help="Only this patient's events."),
    user: int | None = typer.Option(None, "--user", help="Only this user's events."),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 with an offset."),
    limit: int = typer.Option(500, "--limit", min=1, max=100_000),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Events newest first: at, action, who (user id and name, token id, or cli:<OS user>),
    via, address, patient. Reading the trail is itself recorded."""
    from worker.cli.common import emit, fail, runtime, table, transaction
    from worker.services.records import audit

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            fail(f"--since must be ISO 8601, got {since!r}")
        if start.tzinfo is None:
            fail("--since needs a UTC offset (e.g. 2026-12-01T00:00:00Z)")
        try:
            start = start.astimezone(UTC)
        except OverflowError:
            fail(f"--since is out of range: {since!r}")
    with runtime() as rt, transaction(rt) as session:
        rows, _total = audit.list_events(
            session, patient_id=patient, user_id=user, since=start, limit=limit
        )
        audit.access(
            session,
            now=rt.now(),
            action="view",
            entity="audit",
            detail={"patient": patient, "user": user},
        )

    def text(data: list[dict[str, object]]) -> str:
        shown = [
            {**r, "who": r["user_name"] or r["actor"], "patient": r["patient_id"] or ""}
            for r in data
        ]
        return table(shown, ["at", "action", "who", "via", "address", "patient"])

    emit(rows, as_json, text)
