"""A running clinic for the API tests (the real web app on loopback, the Twilio emulator and an
SMTP server), plus helpers that give a patient a real history through the public commands and
signed webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from checkin_emulator import TwilioEmulator

from tests.integration.clinic import Clinic, open_clinic
from tests.integration.conftest import (  # noqa: F401 (fixtures)
    smtp_server,
    smtp_server_factory,
    twilio_emulator,
)

TOKEN = "test-token-123"  # CHECKIN_API_TOKEN in open_clinic
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+12125550111"
NY = ZoneInfo("America/New_York")


@pytest.fixture
def clinic(
    db_url: str,
    twilio_emulator: TwilioEmulator,  # noqa: F811 (the imported fixture)
    smtp_server: object,  # noqa: F811
) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    yield c
    c.close()


class Api:
    """httpx against the running app, with a bearer token."""

    def __init__(self, base_url: str, token: str | None = TOKEN) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=f"{base_url}/api", headers=headers, timeout=30)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.post(path, json=body if body is not None else {})

    def delete(self, path: str) -> httpx.Response:
        return self.client.delete(path)

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        r = self.client.request(method, path, json=body, params=params or None)
        assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def api(clinic: Clinic) -> Iterator[Api]:
    client = Api(clinic.base_url)
    yield client
    client.close()


def send_checkin(clinic: Clinic, pid: int, instrument: str) -> None:
    """Give the patient a one-off check-in two minutes from now and send it with `checkin tick`."""
    at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    local = at.astimezone(NY)
    clinic.cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        instrument,
        "--rrule",
        f"FREQ=WEEKLY;BYHOUR={local.hour};BYMINUTE={local.minute}",
        "--start",
        local.date().isoformat(),
        "--until",
        local.date().isoformat(),
    )
    assert clinic.cli.json("tick", "--now", at.isoformat())["sent"] >= 1


def give_history(clinic: Clinic) -> dict[str, Any]:
    """A patient with a mood/pain answer that raises follow-ups, a complete PHQ-9, two
    appointments (one reminded and confirmed by the patient with C) and one acknowledged
    follow-up. Returns the ids."""
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00", "--questionnaire-mode", "sms")
    send_checkin(clinic, pid, "mood_pain")
    clinic.text(PHONE, "mood 2 pain 9")
    send_checkin(clinic, pid, "phq9")
    for answer in ["1", "2", "1", "0", "3", "0", "1", "0", "0"]:
        clinic.text(PHONE, answer)
    day = (datetime.now(NY) + timedelta(days=3)).date()
    confirmed = clinic.cli.json(
        "appointments",
        "add",
        str(pid),
        "--kind",
        "infusion",
        "--at",
        f"{day}T15:00",
        "--location",
        "Suite 200",
    )["id"]
    later = clinic.cli.json(
        "appointments",
        "add",
        str(pid),
        "--kind",
        "therapy",
        "--at",
        f"{day + timedelta(days=7)}T10:00",
    )["id"]
    reminder_at = datetime(day.year, day.month, day.day, 15, tzinfo=NY) - timedelta(days=1)
    clinic.cli.json("tick", "--now", reminder_at.isoformat())
    clinic.text(PHONE, "C")
    followups = clinic.cli.json("followups", "list", "--patient", str(pid))
    acked = next(f for f in followups if f["reason"] == "high_pain")
    clinic.cli.json("followups", "ack", str(acked["id"]), "--by", "Dr. Lee")
    return {
        "patient": pid,
        "confirmed": confirmed,
        "later": later,
        "acked": acked["id"],
        "followups": [f["id"] for f in followups],
    }
