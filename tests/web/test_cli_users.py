"""`checkin users ...` through the real command (Typer's runner), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import make_settings
from worker.cli import app
from worker.services.records import accounts
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import ApiToken, User

runner = CliRunner()
PASSWORD = "a long enough password"


def checkin(db_url: str, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(
        app, list(args), input=stdin, env={"CHECKIN_DATABASE_URL": db_url}, catch_exceptions=False
    )


def users(db_url: str) -> list[User]:
    rt = build_runtime(make_settings(db_url))
    try:
        with session_scope(rt.sessions) as session:
            return list(session.scalars(select(User).order_by(User.id)))
    finally:
        rt.close()


def test_users_add_reads_the_password_from_stdin_and_prints_the_id(db_url: str) -> None:
    r = checkin(
        db_url, "users", "add", "--name", "Dr. Rivera", "--email", "Rivera@Clinic.example",
        "--role", "clinician", "--password-stdin", "--json", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    # A clinician with CHECKIN_REQUIRE_2FA at its default (1): the TOTP secret exists already.
    assert set(data) == {"id", "otpauth_uri"}
    (user,) = users(db_url)
    assert (user.id, user.email, user.role) == (data["id"], "rivera@clinic.example", "clinician")
    assert data["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={user.totp_secret}" in data["otpauth_uri"] and user.totp_confirmed_at is None
    assert PASSWORD not in r.output and user.password_hash.startswith("$argon2id$")
    listed = json.loads(checkin(db_url, "users", "list", "--json").stdout)
    assert [(u["id"], u["email"], u["role"]) for u in listed] == [
        (user.id, "rivera@clinic.example", "clinician")
    ]
    assert "password" not in json.dumps(listed)


def test_users_add_asks_twice_and_refuses_two_different_passwords(db_url: str) -> None:
    base = ["users", "add", "--name", "Jo", "--email", "jo@clinic.example", "--role", "frontdesk"]
    r = checkin(db_url, *base, stdin=f"{PASSWORD}\n{PASSWORD}x\n")
    assert r.exit_code == 1 and "the two passwords differ" in r.stderr
    assert users(db_url) == []
    r = checkin(db_url, *base, "--json", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.stdout  # hidden input: not echoed
    assert json.loads(r.stdout)["id"] == users(db_url)[0].id


def test_users_add_refuses_bad_input_in_one_line_and_writes_nothing(db_url: str) -> None:
    cases = [
        (["--role", "doctor"], "role must be one of clinician, frontdesk, admin"),
        (["--email", "nope"], "invalid email address"),
    ]
    for extra, message in cases:
        args = ["users", "add", "--name", "X", "--email", "x@clinic.example", "--role", "admin"]
        r = checkin(db_url, *args, *extra, "--password-stdin", stdin=PASSWORD + "\n")
        assert r.exit_code == 1 and message in r.stderr and r.stdout == ""
    r = checkin(
        db_url, "users", "add", "--name", "X", "--email", "x@clinic.example", "--role", "admin",
        "--password-stdin", stdin="short\n",
    )  # fmt: skip
    assert r.exit_code == 1 and "at least 10 characters" in r.stderr
    assert users(db_url) == []


def test_a_duplicate_email_is_refused(db_url: str) -> None:
    args = ["users", "add", "--name", "A", "--email", "a@clinic.example", "--role", "admin"]
    assert checkin(db_url, *args, "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    r = checkin(db_url, *args, "--password-stdin", stdin=PASSWORD + "\n")
    assert r.exit_code == 1 and "already exists" in r.stderr
    assert len(users(db_url)) == 1


def test_users_token_prints_a_working_token_once(db_url: str) -> None:
    r = checkin(
        db_url, "users", "add", "--name", "A", "--email", "a@clinic.example", "--role",
        "clinician", "--password-stdin", "--json", stdin=PASSWORD + "\n",
    )  # fmt: skip
    uid = json.loads(r.stdout)["id"]
    r = checkin(db_url, "users", "token", str(uid), "--name", "nightly export")
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("ck_") and len(token) > 40
    assert "only as a hash" in r.stderr
    rt = build_runtime(make_settings(db_url))
    try:
        with session_scope(rt.sessions) as session:
            user = accounts.token_user(session, token, now=rt.now())
            assert user is not None and user.id == uid
            (row,) = session.scalars(select(ApiToken)).all()
            assert row.name == "nightly export" and token not in row.token_hash
    finally:
        rt.close()
    listed = checkin(db_url, "users", "tokens", "--json").stdout
    assert token not in listed and "nightly export" in listed
    r = checkin(db_url, "users", "token", str(uid + 50), "--name", "x")
    assert r.exit_code == 1 and f"no user with id {uid + 50}" in r.stderr


def test_users_disable_ends_sign_in_and_tokens(db_url: str) -> None:
    r = checkin(
        db_url, "users", "add", "--name", "A", "--email", "a@clinic.example", "--role",
        "clinician", "--password-stdin", "--json", stdin=PASSWORD + "\n",
    )  # fmt: skip
    uid = json.loads(r.stdout)["id"]
    token = checkin(db_url, "users", "token", str(uid), "--name", "x").stdout.strip()
    assert checkin(db_url, "users", "disable", str(uid)).exit_code == 0
    rt = build_runtime(make_settings(db_url))
    try:
        with session_scope(rt.sessions) as session:
            assert accounts.token_user(session, token, now=rt.now()) is None
            assert accounts.authenticate(session, "a@clinic.example", PASSWORD) is None
    finally:
        rt.close()
