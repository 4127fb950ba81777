"""Drive the real `checkin` command in-process (Typer's runner) with a given environment."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from worker.cli import app

_runner = CliRunner()


class Checkin:
    """`checkin` bound to one environment, e.g. Checkin({"CHECKIN_DATABASE_URL": url})."""

    def __init__(self, env: dict[str, str]) -> None:
        # Consent texts have tests of their own (tests/consent/); elsewhere they would add a
        # message to every count and a line to every body.
        self.env = {
            "CHECKIN_CLINIC_NAME": "Riverside Pain & Wellness",
            "CHECKIN_OPTIN_CONFIRMATION": "0",
            "CHECKIN_STOP_REMINDER": "off",
            **env,
        }

    def run(self, *args: str, ok: bool = True) -> Any:
        result = _runner.invoke(app, list(args), env=self.env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"checkin {' '.join(args)} failed: {result.output}"
        return result

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        return json.loads(result.stdout)

    def fails(self, *args: str) -> str:
        result = self.run(*args, ok=False)
        assert result.exit_code == 1, f"expected exit 1, got {result.exit_code}: {result.output}"
        return result.stderr
