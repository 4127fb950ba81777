"""The reply corpus: every realistic form is read as a careful person would, or asked about once."""

from __future__ import annotations

import pytest

from .reply_corpus import ASK, CORPUS
from .reply_report import main, misses, outcome


def test_the_corpus_is_large_and_covers_the_issue_forms() -> None:
    texts = {text for text, _, _ in CORPUS}
    assert len(CORPUS) >= 200
    for form in (
        "5 out of 10 mood, pain 9",
        "pain is 8 out of 10",
        "my back is killing me 8/10",
        "hurts 7",
        "back pain 6",
        "pain 8, couldn't sleep, mood 2/10",
        "pain 6-7",
        "m4 p7",
        "4/7",
        "seven",
    ):
        assert form in texts


def test_every_reply_in_the_corpus_is_read_correctly() -> None:
    assert misses() == []


def test_the_report_prints_the_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    assert (
        f"{len(CORPUS)}/{len(CORPUS)} replies read correctly (100.0 %)" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("text", "items", "expected"),
    [
        ("5 out of 10 mood, pain 9", ("mood", "pain"), {"mood": 5, "pain": 9}),
        ("pain 6-7", ("pain",), {"pain": 7}),  # the worse end: flags see 7
        ("mood 3-4 pain 2", ("mood", "pain"), {"mood": 3, "pain": 2}),  # low mood is worse
        ("mood and sleep 4 and 7", ("mood", "pain"), ASK),  # sleep not asked: which is mood?
        ("my back is killing me 8/10", ("mood",), ASK),  # a pain number never becomes mood
    ],
)
def test_the_rules_behind_the_corpus(text: str, items: tuple[str, ...], expected: object) -> None:
    assert outcome(text, items) == expected
