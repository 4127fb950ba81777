"""One typed Settings object for every variable in CONTRACT.md.

Nothing else in the project reads the environment: build `Settings()` in an entry point (CLI,
Celery app factory, web app factory) and pass it down. Tests build `Settings(...)` directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")
BROKER_SCHEMES = (*REDIS_SCHEMES, "amqp", "amqps")


class ConfigError(Exception):
    """A bad configuration value; the message is one line naming the variable."""


def parse_window(value: str) -> tuple[time, time]:
    """Parse 'HH:MM-HH:MM' into (start, end); end is exclusive and must follow start.

    Raises ValueError with a readable message.
    """
    m = _WINDOW.match(value.strip())
    if not m:
        raise ValueError(f"expected HH:MM-HH:MM (e.g. 08:00-21:00), got {value!r}")
    sh, sm, eh, em = (int(g) for g in m.groups())
    if eh == 24 and em != 0:
        raise ValueError(f"end time past 24:00 in {value!r}")
    start = time(sh, sm)
    end = time.max if eh == 24 else time(eh, em)
    if (eh, em) <= (sh, sm):
        raise ValueError(f"window must end after it starts (same day), got {value!r}")
    return start, end


@dataclass(frozen=True)
class RehearsalClock:
    """A clock that showed `start` at the real instant `anchor` and runs `speed` times faster."""

    start: datetime
    speed: float
    anchor: datetime

    def __call__(self) -> datetime:
        return self.start + (datetime.now(UTC) - self.anchor) * self.speed


def parse_clock(value: str, *, default_anchor: datetime | None = None) -> RehearsalClock:
    """Parse CHECKIN_CLOCK, "START@SPEED[@ANCHOR]" (START and ANCHOR ISO 8601 with an offset).

    Without ANCHOR the clock starts at START now (or at `default_anchor`). Raises ValueError
    with a readable message.
    """
    example = "e.g. 2027-03-14T06:50:00+00:00@60"
    parts = value.strip().split("@")
    if len(parts) not in (2, 3):
        raise ValueError(f"expected START@SPEED[@ANCHOR], {example}")
    try:
        start = datetime.fromisoformat(parts[0])
        speed = float(parts[1])
        anchor = (
            datetime.fromisoformat(parts[2])
            if len(parts) == 3
            else (default_anchor or datetime.now(UTC))
        )
    except ValueError:
        raise ValueError(f"expected START@SPEED[@ANCHOR], {example}") from None
    if start.tzinfo is None or anchor.tzinfo is None:
        raise ValueError(f"START and ANCHOR need a UTC offset, {example}")
    if not 0 < speed <= 10_000:
        raise ValueError("SPEED must be a number above 0 and at most 10000")
    return RehearsalClock(start.astimezone(UTC), speed, anchor.astimezone(UTC))


def _check_port(url: str) -> None:
    try:
        port = urlsplit(url).port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")


class Settings(BaseSettings):
    """All configuration. Field names map to CHECKIN_* variables unless an alias says otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="CHECKIN_",
        env_file=".env",
        # An empty variable means unset: CHECKIN_API_TOKEN= must not become an empty token.
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = "sqlite:///./var/checkin.db"
    broker_url: str | None = None
    # Pacing's Redis (and nothing else): defaults to the broker when the broker is Redis or
    # Sentinel; required with a RabbitMQ broker while pacing is on (see effective_redis_url).
    redis_url: str | None = None
    sms_backend: Literal["console", "twilio"] = "console"
    email_backend: Literal["console", "smtp"] = "console"

    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "twilio_account_sid")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "twilio_auth_token")
    )
    twilio_from_number: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_FROM_NUMBER", "twilio_from_number")
    )
    twilio_messaging_service_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TWILIO_MESSAGING_SERVICE_SID", "twilio_messaging_service_sid"
        ),
    )
    twilio_api_url: str = Field(
        default="https://api.twilio.com",
        validation_alias=AliasChoices("TWILIO_API_URL", "twilio_api_url"),
    )
    # Seconds. The SDK sets no timeout; a hung request would hold a worker thread forever.
    twilio_timeout_seconds: float = 10.0

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 15.0
    email_from: str | None = None

    public_url: str = "http://127.0.0.1:8000"
    api_token: SecretStr | None = None
    # The root of every signing key (email answer links, session cookies), each derived from it
    # under its own label (worker/secrets.py). Required outside development (see is_development).
    secret_key: SecretStr | None = None
    clinic_name: str = "Clinic"
    clinic_phone: str | None = None
    oncall_phone: str | None = None
    oncall_email: str | None = None
    # The escalation ladder (services/escalation.py): the on-call is paged, then re-paged every
    # REPAGE_MINUTES up to REPAGE_COUNT times; then the backup; then every active admin.
    repage_minutes: int = Field(default=15, ge=1, le=24 * 60)
    repage_count: int = Field(default=4, ge=0, le=100)
    oncall_backup_phone: str | None = None
    oncall_backup_email: str | None = None
    # Page the on-call for possible-risk language too (high follow-ups), not only for crisis.
    page_on_possible_risk: bool = False
    # The sender on-call pages go from (E.164 number or Messaging Service SID): its own pacing
    # budget, so a page never waits behind patient traffic. Unset: the default sender.
    oncall_from: str | None = None
    send_window: str = "08:00-21:00"
    # Consent texts (docs/consent.md): the opt-in confirmation on every SMS consent grant (0:
    # the clinic confirms consent another way); the name SMS start with (unset: clinic_name);
    # "Reply STOP to opt out" on the first SMS of each patient-local calendar month.
    optin_confirmation: bool = True
    sms_sender_name: str | None = Field(default=None, max_length=40)
    stop_reminder: Literal["monthly", "off"] = "monthly"
    # After a no-show: a "we missed you, reply R to rebook" text (docs/after-visit.md).
    noshow_text: bool = False
    tick_seconds: float = Field(default=15.0, gt=0, le=3600)
    protocols_dir: str | None = None
    # A clinic's own message templates, same layout as the shipped templates/, looked up first
    # (worker/rendering.py). Vet them with `checkin templates check DIR`.
    templates_dir: str | None = None

    # Beyond CONTRACT.md: knobs a clinic or operator may want, with documented defaults.
    plan_horizon_hours: int = Field(default=48, ge=1, le=24 * 14)
    dispatch_batch_size: int = Field(default=500, ge=1, le=100_000)
    # Rows one dispatch cycle may claim (in batches of dispatch_batch_size); lower with pacing.
    dispatch_max_per_cycle: int = Field(default=5000, ge=1, le=1_000_000)
    send_chunk_size: int = Field(default=20, ge=1, le=1000)
    # Provider calls in flight per worker process. A bulk task claims its chunk only when there
    # is a free call for every message in it (services/outbound/send.py), so this should be at least the
    # worker's concurrency (-c) times send_chunk_size: 4 x 20 by default.
    send_concurrency: int = Field(default=80, ge=1, le=1024)
    checkin_max_late_minutes: int = Field(default=240, ge=1)
    checkin_reply_window_hours: int = Field(default=24, ge=1)
    # Questionnaire links (docs/forms.md): how long a link opens its form, and whether the form
    # asks for the patient's date of birth (the one on file) before it shows anything.
    form_ttl_hours: int = Field(default=72, ge=1, le=24 * 60)
    form_verify_dob: bool = False
    # A row left `queued` this long is handed to the broker again (its task may have died with
    # a worker); urgent rows after at most 10 s. Safe: a duplicate task is a no-op.
    requeue_after_seconds: int = Field(default=60, ge=5)
    sending_stale_seconds: int = Field(default=120, ge=5)
    # Transient provider errors (429, 5xx, connection refused) are retried after this many
    # seconds, doubling per attempt up to 15 minutes.
    retry_backoff_seconds: float = Field(default=30.0, gt=0, le=3600)
    # An `unknown` send (timed out after the request left) is looked up at the provider once
    # CHECKIN_TWILIO_TIMEOUT_SECONDS plus this margin have passed, so that a slow acceptance
    # has surely been recorded there.
    reconcile_settle_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Rehearsal knob, never for production: "START@SPEED[@ANCHOR]" makes workers and the web
    # app read a clock that showed START (ISO 8601 with offset) at the real instant ANCHOR
    # (ISO 8601; default: when the process started) and runs SPEED times faster than real time.
    # Used by the fault-injection suite to cross a DST change in minutes. Unset: real time.
    clock: str | None = None
    broker_visibility_timeout: int = Field(default=600, ge=10)
    # Deadlines on every PostgreSQL connection of the app (docs/deadlines.md), in milliseconds;
    # 0 turns one off; no effect on SQLite. A statement running longer is cancelled by the
    # server; a session idle inside an open transaction longer is ended. Both well under the
    # visibility timeout, so a hung query fails its task long before the broker redelivers it.
    db_statement_timeout_ms: int = Field(default=30_000, ge=0, le=24 * 3600 * 1000)
    db_idle_tx_timeout_ms: int = Field(default=60_000, ge=0, le=24 * 3600 * 1000)
    send_task_expires_seconds: int = Field(default=900, ge=10)
    log_json: bool = False

    # Pacing (worker/services/outbound/pacing.py): SMS segments per second per sender, shared by every
    # worker through Redis. 1/s is a US long code; toll-free is about 3, a short code 100.
    # 0 turns pacing off. CHECKIN_SMS_RATE_PER_SENDER is a JSON object overriding the rate for
    # one sender (the From number or the Messaging Service SID), e.g. {"+18005550100": 3}.
    sms_rate: float = Field(default=1.0, ge=0, le=10_000)
    sms_rate_per_sender: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    # The part of each sender's rate that bulk traffic may never take: kept for urgent messages.
    urgent_share: float = Field(default=0.2, ge=0, le=0.9)
    # Added to every one-second window: covers the network's one-way time to the provider, the
    # part of a request's journey the limiter cannot observe (see services/outbound/pacing.py).
    sms_pace_margin_seconds: float = Field(default=0.05, ge=0, le=5)
    # A send waits at most this long for its turn (the row is `sending` meanwhile); past it the
    # row goes back to `scheduled` and the next dispatch picks it up again.
    sms_pace_max_wait_seconds: float = Field(default=20.0, gt=0, le=300)
    # Every HTTP request body larger than this is refused with 413 before it is read.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Web app processes (`checkin web`); `--workers` overrides. One process answers several
    # hundred webhooks a second; more use more cores (and memory, ~100 MB each).
    web_workers: int = Field(default=1, ge=1, le=64)
    # Each `checkin worker` serves its own metrics on this port (worker/telemetry.py); unset:
    # none (`checkin run` gives its urgent worker 9101 and its bulk worker 9102 by default).
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # Access control (issue 12; docs/security.md). Two-factor sign-in is mandatory for the
    # clinician and admin roles unless this is 0 (development and tests only).
    require_2fa: bool = True
    # A dashboard session ends after this many minutes without a request (HIPAA automatic
    # logoff), and in any case 12 hours after sign-in.
    session_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # When set, GET /metrics needs `Authorization: Bearer <this>`.
    metrics_token: SecretStr | None = None
    # `/api/docs` (a local Swagger-free page behind sign-in); false turns it off (404).
    api_docs: bool = True

    # Integrations (docs/integrations.md). The MLLP listener for HL7 v2 SIU scheduling feeds
    # runs only when CHECKIN_HL7_PORT is set; it binds CHECKIN_HL7_HOST.
    hl7_port: int | None = Field(default=None, ge=1, le=65535)
    hl7_host: str = "127.0.0.1"
    # A known MRN's phone/email/name/language are updated from the feed only when allowed.
    hl7_update_contacts: bool = False
    # The zone of feed times that carry no UTC offset, and of patients the feed creates.
    clinic_tz: str | None = None
    # A YAML file of appointment-type codes -> kinds, over the shipped worker/hl7_mapping.yaml.
    hl7_mapping: str | None = None

    @field_validator("send_window")
    @classmethod
    def _check_window(cls, v: str) -> str:
        parse_window(v)
        return v

    @field_validator("oncall_phone", "oncall_backup_phone")
    @classmethod
    def _check_oncall_phone(cls, v: str | None) -> str | None:
        from worker.domain.contact import ContactError, normalize_phone

        if v is None or not v.strip():
            return None
        try:
            return normalize_phone(v)
        except ContactError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("oncall_email", "oncall_backup_email")
    @classmethod
    def _check_oncall_email(cls, v: str | None) -> str | None:
        from worker.domain.contact import ContactError, normalize_email

        if v is None or not v.strip():
            return None
        try:
            return normalize_email(v)
        except ContactError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("clock")
    @classmethod
    def _check_clock(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        parse_clock(v)
        return v

    @field_validator("oncall_from")
    @classmethod
    def _check_oncall_from(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if re.fullmatch(r"MG[0-9a-fA-F]{32}", v):
            return v
        from worker.domain.contact import ContactError, normalize_phone

        if not v.startswith("+"):
            raise ValueError(
                "expected an E.164 phone number (+12125550100) or a Messaging Service SID (MG…)"
            )
        try:
            return normalize_phone(v)
        except ContactError:
            raise ValueError(
                "expected an E.164 phone number (+12125550100) or a Messaging Service SID (MG…)"
            ) from None

    @field_validator("sms_rate_per_sender", mode="before")
    @classmethod
    def _parse_sender_rates(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v) if v.strip() else {}
            except ValueError:
                raise ValueError(
                    'expected a JSON object of sender to rate, e.g. {"+18005550100": 3}'
                ) from None
        if not isinstance(v, dict):
            raise ValueError('expected a JSON object of sender to rate, e.g. {"+18005550100": 3}')
        for sender, rate in v.items():
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
                raise ValueError(f"the rate for {sender} must be a number >= 0")
        return v

    @field_validator("clinic_tz")
    @classmethod
    def _check_clinic_tz(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        from worker.domain.schedule import ScheduleError, validate_zone

        try:
            return validate_zone(v.strip())
        except ScheduleError:
            raise ValueError(
                f"expected an IANA time zone such as America/New_York, got {v!r}"
            ) from None

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        if scheme.startswith("postgresql"):
            _check_port(v)
        return v

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        # Sentinel: several "sentinel://host:port" joined by ";" (kombu's failover form).
        for part in v.split(";"):
            parts = urlsplit(part)
            if parts.scheme not in BROKER_SCHEMES or not (parts.hostname or parts.path):
                raise ValueError(
                    "expected a redis://, rediss://, amqp://, amqps:// or sentinel:// URL"
                )
            if parts.scheme == "sentinel" and not parts.hostname:
                raise ValueError("expected sentinel://HOST:PORT[;sentinel://HOST:PORT…]")
            _check_port(part)
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        for part in v.split(";"):
            parts = urlsplit(part)
            if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
                raise ValueError("expected a redis://, rediss:// or sentinel:// URL")
            _check_port(part)
        return v

    @field_validator("public_url", "twilio_api_url")
    @classmethod
    def _check_http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check_backends(self) -> Settings:
        if self.sms_backend == "twilio":
            if not self.twilio_account_sid or not self.twilio_auth_token:
                raise ValueError(
                    "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required when "
                    "CHECKIN_SMS_BACKEND=twilio"
                )
            if not (self.twilio_from_number or self.twilio_messaging_service_sid):
                raise ValueError(
                    "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is required when "
                    "CHECKIN_SMS_BACKEND=twilio"
                )
        if self.broker_kind == "amqp" and self.redis_url is None and self.pacing_on:
            raise ValueError(
                "CHECKIN_REDIS_URL is required when CHECKIN_BROKER_URL is amqp:// "
                "(SMS pacing is shared through Redis; or set CHECKIN_SMS_RATE=0)"
            )
        if self.hl7_port is not None and self.clinic_tz is None:
            raise ValueError(
                "CHECKIN_CLINIC_TZ is required when CHECKIN_HL7_PORT is set (feed times "
                "without an offset, and new patients, are in the clinic's zone)"
            )
        if self.email_backend == "smtp" and not self.email_from:
            raise ValueError("CHECKIN_EMAIL_FROM is required when CHECKIN_EMAIL_BACKEND=smtp")
        return self

    @property
    def window(self) -> tuple[time, time]:
        return parse_window(self.send_window)

    @property
    def now(self) -> Callable[[], datetime]:
        """What this process reads the time with: real UTC time, or the rehearsal clock of
        CHECKIN_CLOCK (anchored when first asked for, without an explicit ANCHOR)."""
        if self.clock is None:
            return real_now
        cached = _CLOCKS.get(self.clock)
        if cached is None:
            cached = _CLOCKS.setdefault(self.clock, parse_clock(self.clock))
        return cached

    @property
    def broker_kind(self) -> Literal["redis", "sentinel", "amqp"] | None:
        if not self.broker_url:
            return None
        scheme = urlsplit(self.broker_url.split(";", 1)[0]).scheme
        if scheme in ("amqp", "amqps"):
            return "amqp"
        return "sentinel" if scheme == "sentinel" else "redis"

    @property
    def pacing_on(self) -> bool:
        return self.sms_rate > 0 or any(r > 0 for r in self.sms_rate_per_sender.values())

    @property
    def effective_redis_url(self) -> str | None:
        """The Redis that pacing uses: CHECKIN_REDIS_URL, else the broker when it is Redis."""
        if self.redis_url:
            return self.redis_url
        return self.broker_url if self.broker_kind in ("redis", "sentinel") else None

    @property
    def is_development(self) -> bool:
        """Development: both channels are the console backend, so nothing reaches a patient
        (the embedded defaults of `make run`). Outside it CHECKIN_SECRET_KEY is required."""
        return self.sms_backend == "console" and self.email_backend == "console"

    def require_secret_key(self) -> None:
        """Raise ConfigError naming CHECKIN_SECRET_KEY when a real deployment runs without it."""
        if self.secret_key is None and not self.is_development:
            raise ConfigError(
                "CHECKIN_SECRET_KEY: required outside development (a real SMS or email backend "
                "is configured); set it to a long random value, e.g. `openssl rand -base64 48`"
            )
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 16:
            raise ConfigError("CHECKIN_SECRET_KEY: must be at least 16 characters")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def real_now() -> datetime:
    """Real UTC time: the one place outside the rehearsal clock that reads the system clock."""
    return datetime.now(UTC)


_CLOCKS: dict[str, RehearsalClock] = {}

_ALIASES = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from_number": "TWILIO_FROM_NUMBER",
    "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "twilio_api_url": "TWILIO_API_URL",
}


def _variable_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "configuration"
    field = str(loc[0])
    if field in _ALIASES.values():  # pydantic reports the alias it read the value from
        return field
    return _ALIASES.get(field, f"CHECKIN_{field.upper()}")


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment (and .env), raising ConfigError with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = tuple(err.get("loc", ()))
        if not loc:
            raise ConfigError(f"configuration error: {msg}") from None
        raise ConfigError(f"{_variable_name(loc)}: {msg}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, for entry points only (Celery app, web app, CLI)."""
    return load_settings()
