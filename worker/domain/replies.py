"""Reading a patient's answer to a check-in from a free-text reply.

Forgiving of real texting: "4 7", "4,7", "4/7", "4-7", "4 and 7", "mood 4 pain 7",
"pain 7 mood 4", "m4 p7", "mood: 4, pain=7", "seven", "siete", "6/10", "6 out of 10", emoji and
extra words around the numbers. Decisions where texting is ambiguous:

- A number right after a label word belongs to that item ("pain 7"); a few filler words may sit
  between ("my mood is about a 4"); "4 for mood" works too. A list of labels takes the numbers
  that follow in order ("mood and pain 4 and 7"). When the text starts with a number and ends
  with a label, labels follow their numbers ("4 mood 7 pain"). Unlabelled numbers fill the items
  not yet answered, in the expected order ("mood 4 7" -> mood 4, pain 7). Default labels add
  "humor" (the word the Spanish mood question uses) and "estado de ánimo" to the brief's list.
- A label for an item that is not expected is honoured only when the expected items have labels
  of their own: "mood 4 pain 7" to a pain-only check-in reads pain 7 and ignores the 4, while a
  PHQ-9 sleep item answered "sleep 2" reads 2.
- A number written just before a label that has no number after it belongs to that label, even
  when other labels follow: "5 out of 10 mood, pain 9" -> mood 5, pain 9. Body-pain words
  ("killing me", "hurts", "back pain", "me duele") are pain labels. In a list of labels, a label
  for an item not asked takes no position ("pain 8, couldn't sleep, mood 2"); if more numbers
  follow than the asked labels can take, the answer is ambiguous (asked once).
- "N/M", "N out of M", "N of M", "N de M" with M equal to the scale maximum is one value N;
  otherwise both are numbers ("4/7" -> 4 and 7). "6-7" after a label, or to a one-item question,
  is a range stored as its worse end (`HIGHER_IS_BETTER` says which); unlabelled "4-7" to two
  items is 4 and 7.
- Decimals are not rounded: a non-integer ("6.5") makes the answer "ambiguous" on these integer
  scales, so the patient is asked once. "7.0" is 7. "6,5" is two numbers (so also ambiguous for
  a single item). Signs are ignored ("-2" reads 2).
- Not read as answers (best effort): times ("2:30", "3pm", "at 3 p.m.", "a las 3"), dates
  ("4/7/2024", "2024-04-07", "march 3", "3 de marzo", "the 3rd"), numbers with a unit ("8 hours",
  "2 days", "50mg", "70%"), numbers glued to other words ("covid19", "b12"), "24/7", a stated
  scale ("on a scale of 1-10"), "one" as a pronoun ("no one", "the one"), and digit runs longer
  than 9 (phone numbers).
- Number words are English and Spanish 0-10 ("zero".."ten", "cero".."diez"; not "none", "una").
- Answer labels (PHQ/GAD "several days") and, with `frequency_words`, answers in words ("most
  days", "nunca"; see `worker.domain.answer_words`) are used only when the text has no number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from worker.domain.answer_words import read_frequency
from worker.domain.keywords import normalize, skeleton, strip_accents

Problem = Literal["no_numbers", "out_of_range", "ambiguous"]

# Items whose scale reads "higher is better"; for every other item a higher number is worse.
# A range ("pain 6-7", "mood 3-4") is stored as its worse end, so flags see the worse value.
HIGHER_IS_BETTER: Final = frozenset({"mood", "sleep"})

DEFAULT_LABEL_WORDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "mood": ("mood", "m", "animo", "ánimo", "estado", "estado de animo", "humor"),
        # Body-pain words label a pain number too: "my back is killing me 8/10", "hurts 7".
        "pain": (
            "pain",
            "p",
            "dolor",
            "d",
            "back pain",
            "backache",
            "killing me",
            "hurts",
            "hurt",
            "hurting",
            "aching",
            "aches",
            "ache",
            "sore",
            "headache",
            "migraine",
            "me duele",
            "duele",
        ),
        "sleep": ("sleep", "s", "sueño", "sueno"),
    }
)


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_NUMBER_WORDS: Final = {
    skeleton(word): value
    for value, words in enumerate(
        (
            ("zero", "cero"),
            ("one", "uno"),
            ("two", "dos"),
            ("three", "tres"),
            ("four", "cuatro"),
            ("five", "cinco"),
            ("six", "seis"),
            ("seven", "siete"),
            ("eight", "ocho"),
            ("nine", "nueve"),
            ("ten", "diez"),
        )
    )
    for word in words
}
# "one"/"uno" as a pronoun: "no one", "the one", "one of those days".
_ONE_BEFORE: Final = _wordset(
    "no the this that every any some which each another a other only cada el ese este"
)
_ONE_AFTER: Final = _wordset("of more another thing time way who that de mas")

_UNITS: Final = _wordset(
    "hr hrs hour hours min mins minute minutes sec secs day days wk wks week weeks "
    "month months yr yrs year years mg mcg ml cc pill pills tablet tablets tabs times "
    "percent pct lb lbs kg kilos miles mile km kms steps "
    "hora horas minuto minutos dia dias semana semanas mes meses ano anos pastillas veces "
    "kilometros millas"
)
_TIME_WORDS: Final = _wordset("am pm oclock o'clock")
# Only when written onto the number: "4h", "2x", "5k", "3rd", "4to".
_GLUED_SUFFIXES: Final = _wordset("h x k st nd rd th ro do er ra to vo mo no")
_MONTHS: Final = _wordset(
    "jan january feb february march apr april june jun july jul aug august sep sept "
    "september oct october nov november dec december enero febrero marzo abril mayo junio "
    "julio agosto septiembre setiembre octubre noviembre diciembre"
)
_FRACTION_WORDS: Final = frozenset({"of", "de", "sobre"})
_CONNECTORS: Final = frozenset({"and", "y", "n", "then"})
_POSTFIX_LABEL: Final = frozenset({"for", "on", "in", "para", "de", "en"})
_ARTICLES: Final = frozenset({"my", "the", "el", "la", "mi"})
# Words that may sit between a label and its number: "my mood is about a 4", "dolor es de 7".
_FILLERS: Final = _wordset(
    "is was are be been has have at about around abt approx approximately roughly like "
    "maybe prob probably say i'd i would give it a an of level levels score rating rate "
    "today tonight now currently right still also too so pretty very really not quite "
    "bad good ok okay fine great better worse high low terrible awful horrible meh just "
    "only solid def definitely almost nearly over under below above least most feels "
    "feeling felt my the "
    "es esta estuvo fue de del en un una como hoy nivel mi el la ha sido tengo tiene mas "
    "menos bien mal muy unos alrededor casi "
    # Where it hurts, between a pain word and its number: "hurts a lot 8", "me duele la espalda 8".
    "lot lots back head neck knee knees leg legs body mucho espalda cabeza rodilla pierna cuerpo"
)
_MAX_FILLERS: Final = 5
_MAX_DIGITS: Final = 9

_TOKEN_RE: Final = re.compile(
    r"(?P<time>\d{1,2}:\d{2}(?::\d{2})?)"
    r"|(?P<date>\d{1,4}/\d{1,2}/\d{2,4}|\d{4}-\d{1,2}-\d{1,2})"
    r"|(?P<dec>\d+\.\d+)"
    r"|(?P<num>\d+)"
    r"|(?P<word>[^\W\d_]+(?:'[^\W\d_]+)*)"
    r"|(?P<slash>/)"
)
_STRIP_RES: Final = (
    # "on a scale of 1 to 10", "escala del 0 al 10"
    re.compile(r"\b(?:scale|escala)\s+(?:of\s+|from\s+|del?\s+)?\d+\s*(?:-|to|a|al)\s*\d+"),
    re.compile(r"\b24\s*/\s*7\b"),
    re.compile(r"\ba\s+la\s+\d+\b"),  # "a la 1" (one o'clock)
)
_AM_PM_RE: Final = re.compile(r"\b([ap])\.\s?m\b\.?")
_RANGE_RE: Final = re.compile(r"(?<![\d/.:-])(\d{1,2})\s*[-\u2013]\s*(\d{1,2})(?![\d/.:-])")
_APOSTROPHE_S_RE: Final = re.compile(r"'s\b")


@dataclass(frozen=True)
class ParsedAnswer:
    """What a reply says about the expected items.

    `values`: item key -> value, only items recognised and within range. `complete`: every
    expected item has a value. `problem`: None, "no_numbers", "out_of_range" or "ambiguous"
    (ambiguous answers carry no values). `found`: every integer read from the text, in order,
    including out-of-range ones (not times, dates, units or decimals), for the clinician.
    """

    values: dict[str, int]
    complete: bool
    problem: Problem | None
    found: tuple[int, ...]


@dataclass
class _Token:
    kind: str  # "num", "dec", "word", "slash" or "skip"
    text: str
    start: int
    end: int
    value: int | None = None  # for "num"
    label: str | None = None  # the item a number is assigned to by a label word
    upper: int | None = None  # "6-7": this token is 6 and `upper` is 7
    reduced: str = field(default="")  # skeleton of a word


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or "skip"
        raw = match.group()
        token = _Token(kind, raw, match.start(), match.end())
        if kind in ("time", "date"):
            token.kind = "skip"
        elif kind == "num":
            if len(raw) > _MAX_DIGITS:
                token.kind = "skip"
            else:
                token.value = int(raw)
        elif kind == "dec":
            whole, fraction = raw.split(".")
            if len(whole) > _MAX_DIGITS:
                token.kind = "skip"
            elif set(fraction) == {"0"}:
                token.kind, token.value = "num", int(whole)
        elif kind == "word":
            token.reduced = skeleton(raw)
            if token.reduced in _NUMBER_WORDS:
                token.kind, token.value = "num", _NUMBER_WORDS[token.reduced]
        tokens.append(token)
    return tokens


def _word(tokens: list[_Token], i: int) -> str | None:
    if 0 <= i < len(tokens) and tokens[i].kind == "word":
        return tokens[i].text
    return None


def _glued(tokens: list[_Token], i: int, j: int) -> bool:
    """Tokens i and j (i < j) are adjacent with nothing between them."""
    return 0 <= i < j < len(tokens) and tokens[i].end == tokens[j].start


def _denominator(tokens: list[_Token], i: int, maximum: int) -> int | None:
    """Index of the denominator when tokens[i] starts "N/max", "N out of max", "N of max"."""
    j = i + 1
    if j < len(tokens) and tokens[j].kind == "slash":
        j += 1
    elif _word(tokens, j) == "out" and _word(tokens, j + 1) == "of":
        j += 2
    elif _word(tokens, j) in _FRACTION_WORDS:
        j += 1
    else:
        return None
    if j < len(tokens) and tokens[j].kind == "num" and tokens[j].value == maximum:
        return j
    return None


def _not_an_answer(tokens: list[_Token], i: int, labels: _Labels) -> bool:
    token = tokens[i]
    before, after = _word(tokens, i - 1), _word(tokens, i + 1)
    from_word = token.kind == "num" and not token.text[:1].isdigit()
    if from_word:
        if token.value == 1 and (before in _ONE_BEFORE or after in _ONE_AFTER):
            return True
        return after in _UNITS or after in _TIME_WORDS
    if before is not None and _glued(tokens, i - 1, i) and not labels.is_label(tokens[i - 1]):
        return True  # "covid19", "b12"; but "m4", "mood4"
    if after is not None and _glued(tokens, i, i + 1):
        if after in _GLUED_SUFFIXES or after in _UNITS or after in _TIME_WORDS:
            return True
    elif after in _UNITS or after in _TIME_WORDS:
        return True
    if before == "las" or (token.kind == "dec" and before == "at"):
        return True
    if before in _MONTHS or after in _MONTHS:
        return True
    return after == "de" and _word(tokens, i + 2) in _MONTHS


class _Labels:
    """Label phrases (as word skeletons) for the items, longest first."""

    def __init__(self, label_words: Mapping[str, Sequence[str]], item_keys: Sequence[str]):
        phrases: list[tuple[tuple[str, ...], str]] = []
        for key, words in label_words.items():
            for word in words:
                phrase = tuple(skeleton(strip_accents(normalize(word))).split())
                if phrase:
                    phrases.append((phrase, key))
        phrases.sort(key=lambda p: len(p[0]), reverse=True)
        self.phrases = phrases
        self.words = frozenset(part for phrase, _ in phrases for part in phrase)
        # Labels are only read when the expected items have labels of their own.
        self.active = any(label_words.get(key) for key in item_keys)
        self.expected = frozenset(item_keys)

    def is_label(self, token: _Token) -> bool:
        """Whether the word is part of any label, expected item or not ("pain7", "m4")."""
        return token.reduced in self.words

    def at(self, tokens: list[_Token], i: int) -> tuple[str, int] | None:
        """(item key, index after the phrase) if a label phrase starts at token i."""
        if not self.active:
            return None
        for phrase, key in self.phrases:
            end = i + len(phrase)
            if end > len(tokens):
                continue
            if all(
                tokens[i + n].kind == "word" and tokens[i + n].reduced == part
                for n, part in enumerate(phrase)
            ):
                return key, end
        return None


def _skip(tokens: list[_Token], i: int, words: frozenset[str], limit: int) -> int:
    skipped = 0
    while i < len(tokens) and skipped < limit:
        token = tokens[i]
        if token.kind == "skip" or token.kind == "slash" or token.text in words:
            i += 1
            skipped += token.kind == "word"
        else:
            break
    return i


def _is_reading(token: _Token) -> bool:
    return token.kind in ("num", "dec")


def _assign_labels(tokens: list[_Token], labels: _Labels) -> bool:
    """Sets each labelled number's `label`; True when the labels make the text ambiguous."""
    starts: dict[int, tuple[str, int]] = {}
    i = 0
    while i < len(tokens):
        found = labels.at(tokens, i)
        if found is None:
            i += 1
        else:
            starts[i] = found
            i = found[1]
    numbers = [i for i, token in enumerate(tokens) if _is_reading(token)]
    if not starts or not numbers:
        return False
    _assign_trailing(tokens, starts)
    if not starts:
        return False
    if numbers[0] < min(starts) and max(starts) > numbers[-1]:
        _assign_postfix(tokens, starts)
        return False
    return _assign_prefix(tokens, starts, labels)


