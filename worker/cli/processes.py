"""`checkin db upgrade` and the long-running processes: `checkin web`, `worker`, `beat`, and `run`
(everything in the foreground)."""

from __future__ import annotations

from typing import Any

import typer

from worker.cli.common import (
    fail,
    production_settings,
    settings,
)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Top-level commands, in the order `checkin --help` lists them."""
    app.command("web")(web_cmd)
    app.command(
        "worker",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(worker_cmd)
    app.command("beat")(beat_cmd)
    app.command("run")(run_cmd)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    from worker.store.migrate import upgrade

    s = settings()
    if s.is_sqlite:
        from pathlib import Path

        from sqlalchemy.engine import make_url

        db = make_url(s.database_url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    upgrade(s.database_url)
    typer.echo("database is up to date", err=True)


def web_cmd(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="Processes (default: CHECKIN_WEB_WORKERS, 1)."
    ),
) -> None:
    """Run the web app (webhooks, API, health, metrics)."""
    import uvicorn

    from worker.logging_setup import configure_logging
    from worker.web.app import create_app, freeze_startup_objects, multiprocess_metrics

    s = production_settings()
    configure_logging(s)
    processes = workers or s.web_workers
    # log_config=None: uvicorn's records go through our (masking) handler, not its own.
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": False,
        "log_config": None,
    }
    if processes == 1:
        app_ = create_app(s)
        freeze_startup_objects()
        uvicorn.run(app_, **options)
        return
    # Several processes: uvicorn starts each from the factory; the webhook latency histogram
    # is shared through files so that any process's /metrics shows them all.
    with multiprocess_metrics():
        uvicorn.run("worker.web.app:app_factory", factory=True, workers=processes, **options)


def worker_cmd(
    ctx: typer.Context,
    queues: str = typer.Option("urgent,bulk", "--queues", "-Q"),
    concurrency: int = typer.Option(4, "--concurrency", "-c"),
    name: str = typer.Option("checkin", "--name"),
    loglevel: str = typer.Option("INFO", "--loglevel"),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve this worker's Prometheus metrics here (default: CHECKIN_WORKER_METRICS_PORT).",
    ),
) -> None:
    """Run a Celery worker (thread pool; sends go many at a time per process). Any other option
    goes to `celery worker` as given, after these defaults, so it can override them (e.g.
    `--autoscale 16,4`, `-P prefork`, `--max-tasks-per-child 100`)."""
    from worker import telemetry
    from worker.celery_app import app as celery
    from worker.celery_app import use_settings
    from worker.logging_setup import configure_logging, leave_celery_logging_alone

    s = settings()
    configure_logging(s, loglevel)
    leave_celery_logging_alone()
    port = metrics_port if metrics_port is not None else s.worker_metrics_port
    if port is not None:
        telemetry.enable()
        telemetry.install_task_timer()
        telemetry.serve(s.worker_metrics_host, port)
    use_settings(s)
    celery.worker_main(
        [
            "worker",
            "-Q",
            with_crisis(queues),
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            *ctx.args,
        ]
    )


def with_crisis(queues: str) -> str:
    """A worker on `urgent` also takes `crisis` (listed first: it is read first)."""
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if "urgent" in names and "crisis" not in names:
        names.insert(0, "crisis")
    return ",".join(names)


def beat_cmd(
    schedule_file: str = typer.Option("var/celerybeat-schedule", "--schedule-file"),
    loglevel: str = typer.Option("INFO", "--loglevel"),
) -> None:
    """Run Celery beat: plan and dispatch every CHECKIN_TICK_SECONDS."""
    from pathlib import Path

    from worker.celery_app import app as celery
    from worker.celery_app import use_settings
    from worker.logging_setup import configure_logging, leave_celery_logging_alone

    s = settings()
    configure_logging(s, loglevel)
    leave_celery_logging_alone()
    Path(schedule_file).parent.mkdir(parents=True, exist_ok=True)
    use_settings(s)
    celery.start(["beat", "-s", schedule_file, "--loglevel", loglevel])


def run_cmd(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65534,
        help="The urgent worker's metrics port; the bulk worker's is the next one "
        "(default: CHECKIN_WORKER_METRICS_PORT, else 9101).",
    ),
) -> None:
    """Run everything in the foreground: embedded Redis (unless CHECKIN_BROKER_URL is set),
    the web app, an urgent and a bulk worker, and beat. Ctrl-C stops them all."""
    from worker.embedded import EmbeddedRedisMissing
    from worker.logging_setup import configure_logging
    from worker.runner import DEFAULT_METRICS_PORT, run_all

    s = production_settings()
    configure_logging(s)
    metrics = metrics_port or s.worker_metrics_port or DEFAULT_METRICS_PORT
    try:
        code = run_all(s, host=host, port=port, metrics_port=metrics)
    except EmbeddedRedisMissing as exc:
        fail(str(exc), 2)
    raise typer.Exit(code)
