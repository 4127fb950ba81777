"""Accounts on a real database (SQLite and PostgreSQL): argon2 passwords, roles, API tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import make_settings
from worker.services.errors import InvalidInput
from worker.services.records import accounts
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import ApiToken, User

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
PASSWORD = "a long enough password"


@pytest.fixture
def rt(db_url: str) -> Iterator[Runtime]:
    runtime = build_runtime(make_settings(db_url))
    yield runtime
    runtime.close()


def add(session: Session, email: str = "dr.rivera@clinic.example", role: str = "clinician") -> User:
    return accounts.create_user(
        session, name="Dr. Rivera", email=email, role=role, password=PASSWORD, now=NOW
    )


def user_count(rt: Runtime) -> int:
    with session_scope(rt.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def test_it_stores_an_argon2id_hash_and_never_the_password(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        user = add(session, email="Dr.Rivera@Clinic.Example")
        uid = user.id
    with session_scope(rt.sessions) as session:
        row = session.get(User, uid)
        assert row is not None
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        assert row.email == "dr.rivera@clinic.example"  # one spelling, so sign-in is case-blind
        assert row.role == "clinician" and row.created_at == NOW and row.disabled_at is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": "not-an-email"}, "invalid email address"),
        ({"role": "doctor"}, "role must be one of clinician, frontdesk, admin"),
        ({"password": "short"}, "password must be at least 10 characters"),
        ({"name": "  "}, "name is empty"),
    ],
)
def test_it_refuses_bad_input_and_writes_nothing(
    rt: Runtime, overrides: dict[str, str], message: str
) -> None:
    values = {
        "name": "Dr. Rivera",
        "email": "dr@clinic.example",
        "role": "clinician",
        "password": PASSWORD,
    } | overrides
    with pytest.raises(InvalidInput, match=message), session_scope(rt.sessions) as session:
        accounts.create_user(session, now=NOW, **values)
    assert user_count(rt) == 0


def test_a_second_account_with_the_same_email_is_refused(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        add(session)
    with pytest.raises(InvalidInput, match="already exists"), session_scope(rt.sessions) as s:
        add(s, email="DR.RIVERA@clinic.example", role="admin")
    assert user_count(rt) == 1


def test_authenticate_accepts_the_password_and_nothing_else(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        uid = add(session).id
    with session_scope(rt.sessions) as session:
        ok = accounts.authenticate(session, "  DR.RIVERA@clinic.example ", PASSWORD)
        assert ok is not None and ok.id == uid
        assert accounts.authenticate(session, "dr.rivera@clinic.example", PASSWORD + "x") is None
        assert accounts.authenticate(session, "nobody@clinic.example", PASSWORD) is None
        assert accounts.authenticate(session, "garbage", PASSWORD) is None


def test_a_disabled_account_cannot_sign_in_and_its_tokens_stop(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        uid = add(session).id
        token = accounts.issue_api_token(session, uid, name="script", now=NOW)
    with session_scope(rt.sessions) as session:
        assert accounts.token_user(session, token, now=NOW) is not None
        accounts.disable_user(session, uid, now=NOW)
    with session_scope(rt.sessions) as session:
        assert accounts.authenticate(session, "dr.rivera@clinic.example", PASSWORD) is None
        assert accounts.token_user(session, token, now=NOW) is None


def test_api_tokens_are_stored_as_sha256_and_record_their_last_use(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        uid = add(session).id
        token = accounts.issue_api_token(session, uid, name="nightly export", now=NOW)
    with session_scope(rt.sessions) as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in row.token_hash and row.last_used_at is None
        later = NOW + timedelta(hours=1)
        user = accounts.token_user(session, token, now=later)
        assert user is not None and user.id == uid
    with session_scope(rt.sessions) as session:
        assert session.scalars(select(ApiToken)).one().last_used_at == later
        assert (
            accounts.token_user(session, token[:-1] + ("A" if token[-1] != "A" else "B"), now=NOW)
            is None
        )
        assert accounts.token_user(session, "", now=NOW) is None


def test_a_revoked_token_is_refused(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        uid = add(session).id
        token = accounts.issue_api_token(session, uid, name="x", now=NOW)
        token_id = session.scalars(select(ApiToken.id)).one()
    with session_scope(rt.sessions) as session:
        accounts.revoke_api_token(session, token_id, now=NOW)
    with session_scope(rt.sessions) as session:
        assert accounts.token_user(session, token, now=NOW) is None


def test_two_tokens_are_different_and_each_names_its_user(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        a = add(session, email="a@clinic.example").id
        b = add(session, email="b@clinic.example", role="frontdesk").id
        ta = accounts.issue_api_token(session, a, name="a", now=NOW)
        tb = accounts.issue_api_token(session, b, name="b", now=NOW)
    assert ta != tb
    with session_scope(rt.sessions) as session:
        ua, ub = (
            accounts.token_user(session, ta, now=NOW),
            accounts.token_user(session, tb, now=NOW),
        )
        assert ua is not None and ub is not None
        assert (ua.id, ub.id, ub.role) == (a, b, "frontdesk")


def test_a_token_needs_a_label_and_an_existing_user(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        uid = add(session).id
    with pytest.raises(InvalidInput, match="label"), session_scope(rt.sessions) as session:
        accounts.issue_api_token(session, uid, name=" ", now=NOW)
    with pytest.raises(LookupError), session_scope(rt.sessions) as session:
        accounts.issue_api_token(session, uid + 99, name="x", now=NOW)
    with session_scope(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_roles_decide_what_an_account_sees() -> None:
    desk = User(role="frontdesk")
    doc = User(role="clinician")
    admin = User(role="admin")
    assert not accounts.can_see_clinical(desk)
    assert accounts.can_see_clinical(doc) and accounts.can_see_clinical(admin)
    assert accounts.can_see_followup(desk, "reschedule_request")
    assert not accounts.can_see_followup(desk, "crisis_language")
    assert not accounts.can_see_followup(desk, "high_pain")
    assert accounts.can_see_followup(doc, "crisis_language")
    assert not accounts.can_see_operations(desk) and accounts.can_see_operations(admin)
