"""Reading check-in answers from free-text replies, table-driven."""

from __future__ import annotations

import pytest

from worker.domain.instruments import get_instrument
from worker.domain.replies import DEFAULT_LABEL_WORDS, ParsedAnswer, parse_answer

MOOD_PAIN = ("mood", "pain")


def parse_mood_pain(text: str) -> ParsedAnswer:
    return parse_answer(text, MOOD_PAIN, 0, 10)


def parse_one(text: str, key: str = "pain", maximum: int = 10) -> ParsedAnswer:
    return parse_answer(text, [key], 0, maximum)


# Every form in the issue text, both orders, and the rest of real texting.
TWO_NUMBERS = [
    "4 7",
    "4,7",
    "4, 7",
    "4/7",
    "4-7",
    "4 and 7",
    "4 & 7",
    "4\n7",
    "mood 4 pain 7",
    "pain 7 mood 4",
    "Pain 7, Mood 4",
    "m4 p7",
    "m 4 p 7",
    "M4P7",
    "mood: 4, pain: 7",
    "mood=4 pain=7",
    "Mood 4. Pain 7.",
    "mood 4 7",
    "mood and pain 4 and 7",
    "mood/pain 4/7",
    "4 for mood and 7 for pain",
    "4 mood, 7 pain",
    "mood 4/10 pain 7/10",
    "4/10 and 7/10",
    "mood 4 out of 10, pain 7 out of 10",
    "my mood is about a 4 and my pain's a 7",
    "I'd say a 4 today 😊 and pain 7 ugh",
    "four and seven",
    "Four, SEVEN!!",
    "mood four pain seven",
    "4️⃣ 7️⃣",
    "😩😩 4 😩 7 😩",
    "mooood 4 paaaain 7",
    "mood 4 (meh) pain 7 (bad)",
    "<b>4</b> <i>7</i>",
    "ánimo 4 dolor 7",
    "dolor 7 animo 4",
    "estado de ánimo 4, dolor 7",
    "cuatro y siete",
    "4 y 7",
    "humor 4 dolor 7",
    "d7 m4",
    "pain 7 at 3pm, mood 4",
    "at 2:30 my pain was 7, mood 4",
    "mood 4 pain 7 since the 3rd",
    "took 2 pills, mood 4 pain 7",
    "slept 8 hours, mood 4 pain 7",
    "covid19 is over, mood 4 pain 7",
    "on a scale of 1-10 mood 4 pain 7",
    "pain 7 24/7 and mood 4",
]


@pytest.mark.parametrize("text", TWO_NUMBERS)
def test_it_reads_mood_4_and_pain_7_from_every_texting_form(text: str) -> None:
    parsed = parse_mood_pain(text)
    assert parsed == ParsedAnswer({"mood": 4, "pain": 7}, True, None, parsed.found)
    assert sorted(parsed.found) == [4, 7]


