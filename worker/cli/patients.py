"""`checkin patients`: adding, changing, listing and showing patients, and their consent."""

from __future__ import annotations

from typing import Any

import typer

from worker.cli.common import (
    JsonOpt,
    NowOpt,
    appointment_dict,
    audit_read,
    emit,
    parse_now,
    patient_dict,
    runtime,
    schedule_dict,
    service_errors,
    table,
    transaction,
)

patients_app = typer.Typer(help="Patients and consent.", no_args_is_help=True)


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
