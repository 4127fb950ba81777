"""PHQ/GAD answers in words (both languages) and the strict reading of PHQ-9 item 9."""

from __future__ import annotations

import pytest

from worker.domain.answer_words import is_clear_zero, read_frequency
from worker.domain.instruments import get_instrument
from worker.domain.replies import parse_answer


def parse(text: str, language: str = "en") -> tuple[dict[str, int], str | None]:
    labels = get_instrument("gad7", language).answer_labels
    parsed = parse_answer(text, ["gad7_3"], 0, 3, answer_labels=labels, frequency_words=True)
    return parsed.values, parsed.problem


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("not at all", 0),
        ("Never", 0),
        ("none", 0),
        ("never, thanks", 0),
        ("several days", 1),
        ("a few days", 1),
        ("Some days", 1),
        ("sometimes", 1),
        ("sometimes I guess", 1),
        ("more than half the days", 2),
        ("most days", 2),
        ("I'd say most of the days", 2),
        ("nearly every day", 3),
        ("every day", 3),
        ("everyday", 3),
        ("all the time", 3),
        ("ALL THE TIME!!!", 3),
        ("every single day tbh", 3),
        ("nunca", 0),
        ("para nada", 0),
        ("ningún día", 0),
        ("varios días", 1),
        ("algunos dias", 1),
        ("a veces", 1),
        ("más de la mitad de los días", 2),
        ("Mas De La Mitad De Los Dias", 2),
        ("la mayoría de los días", 2),
        ("casi todos los días", 3),
        ("todos los dias", 3),
        ("todo el tiempo", 3),
    ],
)
def test_words_are_answers_in_both_languages(text: str, value: int) -> None:
    # Whatever the patient's language: a Spanish speaker may be enrolled in English.
    for language in ("en", "es"):
        assert parse(text, language) == ({"gad7_3": value}, None), (text, language)


@pytest.mark.parametrize(
    "text",
    [
        "not every day",
        "not all the time",
        "no todos los días",
        "hardly every day",
        "almost most days",
    ],
)
def test_a_negated_frequency_is_ambiguous(text: str) -> None:
    assert parse(text) == ({}, "ambiguous")


@pytest.mark.parametrize(
    "text",
    ["I never sleep", "almost never", "casi siempre", "occasionally", "a little", "kind of", "no"],
)
def test_words_too_far_from_an_answer_are_not_guessed(text: str) -> None:
    assert parse(text) == ({}, "no_numbers")


def test_two_different_answers_in_words_are_ambiguous() -> None:
    assert parse("some days, most days") == ({}, "ambiguous")
    assert read_frequency("every day, every day") == ([3], False)


def test_a_number_wins_over_words() -> None:
    assert parse("2 - more than half the days") == ({"gad7_3": 2}, None)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "zero",
        "no",
        "No.",
        "nope",
        "nah",
        "never",
        "none",
        "not at all",
        "No, not at all. Thank you",
        "0 = not at all",
        "nunca",
        "para nada",
        "ningún día",
        "NINGUN DIA",
        "no, gracias",
        "cero",
    ],
)
def test_a_clear_zero(text: str) -> None:
    assert is_clear_zero(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ok",
        "thanks",
        "yes",
        "sí",
        "si",
        "sometimes",
        "every day",
        "occasionally",
        "a little",
        "kind of",
        "no but sometimes",
        "0 but I think about it",
        "not really",
        "no idea",
        "what do you mean?",
        "not at all?? why",
        "no sé",
        "a veces",
        "nunca... bueno a veces",
        "1",
        "00",
    ],
)
def test_not_a_clear_zero(text: str) -> None:
    assert not is_clear_zero(text)
