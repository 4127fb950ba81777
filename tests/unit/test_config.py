"""Configuration: the defaults CONTRACT.md promises, one clear line for every bad value, and a
command line that refuses to start half-configured and starts without the heavy imports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import time as clock
from pathlib import Path
from typing import Any

import pytest

from worker.config import ConfigError, Settings, load_settings

CHECKIN = Path(sys.prefix) / "bin" / "checkin"

# CONTRACT.md's configuration table, field by field.
CONTRACT_DEFAULTS: dict[str, Any] = {
    "database_url": "sqlite:///./var/checkin.db",
    "broker_url": None,
    "sms_backend": "console",
    "email_backend": "console",
    "twilio_account_sid": None,
    "twilio_auth_token": None,
    "twilio_from_number": None,
    "twilio_messaging_service_sid": None,
    "twilio_api_url": "https://api.twilio.com",
    "smtp_host": "localhost",
    "smtp_port": 25,
    "smtp_user": None,
    "smtp_password": None,
    "smtp_starttls": False,
    "email_from": None,
    "public_url": "http://127.0.0.1:8000",
    "api_token": None,
    "clinic_name": "Clinic",
    "clinic_phone": None,
    "oncall_phone": None,
    "oncall_email": None,
    "repage_minutes": 15,
    "repage_count": 4,
    "oncall_backup_phone": None,
    "oncall_backup_email": None,
    "send_window": "08:00-21:00",
    "tick_seconds": 15,
    "protocols_dir": None,
}

TWILIO_CREDENTIALS = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t0ken"}


def _ours(name: str) -> bool:
    # pydantic-settings matches names case-insensitively, so `checkin_tick_seconds` counts too.
    return name.upper().startswith(("CHECKIN_", "TWILIO_"))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No CHECKIN_* or TWILIO_* variable from the developer's shell, and a working directory
    without a .env file; set variables on the returned monkeypatch."""
    for name in list(os.environ):
        if _ours(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def named(variable: str, message: str) -> bool:
    """`variable` appears as a whole name: CHECKIN_TWILIO_API_URL does not name TWILIO_API_URL."""
    return re.search(rf"(?<![A-Za-z0-9_]){variable}(?![A-Za-z0-9_])", message) is not None


def clean_environ(home: Path, **extra: str) -> dict[str, str]:
    """What a fresh shell would have: PATH and HOME, plus the variables under test."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


# ---------------------------------------------------------------- defaults and sources


def test_defaults_match_the_contract(env: pytest.MonkeyPatch) -> None:
    for settings in (Settings(_env_file=None), load_settings()):
        values = {name: getattr(settings, name) for name in CONTRACT_DEFAULTS}
        assert values == CONTRACT_DEFAULTS
        assert settings.window == (clock(8, 0), clock(21, 0))
        assert settings.is_sqlite


def test_values_come_from_the_environment_and_twilio_names_have_no_prefix(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("CHECKIN_DATABASE_URL", "postgresql+psycopg://checkin:pw@db:5432/checkin")
    env.setenv("CHECKIN_BROKER_URL", "redis://redis:6379/0")
    env.setenv("CHECKIN_SMS_BACKEND", "twilio")
    for name, value in TWILIO_CREDENTIALS.items():
        env.setenv(name, value)
    env.setenv("TWILIO_MESSAGING_SERVICE_SID", "MG" + "1" * 32)
    env.setenv("TWILIO_API_URL", "http://127.0.0.1:9999/")
    env.setenv("CHECKIN_EMAIL_BACKEND", "smtp")
    env.setenv("CHECKIN_EMAIL_FROM", "checkin@clinic.example")
    env.setenv("CHECKIN_SMTP_PORT", "2525")
    env.setenv("CHECKIN_SMTP_STARTTLS", "true")
    env.setenv("CHECKIN_SEND_WINDOW", "09:30-20:00")
    env.setenv("CHECKIN_TICK_SECONDS", "2.5")

    s = load_settings()

    assert s.database_url == "postgresql+psycopg://checkin:pw@db:5432/checkin"
    assert not s.is_sqlite
    assert s.broker_url == "redis://redis:6379/0"
    assert (
        s.sms_backend == "twilio"
        and s.twilio_account_sid == TWILIO_CREDENTIALS["TWILIO_ACCOUNT_SID"]
    )
    assert s.twilio_auth_token is not None
    assert s.twilio_auth_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(s)  # a secret never shows up in a log line or traceback
    assert s.twilio_messaging_service_sid == "MG" + "1" * 32
    assert s.twilio_api_url == "http://127.0.0.1:9999"
    assert (s.email_backend, s.email_from, s.smtp_port, s.smtp_starttls) == (
        "smtp",
        "checkin@clinic.example",
        2525,
        True,
    )
    assert s.window == (clock(9, 30), clock(20, 0))
    assert s.tick_seconds == 2.5


def test_the_escalation_ladder_settings_are_read_and_normalised(env: pytest.MonkeyPatch) -> None:
    env.setenv("CHECKIN_REPAGE_MINUTES", "5")
    env.setenv("CHECKIN_REPAGE_COUNT", "0")
    env.setenv("CHECKIN_ONCALL_PHONE", "(212) 555-9911")
    env.setenv("CHECKIN_ONCALL_BACKUP_PHONE", "212 555 9912")
    env.setenv("CHECKIN_ONCALL_BACKUP_EMAIL", "Backup@Clinic.Example")
    s = load_settings()
    assert (s.repage_minutes, s.repage_count) == (5, 0)
    assert (s.oncall_phone, s.oncall_backup_phone) == ("+12125559911", "+12125559912")
    assert s.oncall_backup_email == "Backup@clinic.example"


def test_a_dot_env_file_in_the_working_directory_is_read_and_the_environment_wins(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "CHECKIN_CLINIC_NAME=Riverside Pain & Wellness\nCHECKIN_TICK_SECONDS=30\n"
        "TWILIO_FROM_NUMBER=+12125550100\n"
    )
    env.setenv("CHECKIN_TICK_SECONDS", "5")

    s = load_settings()

    assert s.clinic_name == "Riverside Pain & Wellness"
    assert s.twilio_from_number == "+12125550100"
    assert s.tick_seconds == 5


def test_an_empty_broker_url_means_the_embedded_redis(env: pytest.MonkeyPatch) -> None:
    env.setenv("CHECKIN_BROKER_URL", "")
    assert load_settings().broker_url is None


# ---------------------------------------------------------------- bad values


BAD_VALUES = [
    pytest.param({"CHECKIN_SMS_BACKEND": "sms"}, "CHECKIN_SMS_BACKEND", id="unknown-sms-backend"),
    pytest.param(
        {"CHECKIN_EMAIL_BACKEND": "sendmail"}, "CHECKIN_EMAIL_BACKEND", id="unknown-email-backend"
    ),
    pytest.param(
        {"CHECKIN_DATABASE_URL": "mysql://checkin:s3cret@db/checkin"},
        "CHECKIN_DATABASE_URL",
        id="database-url-unsupported-scheme",
    ),
    pytest.param(
        {"CHECKIN_DATABASE_URL": "var/checkin.db"}, "CHECKIN_DATABASE_URL", id="database-url-a-path"
    ),
    pytest.param(
        {"CHECKIN_BROKER_URL": "mqtt://guest:s3cret@rabbit//"},
        "CHECKIN_BROKER_URL",
        id="broker-url-unsupported-scheme",
    ),
    pytest.param(
        {"CHECKIN_BROKER_URL": "amqp://guest:s3cret@rabbit//"},
        "CHECKIN_REDIS_URL",
        id="rabbitmq-without-redis-for-pacing",
    ),
    pytest.param(
        {"CHECKIN_BROKER_URL": "sentinel://s1:26379;sentinel://:s3cret@s2:nope"},
        "CHECKIN_BROKER_URL",
        id="sentinel-bad-port",
    ),
    pytest.param(
        {"CHECKIN_REDIS_URL": "amqp://guest:s3cret@rabbit//"},
        "CHECKIN_REDIS_URL",
        id="redis-url-not-redis",
    ),
    pytest.param(
        {"CHECKIN_BROKER_URL": "localhost:6379"}, "CHECKIN_BROKER_URL", id="broker-url-no-scheme"
    ),
    pytest.param({"CHECKIN_SEND_WINDOW": "8-21"}, "CHECKIN_SEND_WINDOW", id="window-format"),
    pytest.param(
        {"CHECKIN_SEND_WINDOW": "21:00-08:00"}, "CHECKIN_SEND_WINDOW", id="window-backwards"
    ),
    pytest.param({"CHECKIN_SEND_WINDOW": "08:00-25:00"}, "CHECKIN_SEND_WINDOW", id="window-25h"),
    pytest.param(
        {"CHECKIN_SMS_BACKEND": "twilio"}, "TWILIO_ACCOUNT_SID", id="twilio-without-credentials"
    ),
    pytest.param(
        {"CHECKIN_SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32},
        "TWILIO_AUTH_TOKEN",
        id="twilio-without-auth-token",
    ),
    pytest.param(
        {"CHECKIN_SMS_BACKEND": "twilio", **TWILIO_CREDENTIALS},
        "TWILIO_FROM_NUMBER",
        id="twilio-without-sender",
    ),
    pytest.param(
        {"CHECKIN_EMAIL_BACKEND": "smtp"}, "CHECKIN_EMAIL_FROM", id="smtp-without-email-from"
    ),
    pytest.param(
        {"CHECKIN_PUBLIC_URL": "checkin.clinic.example"}, "CHECKIN_PUBLIC_URL", id="public-url-bare"
    ),
    pytest.param(
        {"CHECKIN_PUBLIC_URL": "ftp://checkin.clinic.example"},
        "CHECKIN_PUBLIC_URL",
        id="public-url-scheme",
    ),
    pytest.param({"CHECKIN_TICK_SECONDS": "-5"}, "CHECKIN_TICK_SECONDS", id="tick-negative"),
    pytest.param({"CHECKIN_TICK_SECONDS": "0"}, "CHECKIN_TICK_SECONDS", id="tick-zero"),
    pytest.param({"CHECKIN_TICK_SECONDS": "soon"}, "CHECKIN_TICK_SECONDS", id="tick-not-a-number"),
    pytest.param({"CHECKIN_SMTP_PORT": "70000"}, "CHECKIN_SMTP_PORT", id="smtp-port-range"),
    pytest.param({"CHECKIN_REPAGE_MINUTES": "0"}, "CHECKIN_REPAGE_MINUTES", id="repage-zero"),
    pytest.param({"CHECKIN_REPAGE_COUNT": "-1"}, "CHECKIN_REPAGE_COUNT", id="repage-count"),
    pytest.param(
        {"CHECKIN_ONCALL_BACKUP_PHONE": "555-CALL-ME"},
        "CHECKIN_ONCALL_BACKUP_PHONE",
        id="backup-phone",
    ),
    pytest.param(
        {"CHECKIN_ONCALL_BACKUP_EMAIL": "backup-at-clinic"},
        "CHECKIN_ONCALL_BACKUP_EMAIL",
        id="backup-email",
    ),
    pytest.param({"CHECKIN_ONCALL_PHONE": "12"}, "CHECKIN_ONCALL_PHONE", id="oncall-phone"),
    pytest.param({"CHECKIN_ONCALL_EMAIL": "on call"}, "CHECKIN_ONCALL_EMAIL", id="oncall-email"),
    pytest.param(
        {"TWILIO_API_URL": "localhost:8080"},
        "TWILIO_API_URL",
        id="twilio-api-url",
    ),
    pytest.param(
        {"CHECKIN_DATABASE_URL": "postgresql+psycopg://checkin:pw@db:notaport/checkin"},
        "CHECKIN_DATABASE_URL",
        id="database-url-bad-port",
    ),
    pytest.param(
        {"CHECKIN_BROKER_URL": "redis://127.0.0.1:99999/0"},
        "CHECKIN_BROKER_URL",
        id="broker-url-bad-port",
    ),
]


@pytest.mark.parametrize(
    ("values", "kind", "redis_url"),
    [
        ({"CHECKIN_BROKER_URL": "redis://r:6379/2"}, "redis", "redis://r:6379/2"),
        (
            {"CHECKIN_BROKER_URL": "sentinel://s1:26379;sentinel://s2:26379/1?master_name=m"},
            "sentinel",
            "sentinel://s1:26379;sentinel://s2:26379/1?master_name=m",
        ),
        (
            {
                "CHECKIN_BROKER_URL": "amqp://u:p@rabbit:5672/clinic",
                "CHECKIN_REDIS_URL": "redis://r",
            },
            "amqp",
            "redis://r",
        ),
        # Pacing off: RabbitMQ alone is enough.
        ({"CHECKIN_BROKER_URL": "amqps://u:p@rabbit/", "CHECKIN_SMS_RATE": "0"}, "amqp", None),
        (
            {"CHECKIN_BROKER_URL": "redis://broker/0", "CHECKIN_REDIS_URL": "redis://pacing/3"},
            "redis",
            "redis://pacing/3",
        ),
    ],
)
def test_brokers_and_the_redis_that_pacing_uses(
    env: pytest.MonkeyPatch, values: dict[str, str], kind: str, redis_url: str | None
) -> None:
    for name, value in values.items():
        env.setenv(name, value)
    s = load_settings()
    assert s.broker_kind == kind
    assert s.effective_redis_url == redis_url


@pytest.mark.parametrize(("values", "variable"), BAD_VALUES)
def test_a_bad_value_is_one_line_naming_the_variable(
    env: pytest.MonkeyPatch, values: dict[str, str], variable: str
) -> None:
    for name, value in values.items():
        env.setenv(name, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    message = str(caught.value)
    assert "\n" not in message, message
    assert named(variable, message), message
    assert len(message) < 200, message
    assert "s3cret" not in message, "a password in a bad URL must not be echoed"


def test_constructing_settings_directly_names_the_variable_too(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^CHECKIN_TICK_SECONDS: "):
        load_settings(_env_file=None, tick_seconds=-1)
    with pytest.raises(ConfigError, match=r"^TWILIO_API_URL: "):
        load_settings(_env_file=None, twilio_api_url="not a url")


# ---------------------------------------------------------------- through the command line


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["patients", "list"], "CHECKIN_SMS_BACKEND", "carrier-pigeon"),
        (["patients", "list"], "CHECKIN_DATABASE_URL", "mysql://checkin:s3cret@db/checkin"),
        (["patients", "list"], "CHECKIN_SEND_WINDOW", "8am-9pm"),
        (["patients", "list", "--json"], "CHECKIN_EMAIL_BACKEND", "smtp"),  # no EMAIL_FROM
        (["db", "upgrade"], "CHECKIN_TICK_SECONDS", "-1"),
        (["run", "--port", "1"], "CHECKIN_BROKER_URL", "http://redis:6379"),
    ],
)
def test_the_cli_refuses_a_bad_variable_with_status_2_and_writes_nothing(
    tmp_path: Path, command: list[str], variable: str, value: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "clinic"
    cwd.mkdir()

    proc = subprocess.run(
        [str(CHECKIN), *command],
        cwd=cwd,
        env=clean_environ(home, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert named(variable, lines[0]) and "Traceback" not in proc.stderr
    assert "s3cret" not in proc.stderr
    # Nothing written: no ./var, no database file, no beat schedule, nothing half-started.
    assert list(cwd.iterdir()) == []


# ---------------------------------------------------------------- start-up cost


HEAVY = ("celery", "kombu", "fastapi", "starlette", "uvicorn", "twilio", "sqlalchemy.orm")
HEAVY_PROJECT = ("worker.store.models", "worker.celery_app", "worker.tasks", "worker.web")


def _modules_after(code: str) -> list[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "sys.__stdout__.write('\\n' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        env=clean_environ(Path.home()),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def _heavy(modules: list[str]) -> list[str]:
    return [
        m for m in modules if any(m == h or m.startswith(h + ".") for h in (*HEAVY, *HEAVY_PROJECT))
    ]


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    assert _heavy(_modules_after("import worker.cli")) == []


def test_help_loads_no_heavy_dependency() -> None:
    code = (
        "import worker.cli\n"
        "sys.argv = ['checkin', '--help']\n"
        "try:\n"
        "    worker.cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _heavy(_modules_after(code)) == []


def test_help_starts_quickly(tmp_path: Path) -> None:
    """Measured and printed, not asserted on (machines differ); the import checks above are
    what keeps it fast."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        proc = subprocess.run(
            [str(CHECKIN), "--help"],
            env=clean_environ(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        timings.append(time.perf_counter() - started)
        assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    print(f"`checkin --help` wall time: best {min(timings) * 1000:.0f} ms of {len(timings)}")