def _reading_follows(tokens: list[_Token], j: int) -> bool:
    j = _skip(tokens, j, _FILLERS, _MAX_FILLERS)
    return j < len(tokens) and _is_reading(tokens[j])


def _assign_trailing(tokens: list[_Token], starts: dict[int, tuple[str, int]]) -> None:
    """A number written just before a label that has no number of its own after it belongs to
    that label, whatever the rest of the text does: "5 out of 10 mood, pain 9" is mood 5.

    Such labels are taken out of `starts` so that they cannot also claim a later number.
    """
    back = _POSTFIX_LABEL | _ARTICLES | {"out", "of"}
    for i, (key, after) in sorted(starts.items()):
        if _reading_follows(tokens, after):
            continue
        j, words = i - 1, 0
        while j >= 0 and (
            tokens[j].kind in ("skip", "slash") or (tokens[j].text in back and words < 3)
        ):
            words += tokens[j].kind == "word"
            j -= 1
        if j < 0 or not _is_reading(tokens[j]) or tokens[j].label is not None:
            continue
        # Not when a label before the number claims it: "mood 4 pain" stays mood 4.
        k, fillers = j - 1, 0
        while k >= 0 and tokens[k].kind == "word" and tokens[k].text in _FILLERS and fillers < 5:
            k, fillers = k - 1, fillers + 1
        if k >= 0 and any(end == k + 1 for _, end in starts.values()):
            continue
        tokens[j].label = key
        del starts[i]


