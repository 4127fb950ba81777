"""How a patient's questionnaires go by SMS: "link" (the default: one text with a private link
to the form) or "sms" (one item per text, for phones without data). Read when each message is
rendered, so a change applies to everything not yet sent, with nothing to re-plan."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from worker.services.records import audit
from worker.services.records.patients import check_questionnaire_mode, get_patient
from worker.store.models import Patient


def set_questionnaire_mode(
    session: Session, patient_id: int, mode: str, *, now: datetime, actor: str
) -> tuple[Patient, bool]:
    """Set the mode; returns (patient, changed). Raises InvalidInput or NotFound."""
    check_questionnaire_mode(mode)
    patient = get_patient(session, patient_id)
    if patient.questionnaire_mode == mode:
        return patient, False
    patient.questionnaire_mode = mode
    audit.record(
        session,
        now=now,
        actor=actor,
        action="patient.update",
        entity="patient",
        entity_id=patient_id,
        patient_id=patient_id,
        detail={"changed": ["questionnaire_mode"], "questionnaire_mode": mode},
    )
    session.flush()
    return patient, True
