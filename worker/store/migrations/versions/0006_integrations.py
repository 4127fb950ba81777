"""integrations: external ids and the HL7 inbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
    op.create_table(
        "external_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=12), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("system", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_ids")),
        sa.UniqueConstraint(
            "entity", "system", "value", name="uq_external_ids_entity_system_value"
        ),
    )
    op.create_index(
        "ix_external_ids_entity_entity_id", "external_ids", ["entity", "entity_id"], unique=False
    )
    op.create_table(
        "hl7_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("control_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_code", sa.String(length=2), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hl7_messages")),
        sa.UniqueConstraint("sender", "control_id", name="uq_hl7_messages_sender_control_id"),
    )
    op.create_index(
        op.f("ix_hl7_messages_received_at"), "hl7_messages", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_hl7_messages_received_at"), table_name="hl7_messages")
    op.drop_table("hl7_messages")
    op.drop_index("ix_external_ids_entity_entity_id", table_name="external_ids")
    op.drop_table("external_ids")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("birth_date")
