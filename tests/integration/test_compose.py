"""docker-compose.yml, Dockerfile and .dockerignore: the production-like stack a clinic runs.

No Docker engine is needed: the compose file is parsed with PyYAML and checked for its shape,
its environment is fed through the real Settings, the web health check's own command is run
against a real `checkin web`, and `docker compose config` runs when a compose client exists.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from worker.config import ConfigError, Settings, load_settings
from worker.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CHECKIN = Path(sys.prefix) / "bin" / "checkin"

CHECKIN_SERVICES = ("migrate", "web", "worker-urgent", "worker-bulk", "beat", "hl7")
MONITORING = ("prometheus", "blackbox", "grafana")
SERVICES = ("postgres", "redis", *CHECKIN_SERVICES, "flower", "mailpit", "proxy", *MONITORING)
COMMANDS = {
    "migrate": ["db", "upgrade"],
    "web": ["web", "--host", "0.0.0.0", "--port", "8000"],
    "worker-urgent": ["worker", "-Q", "urgent", "-c", "8", "--name", "urgent"],
    "worker-bulk": ["worker", "-Q", "bulk", "-c", "4", "--name", "bulk"],
    "beat": ["beat", "--schedule-file", "/var/lib/checkin/celerybeat-schedule"],
    "hl7": ["hl7", "listen", "--host", "0.0.0.0", "--port", "2575"],
}
# Every variable of CONTRACT.md's configuration table.
CONTRACT_VARIABLES = (
    "CHECKIN_DATABASE_URL",
    "CHECKIN_BROKER_URL",
    "CHECKIN_SMS_BACKEND",
    "CHECKIN_EMAIL_BACKEND",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_URL",
    "CHECKIN_SMTP_HOST",
    "CHECKIN_SMTP_PORT",
    "CHECKIN_SMTP_USER",
    "CHECKIN_SMTP_PASSWORD",
    "CHECKIN_SMTP_STARTTLS",
    "CHECKIN_EMAIL_FROM",
    "CHECKIN_PUBLIC_URL",
    "CHECKIN_API_TOKEN",
    "CHECKIN_CLINIC_NAME",
    "CHECKIN_CLINIC_PHONE",
    "CHECKIN_ONCALL_PHONE",
    "CHECKIN_ONCALL_EMAIL",
    "CHECKIN_SEND_WINDOW",
    "CHECKIN_TICK_SECONDS",
    "CHECKIN_PROTOCOLS_DIR",
)
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}"
)
# What a `.env` must hold (docs/security.md): the credentials compose requires with ${VAR:?}.
DOT_ENV = {
    "PUBLIC_DOMAIN": "checkin.clinic.example",
    "CHECKIN_PUBLIC_URL": "https://checkin.clinic.example",
    "POSTGRES_PASSWORD": "pg-password-from-dot-env",
    "REDIS_PASSWORD": "redis-password-from-dot-env",
    "CHECKIN_SECRET_KEY": "secret-key-from-dot-env-0123456789abcdef",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password-from-dot-env",
}


class Missing(Exception):
    """A ${VAR:?message} whose variable is unset: `docker compose` stops with the message."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's ${VAR:-default}, ${VAR:?message} and ${VAR}, as `docker compose` resolves
    them."""

    def sub(m: re.Match[str]) -> str:
        found = environ.get(m["name"])
        if found:
            return found
        if m["op"] == ":?":
            raise Missing(f"{m['name']}: {m['arg']}")
        return m["arg"] or ""

    return _INTERPOLATION.sub(sub, value)


def resolved_environment(compose: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """The container environment of a checkin service when the host has `environ`: valueless
    entries pass the host's value through or stay unset."""
    out: dict[str, str] = {}
    for name, value in compose["x-checkin-env"].items():
        if value is None:
            if name in environ:
                out[name] = environ[name]
        else:
            out[name] = interpolate(str(value), environ)
    return out


