"""`GET /followups/{id}`, the page the on-call link opens, and the queue cards that lead to it,
over real HTTP: the app served by uvicorn, replies through the real pipeline (signed by the
Twilio emulator), pages rendered and sent as the on-call receives them. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from sqlalchemy import select

from tests.integration.clinic import ONCALL_EMAIL, ONCALL_PHONE, Clinic
from tests.integration.test_replies import send_checkin
from tests.web.conftest import Browser, add_account, csrf_of
from worker.services.clinical.followups import raise_followup
from worker.store.db import session_scope
from worker.store.models import FollowUp, Message, Response

PHONE = "+12125550142"
STRANGER = "+13105550177"
CRISIS = "I want to end my life <b>tonight</b>"
ITEM9_TEXT = "Thoughts that you would be better off dead, or of hurting yourself in some way"


def _crisis(clinic: Clinic, name: str = "Pat Doe") -> tuple[int, int]:
    pid = clinic.cli.json(
        "patients", "add", "--name", name, "--phone", PHONE, "--tz", "America/Chicago",
        "--channel", "sms", "--consent", "sms",
    )["id"]  # fmt: skip
    clinic.text(PHONE, CRISIS)
    with session_scope(clinic.rt.sessions) as session:
        item = session.scalars(select(FollowUp).where(FollowUp.patient_id == pid)).one()
        return int(pid), item.id


def _link_in_page(clinic: Clinic) -> str:
    """The path of the link in the page SMS, as the on-call's phone shows it."""
    (body,) = clinic.sms_to(ONCALL_PHONE)
    match = re.search(r"https?://\S+", body)
    assert match, body
    url = urlsplit(match.group(0))
    assert f"{url.scheme}://{url.netloc}" == clinic.base_url
    return url.path


def _status(clinic: Clinic, fid: int) -> str:
    with session_scope(clinic.rt.sessions) as session:
        item = session.get(FollowUp, fid)
        assert item is not None
        return item.status


