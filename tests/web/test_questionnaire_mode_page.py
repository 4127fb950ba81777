"""The dashboard's patient form sets how questionnaires go by SMS."""

from __future__ import annotations

from tests.integration.clinic import Clinic
from tests.web.conftest import Browser, add_account
from worker.store.db import session_scope
from worker.store.models import Patient


def test_the_patient_form_switches_to_one_item_per_text_and_back(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    web = Browser(clinic.base_url)
    try:
        pid = clinic.patient("+12125550133")
        web.sign_in(add_account(clinic, "clinician"))
        page = f"/patients/{pid}/edit"
        shown = web.get(page).text
        assert 'name="questionnaire_mode"' in shown and '<option value="link" selected' in shown
        form = {"name": "Pat Doe", "phone": "+12125550133", "email": "", "tz": "America/New_York",
                "channel": "sms", "language": "en", "send_window": ""}  # fmt: skip
        r = web.post(page, form | {"questionnaire_mode": "sms"}, token_from=page)
        assert r.status_code == 303 and r.headers["location"].endswith("done=patient_saved")
        assert "one item per text" in web.get(f"/patients/{pid}").text
        with session_scope(clinic.rt.sessions) as session:
            patient = session.get(Patient, pid)
            assert patient is not None and patient.questionnaire_mode == "sms"
        r = web.post(page, form | {"questionnaire_mode": "pigeon"}, token_from=page)
        assert r.status_code == 422 and "questionnaire mode must be one of link, sms" in r.text
    finally:
        web.close()