def _assign_postfix(tokens: list[_Token], starts: dict[int, tuple[str, int]]) -> None:
    """Labels after their numbers: "4 mood 7 pain", "4 for mood and 7 for pain"."""
    back = _POSTFIX_LABEL | _ARTICLES
    for i, (key, _) in starts.items():
        j, words = i - 1, 0
        while j >= 0 and (
            tokens[j].kind in ("skip", "slash") or (tokens[j].text in back and words < 2)
        ):
            words += tokens[j].kind == "word"
            j -= 1
        if j >= 0 and _is_reading(tokens[j]) and tokens[j].label is None:
            tokens[j].label = key


def _assign_prefix(
    tokens: list[_Token], starts: dict[int, tuple[str, int]], labels: _Labels
) -> bool:
    """Labels before their numbers: "mood 4 pain 7", "mood and pain: 4, 7", "m4 p7".

    Returns True when a list of labels mixing asked and unasked items is followed by more
    numbers than the asked ones can take (the answer is then ambiguous).
    """
    ambiguous = False
    in_group: set[int] = set()
    for i, (first, after) in sorted(starts.items()):
        if i in in_group:
            continue
        group, j = [first], after
        while (k := _skip(tokens, j, _CONNECTORS, 2)) in starts:
            in_group.add(k)
            group.append(starts[k][0])
            j = starts[k][1]
        j = _skip(tokens, j, _FILLERS, _MAX_FILLERS)
        wanted = [key for key in group if key in labels.expected]
        if len(group) > 1 and len(wanted) < len(group):
            # "pain 8, couldn't sleep, mood 2" with sleep not asked: "sleep" takes no number.
            # When more numbers follow than the asked labels can take, the text is unclear.
            if _count_readings(tokens, j) > len(wanted):
                ambiguous = True
            group = wanted
        # Fewer numbers than labels: the nearest labels take them ("my head hurts, mood 5").
        following = _count_readings(tokens, j)
        if 0 < following < len(group):
            group = group[len(group) - following :]
        for n, key in enumerate(group):
            if n:
                j = _skip(tokens, j, _CONNECTORS, 2)
            if j < len(tokens) and _is_reading(tokens[j]) and tokens[j].label is None:
                tokens[j].label = key
                j += 1
            else:
                break
    # "mood 4 and 7 for pain", "7 para el dolor"
    for i, token in enumerate(tokens):
        if _is_reading(token) and token.label is None and _word(tokens, i + 1) in _POSTFIX_LABEL:
            j = i + 2 + (_word(tokens, i + 2) in _ARTICLES)
            found = labels.at(tokens, j)
            if found is not None:
                token.label = found[0]
    return ambiguous


