"""docker-compose.rabbitmq.yml, the RabbitMQ variant: an override of docker-compose.yml that
points every checkin service at RabbitMQ and keeps Redis for pacing; what the containers get
is a valid configuration (fed through the real Settings)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_compose import (
    CHECKIN_SERVICES,
    COMPOSE_FILE,
    DOT_ENV,
    ROOT,
    interpolate,
    resolved_environment,
)
from worker.config import load_settings

OVERRIDE = ROOT / "docker-compose.rabbitmq.yml"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_every_checkin_service_uses_rabbitmq_and_redis_for_pacing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base, override = _load(COMPOSE_FILE), _load(OVERRIDE)
    assert override["services"]["rabbitmq"]["healthcheck"]["test"]
    for name in list(os.environ):
        if name.upper().startswith(("CHECKIN_", "TWILIO_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for service in CHECKIN_SERVICES:
        dot_env = {**DOT_ENV, "RABBITMQ_PASSWORD": "rabbit-password-from-dot-env"}
        env = {
            **resolved_environment(base, dot_env),
            **{
                k: interpolate(str(v), dot_env)
                for k, v in override["services"][service]["environment"].items()
            },
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        s = load_settings()
        assert s.broker_kind == "amqp", service
        # Pacing's Redis needs the password the compose Redis is started with.
        assert s.effective_redis_url == f"redis://:{DOT_ENV['REDIS_PASSWORD']}@redis:6379/0"
        assert "rabbit-password-from-dot-env@rabbitmq" in str(s.broker_url), service
        if service != "migrate":
            assert "rabbitmq" in override["services"][service]["depends_on"], service
    flower = " ".join(override["services"]["flower"]["command"])
    assert "--broker=amqp://" in flower
    raw = OVERRIDE.read_text()
    assert "checkin:checkin@" not in raw and "RABBITMQ_DEFAULT_PASS: checkin" not in raw


def test_docker_compose_config_accepts_the_override() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no `docker` client on PATH: `docker compose config` not run")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if version.returncode != 0:
        pytest.skip("`docker compose` is not available here: `docker compose config` not run")
    files = ["-f", str(COMPOSE_FILE), "-f", str(OVERRIDE)]
    proc = subprocess.run(
        [docker, "compose", *files, "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
