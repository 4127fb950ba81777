"""Property-based: schemathesis reads the live OpenAPI document and sends generated requests,
valid and invalid (boundary values, huge ids, wrong types, hostile strings), for every
operation, with the bearer token, to the running app on a database seeded with a real patient
history. No request may make the server fail (5xx).

Schemathesis runs as its own command (`st run`): its pytest plugin does not work with the
pytest this project uses, and the command also runs its boundary-value ("coverage") phase.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.api.conftest import TOKEN, give_history
from tests.integration.clinic import Clinic

# Per operation and generation mode. About 30 operations: well under two minutes per database.
# A longer hunt: CHECKIN_API_FUZZ_EXAMPLES=500 (and CHECKIN_API_FUZZ_CHECKS=all to look at
# conformance too).
EXAMPLES = int(os.environ.get("CHECKIN_API_FUZZ_EXAMPLES", "40"))
CHECKS = os.environ.get("CHECKIN_API_FUZZ_CHECKS", "not_a_server_error")


def test_no_generated_request_makes_the_api_fail(clinic: Clinic, tmp_path: Path) -> None:
    give_history(clinic)
    st = Path(sys.executable).with_name("st")
    started = time.monotonic()
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{clinic.base_url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--mode",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261121",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {elapsed:.1f}s\n{result.stdout[-3000:]}")
    assert "operations" in result.stdout.lower() or "api operations" in result.stdout.lower(), (
        result.stdout + result.stderr
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
