"""The `checkin` command: a clinician's and an operator's tool; the command tree is put together here.

Heavy imports (SQLAlchemy models, Celery, FastAPI, the Twilio SDK) happen inside the commands
that need them, so `checkin --help` starts fast. Every data command takes `--json` and then
prints exactly one JSON document on stdout. Bad input: one line on stderr, exit status 1,
nothing written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from worker.cli.audit import app as audit_app
from worker.cli.common import (
    JsonOpt,
    NowOpt,
    appointment_dict,
    audit_read,
    emit,
    fail,
    parse_date,
    parse_now,
    patient_dict,
    production_settings,
    runtime,
    schedule_dict,
    service_errors,
    settings,
    table,
    transaction,
)
from worker.cli.export import export_cmd
from worker.cli.hl7 import app as hl7_app
from worker.cli.imports import app as import_app
from worker.cli.ops import app as ops_app
from worker.cli.templates import app as templates_app
from worker.cli.users import app as users_app
from worker.cli.visits import register as register_visits

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="checkin",
    help="Between-visit check-ins, reminders and the clinicians' follow-up queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
patients_app = typer.Typer(help="Patients and consent.", no_args_is_help=True)
schedules_app = typer.Typer(help="Check-in schedules.", no_args_is_help=True)
appointments_app = typer.Typer(help="Appointments and their reminders.", no_args_is_help=True)
protocols_app = typer.Typer(help="Check-in protocols.", no_args_is_help=True)
messages_app = typer.Typer(help="Messages in and out.", no_args_is_help=True)
followups_app = typer.Typer(help="The clinicians' follow-up queue.", no_args_is_help=True)
responses_app = typer.Typer(help="Stored answers.", no_args_is_help=True)
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

# ---------------------------------------------------------------- db


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


# ---------------------------------------------------------------- patients


@patients_app.command("add")
def patients_add(
    name: str = typer.Option(..., "--name"),
    tz: str = typer.Option(..., "--tz", help="IANA time zone, e.g. America/New_York"),
    channel: str = typer.Option(..., "--channel", help="sms or email"),
    phone: str | None = typer.Option(None, "--phone", help="E.164, e.g. +12125550100"),
    email: str | None = typer.Option(None, "--email"),
    consent: str | None = typer.Option(None, "--consent", help="channels consented to: sms,email"),
    send_window: str | None = typer.Option(None, "--send-window", help="HH:MM-HH:MM local"),
    language: str = typer.Option("en", "--language", help="en or es"),
    questionnaire_mode: str = typer.Option(
        "link", "--questionnaire-mode", help="link (a form link) or sms (one item per text)"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Add a patient. Without --consent nothing is sent until consent is recorded."""
    from worker.services.records.patients import add_patient

    consents = [c.strip() for c in consent.split(",") if c.strip()] if consent else []
    with runtime() as rt, transaction(rt) as session:
        patient = add_patient(
            session,
            now=rt.now(),
            name=name,
            tz=tz,
            channel=channel,
            phone=phone,
            email=email,
            consent=consents,
            send_window=send_window,
            language=language,
            confirm_optin=rt.settings.optin_confirmation,
            questionnaire_mode=questionnaire_mode,
        )
        pid = patient.id
    emit({"id": pid}, as_json, lambda d: f"patient {d['id']} added")


