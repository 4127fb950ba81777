"""Pure pieces of the dashboard: the signed session cookie and the SVG chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from worker.web.auth import SessionCodec, SessionData, anonymous, csrf_ok
from worker.web.charts import Marker, Panel, Series, render_chart

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def test_a_session_cookie_round_trips() -> None:
    codec = SessionCodec(b"k" * 32)
    data = SessionData(sid="abc", issued=int(NOW.timestamp()), csrf="c" * 32)
    assert codec.loads(codec.dumps(data), NOW + timedelta(hours=1)) == data


def test_a_tampered_forged_or_expired_cookie_is_refused() -> None:
    codec = SessionCodec(b"k" * 32)
    value = codec.dumps(SessionData(sid="abc", issued=int(NOW.timestamp()), csrf="c" * 32))
    payload, mac = value.split(".")
    other = SessionCodec(b"x" * 32).dumps(
        SessionData(sid="abc", issued=int(NOW.timestamp()), csrf="c" * 32)
    )
    forged_payload = (
        SessionCodec(b"k" * 32)
        .dumps(SessionData(sid="someone-else", issued=int(NOW.timestamp()), csrf="c" * 32))
        .split(".")[0]
    )
    assert codec.loads(other, NOW) is None  # signed with another key
    assert codec.loads(f"{forged_payload}.{mac}", NOW) is None  # payload swapped under a MAC
    assert codec.loads(payload, NOW) is None
    assert codec.loads("garbage", NOW) is None
    assert codec.loads(value, NOW + timedelta(hours=12, seconds=1)) is None  # expired


def test_the_csrf_token_must_match_exactly() -> None:
    session = anonymous(NOW)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, session.csrf[:-1])
    assert anonymous(NOW).csrf != session.csrf


def chart(points: list[tuple[datetime, float]], markers: list[Marker]) -> ET.Element:
    svg = render_chart(
        [
            Panel("Daily <0-10>", 10, [Series("mood", "Mood", "#1f6feb", points)], ticks=(0, 10)),
            Panel("Totals", 27, [Series("phq9", "PHQ-9", "#0a3069", [])], bands=((10, "x"),)),
        ],
        markers,
        start=NOW - timedelta(days=30),
        end=NOW + timedelta(days=3),
        now=NOW,
        tz="America/New_York",
        title='Answers & "appointments"',
    )
    return ET.fromstring(svg)  # well-formed XML, or this raises


def test_the_chart_draws_each_answer_and_each_appointment_in_range() -> None:
    points = [(NOW - timedelta(days=d), float(d % 10)) for d in (40, 20, 10, 1)]
    markers = [
        Marker(NOW - timedelta(days=5), "Infusion <Suite 2>", "infusion"),
        Marker(NOW + timedelta(days=2), "Therapy", "therapy"),
        Marker(NOW - timedelta(days=60), "too old", "infusion"),
    ]
    root = chart(points, markers)
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 1  # PHQ-9 has no points: no line at all
    assert len(lines[0].get("points", "").split()) == 3  # the point 40 days ago is out of range
    assert len(root.findall(f".//{SVG}circle")) == 3
    kinds = [g.get("data-kind") for g in root.findall(f".//{SVG}g")]
    assert kinds == ["infusion", "therapy"]
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "Infusion <Suite 2>" in titles  # parsed back: it was escaped in the markup
    assert 'Answers & "appointments"' in titles


def test_higher_values_are_drawn_higher() -> None:
    root = chart([(NOW - timedelta(days=2), 2.0), (NOW - timedelta(days=1), 9.0)], [])
    ys = [float(c.get("cy", "0")) for c in root.findall(f".//{SVG}circle")]
    assert ys[1] < ys[0]  # SVG y grows downwards


def test_the_markup_carries_no_style_attributes() -> None:
    # The dashboard's Content-Security-Policy has no 'unsafe-inline' for styles.
    root = chart([(NOW, 5.0)], [Marker(NOW, "x", "consult")])
    assert all("style" not in el.attrib for el in root.iter())
