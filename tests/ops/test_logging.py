"""Logs: text or JSON lines; phone numbers, email addresses and secrets masked in every record,
whatever its level, its logger, its arguments or its traceback."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import make_settings
from worker.logging_setup import configure_logging

SECRETS = {
    "twilio_auth_token": "tw-auth-7f3a9c0d1e2b",
    "api_token": "api-token-5d6e7f8a9b0c",
    "smtp_password": "smtp-pass-1a2b3c4d",
    "secret_key": "secret-key-9z8y7x6w",
}


@pytest.fixture
def capture() -> Iterator[Any]:
    """configure_logging on a StringIO; the root logger is put back as it was afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    installed: list[logging.Handler] = []

    def start(**overrides: Any) -> io.StringIO:
        stream = io.StringIO()
        values = {"database_url": "sqlite://", **SECRETS, **overrides}
        settings = make_settings(values.pop("database_url"), **values)
        installed.append(configure_logging(settings, logging.DEBUG, stream=stream))
        return stream

    yield start
    for handler in installed:
        root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_phones_and_emails_are_masked_in_messages_and_arguments_at_every_level(
    capture: Any,
) -> None:
    stream = capture()
    log = logging.getLogger("some.library")
    log.debug("sending to +12125550101 for %s", "alex@example.com")
    log.info("reply from %s: (212) 555-0102 or 646.555.0103", "+44 20 7946 0958")
    log.warning("GET /Messages.json?To=%2B12125550104&PageSize=50")
    log.error("contact %(who)s", {"who": "pat.doe+clinic@mail.example.org"})
    log.critical("whatsapp:+447700900123 and +1 (212) 555-0105")
    out = stream.getvalue()
    for leaked in (
        "2125550101",
        "alex@",
        "555-0102",
        "555.0103",
        "7946",
        "2125550104",
        "pat.doe",
        "900123",
        "555-0105",
    ):
        assert leaked not in out, leaked
    assert out.count("[phone]") == 7
    assert out.count("[email]") == 2
    assert "DEBUG some.library: sending to [phone] for [email]" in out


def test_ids_times_and_amounts_are_left_alone(capture: Any) -> None:
    stream = capture()
    logging.getLogger("worker.services.outbound.send").info(
        "message %d sent via %s at %s (retry at 2026-03-08T09:00:00+00:00, 1500 of 2000)",
        123456789,
        "sms",
        "12:30",
    )
    assert (
        "message 123456789 sent via sms at 12:30 (retry at 2026-03-08T09:00:00+00:00, 1500 of 2000)"
        in stream.getvalue()
    )


def test_tracebacks_are_masked_too(capture: Any) -> None:
    stream = capture(log_json=True)
    try:
        raise ValueError("The 'To' number +12125550199 is not valid; token tw-auth-7f3a9c0d1e2b")
    except ValueError:
        logging.getLogger("twilio").exception("send failed for %s", "+12125550199")
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "send failed for [phone]"
    assert "ValueError: The 'To' number [phone] is not valid; token [secret]" in entry["exc"]
    assert "2125550199" not in stream.getvalue() and "tw-auth" not in stream.getvalue()


def test_configured_secrets_never_reach_the_log(capture: Any) -> None:
    stream = capture(
        broker_url="redis://:broker-pass-0099@127.0.0.1:6379/0",
        database_url="postgresql+psycopg://checkin:db-pass-7788@db:5432/checkin",
    )
    log = logging.getLogger("anything")
    for name, secret in SECRETS.items():
        log.warning("%s is %s", name, secret)
    log.error("connecting to redis://:broker-pass-0099@127.0.0.1:6379/0 with db-pass-7788")
    out = stream.getvalue()
    for secret in (*SECRETS.values(), "broker-pass-0099", "db-pass-7788"):
        assert secret not in out
    assert out.count("[secret]") == 6


def test_json_logs_are_one_object_per_line(capture: Any) -> None:
    stream = capture(log_json=True)
    logging.getLogger("worker.tasks").info("message %d sent to %s", 7, "+12125550101")
    logging.getLogger("celery.worker").warning("worker ready")
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "worker.tasks", "message 7 sent to [phone]"),
        ("WARNING", "celery.worker", "worker ready"),
    ]
    assert all(e["time"].endswith("+00:00") for e in entries)
    assert {"process", "thread"} <= set(entries[0])


def test_configuring_twice_keeps_one_handler(capture: Any) -> None:
    capture()
    second = capture()
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_checkin_handler", False)]
    assert len(ours) == 1
    logging.getLogger("x").info("once")
    assert second.getvalue().count("once") == 1


def test_passwords_of_a_sentinel_broker_and_of_pacings_redis_are_masked(capture: Any) -> None:
    stream = capture(
        broker_url="sentinel://s1:26379;sentinel://:sentinel-pass-31@s2:26379?master_name=m",
        redis_url="redis://:pacing-pass-42@cache:6379/1",
    )
    log = logging.getLogger("anything")
    log.error("master auth sentinel-pass-31 failed; pacing on pacing-pass-42")
    out = stream.getvalue()
    assert "sentinel-pass-31" not in out and "pacing-pass-42" not in out
    assert out.count("[secret]") == 2
