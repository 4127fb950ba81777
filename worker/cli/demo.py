"""`checkin preview`, `checkin tick` and `checkin demo`: rehearsing without a broker (what will be
sent, one synchronous cycle) and seeding a demonstration clinic."""

from __future__ import annotations

import typer

from worker.cli.common import (
    JsonOpt,
    NowOpt,
    emit,
    parse_now,
    runtime,
    service_errors,
    table,
)


def register(app: typer.Typer) -> None:
    """Top-level commands, in the order `checkin --help` lists them."""
    app.command("preview")(preview_cmd)
    app.command("tick")(tick_cmd)
    app.command("demo")(demo_cmd)


def preview_cmd(
    patient_id: int,
    days: int = typer.Option(7, "--days", min=1, max=90),
    now: str | None = NowOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What will be sent to a patient, in order, without sending anything."""
    from worker.services.outbound.preview import preview

    at = parse_now(now)
    with runtime() as rt, service_errors():
        rows = [i.as_dict() for i in preview(rt, patient_id, at, days)]
    emit(
        rows,
        as_json,
        lambda d: table(d, ["local_time", "kind", "channel", "template", "instrument", "segments"]),
    )


def tick_cmd(now: str | None = NowOpt, as_json: bool = JsonOpt) -> None:
    """One synchronous cycle with no broker: plan, dispatch, send, escalate."""
    from worker.tick import tick

    at = parse_now(now)
    with runtime() as rt, service_errors():
        summary = tick(rt, at)
    emit(summary, as_json, lambda d: " ".join(f"{k}={v}" for k, v in d.items()))


def demo_cmd(as_json: bool = JsonOpt) -> None:
    """Seed a small demonstration clinic so that `make run` shows messages within minutes."""
    from worker.services.demo.clinic import seed_demo

    with runtime() as rt, service_errors():
        data = seed_demo(rt, rt.now())
    emit(data, as_json)
