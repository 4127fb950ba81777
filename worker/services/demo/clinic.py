"""`checkin demo`: a small clinic that shows messages flowing within a minute or two.

Three patients in zones where it is daytime right now (so quiet hours do not hold the demo
back), on different protocols, each with a check-in a couple of minutes from now and upcoming
appointments whose first reminders fall due within minutes. Four weeks of made-up history
(answers, questionnaires, past appointments, replies, follow-ups) fill the dashboard, and a
demo clinician account is created (or its password renewed) to sign in with.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.services.demo.history import seed_history
from worker.services.records.accounts import create_user, set_password
from worker.services.records.appointments import add_appointment
from worker.services.records.patients import add_patient
from worker.services.records.schedules import add_schedule, enroll
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Patient, User

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "Europe/London",
    "Europe/Madrid",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)

PEOPLE = (
    (
        "Alex Rivera (demo)",
        "+12125550101",
        "alex@example.org",
        "sms",
        "en",
        "ketamine-induction",
        "infusion",
    ),
    (
        "Sam Okafor (demo)",
        "+12125550102",
        "sam@example.org",
        "email",
        "en",
        "therapy-weekly",
        "therapy",
    ),
    (
        "Lucía Gómez (demo)",
        "+12125550103",
        "lucia@example.org",
        "sms",
        "es",
        "pain-weekly",
        "physical_therapy",
    ),
)


def daytime_zones(now: datetime) -> list[str]:
    """Zones where local time is between 09:00 and 19:00, falling back to all of them."""
    good = [z for z in ZONES if 9 <= now.astimezone(ZoneInfo(z)).hour < 19]
    return good or list(ZONES)


def seed_demo(rt: Runtime, now: datetime) -> dict[str, Any]:
    zones = daytime_zones(now)
    created: list[dict[str, Any]] = []
    seeded: list[tuple[Patient, str]] = []
    with session_scope(rt.sessions) as session:
        for i, (name, phone, email, channel, lang, protocol, kind) in enumerate(PEOPLE):
            tz = zones[i % len(zones)]
            local_now = now.astimezone(ZoneInfo(tz))
            patient = add_patient(
                session,
                now=now,
                name=name,
                tz=tz,
                channel=channel,
                phone=phone,
                email=email,
                consent=["sms", "email"],
                consent_source="demo",
                language=lang,
                actor="demo",
            )
            enroll(
                session,
                patient.id,
                rt.protocols[protocol],
                start=local_now.date(),
                now=now,
                actor="demo",
            )
            soon = local_now + timedelta(minutes=2 + i)
            add_schedule(
                session,
                patient.id,
                now=now - timedelta(minutes=1),
                instrument="mood_pain",
                rrule=f"FREQ=DAILY;BYHOUR={soon.hour};BYMINUTE={soon.minute}",
                start=local_now.date(),
                actor="demo",
            )
            # The 2-hour reminder of this one falls due about three minutes from now.
            at = (local_now + timedelta(hours=2, minutes=3 + i)).strftime("%Y-%m-%dT%H:%M")
            add_appointment(
                session,
                patient.id,
                now=now - timedelta(minutes=1),
                kind=kind,
                at=at,
                location="Suite 200",
                actor="demo",
            )
            later = (local_now + timedelta(days=3, hours=1)).strftime("%Y-%m-%dT%H:%M")
            add_appointment(session, patient.id, now=now, kind=kind, at=later, actor="demo")
            created.append(
                {"id": patient.id, "name": name, "tz": tz, "channel": channel, "protocol": protocol}
            )
            seeded.append((patient, kind))
        seed_history(rt, session, seeded, now)
        sign_in = demo_account(session, rt, now)
    return {"patients": created, "sign_in": sign_in}


DEMO_EMAIL = "demo@clinic.example"


def demo_account(session: Session, rt: Runtime, now: datetime) -> dict[str, str]:
    """The demo clinician: created once; each demo run gives it a fresh random password."""
    password = secrets.token_urlsafe(12)
    existing = session.scalars(select(User).where(User.email == DEMO_EMAIL)).first()
    if existing is None:
        create_user(
            session,
            name="Dr. Demo Clinician",
            email=DEMO_EMAIL,
            role="clinician",
            password=password,
            now=now,
        )
    else:
        set_password(session, existing.id, password, now=now)
    return {"url": f"{rt.settings.public_url}/login", "email": DEMO_EMAIL, "password": password}
