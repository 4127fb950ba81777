"""Shared fixtures: real databases (SQLite always, PostgreSQL when CHECKIN_TEST_DATABASE_URL is
set), a real Redis (CHECKIN_TEST_REDIS_URL or the embedded one), settings built directly."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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


# Migrating a database takes about a second on PostgreSQL and half a second on SQLite, and
# hundreds of tests each want a fresh one: the migrations run once per session, into a template
# that each test gets a copy of (the same schema, alembic_version included).


@pytest.fixture(scope="session")
def pg_template() -> Iterator[tuple[str, str] | None]:
    """(name, DDL): one migrated schema as pg_dump writes it (the schema named `name` in it),
    replayed under another name for each test. None without PostgreSQL or pg_dump: each test
    then migrates its own."""
    if not PG_URL or shutil.which("pg_dump") is None:
        yield None
        return
    name = f"tpl_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        upgrade(_with_schema(PG_URL, name))
        u = make_url(PG_URL)
        env = {**os.environ, **({"PGPASSWORD": u.password} if u.password else {})}
        argv = ["pg_dump", "--schema", name, "--no-owner", "--no-privileges", "--inserts"]
        argv += ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432)]
        argv += ["-U", u.username or "postgres", u.database or "postgres"]
        dump = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()
    # Lines for psql alone (pg_dump's \restrict and \unrestrict) are no SQL.
    yield name, "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def pg_url(pg_template: tuple[str, str] | None) -> Iterator[str]:
    """A fresh, migrated PostgreSQL schema for one test, dropped afterwards."""
    base = need_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    url = _with_schema(base, schema)
    if pg_template is None:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        upgrade(url)
    else:
        import psycopg

        name, ddl = pg_template
        with psycopg.connect(_libpq(base)) as conn:  # one transaction, committed on exit
            conn.execute(ddl.replace(name, schema).encode())
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "checkin.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "checkin.db"
    # SQLite's backup API: a consistent copy, whatever journal mode the file is in.
    with closing(sqlite3.connect(sqlite_template)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


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