def settings_variables() -> set[str]:
    """Every environment variable name that Settings reads."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


# ---------------------------------------------------------------- services and their shape


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(SERVICES)
    assert {"postgres-data", "redis-data", "beat-schedule"} <= set(compose["volumes"])


def test_checkin_services_share_one_image_built_from_the_dockerfile(
    compose: dict[str, Any],
) -> None:
    images = set()
    for name in CHECKIN_SERVICES:
        svc = service(compose, name)
        assert svc["build"] == ".", name
        images.add(svc["image"])
        assert svc["command"] == COMMANDS[name], name
        assert svc.get("init") is True, f"{name}: tini as PID 1 forwards signals"
        assert svc["environment"] == compose["x-checkin-env"], name
    assert len(images) == 1

    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert stages and stages[-1] == "python:3.11-slim"
    # The locked dependencies with their hashes, then the project without resolving anything.
    assert re.search(r"pip install\b.*--require-hashes -r requirements\.lock\s*$", dockerfile, re.M)
    assert re.search(r"pip install\b.*--no-deps \.(\s|$)", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["checkin"\]\s*$', dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "var", "*.egg-info"} <= ignored

    # Development-only pieces stay out of the image's build context (and so out of the image).
    assert {"emulator", "requirements-dev.lock", "requirements-run.lock", "tests"} <= ignored


def test_everything_the_dockerfile_copies_is_in_the_build_context() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copied = [
        source
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
        for source in line.split()[:-1]
    ]
    assert {"requirements.lock", "setup.py", "worker", "templates"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored, source


def test_postgres_redis_and_web_have_health_checks(compose: dict[str, Any]) -> None:
    postgres = service(compose, "postgres")
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.split(":")[0] == "postgres-data" for v in postgres["volumes"])

    redis = service(compose, "redis")
    assert redis["image"].startswith("redis:7")
    assert " ".join(redis["healthcheck"]["test"]).endswith("redis-cli ping")
    assert "--appendonly yes" in " ".join(redis["command"])
    # A password on Redis, from .env; redis-cli in the health check reads REDISCLI_AUTH.
    command = [interpolate(a, DOT_ENV) for a in redis["command"]]
    assert command[command.index("--requirepass") + 1] == DOT_ENV["REDIS_PASSWORD"]
    assert interpolate(redis["environment"]["REDISCLI_AUTH"], DOT_ENV) == DOT_ENV["REDIS_PASSWORD"]

    test = service(compose, "web")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "the image may have no curl"
    assert "urllib" in test[3] and "/healthz" in test[3]
    assert service(compose, "web")["ports"] == ["127.0.0.1:8000:8000"]


def test_start_order_uses_health_and_completion(compose: dict[str, Any]) -> None:
    migrate = service(compose, "migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no", "migrate runs once"
    for name in ("web", "worker-urgent", "worker-bulk", "beat"):
        deps = service(compose, name)["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
    for name in ("web", "worker-urgent", "worker-bulk"):
        assert service(compose, name)["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert service(compose, "flower")["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_hl7_listener_is_off_unless_its_profile_is_asked_for(compose: dict[str, Any]) -> None:
    hl7 = service(compose, "hl7")
    assert hl7["profiles"] == ["hl7"]
    assert hl7["ports"] == ["127.0.0.1:2575:2575"], "MLLP is clear text: loopback by default"
    assert hl7["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Not in the shared environment: every other service would then need CHECKIN_CLINIC_TZ.
    assert "CHECKIN_HL7_PORT" not in compose["x-checkin-env"]


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    runs_beat = [
        name
        for name, svc in compose["services"].items()
        if "beat" in (svc.get("command") or [])[:1]
        or any(arg in ("-B", "--beat") for arg in svc.get("command") or [])
    ]
    assert runs_beat == ["beat"]
    beat = service(compose, "beat")
    assert beat["deploy"]["replicas"] == 1
    assert "beat-schedule:/var/lib/checkin" in beat["volumes"]
    assert service(compose, "worker-bulk")["deploy"]["replicas"] >= 1


def test_mailpit_catches_the_mail(compose: dict[str, Any]) -> None:
    mailpit = service(compose, "mailpit")
    assert mailpit["image"].split(":")[0] == "axllent/mailpit"
    published = " ".join(mailpit.get("ports", [])) + " " + " ".join(mailpit.get("expose", []))
    assert "1025" in published and "8025" in published
    env = resolved_environment(compose, DOT_ENV)
    assert (env["CHECKIN_EMAIL_BACKEND"], env["CHECKIN_SMTP_HOST"], env["CHECKIN_SMTP_PORT"]) == (
        "smtp",
        "mailpit",
        "1025",
    )


# ---------------------------------------------------------------- Flower


def test_flower_hides_task_arguments(compose: dict[str, Any]) -> None:
    flower = service(compose, "flower")
    assert flower["image"].split(":")[0] == "mher/flower"
    command = flower["command"]
    assert command[0] == "celery" and command[2] == "flower"
    broker = interpolate(command[1], DOT_ENV)
    assert broker == f"--broker=redis://:{DOT_ENV['REDIS_PASSWORD']}@redis:6379/0"
    options = dict(arg.split("=", 1) for arg in command[3:] if arg.startswith("--") and "=" in arg)

    # The task list has no args/kwargs column ...
    columns = options["--tasks_columns"].split(",")
    assert "name" in columns and "state" in columns
    assert not {"args", "kwargs", "all"} & set(columns)

    # ... and format_task, from the mounted config file, blanks them in task pages and their JSON.
    [mount] = [c for c in flower["configs"] if c["target"] == options["--conf"]]
    source = compose["configs"][mount["source"]]["content"]
    namespace: dict[str, Any] = {}
    exec(compile(source, "flowerconfig.py", "exec"), namespace)
    task = SimpleNamespace(args="[1042, 1043]", kwargs="{'patient_id': 7}", name="checkin.send")
    shown = namespace["format_task"](task)
    assert "1042" not in str(shown.args) and "7" not in str(shown.kwargs)
    assert shown.name == "checkin.send"

    assert all(p.startswith("127.0.0.1:") for p in flower["ports"]), "no auth: localhost only"


# ---------------------------------------------------------------- environment


def test_the_env_anchor_carries_the_database_and_broker(compose: dict[str, Any]) -> None:
    assert re.search(r"^x-checkin-env: &checkin-env$", COMPOSE_FILE.read_text(), re.MULTILINE)
    env = resolved_environment(compose, DOT_ENV)
    assert env["CHECKIN_DATABASE_URL"] == (
        f"postgresql+psycopg://checkin:{DOT_ENV['POSTGRES_PASSWORD']}@postgres:5432/checkin"
    )
    assert env["CHECKIN_BROKER_URL"] == f"redis://:{DOT_ENV['REDIS_PASSWORD']}@redis:6379/0"
    postgres_env = service(compose, "postgres")["environment"]
    assert (postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_DB"]) == ("checkin", "checkin")
    assert interpolate(postgres_env["POSTGRES_PASSWORD"], DOT_ENV) == DOT_ENV["POSTGRES_PASSWORD"]


def test_every_contract_variable_is_passed_through(compose: dict[str, Any]) -> None:
    env = compose["x-checkin-env"]
    assert set(CONTRACT_VARIABLES) <= set(env)
    fixed = {"CHECKIN_DATABASE_URL", "CHECKIN_BROKER_URL"}
    for name, value in env.items():
        if name in fixed:
            continue
        # ${NAME:-default}, ${NAME:?message} or no value (the host's value, or unset): never a
        # literal.
        assert value is None or re.fullmatch(rf"\$\{{{name}:[-?][^}}]*\}}", str(value)), name

    # The host's values win over the defaults.
    host = {**DOT_ENV, "CHECKIN_CLINIC_NAME": "Riverside", "TWILIO_ACCOUNT_SID": "AC123"}
    resolved = resolved_environment(compose, host)
    assert resolved["CHECKIN_CLINIC_NAME"] == "Riverside"
    assert resolved["TWILIO_ACCOUNT_SID"] == "AC123"
    assert "TWILIO_AUTH_TOKEN" not in resolved  # unset, not ""


def test_every_variable_named_in_compose_is_one_settings_reads() -> None:
    named = set(re.findall(r"\b(?:CHECKIN|TWILIO)_[A-Z0-9_]+\b", COMPOSE_FILE.read_text()))
    assert named, "the compose file names no CHECKIN_/TWILIO_ variable?"
    assert named - settings_variables() == set()


def test_the_default_compose_environment_is_a_valid_configuration(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the containers get on a host with nothing set starts without a ConfigError, and a
    host asking for Twilio without credentials is refused in one line."""
    for name in list(os.environ):
        if name.upper().startswith(("CHECKIN_", "TWILIO_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in resolved_environment(compose, DOT_ENV).items():
        monkeypatch.setenv(name, value)

    s = load_settings()
    s.require_secret_key()  # smtp: not development, and the key is there
    assert s.secret_key is not None
    assert s.require_2fa and s.public_url == DOT_ENV["CHECKIN_PUBLIC_URL"]

    assert s.database_url.startswith("postgresql+psycopg://") and not s.is_sqlite
    assert s.broker_url == f"redis://:{DOT_ENV['REDIS_PASSWORD']}@redis:6379/0"
    assert (s.email_backend, s.smtp_host, s.smtp_port, s.email_from) == (
        "smtp",
        "mailpit",
        1025,
        "checkin@clinic.example",
    )
    assert (s.sms_backend, s.twilio_api_url, s.tick_seconds) == (
        "console",
        "https://api.twilio.com",
        15,
    )
    assert s.api_token is None and s.twilio_auth_token is None

    monkeypatch.setenv("CHECKIN_SMS_BACKEND", "twilio")
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        load_settings()


def test_credentials_come_only_from_dot_env(compose: dict[str, Any]) -> None:
    """No password or key is written in the file; without the .env the stack does not start."""
    raw = COMPOSE_FILE.read_text()
    assert "checkin:checkin@" not in raw and "POSTGRES_PASSWORD: checkin" not in raw
    for name in (
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "CHECKIN_SECRET_KEY",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        assert re.search(rf"\$\{{{name}:\?", raw), f"{name} must be required with ${{VAR:?}}"
        assert DOT_ENV[name] not in raw
        missing = {k: v for k, v in DOT_ENV.items() if k != name}
        with pytest.raises(Missing, match=name):
            resolved = resolved_environment(compose, missing)
            for svc in compose["services"].values():
                for v in (svc.get("environment") or {}).values():
                    interpolate(str(v), missing)
                for a in svc.get("command") or []:
                    interpolate(str(a), missing)
            assert resolved  # not reached
    for svc in compose["services"].values():
        for key, value in (svc.get("environment") or {}).items():
            # Credentials (not flags such as GF_AUTH_ANONYMOUS_ENABLED) come from .env.
            if re.search(r"PASSWORD|SECRET|TOKEN", key) and value is not None:
                assert str(value).startswith("${"), f"{key} is a literal"


def test_only_the_proxy_is_published_on_a_public_interface(compose: dict[str, Any]) -> None:
    public = {}
    for name, svc in compose["services"].items():
        for port in svc.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                public.setdefault(name, []).append(str(port))
    assert public == {"proxy": ["80:80", "443:443"]}
    proxy = service(compose, "proxy")
    assert proxy["image"].split(":")[0] == "caddy"
    command = [interpolate(a, DOT_ENV) for a in proxy["command"]]
    assert command[:2] == ["caddy", "reverse-proxy"]
    assert command[command.index("--from") + 1] == DOT_ENV["PUBLIC_DOMAIN"]
    assert command[command.index("--to") + 1] == "web:8000"
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"


# ---------------------------------------------------------------- the web health check, for real


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            pytest.fail(f"checkin web exited with status {proc.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"checkin web did not listen on {port} within {timeout} s")


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(database_url: str, broker_url: str) -> int:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "CHECKIN_DATABASE_URL": database_url,
            "CHECKIN_BROKER_URL": broker_url,
        }
        log = tmp_path / f"web-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(CHECKIN), "web", "--host", "127.0.0.1", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        _wait_for_port(port, proc, log)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _run_web_healthcheck(compose: dict[str, Any], port: int) -> subprocess.CompletedProcess[str]:
    test = service(compose, "web")["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    argv = [sys.executable, *[arg.replace(":8000/", f":{port}/") for arg in test[2:]]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_the_web_health_check_command_passes_only_when_healthz_is_200(
    compose: dict[str, Any], start_web: Any, sqlite_url: str, redis_url: str
) -> None:
    healthy = start_web(sqlite_url, redis_url)
    assert _run_web_healthcheck(compose, healthy).returncode == 0

    broker_down = start_web(sqlite_url, f"redis://127.0.0.1:{free_port()}/0")  # 503
    assert _run_web_healthcheck(compose, broker_down).returncode != 0

    assert _run_web_healthcheck(compose, free_port()).returncode != 0  # nothing listening


# ---------------------------------------------------------------- docker compose config


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no `docker` client on PATH: `docker compose config` not run")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if version.returncode != 0:
        reason = (version.stderr or version.stdout).strip().splitlines()
        pytest.skip(
            "`docker compose` is not available here, `docker compose config` not run: "
            + (reason[0] if reason else f"exit status {version.returncode}")
        )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("CHECKIN_", "TWILIO_"))}
    env.update(DOT_ENV)
    proc = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- the `monitoring` profile


def _mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path (in the repository) of the service's bind mounts."""
    out = {}
    for volume in svc.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("./"):
            out[container] = ROOT / host
    return out


def test_monitoring_runs_only_in_its_profile(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name in MONITORING:
            assert svc["profiles"] == ["monitoring"], name
            assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", [])), name
        elif name == "hl7":
            assert svc["profiles"] == ["hl7"]
        else:
            assert "profiles" not in svc, f"{name} must start without a profile"
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])


