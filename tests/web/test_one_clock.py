"""One clock: the API, the command line (and the tasks, webhooks and dashboard, which already
did) read `now` from the settings' clock, so a CHECKIN_CLOCK rehearsal moves them all."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli import Checkin
from tests.conftest import make_settings
from tests.ops.helpers import serve
from worker.services.runtime import Runtime, build_runtime
from worker.web.app import create_app

WORKER = Path(__file__).resolve().parents[2] / "worker"

# The only places allowed to read the system clock, each with why.
ALLOWED = {
    # The clock itself: real time, and the rehearsal clock that runs from it.
    "config.py": "the settings' clock is built here",
    # An HTTP-date in Retry-After is the provider's real time; the rehearsal clock would
    # turn a 30 s pause into years.
    "channels/twilio_http.py": "Retry-After dates are the provider's real time",
}
CALL = re.compile(r"\bdatetime\.(now|utcnow|today)\(|\bdate\.today\(")


def test_nothing_in_worker_reads_the_system_clock_but_the_clock_module() -> None:
    found = []
    for path in sorted(WORKER.rglob("*.py")):
        rel = path.relative_to(WORKER).as_posix()
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if CALL.search(code) and "settings.now" not in code:
                found.append(f"worker/{rel}:{number}: {line.strip()}")
    assert found == [], "read `now` from settings.now / Runtime.now():\n" + "\n".join(found)


def test_the_allowlist_names_files_that_still_need_it() -> None:
    # An entry whose file no longer reads the system clock should go: the list stays honest.
    for rel in ALLOWED:
        text = (WORKER / rel).read_text(encoding="utf-8")
        assert "datetime.now(" in text, f"{rel} no longer reads the system clock: drop it"


# A Monday in the past, 10:00 in New York: far from any day the suite may run on.
START = datetime(2020, 3, 2, 15, 0, tzinfo=UTC)
CLOCK = f"{START.isoformat()}@1"
PHONE = "+12125550142"
TOKEN = "clock-test-token"


def at_start(value: str) -> bool:
    """Within the hour after START: the rehearsal clock runs at real speed from START."""
    return START <= datetime.fromisoformat(value) < START + timedelta(hours=1)


@pytest.fixture
def rehearsal(db_url: str) -> Iterator[Runtime]:
    rt = build_runtime(make_settings(db_url, clock=CLOCK, api_token=TOKEN))
    yield rt
    rt.close()


def test_a_rehearsal_clock_moves_the_command_line_and_the_api(rehearsal: Runtime) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": rehearsal.settings.database_url, "CHECKIN_CLOCK": CLOCK})
    pid = cli.json(
        "patients", "add", "--name", "Rae", "--phone", PHONE, "--tz", "America/New_York",
        "--channel", "sms", "--consent", "sms", "--send-window", "00:00-24:00",
    )["id"]  # fmt: skip
    # No --start: the schedule starts "today", which is the rehearsal's 2 March 2020.
    cli.json(
        "schedules", "add", str(pid), "--instrument", "mood",
        "--rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
    )  # fmt: skip
    shown = cli.json("patients", "show", str(pid))
    assert at_start(shown["created_at"]), shown["created_at"]
    assert shown["schedules"][0]["start"] == "2020-03-02"
    # 10:00 in New York has passed 09:00: the next check-in is on 3 March (14:00 UTC, EST).
    first = datetime.fromisoformat(cli.json("preview", str(pid), "--days", "2")[0]["due_at"])
    assert first == datetime(2020, 3, 3, 14, 0, tzinfo=UTC)
    # The audit trail of the command's own reads is stamped with the rehearsal's time too.
    events = cli.json("audit", "list", "--patient", str(pid))
    assert events and all(at_start(e["at"]) for e in events), events

    with serve(create_app(rehearsal.settings, rehearsal)) as url:
        api = httpx.Client(
            base_url=f"{url}/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        with api:
            preview: Any = api.get(f"/patients/{pid}/preview", params={"days": 2}).json()
            assert datetime.fromisoformat(preview["items"][0]["due_at"]) == first
            r = api.post(
                "/patients",
                json={"name": "Sam", "phone": "+12125550143", "tz": "America/Chicago",
                      "channel": "sms"},
            )  # fmt: skip
            assert r.status_code == 201, r.text
            assert at_start(r.json()["created_at"]), r.json()
            audit = api.get("/audit", params={"patient_id": pid, "limit": 500}).json()
    # The API's own audit rows (the preview read, written before the route ran) too.
    api_rows = [e for e in audit["items"] if e["actor"] == "installation_token"]
    assert api_rows and all(at_start(e["at"]) for e in audit["items"]), audit
