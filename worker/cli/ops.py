"""`checkin ops ...`: the operator's view of a running system."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(help="Operating the system: queues, outbox, lag.", no_args_is_help=True)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
NowOpt = typer.Option(None, "--now", help="Act as if it were this moment (ISO 8601 with offset).")

# Helpers are imported inside the commands to keep `checkin --help` fast.


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _pairs(values: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v}" for k, v in values.items()) or "(none)"


def render(data: dict[str, Any]) -> str:
    """The status as lines a person can read at a glance."""
    queues = data["queues"]
    hour = data["last_hour"]
    urgent = data["urgent_followups"]
    outbox = {k: v for k, v in data["outbox"].items() if v} or {"(empty)": ""}
    rows = [
        ("broker", data["broker"]),
        ("queues", _pairs(queues) if queues is not None else "-"),
        ("outbox", _pairs(outbox)),
        ("oldest due, unsent", _age(data["oldest_due_unsent_seconds"])),
        (
            "last hour",
            f"sent sms {hour['sent']['sms']}  sent email {hour['sent']['email']}  "
            f"failed {hour['failed']}  undelivered {hour['undelivered']}",
        ),
        ("provider errors", _pairs(hour["errors_by_code"])),
        (
            "urgent follow-ups",
            f"open {urgent['open']} (oldest unacknowledged "
            f"{_age(urgent['oldest_open_seconds'])})  acknowledged {urgent['acknowledged']}",
        ),
        ("escalation ladder", _pairs(urgent.get("ladder", {}))),
    ]
    feed = data.get("hl7_feed")
    if feed and feed["received"]:
        rows.append(
            (
                "hl7 feed",
                f"received {feed['received']}  applied {feed['applied']}  "
                f"refused {sum(feed['refused'].values())} ({_pairs(feed['refused'])})  "
                f"last {_age(feed['last_message_seconds'])} ago",
            )
        )
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


@app.command("status")
def status_cmd(now: str | None = NowOpt, as_json: bool = JsonOpt) -> None:
    """Queue depths per Celery queue, outbox counts by status, the oldest due-but-unsent age,
    sends and failures in the last hour, open urgent follow-ups."""
    from worker.cli.common import emit, parse_now, runtime, service_errors
    from worker.services.read.ops import status

    moment = parse_now(now)
    with runtime() as rt, service_errors():
        data = status(rt, moment)
    emit(data, as_json, render)
