"""access control: two-factor sign-in, throttling, session idle timeout, audit of every access

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit trail is append-only: the database itself refuses to change or remove a row.
PG_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
"""
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("via", sa.String(length=12), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_audit_events_user_id_users"), "users", ["user_id"], ["id"]
        )
        batch.create_index(batch.f("ix_audit_events_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("totp_confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recovery_codes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("web_sessions", schema=None) as batch:
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("stage", sa.String(length=8), nullable=False, server_default="full")
        )
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(length=200), nullable=True))
    op.create_table(
        "signin_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("cleared", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_failures")),
    )
    with op.batch_alter_table("signin_failures", schema=None) as batch:
        batch.create_index(batch.f("ix_signin_failures_at"), ["at"], unique=False)
        batch.create_index(batch.f("ix_signin_failures_user_id"), ["user_id"], unique=False)
        batch.create_index(batch.f("ix_signin_failures_address"), ["address"], unique=False)
    # After the batch operations (SQLite's batch mode copies the table, triggers and all).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    op.drop_table("signin_failures")
    with op.batch_alter_table("web_sessions", schema=None) as batch:
        for column in ("user_agent", "address", "stage", "last_seen_at"):
            batch.drop_column(column)
    with op.batch_alter_table("users", schema=None) as batch:
        for column in (
            "locked_until",
            "recovery_codes",
            "totp_last_step",
            "totp_confirmed_at",
            "totp_secret",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("audit_events", schema=None) as batch:
        batch.drop_index(batch.f("ix_audit_events_user_id"))
        batch.drop_constraint(batch.f("fk_audit_events_user_id_users"), type_="foreignkey")
        for column in ("via", "address", "token_id", "user_id"):
            batch.drop_column(column)
