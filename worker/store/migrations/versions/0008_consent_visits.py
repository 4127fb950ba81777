"""consent texts: email unsubscribe tokens, the monthly STOP notice flag on messages

Revision ID: 0008_consent_visits
Revises: 0007_forms
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_consent_visits"
down_revision: str | None = "0007_forms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unsubscribe_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_unsubscribe_tokens_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unsubscribe_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_unsubscribe_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_unsubscribe_tokens_patient_id"), "unsubscribe_tokens", ["patient_id"], unique=False
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stop_notice", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("stop_notice")
    op.drop_index(op.f("ix_unsubscribe_tokens_patient_id"), table_name="unsubscribe_tokens")
    op.drop_table("unsubscribe_tokens")
