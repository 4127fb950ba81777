"""CSV and FHIR imports through the real `checkin` command, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from tests.cli import Checkin
from worker.store.models import Appointment, Consent, ExternalId, Patient

GOOD = """name,phone,email,tz,language,kind,at,location,external_id
Alex Rivera,(212) 555-0101,,America/New_York,es,infusion,2099-03-10T14:00,Suite 200,PM-1
Alex Rivera,(212) 555-0101,,America/New_York,es,therapy,2099-03-17T09:30,,PM-2
Sam Lee,,sam@example.org,Europe/London,en,consult,2099-03-11T08:00,Room 4,PM-3
"""

BAD = """name,phone,email,tz,language,kind,at,location,external_id
Alex Rivera,(212) 555-0101,,America/New_York,es,infusion,2099-03-10T14:00,Suite 200,PM-1
Bo Park,555,,America/New_York,en,infusion,2099-03-10T14:00,,PM-4
Cy Ode,+12125550102,,Mars/Olympus,en,therapy,2099-03-10T14:00,,PM-5
Di Ray,+12125550103,,America/New_York,en,yoga,2099-03-10T14:00,,PM-6
Ed Fox,+12125550104,,America/New_York,en,consult,10 March,,PM-7
Fay Kim,,,America/New_York,en,consult,2099-03-10T14:00,,PM-8
Gus Hay,+12125550105,,America/New_York,en,consult,2001-03-10T14:00,,PM-9
"""


def _counts(url: str) -> tuple[int, int, int, int]:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return (
                s.scalar(select(func.count()).select_from(Patient)) or 0,
                s.scalar(select(func.count()).select_from(Appointment)) or 0,
                s.scalar(select(func.count()).select_from(ExternalId)) or 0,
                s.scalar(select(func.count()).select_from(Consent)) or 0,
            )
    finally:
        engine.dispose()


def test_csv_appointments_all_or_nothing_and_idempotent(db_url: str, tmp_path: Path) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD)
    result = cli.run("import", "appointments", str(bad), ok=False)
    assert result.exit_code == 1
    err = result.stderr
    for line, why in [
        (3, "phone"),
        (4, "time zone"),
        (5, "kind must be one of"),
        (6, "at must be"),
        (7, "a phone or an email is required"),
        (8, "in the past"),
    ]:
        assert f"line {line}: " in err and why in err.split(f"line {line}: ")[1].splitlines()[0], (
            err
        )
    assert "line 2:" not in err  # the good line is not named
    assert _counts(db_url) == (0, 0, 0, 0)  # nothing written, not even the good line

    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    dry = json.loads(cli.run("import", "appointments", str(good), "--dry-run", "--json").stdout)
    assert dry["written"] is False and dry["errors"] == []
    assert dry["counts"] == {
        "appointments_created": 3,
        "patients_created": 2,
        "patients_unchanged": 1,
    }
    assert _counts(db_url) == (0, 0, 0, 0)

    first = json.loads(cli.run("import", "appointments", str(good), "--json").stdout)
    assert first["written"] is True and first["counts"] == dry["counts"]
    assert _counts(db_url) == (2, 3, 3, 0)  # 3 appointment ids; patients without ids; no consent
    second = json.loads(cli.run("import", "appointments", str(good), "--json").stdout)
    assert second["counts"] == {"appointments_unchanged": 3, "patients_unchanged": 3}
    assert _counts(db_url) == (2, 3, 3, 0)

    # A moved row reschedules (by its external id), and only that one.
    moved = tmp_path / "moved.csv"
    moved.write_text(GOOD.replace("2099-03-10T14:00", "2099-03-12T15:00"))
    third = json.loads(cli.run("import", "appointments", str(moved), "--json").stdout)
    assert third["counts"]["appointments_rescheduled"] == 1
    listed = cli.json("appointments", "list")
    alex = next(a for a in listed if a["external_ids"][0]["value"] == "PM-1")
    assert alex["local_time"].startswith("2099-03-12T15:00")
    assert alex["version"] == 2


def test_csv_patients_without_ids_match_on_name_and_phone(db_url: str, tmp_path: Path) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url, "CHECKIN_CLINIC_TZ": "America/Chicago"})
    f = tmp_path / "patients.csv"
    f.write_text(
        "name,phone,email,tz,language,birth_date\n"
        "Alex Rivera,+12125550101,,,es,1980-01-02\n"
        "Sam Lee,,sam@example.org,Europe/London,,\n"
    )
    assert cli.json("import", "patients", str(f))["counts"] == {"patients_created": 2}
    assert cli.json("import", "patients", str(f))["counts"] == {"patients_unchanged": 2}
    patients = cli.json("patients", "list")
    assert [(p["name"], p["tz"], p["language"]) for p in patients] == [
        ("Alex Rivera", "America/Chicago", "es"),
        ("Sam Lee", "Europe/London", "en"),
    ]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,mobile\nA,1\n")
    assert "unknown column(s) mobile" in cli.fails("import", "patients", str(wrong))


def _bundle(status: str = "booked", start: str = "2099-05-01T10:00:00-04:00") -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b7e7c4e-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.1", "value": "MRN77"}],
                    "name": [{"given": ["Alex"], "family": "Rivera"}],
                    "telecom": [
                        {"system": "phone", "value": "+12125550101", "use": "mobile"},
                        {"system": "email", "value": "alex@example.org"},
                    ],
                    "birthDate": "1980-01-02",
                    "communication": [{"language": {"coding": [{"code": "es"}]}}],
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/timezone",
                            "valueCode": "America/New_York",
                        }
                    ],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Appointment",
                    "identifier": [{"system": "urn:ehr:appt", "value": "E-9"}],
                    "status": status,
                    "serviceType": [{"coding": [{"code": "INF"}]}],
                    "start": start,
                    "participant": [
                        {
                            "actor": {"reference": "urn:uuid:0b7e7c4e-0000-4000-8000-000000000001"},
                            "status": "accepted",
                        },
                        {
                            "actor": {"display": "Suite 200", "type": "Location"},
                            "status": "accepted",
                        },
                    ],
                },
                "request": {"method": "POST", "url": "Appointment"},
            },
        ],
    }


def test_fhir_import_file(db_url: str, tmp_path: Path) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    f = tmp_path / "bundle.json"
    f.write_text(json.dumps(_bundle()))
    out = json.loads(cli.run("import", "fhir", str(f)).stdout)
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created", "201 Created"]
    again = json.loads(cli.run("import", "fhir", str(f)).stdout)
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK", "200 OK"]
    assert _counts(db_url) == (1, 1, 2, 0)

    # Bad files: not JSON, not a transaction, invalid FHIR, an entry without an MRN. Each is
    # refused whole; nothing changes.
    bad_entry = _bundle(start="2099-06-01T10:00:00-04:00")
    bad_entry["entry"][0]["resource"]["identifier"] = [{"value": "no-system"}]
    for content, why in [
        ("{not json", "not JSON"),
        (json.dumps({**_bundle(), "type": "collection"}), "transaction"),
        (json.dumps(_bundle(start="tomorrow")), "Bundle"),
        (json.dumps(bad_entry), "Bundle.entry[0]: Patient.identifier"),
    ]:
        f.write_text(content)
        assert why in cli.fails("import", "fhir", str(f))
    assert _counts(db_url) == (1, 1, 2, 0)

    # Cancelled through FHIR: the appointment is cancelled, and the export carries the ids.
    f.write_text(json.dumps(_bundle(status="cancelled")))
    cli.run("import", "fhir", str(f))
    export = cli.json("export", "--patient", "1", "--format", "fhir")
    resources = {e["resource"]["resourceType"]: e["resource"] for e in export["entry"]}
    assert {"system": "urn:oid:2.16.840.1.113883.3.1", "value": "MRN77"} in resources["Patient"][
        "identifier"
    ]
    assert {"system": "urn:ehr:appt", "value": "E-9"} in resources["Appointment"]["identifier"]
    assert resources["Appointment"]["status"] == "cancelled"
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("select status from appointments")).scalar() == "cancelled"
    engine.dispose()


def _visit(status: str, ehr_id: str, start: str) -> str:
    bundle = _bundle(status=status, start=start)
    bundle["entry"][1]["resource"]["identifier"] = [{"system": "urn:ehr:appt", "value": ehr_id}]
    return json.dumps(bundle)


def _rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_fhir_fulfilled_and_noshow_record_the_visit_as_staff_marking_it_would(
    db_url: str, tmp_path: Path
) -> None:
    """`fulfilled` is what our own export says of an attended visit, so it reads back as
    attended; `noshow` goes through the same path as staff marking it (and the HL7 S26): once,
    audited, refused where staff would be refused. Dates are fixed, far in the past or future."""
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    f = tmp_path / "bundle.json"
    past, later, ahead = (
        "2001-05-01T10:00:00-04:00",
        "2001-05-08T10:00:00-04:00",
        "2099-05-01T10:00:00-04:00",
    )

    # A visit booked, then fulfilled: attended, audited once; the same Bundle again changes nothing.
    f.write_text(_visit("booked", "V-1", past))
    cli.run("import", "fhir", str(f))
    f.write_text(_visit("fulfilled", "V-1", past))
    for _ in range(2):
        out = json.loads(cli.run("import", "fhir", str(f)).stdout)
        assert [e["response"]["status"] for e in out["entry"]] == ["200 OK", "200 OK"]
    # A visit first heard of as fulfilled: created attended.
    f.write_text(_visit("fulfilled", "V-2", later))
    out = json.loads(cli.run("import", "fhir", str(f)).stdout)
    assert out["entry"][1]["response"]["status"] == "201 Created"
    assert _rows(
        db_url,
        "select e.value, a.status from appointments a join external_ids e "
        "on e.entity = 'appointment' and e.entity_id = a.id order by e.value",
    ) == [("V-1", "attended"), ("V-2", "attended")]
    assert _rows(
        db_url, "select count(*) from audit_events where action = 'appointment.attended'"
    ) == [(2,)]
    export = cli.json("export", "--patient", "1", "--format", "fhir")
    statuses = [
        e["resource"]["status"]
        for e in export["entry"]
        if e["resource"]["resourceType"] == "Appointment"
    ]
    assert statuses == ["fulfilled", "fulfilled"]

    # Refused as staff would be, and nothing written: a visit still ahead cannot be fulfilled;
    # an attended visit cannot become a no-show.
    before = _counts(db_url)
    f.write_text(_visit("fulfilled", "V-3", ahead))
    assert "Bundle.entry[1]: Appointment.status 'fulfilled': appointment" in cli.fails(
        "import", "fhir", str(f)
    )
    f.write_text(_visit("noshow", "V-1", past))
    assert "is marked attended; no-show not recorded" in cli.fails("import", "fhir", str(f))
    assert _counts(db_url) == before

    # A no-show: the front desk's follow-up once, audited, however often the EHR says it.
    f.write_text(_visit("booked", "V-4", past))
    cli.run("import", "fhir", str(f))
    f.write_text(_visit("noshow", "V-4", past))
    for _ in range(2):
        cli.run("import", "fhir", str(f))
    assert _rows(
        db_url,
        "select a.status from appointments a join external_ids e "
        "on e.entity = 'appointment' and e.entity_id = a.id where e.value = 'V-4'",
    ) == [("no_show",)]
    assert _rows(db_url, "select count(*) from followups where reason = 'no_show'") == [(1,)]
    assert _rows(
        db_url, "select count(*) from audit_events where action = 'appointment.no_show'"
    ) == [(1,)]
    # Unknown to us: nothing to mark.
    f.write_text(_visit("noshow", "V-9", past))
    assert "no such appointment to mark as a no-show" in cli.fails("import", "fhir", str(f))
