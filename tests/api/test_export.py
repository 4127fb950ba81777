"""`checkin export` and GET /api/patients/{id}/export: a patient's record as a FHIR R4 Bundle that
fhir.resources validates, whose Observations match the stored answers, and as CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from tests.api.conftest import PHONE, Api, give_history
from tests.integration.clinic import Clinic

LOINC = "http://loinc.org"


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


TOTALS = {"44261-6": "phq9", "55758-7": "phq2", "70274-6": "gad7", "91147-9": "peg"}


def assert_observations_match(bundle: dict[str, Any], stored: list[dict[str, Any]]) -> int:
    """Every Observation is a score of one response's stored answers: its code names which,
    its value is that score (computed here from `checkin responses list`). Returns how many."""
    urls = by_url(bundle)
    answers: dict[int, dict[str, int]] = {}
    for row in stored:
        answers.setdefault(row["checkin_id"], {})[row["item"]] = row["value"]
    observations = resources(bundle, "Observation")
    for obs in observations:
        assert obs["status"] == "final"
        assert obs["category"][0]["coding"][0]["code"] == "survey"
        [source] = obs["derivedFrom"]
        response = urls[source["reference"]]
        assert response["resourceType"] == "QuestionnaireResponse"
        values = answers[int(response["identifier"]["value"])]
        [coding] = obs["code"]["coding"]
        if coding["system"] == LOINC and coding["code"] in TOTALS:
            items = [v for k, v in values.items() if k.startswith(TOTALS[coding["code"]][:3])]
            if coding["code"] == "91147-9":
                assert float(obs["valueQuantity"]["value"]) == round(sum(items) / 3, 2)
                continue
            expected = sum(items)
        elif coding["system"] == LOINC and coding["code"] == "72514-3":
            expected = values["pain"]
        else:
            assert coding["system"] == "urn:checkin-worker:item", coding
            expected = values[coding["code"]] if coding["code"] in values else sum(values.values())
        assert obs["valueInteger"] == expected, (coding, values)
    return len(observations)


def export(clinic: Clinic, pid: int, fmt: str) -> str:
    return str(clinic.cli.run("export", "--patient", str(pid), "--format", fmt).stdout)


def test_the_fhir_bundle_validates_and_its_observations_match_the_answers(clinic: Clinic) -> None:
    ids = give_history(clinic)
    pid = ids["patient"]
    bundle = json.loads(export(clinic, pid, "fhir"))
    Bundle.model_validate(bundle)  # raises on any structural error
    assert bundle["type"] == "collection"
    urls = by_url(bundle)
    assert set(references(bundle)) <= set(urls), "every reference resolves inside the Bundle"

    answers = clinic.cli.json("responses", "list", "--patient", str(pid))
    by_checkin: dict[int, dict[str, int]] = {}
    for row in answers:
        by_checkin.setdefault(row["checkin_id"], {})[row["item"]] = row["value"]
    mood_pain = next(c for c, a in by_checkin.items() if set(a) == {"mood", "pain"})
    phq9 = next(c for c, a in by_checkin.items() if "phq9_1" in a)
    assert by_checkin[mood_pain] == {"mood": 2, "pain": 9}

    [patient] = resources(bundle, "Patient")
    assert patient["telecom"][0]["value"] == PHONE and patient["name"][0]["text"] == "Pat Doe"

    responses = resources(bundle, "QuestionnaireResponse")
    assert len(responses) == 2
    qr_checkin = {int(r["identifier"]["value"]): r for r in responses}
    assert set(qr_checkin) == {mood_pain, phq9}
    phq = qr_checkin[phq9]
    assert phq["questionnaire"] == "http://loinc.org/q/44249-1" and phq["status"] == "completed"
    first = phq["item"][0]
    assert first["linkId"] == "44250-9"
    assert first["answer"][0]["valueCoding"]["code"] == "LA6569-3"  # 1 = several days
    assert [i["answer"][0]["valueCoding"]["extension"][0]["valueDecimal"] for i in phq["item"]] == [
        by_checkin[phq9][f"phq9_{n}"] for n in range(1, 10)
    ]
    assert {i["linkId"]: i["answer"][0]["valueInteger"] for i in qr_checkin[mood_pain]["item"]} == {
        "mood": 2,
        "72514-3": 9,
    }

    assert assert_observations_match(bundle, answers) == 3  # mood, pain, the PHQ-9 total
    observations = resources(bundle, "Observation")
    seen = set()
    for obs in observations:
        assert obs["status"] == "final"
        assert obs["category"][0]["coding"][0]["code"] == "survey"
        [source] = obs["derivedFrom"]
        checkin = int(urls[source["reference"]]["identifier"]["value"])
        stored = by_checkin[checkin]
        [coding] = obs["code"]["coding"]
        if coding["system"] == LOINC and coding["code"] == "44261-6":
            expected = sum(stored[f"phq9_{n}"] for n in range(1, 10))
            assert obs["interpretation"][0]["text"] == "mild"
        elif coding["system"] == LOINC and coding["code"] == "72514-3":
            expected = stored["pain"]
        else:
            assert coding == {"system": "urn:checkin-worker:item", "code": "mood"}
            expected = stored["mood"]
        assert obs["valueInteger"] == expected
        assert obs["subject"]["reference"] == next(
            u for u, r in urls.items() if r["resourceType"] == "Patient"
        )
        seen.add(coding["code"])
    assert seen == {"44261-6", "72514-3", "mood"}

    appointments = {int(a["identifier"][0]["value"]): a for a in resources(bundle, "Appointment")}
    assert set(appointments) == {ids["confirmed"], ids["later"]}

    def patient_status(appt: dict[str, Any]) -> str:
        return next(p["status"] for p in appt["participant"] if "reference" in p["actor"])

    assert patient_status(appointments[ids["confirmed"]]) == "accepted"
    assert patient_status(appointments[ids["later"]]) == "needs-action"
    assert all(a["status"] == "booked" and a["end"] > a["start"] for a in appointments.values())

    sent = [
        m
        for m in clinic.cli.json("messages", "list", "--patient", str(pid))
        if m["kind"] == "reminder" and m["status"] in ("sent", "delivered")
    ]
    communications = resources(bundle, "Communication")
    assert sent and len(communications) == len(sent)
    for comm in communications:
        assert comm["category"][0]["coding"][0]["code"] == "reminder"
        assert comm["medium"][0]["coding"][0]["code"] == "SMSWRIT"
        assert urls[comm["about"][0]["reference"]]["resourceType"] == "Appointment"
        assert comm["payload"][0]["contentString"] in clinic.sms_to(PHONE)

    tasks = {int(t["identifier"][0]["value"]): t for t in resources(bundle, "Task")}
    assert set(tasks) == set(ids["followups"])
    acked = tasks[ids["acked"]]
    assert acked["code"]["coding"][0]["code"] == "high_pain"
    assert (acked["status"], acked["priority"], acked["owner"]["display"]) == (
        "in-progress",
        "urgent",
        "Dr. Lee",
    )
    assert urls[acked["focus"]["reference"]] is qr_checkin[mood_pain]


def test_the_api_exports_the_same_bundle_and_csv(clinic: Clinic, api: Api) -> None:
    ids = give_history(clinic)
    pid = ids["patient"]
    from_cli = json.loads(export(clinic, pid, "fhir"))
    r = api.get(f"/patients/{pid}/export", format="fhir")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    from_api = r.json()
    Bundle.model_validate(from_api)
    from_cli.pop("timestamp"), from_api.pop("timestamp")
    assert from_api == from_cli, "the same record, the same resource ids"

    r = api.get(f"/patients/{pid}/export", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    # (The in-process CLI runner reads stdout with universal newlines; the API keeps CRLF.)
    assert r.text.count("\r\n") == 12 and r.text.replace("\r\n", "\n") == export(clinic, pid, "csv")
    assert api.get("/patients/999999/export").status_code == 404
    assert api.get(f"/patients/{pid}/export", format="xml").status_code == 422


def test_the_csv_has_one_row_per_answer(clinic: Clinic) -> None:
    ids = give_history(clinic)
    pid = ids["patient"]
    text = export(clinic, pid, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "patient_id",
        "checkin_id",
        "instrument",
        "item",
        "loinc",
        "value",
        "answered_at",
        "partial",
        "late",
    ]
    stored = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert len(rows) == 1 + len(stored) == 1 + 2 + 9
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [
        (int(r["checkin_id"]), r["instrument"], r["item"], int(r["value"]), r["answered_at"])
        for r in body
    ] == [
        (s["checkin_id"], s["instrument"], s["item"], s["value"], s["answered_at"]) for s in stored
    ]
    assert {r["patient_id"] for r in body} == {str(pid)}
    loinc = {r["item"]: r["loinc"] for r in body}
    assert (loinc["mood"], loinc["pain"], loinc["phq9_1"], loinc["phq9_9"]) == (
        "",
        "72514-3",
        "44250-9",
        "44260-8",
    )
    assert {(r["partial"], r["late"]) for r in body} == {("false", "false")}
    as_json = clinic.cli.json("export", "--patient", str(pid), "--format", "csv")
    assert as_json == body


def test_export_refuses_bad_input_with_one_line(clinic: Clinic) -> None:
    assert "no patient with id 42" in clinic.cli.fails("export", "--patient", "42")
    pid = clinic.patient(PHONE)
    assert "--format must be fhir or csv" in clinic.cli.fails(
        "export", "--patient", str(pid), "--format", "xml"
    )
    empty = json.loads(export(clinic, pid, "fhir"))
    Bundle.model_validate(empty)
    assert [e["resource"]["resourceType"] for e in empty["entry"]] == ["Patient"]
    assert export(clinic, pid, "csv").splitlines() == [
        "patient_id,checkin_id,instrument,item,loinc,value,answered_at,partial,late"
    ]


def test_a_demo_patients_bundle_validates(clinic: Clinic) -> None:
    from datetime import UTC, datetime, timedelta

    demo = clinic.cli.json("demo")
    soon = datetime.now(UTC) + timedelta(minutes=6)
    assert clinic.cli.json("tick", "--now", soon.isoformat())["sent"] >= 3
    alex = demo["patients"][0]
    assert alex["channel"] == "sms"
    clinic.text("+12125550101", "mood 3 pain 6")
    for patient in demo["patients"]:
        bundle = json.loads(export(clinic, patient["id"], "fhir"))
        Bundle.model_validate(bundle)
        assert set(references(bundle)) <= set(by_url(bundle))
        stored = clinic.cli.json("responses", "list", "--patient", str(patient["id"]))
        counted = assert_observations_match(bundle, stored)
        sent = [
            m
            for m in clinic.cli.json("messages", "list", "--patient", str(patient["id"]))
            if m["kind"] == "reminder" and m["status"] in ("sent", "delivered")
        ]
        assert len(resources(bundle, "Communication")) == len(sent)
        booked = clinic.cli.json("appointments", "list", str(patient["id"]))
        assert len(resources(bundle, "Appointment")) == len(booked) > 0
        answered = {r["checkin_id"] for r in stored}
        assert len(resources(bundle, "QuestionnaireResponse")) == len(answered)
        assert (counted > 0) == bool(stored)
        if patient is alex:
            assert {"mood": 3, "pain": 6}.items() <= {
                r["item"]: r["value"] for r in stored if r["checkin_id"] == max(answered)
            }.items()


def test_answers_stored_without_a_checkin_are_exported_too(clinic: Clinic) -> None:
    from datetime import UTC, datetime

    from worker.store.db import session_scope
    from worker.store.models import Response

    pid = clinic.patient(PHONE)
    at = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    with session_scope(clinic.rt.sessions) as session:
        for item, value in (("peg_p", 6), ("peg_e", 5), ("peg_g", 4)):
            session.add(
                Response(
                    checkin_id=None,
                    patient_id=pid,
                    instrument="peg",
                    item=item,
                    value=value,
                    answered_at=at,
                    source="api",
                )
            )
    bundle = json.loads(export(clinic, pid, "fhir"))
    Bundle.model_validate(bundle)
    [response] = resources(bundle, "QuestionnaireResponse")
    assert response["questionnaire"] == "http://loinc.org/q/91148-7"
    assert response["status"] == "completed" and len(response["item"]) == 3
    [total] = resources(bundle, "Observation")
    assert total["code"]["coding"] == [{"system": LOINC, "code": "91147-9"}]
    assert float(total["valueQuantity"]["value"]) == 5.0
    assert total["valueQuantity"]["code"] == "{score}"
