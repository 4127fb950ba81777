"""forms: private questionnaire links and each patient's questionnaire mode

Revision ID: 0007_forms
Revises: 0006
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_forms"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "questionnaire_mode", sa.String(length=8), nullable=False, server_default="link"
            )
        )
    op.create_table(
        "form_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dob_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_form_links_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_form_links_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_form_links_token_hash")),
    )
    op.create_index(op.f("ix_form_links_message_id"), "form_links", ["message_id"], unique=False)
    op.create_index(op.f("ix_form_links_patient_id"), "form_links", ["patient_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_form_links_patient_id"), table_name="form_links")
    op.drop_index(op.f("ix_form_links_message_id"), table_name="form_links")
    op.drop_table("form_links")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("questionnaire_mode")