@pytest.mark.parametrize(
    ("text", "key", "maximum", "value"),
    [
        ("7", "pain", 10, 7),
        ("seven", "pain", 10, 7),
        ("SIETE", "pain", 10, 7),
        ("sevennn", "pain", 10, 7),
        ("7/10", "pain", 10, 7),
        ("7 / 10", "pain", 10, 7),
        ("7 out of 10", "pain", 10, 7),
        ("7 of 10", "pain", 10, 7),
        ("7 de 10", "pain", 10, 7),
        ("seven out of ten", "pain", 10, 7),
        ("10/10", "pain", 10, 10),
        ("0", "pain", 10, 0),
        ("zero", "pain", 10, 0),
        ("cero", "pain", 10, 0),
        ("diez", "pain", 10, 10),
        ("pain 7", "pain", 10, 7),
        ("pain7", "pain", 10, 7),
        ("dolor: 7", "pain", 10, 7),
        ("it's a 7 today ugh", "pain", 10, 7),
        ("7.0", "pain", 10, 7),
        ("07", "pain", 10, 7),
        ("mood 4 pain 7", "pain", 10, 7),  # a label for an item not asked is ignored
        ("sleep 6", "sleep", 10, 6),
        ("sueño 6", "sleep", 10, 6),
        ("slept 5 hours, quality 6", "sleep", 10, 6),
        ("2", "phq9_3", 3, 2),
        ("2/3", "phq9_3", 3, 2),
        ("sleep 2", "phq9_3", 3, 2),  # label words of other items do not apply to PHQ items
        ("two", "phq9_9", 3, 2),
        ("7", "peg_p", 10, 7),
        ("pain 7", "peg_p", 10, 7),
        ("no one asked but 3", "pain", 10, 3),
        ("at 3pm it was a 5", "pain", 10, 5),
        ("called at 3 p.m., pain 5", "pain", 10, 5),
        ("a las 3 tenía dolor 5", "pain", 10, 5),
        ("on march 3 it was 5", "pain", 10, 5),
        ("el 3 de marzo fue un 5", "pain", 10, 5),
        ("4/7/2024: 5", "pain", 10, 5),
        ("2024-04-07 5", "pain", 10, 5),
        ("took 50mg, 5", "pain", 10, 5),
        ("70% better, 3", "pain", 10, 3),
        ("b12 shot today, 3", "pain", 10, 3),
        ("Call me at 5551234567. Pain 6", "pain", 10, 6),
    ],
)
def test_it_reads_a_single_item(text: str, key: str, maximum: int, value: int) -> None:
    parsed = parse_one(text, key, maximum)
    assert (parsed.values, parsed.complete, parsed.problem) == ({key: value}, True, None)
    assert value in parsed.found


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Not at all", 0),
        ("not at all", 0),
        ("several days", 1),
        ("Several Days!", 1),
        ("more than half the days", 2),
        ("nearly every day", 3),
        ("nearly everyday", 3),
        ("hmm I'd say nearly every day tbh", 3),
        ("3", 3),  # a digit wins over labels
        ("3 - nearly every day", 3),
    ],
)
def test_it_maps_a_phq_answer_label_to_its_value(text: str, value: int) -> None:
    labels = get_instrument("phq9").answer_labels
    assert labels is not None
    parsed = parse_answer(text, ["phq9_2"], 0, 3, answer_labels=labels)
    assert parsed.values == {"phq9_2": value}
    assert parsed.complete
    assert parsed.problem is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ningún día", 0),
        ("ningun dia", 0),
        ("varios días", 1),
        ("MÁS DE LA MITAD DE LOS DÍAS", 2),
        ("casi todos los dias", 3),
    ],
)
def test_it_maps_a_spanish_answer_label_to_its_value(text: str, value: int) -> None:
    labels = get_instrument("phq9", "es").answer_labels
    assert labels is not None
    assert parse_answer(text, ["phq9_1"], 0, 3, answer_labels=labels).values == {"phq9_1": value}


def test_two_different_answer_labels_are_ambiguous() -> None:
    labels = get_instrument("gad7").answer_labels
    assert labels is not None
    parsed = parse_answer("not at all or several days", ["gad7_1"], 0, 3, answer_labels=labels)
    assert parsed.problem == "ambiguous"
    assert parsed.values == {}


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("mood 4", {"mood": 4}),
        ("4", {"mood": 4}),
        ("pain 7", {"pain": 7}),
        ("pain=7", {"pain": 7}),
        ("7 for pain", {"pain": 7}),
        ("mood good, pain 7", {"pain": 7}),
        ("4/10", {"mood": 4}),
    ],
)
def test_a_partial_answer_keeps_what_it_has(text: str, values: dict[str, int]) -> None:
    parsed = parse_mood_pain(text)
    assert parsed.values == values
    assert not parsed.complete
    assert parsed.problem is None


@pytest.mark.parametrize(
    ("text", "items", "maximum", "values", "found"),
    [
        ("12", ["pain"], 10, {}, (12,)),
        ("pain 11", ["pain"], 10, {}, (11,)),
        ("100", ["pain"], 10, {}, (100,)),
        ("mood 4 pain 12", MOOD_PAIN, 10, {"mood": 4}, (4, 12)),
        ("12 7", MOOD_PAIN, 10, {"pain": 7}, (12, 7)),
        ("4", ["phq9_1"], 3, {}, (4,)),
        ("seven", ["phq9_1"], 3, {}, (7,)),
    ],
)
def test_a_number_out_of_range_is_not_stored(
    text: str, items: list[str], maximum: int, values: dict[str, int], found: tuple[int, ...]
) -> None:
    parsed = parse_answer(text, items, 0, maximum)
    assert parsed.values == values
    assert parsed.found == found
    assert not parsed.complete
    assert parsed.problem == "out_of_range"


def test_a_minus_sign_is_read_as_a_separator() -> None:
    # "4-7" is two numbers, so "-1" is 1: patients do not send negative scores.
    assert parse_one("-1").values == {"pain": 1}


def test_a_number_for_an_item_not_asked_is_kept_in_found_only() -> None:
    assert parse_one("mood 4 pain 7").found == (4, 7)


