"""SQLAlchemy 2 models: the one source of truth for what is due, sent and answered.

Every datetime column is `UtcDateTime`: aware UTC in Python on every database (SQLite has no
time zones, so it stores naive UTC and we re-attach UTC on the way out; never naive in between).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from worker.store.message_status import MessageStatus
from worker.store.record_status import AppointmentStatus, CheckinStatus, FollowupStatus


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; refuses naive values loudly."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    tz: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(10))  # preferred: sms | email
    language: Mapped[str] = mapped_column(String(5), default="en")
    # Patient-local "HH:MM-HH:MM"; None means the clinic default (CHECKIN_SEND_WINDOW).
    send_window: Mapped[str | None] = mapped_column(String(11))
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]
    # From the clinic's own systems (HL7 PID-7, FHIR birthDate, CSV); never sent anywhere.
    birth_date: Mapped[date | None] = mapped_column(Date)
    # How questionnaires (PHQ-9, GAD-7, PEG, PHQ-2, GAD-2) reach the patient by SMS: "link" (one
    # text with a private link to a form) or "sms" (one item per text, for phones without data).
    questionnaire_mode: Mapped[str] = mapped_column(
        String(8), default="link", server_default="link"
    )

    consents: Mapped[list[Consent]] = relationship(back_populates="patient")


class Consent(Base):
    """One grant of consent on one channel; withdrawal closes it, a new grant is a new row."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_patient_channel", "patient_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    channel: Mapped[str] = mapped_column(String(10))
    granted_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(200))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_source: Mapped[str | None] = mapped_column(String(200))

    patient: Mapped[Patient] = relationship(back_populates="consents")


class Enrollment(Base):
    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(100))
    start_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class Schedule(Base):
    """A check-in rule: an RRULE whose BYHOUR/BYMINUTE are patient-local wall-clock times."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    instrument: Mapped[str] = mapped_column(String(20))
    rrule: Mapped[str] = mapped_column(String(500))
    start_date: Mapped[date] = mapped_column(Date)
    until_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active|paused|removed
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Occurrences before this instant are already materialised as message rows, so a tick only
    # looks at schedules whose horizon needs topping up. Reset to None when the rule changes.
    planned_until: Mapped[datetime | None] = mapped_column(index=True)


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[datetime] = mapped_column(index=True)
    location: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default=AppointmentStatus.BOOKED)
    # Bumped on every reschedule; reminder rows carry the version they were planned for.
    version: Mapped[int] = mapped_column(Integer, default=1)
    confirmed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    planned_until: Mapped[datetime | None]


class Message(Base):
    """One outbound message: the outbox row; its states and moves are worker/store/outbox.py."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_status_due", "status", "due_at"),
        Index("ix_messages_patient_due", "patient_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    channel: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))  # checkin|reminder|reply|crisis|page|...
    template: Mapped[str] = mapped_column(String(60))
    language: Mapped[str] = mapped_column(String(5), default="en")
    instrument: Mapped[str | None] = mapped_column(String(20))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    appointment_version: Mapped[int | None]
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id"))
    followup_id: Mapped[int | None] = mapped_column(ForeignKey("followups.id"))
    priority: Mapped[str] = mapped_column(String(10), default="bulk")  # urgent|bulk
    # Urgent traffic is exempt from quiet hours (CLINICAL.md).
    exempt_quiet_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime]
    not_after: Mapped[datetime | None]
    local_time: Mapped[str | None] = mapped_column(String(20))  # the intended wall-clock time
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    # Plain strings in the database (no enum type, no migration): MessageStatus's values; the
    # moves between them are worker/store/outbox.py's.
    status: Mapped[str] = mapped_column(String(12), default=MessageStatus.SCHEDULED)
    status_reason: Mapped[str | None] = mapped_column(String(120))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    segments: Mapped[int | None]
    # The body carries "Reply STOP to opt out" (the monthly reminder, or a consent text that
    # names STOP): the month's reminder is due until one such SMS went (services/outbound/stop_notice.py).
    stop_notice: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    queued_at: Mapped[datetime | None]
    sending_at: Mapped[datetime | None]
    # The worker process whose lease covers this `sending` row (services/outbound/lease.py); None: the
    # stale rule alone decides when the attempt counts as abandoned.
    sending_by: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class CheckIn(Base):
    """A check-in prompt that was sent and the window in which its answer is expected."""

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(20))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"))
    channel: Mapped[str] = mapped_column(String(10))
    item_index: Mapped[int] = mapped_column(Integer, default=0)  # next item to be answered
    status: Mapped[str] = mapped_column(String(10), default=CheckinStatus.OPEN)
    sent_at: Mapped[datetime]
    window_closes_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    clarified: Mapped[bool] = mapped_column(Boolean, default=False)


class Response(Base):
    """One stored item value of a check-in."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(20))
    item: Mapped[str] = mapped_column(String(20))
    value: Mapped[int] = mapped_column(Integer)
    answered_at: Mapped[datetime]
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(10), default="sms")  # sms|email|api
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))


class InboundMessage(Base):
    """A reply as received, stored before anything else happens (UNIQUE provider sid)."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    from_address: Mapped[str] = mapped_column(String(320), index=True)
    to_address: Mapped[str | None] = mapped_column(String(320))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(60))


