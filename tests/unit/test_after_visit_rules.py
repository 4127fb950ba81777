"""The after-visit protocol section and the reading of its answers (pure, no database)."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from worker.domain.protocols import AfterVisit, ProtocolError, load_protocol_file, load_protocols
from worker.services.inbound.after_visit import has_words, needs_clinician

HEAD = """\
name: p
title: P
steps:
  - instrument: sleep
    rrule: FREQ=WEEKLY;BYHOUR=9;BYMINUTE=0
"""


def load(tmp_path: Path, section: str) -> AfterVisit | None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + section)
    return load_protocol_file(path).after_visit


def test_the_shipped_ketamine_protocols_check_in_the_day_after_each_infusion() -> None:
    shipped = load_protocols()
    for name in ("ketamine-induction", "ketamine-maintenance"):
        assert shipped[name].after_visit == AfterVisit(("infusion",), time(10, 0), 3)
    assert shipped["therapy-weekly"].after_visit is None


def test_defaults_and_values(tmp_path: Path) -> None:
    assert load(tmp_path, "after_visit: {}\n") == AfterVisit()
    assert load(tmp_path, 'after_visit: {send_at: "09:30", low: 5, kinds: [therapy]}\n') == (
        AfterVisit(("therapy",), time(9, 30), 5)
    )


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ("after_visit: {send_at: 10:00}\n", 'must be quoted: send_at: "10:00"'),
        ('after_visit: {send_at: "25:00"}\n', "HH:MM"),
        ('after_visit: {send_at: "10am"}\n', "HH:MM"),
        ("after_visit: {low: 11}\n", "low must be 0 to 10"),
        ("after_visit: {low: two}\n", "low must be a whole number"),
        ("after_visit: {kinds: [surgery]}\n", "unknown appointment kind 'surgery'"),
        ("after_visit: {kinds: []}\n", "kinds must be a list"),
        ("after_visit: {at: 10}\n", "unknown key 'at' in after_visit"),
        ("after_visit: 10\n", "after_visit must be a mapping"),
    ],
)
def test_bad_values_are_refused_with_the_line(tmp_path: Path, section: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        load(tmp_path, section)
    assert reason in str(caught.value) and str(caught.value).startswith(f"{tmp_path / 'p.yaml'}:6:")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("7", False),
        ("7/10", False),
        ("7 out of 10", False),
        ("I'm about a 6, thanks", False),
        ("8 gracias", False),
        ("8 but still a bit dizzy", True),
        ("not great", True),
        ("me siento mareado, 5", True),
    ],
)
def test_words_beyond_the_number_are_for_a_clinician(body: str, words: bool) -> None:
    assert has_words(body) is words


def test_low_or_words_or_no_number_need_a_clinician() -> None:
    assert needs_clinician(3, False, 3) and not needs_clinician(4, False, 3)
    assert needs_clinician(9, True, 3) and needs_clinician(None, False, 3)
