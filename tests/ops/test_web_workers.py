"""`checkin web` with several processes (CHECKIN_WEB_WORKERS or --workers): each answers
webhooks, and /metrics, whichever process answers the scrape, counts the webhooks all of them
answered (prometheus_client's multiprocess mode; everything else on /metrics comes from the
database and the broker at scrape time, the same in every process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.procs import wait_for
from tests.ops.helpers import free_port
from worker.web.webhooks import SMS_PATH


def answered(base_url: str) -> float:
    """The webhooks counted on one scrape (a new connection each time, so any process)."""
    text = httpx.get(f"{base_url}/metrics", headers={"Connection": "close"}).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "checkin_webhook_seconds_count" and s.labels.get("route") == "sms"
    )


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_two_web_processes_answer_and_share_their_webhook_metrics(
    sqlite_url: str, twilio_emulator: TwilioEmulator, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CHECKIN_DATABASE_URL": sqlite_url,
        "CHECKIN_PUBLIC_URL": base_url,
        "TWILIO_ACCOUNT_SID": twilio_emulator.account_sid,
        "TWILIO_AUTH_TOKEN": twilio_emulator.auth_token,
        "CHECKIN_WEB_WORKERS": "2",
    }
    with (tmp_path / "web.log").open("wb") as log:
        web = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "web", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base_url}/metrics").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the web app")
        wait_for(lambda: len(children(web.pid)) >= 2, 60, "two web processes")
        for i in range(20):
            reply = twilio_emulator.send_inbound(base_url + SMS_PATH, f"+1212555{i:04d}", "7")
            assert reply.status_code == 200
        assert [answered(base_url) for _ in range(8)] == [20.0] * 8
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
