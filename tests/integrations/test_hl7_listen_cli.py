"""`checkin hl7 listen` as a real process: it answers over MLLP and stops cleanly on SIGTERM;
it refuses to start without CHECKIN_CLINIC_TZ."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.integrations.siu import Client, ack_code, free_port, siu

CHECKIN = Path(sys.prefix) / "bin" / "checkin"


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKIN_", "TWILIO_"))}
    return {**env, "CHECKIN_DATABASE_URL": url, **extra}


def test_listen_process_answers_and_stops(sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = _env(sqlite_url, CHECKIN_HL7_PORT=str(port), CHECKIN_CLINIC_TZ="America/New_York")
    proc = subprocess.Popen(
        [str(CHECKIN), "hl7", "listen"], env=env, cwd=tmp_path, stderr=subprocess.PIPE
    )
    try:

        async def talk() -> str:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client = await Client.open(port)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    await asyncio.sleep(0.2)
            ack = await client.send(siu("S12", "P1", start="20991210140000-0500"))
            await client.close()
            return ack_code(ack)

        assert asyncio.run(talk()) == "AA"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from appointments")).scalar() == 1
    engine.dispose()


def test_listen_needs_the_clinic_zone(sqlite_url: str, tmp_path: Path) -> None:
    env = _env(sqlite_url, CHECKIN_HL7_PORT=str(free_port()))
    done = subprocess.run(
        [str(CHECKIN), "hl7", "listen"], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"CHECKIN_CLINIC_TZ" in done.stderr
    bad = _env(sqlite_url, CHECKIN_HL7_PORT="2575", CHECKIN_CLINIC_TZ="Mars/Base")
    done = subprocess.run(
        [str(CHECKIN), "hl7", "listen"], env=bad, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 2 and b"CHECKIN_CLINIC_TZ" in done.stderr