class FollowUp(Base):
    """An item in the clinicians' queue."""

    __tablename__ = "followups"
    __table_args__ = (Index("ix_followups_status_severity", "status", "severity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    reason: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(15), default=FollowupStatus.OPEN)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(Text)
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    last_paged_at: Mapped[datetime | None]


class FormLink(Base):
    """A private questionnaire link (GET/POST /q/{token}). Only the SHA-256 of the token is
    kept: a copy of the database (or a backup) cannot open anyone's form. The row says what the
    link is for; nothing about it is readable in the URL."""

    __tablename__ = "form_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Set once, by the submission that recorded answers (a conditional UPDATE claims it).
    used_at: Mapped[datetime | None]
    # Wrong dates of birth entered (CHECKIN_FORM_VERIFY_DOB); at the limit the link is refused.
    dob_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AppSecret(Base):
    """Secrets the installation generates for itself (e.g. the answer-link signing key), shared
    by every process through the database."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AuditEvent(Base):
    """Who did what, when: every look at a patient's record, every change, sign-ins and account
    changes. Append-only (a trigger refuses UPDATE and DELETE). `user_id` and `token_id` say who;
    `actor` is a label the system sets (`user`, `token`, `installation_token`, `cli:<OS user>`,
    `system`, `patient`), never a name someone typed."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    token_id: Mapped[int | None]
    address: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str | None] = mapped_column(String(12))  # web, api, cli, worker
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int | None]
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """A dashboard/API account. Passwords are stored as argon2 hashes only."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    role: Mapped[str] = mapped_column(String(12))  # clinician|frontdesk|admin
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    # Two-factor sign-in (RFC 6238 TOTP). The secret exists from creation when 2FA applies;
    # `totp_confirmed_at` is set when the user has entered a first code (enrolment).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_confirmed_at: Mapped[datetime | None]
    # The 30-second step of the last code accepted: a code is never accepted twice (RFC 6238 5.2).
    totp_last_step: Mapped[int | None]
    # SHA-256 of each unused single-use recovery code.
    recovery_codes: Mapped[list[str] | None] = mapped_column(JSON)
    # Too many failed sign-ins: refused until then, or until `checkin users unlock`.
    locked_until: Mapped[datetime | None]


class ApiToken(Base):
    """A per-user bearer token for the API; only the SHA-256 of the token is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in dashboard session. The cookie holds a random id; only its SHA-256 is kept
    here, so signing out (or a new password) ends the session on the server, not just in the
    browser that held it."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Idle timeout: the session ends CHECKIN_SESSION_IDLE_MINUTES after this.
    last_seen_at: Mapped[datetime | None]
    # `full` when signed in; `totp`/`enrol` between the password and the second factor.
    stage: Mapped[str] = mapped_column(String(8), default="full")
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))


class SignInFailure(Base):
    """One refused sign-in attempt, for throttling per account and per source address."""

    __tablename__ = "signin_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(30))
    # Set by a successful sign-in or an unlock: no longer counted towards a lock (kept for the
    # failure counter in /metrics).
    cleared: Mapped[bool] = mapped_column(Boolean, default=False)


class ExternalId(Base):
    """A source system's identifier for one of our patients or appointments (an MRN with its
    assigning authority, an HL7 placer/filler appointment id, a CSV or FHIR identifier).

    UNIQUE per (entity, system, value): one MRN of one authority is one patient, so every feed
    and import finds the same row again instead of creating a second one.
    """

    __tablename__ = "external_ids"
    __table_args__ = (
        UniqueConstraint("entity", "system", "value", name="uq_external_ids_entity_system_value"),
        Index("ix_external_ids_entity_entity_id", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(12))  # patient | appointment
    entity_id: Mapped[int]
    system: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class UnsubscribeToken(Base):
    """An email's one-click unsubscribe link (RFC 8058). The URL carries a random token; only
    its SHA-256 is kept, so the table alone opens no link and no id is readable in the URL."""

    __tablename__ = "unsubscribe_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    message_id: Mapped[int | None]
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AppointmentLink(Base):
    """An appointment reminder email's confirm / request-a-new-time link (GET and POST
    /a/{token}/confirm|reschedule). Only the SHA-256 of the token is kept; the row names the
    appointment and the version it was sent for: a link outlives neither the appointment's start
    nor a reschedule or cancellation. `used_at` and `action` are set once, by the POST that
    recorded the patient's choice (a conditional UPDATE claims it)."""

    __tablename__ = "appointment_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    appointment_version: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    action: Mapped[str | None] = mapped_column(String(12))


class Hl7Message(Base):
    """One HL7 v2 message as received over MLLP, stored verbatim before it is applied.

    UNIQUE (sender, control_id): senders resend until they get an ACK, so the same MSH-10 from
    the same sending application/facility is answered from this row and applied once.
    """

    __tablename__ = "hl7_messages"
    __table_args__ = (
        UniqueConstraint("sender", "control_id", name="uq_hl7_messages_sender_control_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(200))  # MSH-3^MSH-4
    control_id: Mapped[str] = mapped_column(String(200))  # MSH-10
    event: Mapped[str | None] = mapped_column(String(20))  # e.g. SIU^S12
    raw: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(index=True)
    processed_at: Mapped[datetime | None]
    ack_code: Mapped[str | None] = mapped_column(String(2))  # AA | AE | AR
    outcome: Mapped[str | None] = mapped_column(String(40))  # applied | refusal reason code
    error: Mapped[str | None] = mapped_column(String(500))
    patient_id: Mapped[int | None]
    appointment_id: Mapped[int | None]


__all__ = [
    "ApiToken",
    "AppSecret",
    "Appointment",
    "AuditEvent",
    "Base",
    "CheckIn",
    "Consent",
    "Enrollment",
    "ExternalId",
    "FollowUp",
    "FormLink",
    "Hl7Message",
    "InboundMessage",
    "Message",
    "Patient",
    "Response",
    "Schedule",
    "SignInFailure",
    "UnsubscribeToken",
    "User",
    "WebSession",
]
