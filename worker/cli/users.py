"""`checkin users ...`: dashboard and API accounts.

Passwords are never taken as a command-line argument (they would end up in shell history and in
`ps`): either typed twice at a hidden prompt, or read from stdin with `--password-stdin`.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

app = typer.Typer(help="Dashboard and API accounts.", no_args_is_help=True)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")

# Helpers are imported inside the commands to keep `checkin --help` fast.


def user_dict(u: Any) -> dict[str, Any]:
    from worker.cli.common import iso

    return {
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "role": u.role,
        "created_at": iso(u.created_at),
        "disabled_at": iso(u.disabled_at),
        "two_factor": u.totp_confirmed_at is not None,
        "locked_until": iso(u.locked_until),
    }


def _read_password(from_stdin: bool) -> str:
    from worker.cli.common import fail

    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True, err=True)
    second = typer.prompt("Repeat password", hide_input=True, err=True)
    if first != second:
        fail("the two passwords differ")
    return str(first)


@app.command("add")
def users_add(
    name: str = typer.Option(..., "--name"),
    email: str = typer.Option(..., "--email"),
    role: str = typer.Option(..., "--role", help="clinician, frontdesk or admin"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of stdin"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Add an account. Without --password-stdin, the password is asked twice (hidden)."""
    from worker.cli.common import emit, fail, runtime, transaction
    from worker.services.errors import InvalidInput
    from worker.services.records.accounts import ROLES, create_user, normalize_user_email

    # Check what can be checked before asking for a password, so a typo costs no typing.
    if role not in ROLES:
        fail(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    try:
        normalize_user_email(email)
    except InvalidInput as exc:
        fail(str(exc))
    password = _read_password(password_stdin)
    from worker.services.records import audit, twofactor

    with runtime() as rt, transaction(rt) as session:
        now = rt.now()
        user = create_user(session, name=name, email=email, role=role, password=password, now=now)
        data: dict[str, Any] = {"id": user.id}
        if twofactor.required(rt.settings, user):
            # The secret exists now; the user confirms it with a first code at first sign-in
            # (or a script enrols an authenticator from this URI).
            data["otpauth_uri"] = twofactor.otpauth_uri(user, rt.settings.clinic_name)
        audit.record(session, now=now, actor="cli", action="create", entity="user",
                     entity_id=user.id, detail={"role": role})  # fmt: skip
    emit(data, as_json, lambda d: f"user {d['id']} added")
    if not as_json and "otpauth_uri" in data:
        typer.echo("Two-step sign-in applies: the user scans a QR code at first sign-in.", err=True)


@app.command("reset-2fa")
def users_reset_2fa(user_id: int, as_json: bool = JsonOpt) -> None:
    """Forget a user's second factor (lost phone): a new secret to enrol at the next sign-in,
    the recovery codes void, every session ended."""
    from worker.cli.common import emit, runtime, transaction
    from worker.services.records import audit, twofactor
    from worker.services.records.accounts import end_web_sessions, get_user

    with runtime() as rt, transaction(rt) as session:
        now = rt.now()
        user = get_user(session, user_id)
        twofactor.reset(user)
        end_web_sessions(session, user_id, now=now)
        audit.record(session, now=now, actor="cli", action="2fa_reset", entity="user",
                     entity_id=user_id)  # fmt: skip
        data = {
            **user_dict(user),
            "otpauth_uri": twofactor.otpauth_uri(user, rt.settings.clinic_name),
        }
    emit(
        data, as_json, lambda d: f"two-step sign-in of user {d['id']} reset: enrol at next sign-in"
    )


@app.command("unlock")
def users_unlock(user_id: int, as_json: bool = JsonOpt) -> None:
    """Lift a lock after too many failed sign-ins (and forget the recent failures)."""
    from worker.cli.common import emit, runtime, transaction
    from worker.services.records.signin_throttle import unlock

    with runtime() as rt, transaction(rt) as session:
        data = user_dict(unlock(session, user_id, rt.now()))
    emit(data, as_json, lambda d: f"user {d['id']} unlocked")


@app.command("token")
def users_token(
    user_id: int,
    name: str = typer.Option(..., "--name", help="a label, e.g. the script that uses it"),
    as_json: bool = JsonOpt,
) -> None:
    """Issue an API token for a user. It is printed once and cannot be shown again."""
    from worker.cli.common import emit, runtime, transaction
    from worker.services.records.accounts import issue_api_token

    with runtime() as rt, transaction(rt) as session:
        token = issue_api_token(session, user_id, name=name, now=rt.now())
    emit({"user_id": user_id, "name": name, "token": token}, as_json, lambda d: d["token"])
    if not as_json:
        typer.echo("Keep this token now: it is stored only as a hash.", err=True)


@app.command("list")
def users_list(as_json: bool = JsonOpt) -> None:
    """List accounts."""
    from worker.cli.common import emit, runtime, table, transaction
    from worker.services.records.accounts import list_users

    with runtime() as rt, transaction(rt) as session:
        rows = [user_dict(u) for u in list_users(session)]
    emit(rows, as_json, lambda d: table(d, ["id", "name", "email", "role", "disabled_at"]))


@app.command("disable")
def users_disable(user_id: int, as_json: bool = JsonOpt) -> None:
    """Disable an account: no more sign-in, its API tokens stop working."""
    from worker.cli.common import emit, runtime, transaction
    from worker.services.records.accounts import disable_user

    with runtime() as rt, transaction(rt) as session:
        data = user_dict(disable_user(session, user_id, now=rt.now()))
    emit(data, as_json, lambda d: f"user {d['id']} disabled")


@app.command("password")
def users_password(
    user_id: int,
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    as_json: bool = JsonOpt,
) -> None:
    """Set a new password for an account."""
    from worker.cli.common import emit, runtime, transaction
    from worker.services.records.accounts import set_password

    password = _read_password(password_stdin)
    with runtime() as rt, transaction(rt) as session:
        data = user_dict(set_password(session, user_id, password, now=rt.now()))
    emit(data, as_json, lambda d: f"password of user {d['id']} changed")


@app.command("revoke-token")
def users_revoke_token(token_id: int, as_json: bool = JsonOpt) -> None:
    """Revoke an API token by its id (see `checkin users tokens`)."""
    from worker.cli.common import emit, iso, runtime, transaction
    from worker.services.records.accounts import revoke_api_token

    with runtime() as rt, transaction(rt) as session:
        row = revoke_api_token(session, token_id, now=rt.now())
        data = {"id": row.id, "revoked_at": iso(row.revoked_at)}
    emit(data, as_json, lambda d: f"token {d['id']} revoked")


@app.command("tokens")
def users_tokens(user_id: int | None = typer.Argument(None), as_json: bool = JsonOpt) -> None:
    """List API tokens (never their values)."""
    from worker.cli.common import emit, iso, runtime, table, transaction
    from worker.services.records.accounts import list_api_tokens

    with runtime() as rt, transaction(rt) as session:
        rows = [
            {
                "id": t.id,
                "user_id": t.user_id,
                "name": t.name,
                "created_at": iso(t.created_at),
                "last_used_at": iso(t.last_used_at),
                "revoked_at": iso(t.revoked_at),
            }
            for t in list_api_tokens(session, user_id)
        ]
    emit(rows, as_json, lambda d: table(d, ["id", "user_id", "name", "last_used_at", "revoked_at"]))
