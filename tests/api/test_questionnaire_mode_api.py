"""questionnaire_mode over the API: set when adding, changed with PATCH (audited), and the
preview says what each mode will send and what it costs in segments."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.integration.clinic import Clinic

NOW = "2027-03-08T12:00:00+00:00"  # a Monday; the schedule fires on Tuesdays


def test_the_mode_is_set_changed_and_previewed(clinic: Clinic, api: Api) -> None:
    body = {
        "name": "Alex Rivera",
        "phone": "+12125550102",
        "tz": "America/New_York",
        "channel": "sms",
        "consent": ["sms"],
        "questionnaire_mode": "sms",
    }
    pid = api.ok("POST", "/patients", body)["id"]
    assert api.ok("GET", f"/patients/{pid}")["questionnaire_mode"] == "sms"
    rule = {"instrument": "gad7", "rrule": "FREQ=WEEKLY;BYDAY=TU;BYHOUR=10", "start": "2027-03-01"}
    api.ok("POST", f"/patients/{pid}/schedules", rule)

    def first() -> tuple[str, int]:
        [item] = api.ok("GET", f"/patients/{pid}/preview", now=NOW, days=7)["items"]
        return item["template"], item["segments"]

    assert first() == ("checkin_item", 8)  # seven items, one text each, the first with the stem
    changed = api.ok("PATCH", f"/patients/{pid}", {"questionnaire_mode": "link"})
    assert changed["questionnaire_mode"] == "link"
    assert first() == ("checkin_link", 1)
    refused = api.client.patch(f"/patients/{pid}", json={"questionnaire_mode": "fax"})
    assert refused.status_code == 422
    assert (
        api.client.patch("/patients/999999", json={"questionnaire_mode": "sms"}).status_code == 404
    )
    assert api.ok("GET", f"/patients/{pid}")["questionnaire_mode"] == "link"
