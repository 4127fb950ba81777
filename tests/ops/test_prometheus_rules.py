"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules` and their
unit tests (`promtool test rules`), the scrape config passes `promtool check config`, and every
metric an alert or a dashboard panel queries is one the project exports.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it). Without it these
tests are skipped locally, with the reason printed, and fail in CI.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import IN_CI, make_settings
from worker import telemetry
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.runtime import build_runtime
from worker.web.inbound_metrics import InboundCollector
from worker.web.metrics import DatabaseCollector, webhook_histogram

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "checkin-worker.json"

#: Queried, but exported by something other than this branch's code, each for a reason:
EXTERNAL = {
    # Prometheus itself, for every target.
    "up",
    # The blackbox exporter (compose profile `monitoring`) probing CHECKIN_PUBLIC_URL.
    "probe_success",
    "probe_ssl_earliest_cert_expiry",
    # Added to the web app's /metrics by the escalation-ladder work (issue 14's siblings).
    "checkin_oldest_unacknowledged_urgent_seconds",
    # Exported with the HL7 listener (CHECKIN_HL7_PORT).
    "checkin_hl7_last_message_age_seconds",
}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
}
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool not found (apt-get install prometheus): alert rules not checked"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules() -> None:
    proc = run("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    proc = run("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_checks_the_scrape_config() -> None:
    proc = run("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    names = {r["alert"] for g in _rules()["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t.get("alert_rule_test", [])}
    assert names - tested == set(), "alerts without a unit test"
    readme = (ROOT / "docs" / "runbook.md").read_text()
    assert {n for n in names if f"`{n}`" not in readme} == set(), "alerts the runbook omits"


# ---------------------------------------------------------------- the metrics queried exist


def _rules() -> dict[str, Any]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    assert isinstance(data, dict)
    return data


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside strings and grouping
    clauses that are not followed by `(` (functions, aggregations) and are not keywords."""
    text = _GROUPING.sub(" ", _STRINGS.sub('""', expr))
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges
    keywords = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
    names = set()
    for m in _NAME.finditer(text):
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or m.group() in keywords:
            continue
        if m.start() > 0 and text[m.start() - 1].isdigit():  # 14 * 86400, 1e-9, 5m
            continue
        names.add(m.group())
    return names


def exported(database: Path, broker: str) -> set[str]:
    """Every series name the project exports: the workers' registry, and the web app's
    database collectors and webhook histogram (collected against an empty database, with a
    broker that answers: queue depths are reported only then)."""
    registries = [telemetry.enable()]
    rt = build_runtime(
        make_settings(f"sqlite:///{database}", broker_url=broker),
        channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO())),
    )
    from worker.store.models import Base

    Base.metadata.create_all(rt.engine)
    web = CollectorRegistry()
    web.register(DatabaseCollector(rt))
    web.register(InboundCollector(rt))
    webhook_histogram(web)
    registries.append(web)
    names: set[str] = set()
    try:
        for registry in registries:
            for family in registry.collect():
                names.add(family.name)
                names.update(family.name + s for s in _SUFFIXES.get(family.type, ()))
                names.update(s.name for s in family.samples)
    finally:
        rt.close()
    return names


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> set[str]:
    telemetry.disable()
    try:
        return exported(tmp_path_factory.mktemp("metrics") / "checkin.db", redis_url) | EXTERNAL
    finally:
        telemetry.disable()


def test_the_name_extraction_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, tier) (rate(checkin_x_bucket{tier="crisis"}[5m])))'
        " > 2 and on (job) time() - max(checkin_y{a=~'b|c'}) > 14 * 86400 or absent(up)"
    )
    assert metric_names(expr) == {"checkin_x_bucket", "checkin_y", "up"}


def test_every_alert_queries_metrics_that_exist(known: set[str]) -> None:
    missing = {
        rule["alert"]: sorted(metric_names(rule["expr"]) - known)
        for group in _rules()["groups"]
        for rule in group["rules"]
        if metric_names(rule["expr"]) - known
    }
    assert missing == {}
    assert "checkin_sends_total" in known and "checkin_oldest_due_unsent_seconds" in known


def test_the_dashboard_is_valid_and_queries_metrics_that_exist(known: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "checkin-worker" and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    queried: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert names - known == set(), (panel["title"], sorted(names - known))
            queried |= names
    # The worker metrics this work added are all on the dashboard.
    worker = {
        "checkin_sends_total",
        "checkin_provider_request_seconds_bucket",
        "checkin_pacing_wait_seconds_bucket",
        "checkin_due_to_enqueued_seconds_bucket",
        "checkin_reconcile_outcomes_total",
        "checkin_inbound_processing_seconds_bucket",
        "checkin_beat_task_last_run_timestamp_seconds",
        "process_cpu_seconds_total",
    }
    assert worker - queried == set()