def test_the_page_link_leads_through_sign_in_to_the_follow_up(clinic: Clinic, web: Browser) -> None:
    pid, fid = _crisis(clinic)
    path = _link_in_page(clinic)
    assert path == f"/followups/{fid}"
    assert any(f"/followups/{fid}" in m.decode() for m in clinic.mail_to(ONCALL_EMAIL))

    # Signed out: to the sign-in page, which carries the target through its form.
    r = web.get(path)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next={quote(path, '')}"
    login = web.get(r.headers["location"])
    assert login.status_code == 200 and "Pat Doe" not in login.text and CRISIS not in login.text
    assert f'name="next" value="{path}"' in login.text
    doc = add_account(clinic, "clinician")
    # A wrong password keeps the target for the next try.
    r = web.http.post(
        "/login",
        data={"csrf": csrf_of(login.text), "email": doc.email, "password": "nope", "next": path},
    )
    assert r.status_code == 401 and f'name="next" value="{path}"' in r.text
    r = web.http.post(
        "/login",
        data={"csrf": csrf_of(login.text), "email": doc.email, "password": doc.password,
              "next": path},
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == path

    page = web.get(path)
    assert page.status_code == 200
    html = page.text
    assert "Pat Doe" in html and f'href="/patients/{pid}"' in html
    assert f'href="tel:{PHONE}"' in html
    # Verbatim and escaped.
    assert "I want to end my life &lt;b&gt;tonight&lt;/b&gt;" in html and "<b>tonight" not in html
    assert "Crisis language in a reply" in html and "America/Chicago" in html
    assert re.search(r"<strong>\d+s ago</strong>|<strong>\d+ min ago</strong>", html)
    assert "Matched:" in html  # the evidence: which phrase
    # The pages sent for it: SMS and email, with their state.
    pages = html[html.index('id="pages"') :]
    assert pages.count("<tr>") == 2 and "sms" in pages and "email" in pages
    # The ladder's first rung, recorded on the follow-up, is on the page too.
    assert "Escalation" in pages and "On-call paged, page 1" in pages
    assert f'action="/followups/{fid}/ack"' in html
    assert f'name="back" value="/followups/{fid}"' in html

    # Acknowledge from the page: back to it, acknowledged.
    r = web.post(f"{path}/ack", {"back": path}, token_from=path)
    assert r.status_code == 303 and r.headers["location"].startswith(f"{path}?done=acknowledged")
    after = web.get(r.headers["location"]).text
    assert "Follow-up acknowledged." in after and "Acknowledged by Dr. Rivera" in after
    assert f'action="/followups/{fid}/ack"' not in after
    assert _status(clinic, fid) == "acknowledged"


def test_resolving_from_the_page_keeps_the_note_when_refused(clinic: Clinic, web: Browser) -> None:
    _, fid = _crisis(clinic)
    path = f"/followups/{fid}"
    web.sign_in(add_account(clinic, "clinician"))
    token = web.csrf(path)
    r = web.http.post(f"{path}/resolve", data={"csrf": token, "back": path, "note": "   "})
    assert r.status_code == 422
    assert "cannot be resolved without a note" in r.text and f'id="f{fid}"' in r.text
    assert _status(clinic, fid) == "open"
    note = "Called; safety plan <reviewed>"
    r = web.http.post(f"{path}/resolve", data={"csrf": token, "back": path, "note": note})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{path}?done=resolved")
    resolved = web.get(path).text
    assert "Resolved by Dr. Rivera" in resolved and "safety plan &lt;reviewed&gt;" in resolved
    assert f'action="/followups/{fid}/resolve"' not in resolved
    # A second tab's stale form: refused on the page itself, the typed note kept.
    r = web.http.post(f"{path}/resolve", data={"csrf": token, "back": path, "note": "again, later"})
    assert r.status_code == 422 and "already resolved" in r.text
    assert "again, later" in r.text


def test_next_after_sign_in_stays_on_this_site(clinic: Clinic, web: Browser) -> None:
    doc = add_account(clinic, "clinician")
    token = web.csrf("/login")
    targets = {
        "/followups/7?from=page#top": "/followups/7?from=page#top",
        "//evil.example/x": "/queue",
        "https://evil.example/x": "/queue",
        "/\\evil.example": "/queue",
        "/\t/evil.example": "/queue",
        "/\n/evil.example": "/queue",
        " /followups/7": "/queue",
        "javascript:alert(1)": "/queue",
        "": "/queue",
    }
    for target, landing in targets.items():
        web.http.cookies.clear()
        token = web.csrf("/login")
        r = web.http.post(
            "/login",
            data={"csrf": token, "email": doc.email, "password": doc.password, "next": target},
        )
        assert r.status_code == 303 and r.headers["location"] == landing, target
    # Signed in, the sign-in page itself forwards to a safe `next` only.
    assert web.get("/login?next=%2Ffollowups%2F7").headers["location"] == "/followups/7"
    assert web.get("/login?next=%2F%2Fevil.example").headers["location"] == "/queue"


def test_an_unknown_sender_is_shown_with_the_number_to_call(clinic: Clinic, web: Browser) -> None:
    clinic.text(STRANGER, "i want to kill myself")
    with session_scope(clinic.rt.sessions) as session:
        (item,) = session.scalars(select(FollowUp)).all()
        fid = item.id
        assert item.patient_id is None
    web.sign_in(add_account(clinic, "clinician"))
    queue = web.get("/queue").text
    card = queue[queue.index(f'id="f{fid}"') :]
    assert "unknown sender" in card and f'href="tel:{STRANGER}"' in card and STRANGER in card
    assert f'href="/followups/{fid}"' in card  # the card leads to the page
    page = web.get(f"/followups/{fid}").text
    assert "Unknown sender" in page and f'href="tel:{STRANGER}"' in page
    assert "i want to kill myself" in page and "UTC" in page  # no patient zone, no clinic zone
    # A second text from the same number: its own item, the first one listed as history.
    clinic.text(STRANGER, "I want to die")
    with session_scope(clinic.rt.sessions) as session:
        second = max(f.id for f in session.scalars(select(FollowUp)))
    related = web.get(f"/followups/{second}").text
    assert "Other crisis follow-ups from this number" in related
    assert f'href="/followups/{fid}"' in related


def test_the_front_desk_gets_no_clinical_follow_up(clinic: Clinic, web: Browser) -> None:
    pid, crisis_id = _crisis(clinic, name="Quentin Private")
    with session_scope(clinic.rt.sessions) as session:
        desk, _ = raise_followup(
            session,
            patient_id=pid,
            reason="reschedule_request",
            severity="routine",
            detail={"note": "Patient replied R."},
            now=datetime.now(UTC),
        )
        desk_id = desk.id
    web.sign_in(add_account(clinic, "frontdesk"))
    r = web.get(f"/followups/{crisis_id}")
    assert r.status_code == 403 and "Not allowed" in r.text
    assert "Quentin" not in r.text and "end my life" not in r.text
    r = web.get(f"/followups/{desk_id}")
    assert r.status_code == 200
    assert "Quentin Private" in r.text and f'href="tel:{PHONE}"' in r.text
    assert "Patient replied R." in r.text
    assert "end my life" not in r.text and "Last scores" not in r.text
    assert web.get("/followups/99999").status_code == 404
    assert web.get("/followups/not-a-number").status_code == 404
    assert web.get("/followups/-1").status_code == 404
    huge = web.get("/followups/99999999999999999999")  # beyond PostgreSQL's integer
    assert huge.status_code == 404 and "no follow-up with id" in huge.text
    assert web.post("/followups/99999999999999999999/ack", {}).status_code == 404
    # The action is refused server-side as well.
    r = web.post(f"/followups/{crisis_id}/ack", {"back": f"/followups/{crisis_id}"})
    assert r.status_code == 403 and _status(clinic, crisis_id) == "open"


def test_a_phq9_item9_card_names_the_item_the_answer_and_the_total(
    clinic: Clinic, web: Browser
) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00", "--questionnaire-mode", "sms")
    send_checkin(clinic, pid, "phq9")
    for answer in ["2", "1", "1", "1", "1", "2", "0", "0", "1"]:  # total 9, item 9 = 1
        clinic.text(PHONE, answer)
    with session_scope(clinic.rt.sessions) as session:
        (item,) = session.scalars(
            select(FollowUp).where(FollowUp.reason == "phq9_item9", FollowUp.patient_id == pid)
        ).all()
        fid = item.id
    web.sign_in(add_account(clinic, "clinician"))
    queue = web.get("/queue").text
    card = queue[
        queue.index(f'id="f{fid}"') : queue.index("</article>", queue.index(f'id="f{fid}"'))
    ]
    assert f"Item 9 “{ITEM9_TEXT}”: 1 = Several days; PHQ-9 total 9, mild" in card
    page = web.get(f"/followups/{fid}").text
    assert "1 = Several days; PHQ-9 total 9, mild" in page
    assert "PHQ-9 total (0-27)" in page  # the complete PHQ-9 is in the last scores


def test_an_item9_answer_in_words_shows_the_patients_words(clinic: Clinic, web: Browser) -> None:
    pid = clinic.patient(PHONE, "--send-window", "00:00-24:00", "--questionnaire-mode", "sms")
    send_checkin(clinic, pid, "phq9")
    for answer in ["1", "1", "0", "1", "0", "1", "0", "0", "why do you ask"]:
        clinic.text(PHONE, answer)
    with session_scope(clinic.rt.sessions) as session:
        (item,) = session.scalars(
            select(FollowUp).where(FollowUp.reason == "phq9_item9", FollowUp.patient_id == pid)
        ).all()
        fid = item.id
    web.sign_in(add_account(clinic, "clinician"))
    page = web.get(f"/followups/{fid}").text
    assert "answered in words: “why do you ask”; PHQ-9 so far 4 (8 of 9 items)" in page


def test_a_partial_phq9_shows_the_total_so_far(clinic: Clinic, web: Browser) -> None:
    pid = clinic.patient(PHONE)
    now = datetime.now(UTC)
    with session_scope(clinic.rt.sessions) as session:
        from worker.store.models import CheckIn

        checkin = CheckIn(
            patient_id=pid, instrument="phq9", channel="sms", item_index=8, status="partial",
            sent_at=now - timedelta(hours=1), window_closes_at=now + timedelta(hours=1),
        )  # fmt: skip
        session.add(checkin)
        session.flush()
        for n, value in zip(range(1, 10), [3, 3, 2, 2, 2, 3, 0, 0, 2], strict=True):
            if n == 8:
                continue  # item 8 skipped: 8 of 9 answered
            session.add(
                Response(
                    checkin_id=checkin.id,
                    patient_id=pid,
                    instrument="phq9",
                    item=f"phq9_{n}",
                    value=value,
                    answered_at=now,
                )
            )
        item, _ = raise_followup(
            session,
            patient_id=pid,
            reason="phq9_item9",
            severity="urgent",
            detail={"checkin_id": checkin.id, "instrument": "phq9", "item": "phq9_9", "value": 2},
            now=now,
        )
        fid = item.id
    web.sign_in(add_account(clinic, "clinician"))
    card = web.get("/queue").text
    assert (
        "2 = More than half the days; PHQ-9 so far 17 (8 of 9 items), moderately severe or worse"
        in card
    )
    assert "PHQ-9 so far 17" in web.get(f"/followups/{fid}").text


def test_scores_trend_and_escalation_steps_on_the_page(clinic: Clinic, web: Browser) -> None:
    pid, fid = _crisis(clinic)
    now = datetime.now(UTC)
    with session_scope(clinic.rt.sessions) as session:
        for days, mood in ((3, 7), (2, 6), (1, 3)):
            session.add(
                Response(
                    patient_id=pid,
                    instrument="mood",
                    item="mood",
                    value=mood,
                    answered_at=now - timedelta(days=days),
                )
            )
        pages = session.scalars(select(Message.id).where(Message.followup_id == fid)).all()
        item = session.get(FollowUp, fid)
        assert item is not None
        item.detail = {
            **item.detail,
            "escalation": [
                {"at": (now - timedelta(minutes=30)).isoformat(), "step": "oncall", "page": 1,
                 "channels": ["sms", "email"], "message_ids": list(pages)},
                {"at": now.isoformat(), "step": "backup", "page": 5, "channels": ["sms"],
                 "message_ids": []},
            ],
        }  # fmt: skip
    web.sign_in(add_account(clinic, "clinician"))
    html = web.get(f"/followups/{fid}").text
    scores = html[html.index('id="scores"') : html.index("</section>", html.index('id="scores"'))]
    assert "Mood (0-10, 10 best)" in scores and "7 → 6 → 3" in scores
    assert '<span class="trend worse">worse</span>' in scores
    steps = html[html.index("<h3>Escalation</h3>") :]
    assert "On-call paged, page 1" in steps and "(sms, email)" in steps
    assert "Backup paged, page 5" in steps


def test_every_follow_up_of_the_demo_clinic_opens(clinic: Clinic, web: Browser) -> None:
    from worker.services.demo.clinic import seed_demo

    demo = seed_demo(clinic.rt, datetime.now(UTC))
    with session_scope(clinic.rt.sessions) as session:
        items = [(f.id, f.reason, f.patient_id) for f in session.scalars(select(FollowUp))]
    assert len({reason for _, reason, _ in items}) >= 4  # several shapes of evidence
    web.sign_in(add_account(clinic, "admin"))
    names = {p["id"]: p["name"] for p in demo["patients"]}
    for fid, reason, pid in items:
        r = web.get(f"/followups/{fid}")
        assert r.status_code == 200, (fid, reason, r.text[-500:])
        assert pid is None or names[pid] in r.text
    # The queue's cards all lead to their pages.
    queue = web.get("/queue").text
    for fid, _, _ in items:
        if f'id="f{fid}"' in queue:
            assert f'href="/followups/{fid}"' in queue
