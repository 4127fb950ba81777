"""The worker metrics module by itself: nothing until enabled, the common series present from
the start (so rate() has a zero to start from), and a port that cannot be bound is not fatal."""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from worker import telemetry


@pytest.fixture
def metrics() -> Iterator[None]:
    telemetry.disable()
    yield
    telemetry.disable()


def test_hooks_do_nothing_until_enabled(metrics: None) -> None:
    telemetry.provider_call("sms", 0.2, True)
    telemetry.reconciled("found")
    registry = telemetry.enable()
    text = generate_latest(registry).decode()
    assert 'checkin_provider_request_seconds_count{channel="sms",result="answered"} 0.0' in text
    assert 'checkin_reconcile_outcomes_total{outcome="found"} 0.0' in text


def test_common_series_exist_before_the_first_event(metrics: None) -> None:
    text = generate_latest(telemetry.enable()).decode()
    for line in (
        'checkin_sends_total{channel="sms",code="",outcome="sent"} 0.0',
        'checkin_pacing_wait_seconds_count{priority="urgent"} 0.0',
        'checkin_due_to_enqueued_seconds_count{queue="bulk"} 0.0',
        'checkin_inbound_processing_seconds_count{tier="crisis"} 0.0',
        'checkin_reconcile_foreign_messages_total{field="recipient"} 0.0',
    ):
        assert line in text, line
    assert "process_cpu_seconds_total" in text and "python_info" in text


def test_events_move_their_series(metrics: None) -> None:
    registry = telemetry.enable()
    telemetry.provider_call("sms", 0.2, False)
    telemetry.paced("bulk", 1.5, True)
    telemetry.enqueued("urgent", [3.0, -1.0])  # a clock step backwards counts as 0
    telemetry.inbound_processed("crisis+opt_out", 0.4)
    telemetry.inbound_processed("answer", 0.1)
    telemetry.not_attempted({1: "suppressed", 2: "suppressed"})
    value = registry.get_sample_value
    assert value("checkin_provider_request_seconds_count", {"channel": "sms", "result": "error"})
    assert value("checkin_pacing_deferred_total", {"priority": "bulk"}) == 1
    assert value("checkin_pacing_wait_seconds_sum", {"priority": "bulk"}) == 1.5
    assert value("checkin_due_to_enqueued_seconds_sum", {"queue": "urgent"}) == 3.0
    assert value("checkin_due_to_enqueued_seconds_count", {"queue": "urgent"}) == 2
    assert value("checkin_inbound_processing_seconds_count", {"tier": "crisis"}) == 1
    assert value("checkin_inbound_processing_seconds_count", {"tier": "routine"}) == 1
    assert value("checkin_sends_not_attempted_total", {"outcome": "suppressed"}) == 2


def test_serve_answers_scrapes_and_a_taken_port_is_logged_not_fatal(
    metrics: None, caplog: pytest.LogCaptureFixture
) -> None:
    port = telemetry.serve("127.0.0.1", 0)
    assert port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert b"checkin_sends_total" in resp.read()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="worker.telemetry"):
            assert telemetry.serve("127.0.0.1", busy) is None
    assert "exports no metrics" in caplog.text