def test_prometheus_is_provisioned_from_the_repository_files(compose: dict[str, Any]) -> None:
    prometheus = service(compose, "prometheus")
    mounts = _mounts(prometheus)
    config = mounts["/etc/prometheus/prometheus.yml"]
    assert config == ROOT / "deploy/prometheus/prometheus.yml" and config.is_file()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    scrape = yaml.safe_load(config.read_text())
    # Rule files are read relative to the config file: mounted next to it.
    for rule_file in scrape["rule_files"]:
        assert mounts[f"/etc/prometheus/{rule_file}"] == ROOT / "deploy/prometheus" / rule_file
        assert (ROOT / "deploy/prometheus" / rule_file).is_file()

    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert set(jobs) == {"checkin-web", "checkin-workers", "checkin-public-url"}
    [web] = jobs["checkin-web"]["static_configs"][0]["targets"]
    assert web == "web:8000" and "web --host 0.0.0.0 --port 8000" in " ".join(COMMANDS["web"])
    # Every worker replica, by the compose service names, on the port the workers listen on.
    [sd] = jobs["checkin-workers"]["dns_sd_configs"]
    assert set(sd["names"]) == {"worker-urgent", "worker-bulk"} <= set(compose["services"])
    env = resolved_environment(compose, DOT_ENV)
    assert sd["port"] == int(env["CHECKIN_WORKER_METRICS_PORT"])
    assert env["CHECKIN_WORKER_METRICS_HOST"] == "0.0.0.0", "reachable from the prometheus service"
    probe = jobs["checkin-public-url"]
    replacement = next(r for r in probe["relabel_configs"] if r["target_label"] == "__address__")
    assert replacement["replacement"].split(":")[0] == "blackbox"
    blackbox = service(compose, "blackbox")
    module_file = _mounts(blackbox)["/etc/blackbox/blackbox.yml"]
    modules = yaml.safe_load(module_file.read_text())["modules"]
    assert probe["params"]["module"][0] in modules


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = service(compose, "grafana")
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "checkin.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = {c: h for c, h in mounts.items() if c.startswith(folder + "/")}
    assert dashboards == {
        f"{folder}/checkin-worker.json": ROOT / "deploy/grafana/checkin-worker.json"
    }
    import json

    dashboard = json.loads((ROOT / "deploy/grafana/checkin-worker.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {datasource["uid"]}
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
