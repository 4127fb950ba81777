"""POST /api/fhir against the running web app: a transaction Bundle in, a transaction-response
Bundle or an OperationOutcome out; the API's own auth."""

from __future__ import annotations

import json

import httpx

from tests.api.conftest import TOKEN, Api
from tests.integration.clinic import Clinic
from tests.integrations.test_imports import _bundle


def _post(clinic: Clinic, body: bytes, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{clinic.base_url}/api/fhir", content=body, headers=headers, timeout=30)


def test_post_fhir_bundle(clinic: Clinic, api: Api) -> None:
    body = json.dumps(_bundle()).encode()
    assert _post(clinic, body, token=None).status_code == 401
    assert _post(clinic, body, token="wrong").status_code == 401

    r = _post(clinic, body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    out = r.json()
    assert out["resourceType"] == "Bundle" and out["type"] == "transaction-response"
    patient_loc, appt_loc = (e["response"]["location"] for e in out["entry"])
    assert patient_loc.startswith("Patient/") and appt_loc.startswith("Appointment/")
    patient_id = int(patient_loc.split("/")[1])
    shown = api.ok("GET", f"/patients/{patient_id}")
    assert shown["name"] == "Alex Rivera" and shown["language"] == "es"
    assert shown["external_ids"] == [{"system": "urn:oid:2.16.840.1.113883.3.1", "value": "MRN77"}]
    appts = api.ok("GET", "/appointments", patient_id=patient_id)["items"]
    assert [(a["kind"], a["location"], a["external_ids"][0]["value"]) for a in appts] == [
        ("infusion", "Suite 200", "E-9")
    ]
    # The same Bundle again: 200 OK entries, nothing new.
    again = _post(clinic, body).json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK", "200 OK"]

    # Refused: OperationOutcome, 4xx, nothing written.
    bad = _bundle(start="2099-06-01T10:00:00-04:00")
    bad["entry"][1]["resource"]["serviceType"] = [{"coding": [{"code": "YOGA"}]}]
    bad["entry"][0]["resource"]["identifier"] = [{"system": "urn:x", "value": "NEW-1"}]
    for payload, status in [
        (b"not json", 400),
        (json.dumps({"resourceType": "Patient"}).encode(), 400),
        (json.dumps(bad).encode(), 422),
    ]:
        r = _post(clinic, payload)
        assert r.status_code == status, r.text
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"]
    assert "YOGA" in r.json()["issue"][0]["diagnostics"]
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
    assert api.ok("GET", "/patients")["total"] == 1  # NEW-1 was not created