def _count_readings(tokens: list[_Token], j: int) -> int:
    count = 0
    while j < len(tokens) and _is_reading(tokens[j]):
        count += 1
        j = _skip(tokens, j + 1, _CONNECTORS, 2)
    return count


def _label_answers(text: str, answer_labels: Sequence[str]) -> list[int]:
    """Indexes of the answer labels in `text`, in text order; longest labels win overlaps."""
    hits: list[tuple[int, int]] = []
    by_length = sorted(
        ((strip_accents(normalize(label)), value) for value, label in enumerate(answer_labels)),
        key=lambda lv: len(lv[0]),
        reverse=True,
    )
    for label, value in by_length:
        if not label:
            continue
        at = text.find(label)
        if at >= 0:
            hits.append((at, value))
            text = text[:at] + " " * len(label) + text[at + len(label) :]
    if not hits:
        squashed = text.replace(" ", "")  # "nearlyeveryday"
        for label, value in by_length:
            at = squashed.find(label.replace(" ", "")) if label else -1
            if at >= 0:
                hits.append((at, value))
    values: list[int] = []
    for _, value in sorted(hits):
        if value not in values:
            values.append(value)
    return values


def _join_ranges(tokens: list[_Token], prepared: str) -> None:
    """ "6-7": the first number carries the second as `upper`; the second stops being a reading.

    Whether it is a range or two answers ("4-7" to mood and pain) is settled after labelling.
    """
    for match in _RANGE_RE.finditer(prepared):
        first = next((t for t in tokens if t.start == match.start(1) and t.kind == "num"), None)
        second = next((t for t in tokens if t.start == match.start(2) and t.kind == "num"), None)
        if first is not None and second is not None and second.value is not None:
            first.upper = second.value
            second.kind = "range_end"


