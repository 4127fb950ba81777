"""GSM-7 alphabet, encoding choice, segment arithmetic and the GSM-safe rewrite."""

from __future__ import annotations

import pytest

from worker.domain.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    encoding,
    is_gsm7,
    segments,
    to_gsm_safe,
)


def test_the_alphabets_have_the_sizes_of_gsm_03_38() -> None:
    # 128 code points in the default alphabet, one of which (ESC) only opens the extension table.
    assert len(GSM7_BASIC) == 127
    assert "\x1b" not in GSM7_BASIC
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENDED
    assert not GSM7_BASIC & GSM7_EXTENDED


@pytest.mark.parametrize(
    ("text", "gsm"),
    [
        ("Reply C to confirm, R to reschedule.", True),
        ("Riverside Pain & Wellness: +1 (555) 010-4477", True),
        ("¿Qué tal fue su sueño anoche? Ñandú", False),  # ú is not GSM-7
        ("¿Qué tal fue su sueño anoche?", True),  # é, ñ, ¿ are
        ("Price: 10€ [approx] {x} ~ | ^ \\", True),  # extension table
        ("It\u2019s here", False),  # curly apostrophe
        ("9\u00a0AM", False),  # no-break space
        ("Tue Mar 10 \u2013 2:00 PM", False),  # en dash
        ("Thanks \U0001f600", False),
        ("días", False),
        ("", True),
    ],
)
def test_is_gsm7(text: str, gsm: bool) -> None:
    assert is_gsm7(text) is gsm
    assert encoding(text) == ("GSM-7" if gsm else "UCS-2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets: extension characters count two
        ("€" * 81, 2),
        ("a" * 159 + "€", 2),
        # An escaped character is never split across parts: the third part is needed even though
        # 306 septets would fit two parts of 153 by arithmetic alone.
        ("a" * 152 + "€" + "a" * 152, 3),
        ("é" * 160, 1),  # é is GSM-7
        ("á" * 70, 1),  # á is not: UCS-2, 70 a segment
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("a" * 159 + "á", 3),  # one UCS-2 character turns 160 characters into three parts
        ("\U0001f600" * 35, 1),  # 70 UTF-16 code units
        ("\U0001f600" * 36, 2),  # surrogate pairs are not split: 33 per part
        ("\U0001f600" * 67, 3),
    ],
)
def test_segments(text: str, expected: int) -> None:
    assert segments(text) == expected


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("It\u2019s \u201cfine\u201d", 'It\'s "fine"'),
        ("\u2018quoted\u2019 `tick`", "'quoted' 'tick'"),
        ("Tue \u2013 Wed \u2014 Thu \u2212 1", "Tue - Wed - Thu - 1"),
        ("Wait\u2026", "Wait..."),
        ("9\u00a0AM\u202fsharp\u2009now", "9 AM sharp now"),
        ("zero\u200bwidth\u200d\ufeff", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("\u2022 item", "- item"),
        ("Bogotá Ave, Suite 3", "Bogota Ave, Suite 3"),
        ("Café Ñandú", "Café Ñandu"),  # é and Ñ are GSM-7 and stay
        ("tab\there", "tab here"),
        ("Plain text stays as it is.", "Plain text stays as it is."),
    ],
)
def test_to_gsm_safe_replaces_look_alikes(text: str, safe: str) -> None:
    assert to_gsm_safe(text) == safe
    assert is_gsm7(to_gsm_safe(text))


def test_to_gsm_safe_keeps_what_has_no_gsm_equivalent() -> None:
    # An emoji or another script cannot be rewritten without losing meaning: it stays, and the
    # message is honestly UCS-2.
    assert to_gsm_safe("ok \U0001f600") == "ok \U0001f600"
    assert to_gsm_safe("東京") == "東京"


def test_to_gsm_safe_leaves_every_gsm_character_alone() -> None:
    every = "".join(sorted(GSM7_BASIC | GSM7_EXTENDED))
    assert to_gsm_safe(every) == every


def test_one_typographic_character_triples_the_cost_of_a_full_message() -> None:
    plain = "a" * 150 + " don't"
    curly = "a" * 150 + " don\u2019t"
    assert segments(plain) == 1
    assert segments(curly) == 3
    assert segments(to_gsm_safe(curly)) == 1
