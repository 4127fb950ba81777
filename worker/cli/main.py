"""The `checkin` command: a clinician's and an operator's tool; the command tree is put together here.

Each resource's commands live in their own module (patients, schedules, appointments,
followups, demo, processes, users, audit, ops, export, hl7, imports, templates, visits), which
imports only worker/cli/common.py. Heavy imports (SQLAlchemy models, Celery, FastAPI, the Twilio
SDK) happen inside the commands that need them, so `checkin --help` starts fast. Every data
command takes `--json` and then prints exactly one JSON document on stdout. Bad input: one line
on stderr, exit status 1, nothing written.
"""

from __future__ import annotations

import typer

from worker.cli import demo, processes, schedules
from worker.cli.appointments import appointments_app
from worker.cli.audit import app as audit_app
from worker.cli.export import export_cmd
from worker.cli.followups import followups_app, messages_app, responses_app
from worker.cli.hl7 import app as hl7_app
from worker.cli.imports import app as import_app
from worker.cli.ops import app as ops_app
from worker.cli.patients import patients_app
from worker.cli.processes import db_app, with_crisis
from worker.cli.schedules import protocols_app, schedules_app
from worker.cli.templates import app as templates_app
from worker.cli.users import app as users_app
from worker.cli.visits import register as register_visits

__all__ = ["app", "main", "with_crisis"]

app = typer.Typer(
    name="checkin",
    help="Between-visit check-ins, reminders and the clinicians' follow-up queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")
app.add_typer(patients_app, name="patients")
app.add_typer(schedules_app, name="schedules")
app.add_typer(appointments_app, name="appointments")
app.add_typer(protocols_app, name="protocols")
app.add_typer(messages_app, name="messages")
app.add_typer(followups_app, name="followups")
app.add_typer(responses_app, name="responses")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(ops_app, name="ops")
app.command("export")(export_cmd)
app.add_typer(hl7_app, name="hl7")
app.add_typer(import_app, name="import")
app.add_typer(templates_app, name="templates")
# Top-level commands, in the order `checkin --help` has always listed them.
schedules.register(app)  # enroll
demo.register(app)  # preview, tick, demo
processes.register(app)  # web, worker, beat, run

# `appointments no-show` and `appointments attended` (worker/cli/visits.py), listed after the rest.
register_visits(appointments_app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