@pytest.mark.parametrize(
    ("text", "items", "maximum"),
    [
        ("4 7 9", MOOD_PAIN, 10),
        ("mood 4 pain 7 and 9", MOOD_PAIN, 10),
        ("mood 4 mood 5 pain 7", MOOD_PAIN, 10),  # one item, two values
        ("3 2", ["phq9_3"], 3),
        ("4 or 5", ["pain"], 10),
        ("6.5", ["pain"], 10),  # integer scales: not rounded
        ("6,5", ["pain"], 10),
        ("mood 4.5 pain 7", MOOD_PAIN, 10),
        ("4/7", ["pain"], 10),  # 7 is not the maximum, so not "out of"
        ("1/2", ["phq9_1"], 3),
        ("7 pain 8", ["pain"], 10),
        ("1 OR 1=1", ["pain"], 10),
        ("12 7 9", MOOD_PAIN, 10),  # ambiguity wins over range
    ],
)
def test_more_numbers_than_items_is_ambiguous_and_stores_nothing(
    text: str, items: list[str], maximum: int
) -> None:
    parsed = parse_answer(text, items, 0, maximum)
    assert parsed.problem == "ambiguous"
    assert parsed.values == {}
    assert not parsed.complete


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "good",
        "😊👍",
        "at 3pm",
        "2:30",
        "see you on 4/7/2024",
        "slept 8 hours",
        "'; DROP TABLE responses; --",
        "<script>alert('x')</script>",
        "\x00\x07\x1b[0m",
        "none",
        "nope",
        "pain is bad",
        "mood 4",  # a label of an item that was not asked
        "1" * 2000,  # a digit run far too long to be an answer
    ],
)
def test_a_reply_without_a_usable_number_is_no_numbers(text: str) -> None:
    parsed = parse_one(text)
    assert parsed.problem == "no_numbers"
    assert parsed.values == {}
    assert not parsed.complete


@pytest.mark.parametrize(
    ("text", "items", "expected"),
    [
        ("blah " * 400 + "mood 4 pain 7", MOOD_PAIN, {"mood": 4, "pain": 7}),
        ("mood 4 pain 7 " + "😊" * 1990, MOOD_PAIN, {"mood": 4, "pain": 7}),
        ("7" + " " * 1999, ["pain"], {"pain": 7}),
        ("pain\x00 7\x07", ["pain"], {"pain": 7}),
        ("<p>pain <b>7</b></p>", ["pain"], {"pain": 7}),
        ("pain 7; DROP TABLE responses;--", ["pain"], {"pain": 7}),
        ("pain\u200b 7", ["pain"], {"pain": 7}),
        ("\uff17", ["pain"], {"pain": 7}),  # fullwidth digit
    ],
)
def test_long_and_hostile_bodies_are_read_sensibly(
    text: str, items: list[str], expected: dict[str, int]
) -> None:
    assert parse_answer(text, items, 0, 10).values == expected


def test_the_2000_character_body_of_numbers_is_ambiguous_not_a_crash() -> None:
    parsed = parse_mood_pain(" ".join(["5"] * 1000))
    assert parsed.problem == "ambiguous"
    assert len(parsed.found) == 1000


def test_found_keeps_every_number_read_in_order_for_the_clinician() -> None:
    assert parse_mood_pain("pain 12 mood 4, also 9").found == (12, 4, 9)


def test_custom_label_words_replace_the_defaults() -> None:
    labels = {"peg_p": ["average"], "peg_e": ["enjoyment"]}
    parsed = parse_answer("enjoyment 3 average 6", ["peg_p", "peg_e"], 0, 10, label_words=labels)
    assert parsed.values == {"peg_p": 6, "peg_e": 3}
    assert parsed.complete


def test_default_label_words_cover_both_languages() -> None:
    assert {"mood", "ánimo", "m"} <= set(DEFAULT_LABEL_WORDS["mood"])
    assert {"pain", "dolor", "p", "d"} <= set(DEFAULT_LABEL_WORDS["pain"])
    assert {"sleep", "sueño", "s"} <= set(DEFAULT_LABEL_WORDS["sleep"])


@pytest.mark.parametrize(("items", "minimum", "maximum"), [((), 0, 10), (("pain",), 10, 0)])
def test_it_refuses_a_question_it_cannot_answer(
    items: tuple[str, ...], minimum: int, maximum: int
) -> None:
    with pytest.raises(ValueError):
        parse_answer("4", items, minimum, maximum)