@patients_app.command("update")
def patients_update(
    patient_id: int,
    questionnaire_mode: str = typer.Option(
        ...,
        "--questionnaire-mode",
        help="link: questionnaires as one text with a private form link (default); "
        "sms: one item per text, for phones without data",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Change a patient's settings (for now: how questionnaires go by SMS)."""
    from worker.services.records.questionnaire_mode import set_questionnaire_mode

    with runtime() as rt, transaction(rt) as session:
        patient, changed = set_questionnaire_mode(
            session, patient_id, questionnaire_mode, now=rt.now(), actor="cli"
        )
        data = patient_dict(patient) | {"changed": changed}
    emit(
        data, as_json, lambda d: f"patient {d['id']}: questionnaire mode {d['questionnaire_mode']}"
    )


@patients_app.command("list")
def patients_list(as_json: bool = JsonOpt) -> None:
    """List patients."""
    from sqlalchemy import select

    from worker.store.models import Patient

    with runtime() as rt, transaction(rt) as session:
        rows = [patient_dict(p) for p in session.scalars(select(Patient).order_by(Patient.id))]
        audit_read(session, "search", entity="patients")
    emit(rows, as_json, lambda d: table(d, ["id", "name", "channel", "tz", "language"]))


@patients_app.command("show")
def patients_show(
    patient_id: int,
    as_json: bool = JsonOpt,
    now: str | None = NowOpt,
) -> None:
    """A patient with consent, schedules, appointments, recent answers and next messages."""
    from worker.services.outbound.preview import preview
    from worker.services.read.followup_queue import ACTIVE, followup_queue
    from worker.services.read.views import followup_dict, recent_responses
    from worker.services.records.appointments import list_appointments
    from worker.services.records.patients import consent_state, get_patient
    from worker.services.records.schedules import list_schedules

    at = parse_now(now)
    with runtime() as rt:
        with transaction(rt) as session:
            p = get_patient(session, patient_id)
            audit_read(session, "view", patient_id)
            data = patient_dict(p)
            data["consent"] = consent_state(session, patient_id)
            data["schedules"] = [schedule_dict(s) for s in list_schedules(session, patient_id)]
            data["appointments"] = [
                appointment_dict(a, p.tz) for a in list_appointments(session, patient_id)
            ]
            data["recent_responses"] = recent_responses(session, patient_id, limit=20)
            # The console is the operator's: it sees what an admin sees.
            data["open_followups"] = [
                followup_dict(f)
                for f in followup_queue(session, role="admin", status=ACTIVE, patient_id=patient_id)
            ]
        with service_errors():
            data["next_messages"] = [i.as_dict() for i in preview(rt, patient_id, at, 2)][:10]
    emit(data, as_json)


@patients_app.command("consent")
def patients_consent(
    patient_id: int,
    channel: str = typer.Option(..., "--channel", help="sms or email"),
    source: str = typer.Option("recorded by staff", "--source", help="how consent was given"),
    withdraw: bool = typer.Option(False, "--withdraw", help="withdraw instead of grant"),
    as_json: bool = JsonOpt,
) -> None:
    """Record or withdraw consent on a channel (withdrawal suppresses pending messages)."""
    from worker.services.records.patients import consent_state, grant_consent, withdraw_consent
    from worker.store.outbox import MessageStatus

    with runtime() as rt, transaction(rt) as session:
        at = rt.now()
        if withdraw:
            n = withdraw_consent(session, patient_id, channel, now=at, source=source, actor="cli")
            result: dict[str, Any] = {"withdrawn": True, MessageStatus.SUPPRESSED: n}
        else:
            changed = grant_consent(
                session,
                patient_id,
                channel,
                now=at,
                source=source,
                actor="cli",
                confirm_optin=rt.settings.optin_confirmation,
            )
            result = {"granted": True, "changed": changed}
        result["consent"] = consent_state(session, patient_id)
    emit(result, as_json)


# ---------------------------------------------------------------- protocols and enrollment


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


@app.command("enroll")
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


# ---------------------------------------------------------------- appointments


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


# ---------------------------------------------------------------- preview, tick, messages


@app.command("preview")
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


@app.command("tick")
def tick_cmd(now: str | None = NowOpt, as_json: bool = JsonOpt) -> None:
    """One synchronous cycle with no broker: plan, dispatch, send, escalate."""
    from worker.tick import tick

    at = parse_now(now)
    with runtime() as rt, service_errors():
        summary = tick(rt, at)
    emit(summary, as_json, lambda d: " ".join(f"{k}={v}" for k, v in d.items()))


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


# ---------------------------------------------------------------- demo and processes


@app.command("demo")
def demo_cmd(as_json: bool = JsonOpt) -> None:
    """Seed a small demonstration clinic so that `make run` shows messages within minutes."""
    from worker.services.demo.clinic import seed_demo

    with runtime() as rt, service_errors():
        data = seed_demo(rt, rt.now())
    emit(data, as_json)


@app.command("web")
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


@app.command(
    "worker",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
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


@app.command("beat")
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


@app.command("run")
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


# `appointments no-show` and `appointments attended` (worker/cli/visits.py), listed after the rest.
register_visits(appointments_app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
