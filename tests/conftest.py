"""Shared fixtures: real databases (SQLite always, PostgreSQL when CHECKIN_TEST_DATABASE_URL is
set), a real Redis (CHECKIN_TEST_REDIS_URL or the embedded one), settings built directly."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.config import Settings
from worker.services.runtime import Runtime, build_runtime
from worker.store.migrate import upgrade

IN_CI = bool(os.environ.get("CI"))
PG_URL = os.environ.get("CHECKIN_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("CHECKIN_TEST_REDIS_URL")
AMQP_URL = os.environ.get("CHECKIN_TEST_AMQP_URL")


def need_postgres() -> str:
    if PG_URL:
        return PG_URL
    if IN_CI:
        pytest.fail("CHECKIN_TEST_DATABASE_URL is not set in CI: PostgreSQL tests cannot run")
    pytest.skip("PostgreSQL not configured (set CHECKIN_TEST_DATABASE_URL)")


def _with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL schema for one test, dropped afterwards."""
    base = need_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _with_schema(base, schema)
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'checkin.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if REDIS_URL:
        yield REDIS_URL
        return
    if IN_CI:
        pytest.fail("CHECKIN_TEST_REDIS_URL is not set in CI")
    from worker.embedded import EmbeddedRedis

    with EmbeddedRedis(workdir=Path("/tmp")) as server:
        yield server.url


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A real RabbitMQ (CHECKIN_TEST_AMQP_URL), in a virtual host of this test run's own when
    rabbitmqctl can create one (parallel runs then never share a queue)."""
    if not AMQP_URL:
        if IN_CI:
            pytest.fail("CHECKIN_TEST_AMQP_URL is not set in CI: RabbitMQ tests cannot run")
        pytest.skip("RabbitMQ not configured (set CHECKIN_TEST_AMQP_URL)")
    from tests.rabbitmq import own_vhost

    with own_vhost(AMQP_URL) as url:
        yield url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "clinic_name": "Riverside Pain & Wellness",
        "clinic_phone": "+12125550199",
        "public_url": "http://127.0.0.1:8000",
        "require_2fa": False,  # two-factor sign-in has tests of its own
        # Consent texts have tests of their own (tests/consent/); elsewhere they would add a
        # message to every count and a line to every body.
        "optin_confirmation": False,
        "stop_reminder": "off",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def console() -> Channels:
    return Channels(sms=ConsoleSms(io.StringIO()), email=ConsoleEmail(io.StringIO()))


@pytest.fixture
def rt(db_url: str, console: Channels) -> Iterator[Runtime]:
    runtime = build_runtime(make_settings(db_url), channels=console)
    yield runtime
    runtime.close()
