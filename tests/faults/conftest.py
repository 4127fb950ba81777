"""The fault-injection suite (`make faults`): one summary line per fault at the end."""

from __future__ import annotations

import pytest

from tests.faults.harness import SUMMARY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("fault-injection summary")
        for line in SUMMARY:
            terminalreporter.write_line(line)
