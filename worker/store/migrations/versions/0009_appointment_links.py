"""appointment links: one-click confirm / request-a-new-time links in reminder emails

Revision ID: 0009_appointment_links
Revises: 0008_consent_visits
Create Date: 2026-12-07 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_appointment_links"
down_revision: str | None = "0008_consent_visits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointment_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("appointment_version", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("action", sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_links_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_appointment_links_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_appointment_links_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_appointment_links_token_hash")),
    )
    for column in ("appointment_id", "patient_id", "message_id"):
        op.create_index(
            op.f(f"ix_appointment_links_{column}"), "appointment_links", [column], unique=False
        )


def downgrade() -> None:
    for column in ("message_id", "patient_id", "appointment_id"):
        op.drop_index(op.f(f"ix_appointment_links_{column}"), table_name="appointment_links")
    op.drop_table("appointment_links")