def _settle_ranges(tokens: list[_Token], item_keys: Sequence[str]) -> None:
    """A labelled range ("pain 6-7"), or any range to a one-item question, is one value: its worse
    end (the text, kept with the inbound message, still shows both). An unlabelled "4-7" to a
    two-item question stays two numbers, as before."""
    for token in tokens:
        if token.kind == "range_end":
            token.kind = "num"
    for i, token in enumerate(tokens):
        if token.upper is None or token.kind != "num" or token.value is None:
            continue
        key = token.label or (item_keys[0] if len(item_keys) == 1 else None)
        if key is None:
            continue
        low, high = sorted((token.value, token.upper))
        token.value = low if key in HIGHER_IS_BETTER else high
        end = next(t for t in tokens[i + 1 :] if t.kind == "num")
        end.kind = "skip"


def parse_answer(
    text: str,
    item_keys: Sequence[str],
    minimum: int,
    maximum: int,
    *,
    label_words: Mapping[str, Sequence[str]] | None = None,
    answer_labels: Sequence[str] | None = None,
    frequency_words: bool = False,
) -> ParsedAnswer:
    """Read the values of `item_keys` (each scored `minimum`..`maximum`) from a reply.

    `label_words` maps item keys to words labelling a number (default `DEFAULT_LABEL_WORDS`);
    `answer_labels[v]` is the text of answer v, matched when the reply has no number;
    `frequency_words` adds the PHQ/GAD answers in words of `worker.domain.answer_words` ("most
    days", "nunca"), in both languages (a negated one, "not every day", is ambiguous). More
    numbers than items -> "ambiguous" with no values; a number outside the range -> that item
    unset and "out_of_range"; no number -> "no_numbers"; fewer numbers than items -> a partial
    answer (problem None, complete False). Raises ValueError for no items or minimum > maximum.
    """
    if not item_keys:
        raise ValueError("parse_answer needs at least one item key")
    if minimum > maximum:
        raise ValueError(f"minimum {minimum} is above maximum {maximum}")
    labels = _Labels(DEFAULT_LABEL_WORDS if label_words is None else label_words, item_keys)

    prepared = strip_accents(normalize(text))
    prepared = _APOSTROPHE_S_RE.sub(" is", _AM_PM_RE.sub(r"\1m", prepared))
    prepared = prepared.replace("%", " percent ")
    for pattern in _STRIP_RES:
        prepared = pattern.sub(" ", prepared)
    tokens = _tokens(prepared)
    _join_ranges(tokens, prepared)

    for i, token in enumerate(tokens):
        if token.kind not in ("num", "dec"):
            continue
        denominator = _denominator(tokens, i, maximum) if token.kind == "num" else None
        if _not_an_answer(tokens, i, labels):
            token.kind = "skip"
        if denominator is not None:
            tokens[denominator].kind = "skip"
    unclear = _assign_labels(tokens, labels)
    _settle_ranges(tokens, item_keys)

    readings = [t for t in tokens if t.kind in ("num", "dec")]
    found = tuple(t.value for t in readings if t.kind == "num" and t.value is not None)
    pairs: list[tuple[str | None, int | None]] = [
        (t.label, t.value if t.kind == "num" else None) for t in readings
    ]
    if not pairs and (answer_labels or frequency_words):
        label_values = _label_answers(prepared, answer_labels) if answer_labels else []
        if frequency_words:
            in_words, negated = read_frequency(text)
            if negated:
                return ParsedAnswer({}, False, "ambiguous", tuple(label_values + in_words))
            label_values += [value for value in in_words if value not in label_values]
        pairs = [(None, value) for value in label_values]
        found = tuple(label_values)
    expected = set(item_keys)
    pairs = [(key, value) for key, value in pairs if key is None or key in expected]
    if not pairs:
        return ParsedAnswer({}, False, "no_numbers", found)

    ambiguous = ParsedAnswer({}, False, "ambiguous", found)
    if unclear or any(value is None for _, value in pairs):
        return ambiguous  # a decimal on an integer scale
    read: dict[str, int] = {}
    unlabelled: list[int] = []
    for key, value in pairs:
        assert value is not None
        if key is None:
            unlabelled.append(value)
        elif read.setdefault(key, value) != value:
            return ambiguous  # "pain 7 ... pain 5"
    remaining = [key for key in item_keys if key not in read]
    if len(unlabelled) > len(remaining):
        return ambiguous
    read.update(zip(remaining, unlabelled, strict=False))

    values = {
        key: read[key] for key in item_keys if key in read and minimum <= read[key] <= maximum
    }
    problem: Problem | None = "out_of_range" if len(values) < len(read) else None
    return ParsedAnswer(values, all(key in values for key in item_keys), problem, found)
