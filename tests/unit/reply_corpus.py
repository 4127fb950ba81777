"""Realistic replies to mood/pain check-ins with the values a careful reader would store.

Each case: (text, items asked, expected). `expected` is a dict of stored values, or ASK when the
right thing is to ask the patient once (the clarification) instead of storing anything. Ranges
store their worse end (pain: the higher, mood: the lower); the inbound text keeps both.
"""

from __future__ import annotations

from typing import Final

ASK: Final = "ask"
MP: Final = ("mood", "pain")
M: Final = ("mood",)
P: Final = ("pain",)

Expected = dict[str, int] | str
Case = tuple[str, tuple[str, ...], Expected]

# Hand-written forms, as patients send them.
_HAND: Final[list[Case]] = [
    ("4 7", MP, {"mood": 4, "pain": 7}),
    ("4,7", MP, {"mood": 4, "pain": 7}),
    ("4/7", MP, {"mood": 4, "pain": 7}),
    ("4 and 7", MP, {"mood": 4, "pain": 7}),
    ("4 & 7", MP, {"mood": 4, "pain": 7}),
    ("four and seven", MP, {"mood": 4, "pain": 7}),
    ("Four, seven", MP, {"mood": 4, "pain": 7}),
    ("m4 p7", MP, {"mood": 4, "pain": 7}),
    ("M4P7", MP, {"mood": 4, "pain": 7}),
    ("mood 4 pain 7", MP, {"mood": 4, "pain": 7}),
    ("pain 7 mood 4", MP, {"mood": 4, "pain": 7}),
    ("Pain 7, Mood 4", MP, {"mood": 4, "pain": 7}),
    ("mood: 4, pain: 7", MP, {"mood": 4, "pain": 7}),
    ("mood=4 pain=7", MP, {"mood": 4, "pain": 7}),
    ("mood 4/10 pain 7/10", MP, {"mood": 4, "pain": 7}),
    ("4/10 mood 7/10 pain", MP, {"mood": 4, "pain": 7}),
    ("5 out of 10 mood, pain 9", MP, {"mood": 5, "pain": 9}),
    ("5 out of 10 mood. pain 9", MP, {"mood": 5, "pain": 9}),
    ("5/10 mood, pain is 9", MP, {"mood": 5, "pain": 9}),
    ("mood is 5 out of 10 and pain is 8 out of 10", MP, {"mood": 5, "pain": 8}),
    ("pain is 8 out of 10", P, {"pain": 8}),
    ("pain is 8 out of 10, mood 6", MP, {"mood": 6, "pain": 8}),
    ("my back is killing me 8/10", P, {"pain": 8}),
    ("my back is killing me 8/10 mood 5", MP, {"mood": 5, "pain": 8}),
    ("hurts 7", P, {"pain": 7}),
    ("hurts 7, mood 3", MP, {"mood": 3, "pain": 7}),
    ("back pain 6", P, {"pain": 6}),
    ("back pain 6 mood 7", MP, {"mood": 7, "pain": 6}),
    ("headache 5 mood 6", MP, {"mood": 6, "pain": 5}),
    ("me duele 8", P, {"pain": 8}),
    ("pain 8, couldn't sleep, mood 2/10", MP, {"mood": 2, "pain": 8}),
    ("pain 8 couldnt sleep mood 2", MP, {"mood": 2, "pain": 8}),
    ("mood and sleep 4 and 7", MP, ASK),
    ("pain 6-7", P, {"pain": 7}),
    ("pain 6-7", MP, {"pain": 7}),
    ("pain 6-7 mood 4", MP, {"mood": 4, "pain": 7}),
    ("mood 3-4 pain 7", MP, {"mood": 3, "pain": 7}),
    ("6-7", P, {"pain": 7}),
    ("3-4", M, {"mood": 3}),
    ("4-7", MP, {"mood": 4, "pain": 7}),
    ("seven", P, {"pain": 7}),
    ("siete", P, {"pain": 7}),
    ("humor 6 dolor 3", MP, {"mood": 6, "pain": 3}),
    ("dolor 3 humor 6", MP, {"mood": 6, "pain": 3}),
    ("6 y 3", MP, {"mood": 6, "pain": 3}),
    ("mood 4 7", MP, {"mood": 4, "pain": 7}),
    ("4 mood 7 pain", MP, {"mood": 4, "pain": 7}),
    ("4 for mood and 7 for pain", MP, {"mood": 4, "pain": 7}),
    ("mood 4 and 7 for pain", MP, {"mood": 4, "pain": 7}),
    ("mood and pain 4 and 7", MP, {"mood": 4, "pain": 7}),
    ("my mood is about a 4 and pain 7", MP, {"mood": 4, "pain": 7}),
    ("im at a 4 mood wise pain 7", MP, {"mood": 4, "pain": 7}),
    ("4 7 thanks", MP, {"mood": 4, "pain": 7}),
    ("4 7 👍", MP, {"mood": 4, "pain": 7}),
    ("😊 8 2", MP, {"mood": 8, "pain": 2}),
    ("moood 4 pian 7", MP, {"mood": 4, "pain": 7}),
    ("6", P, {"pain": 6}),
    ("6/10", P, {"pain": 6}),
    ("6 out of 10", P, {"pain": 6}),
    ("about a 6 today", P, {"pain": 6}),
    ("10", P, {"pain": 10}),
    ("0", M, {"mood": 0}),
    ("mood 5", MP, {"mood": 5}),
    ("pain 3", MP, {"pain": 3}),
    ("6.5", P, ASK),
    ("4 or 5", P, ASK),
    ("4 7 9", MP, ASK),
    ("mood 4 mood 5 pain 7", MP, ASK),
    ("not sure", P, ASK),
    ("ok", MP, ASK),
    ("12", P, ASK),
    ("slept 8 hours, pain 4", P, {"pain": 4}),
    ("took 2 pills, pain 5", P, {"pain": 5}),
    ("appt at 3pm, mood 6 pain 2", MP, {"mood": 6, "pain": 2}),
    ("on a scale of 1-10 id say 4", P, {"pain": 4}),
    ("pain is a 9 today", P, {"pain": 9}),
    ("pain 9!!", P, {"pain": 9}),
    ("PAIN 9", P, {"pain": 9}),
    ("its like a 7", P, {"pain": 7}),
    ("mood 2", M, {"mood": 2}),
    ("mood is 2/10", M, {"mood": 2}),
    ("feeling like a 3", M, {"mood": 3}),
    ("tres", M, {"mood": 3}),
    ("mood 4, pain 7, sleep 2", MP, {"mood": 4, "pain": 7}),
    ("sleep 2 mood 4 pain 7", MP, {"mood": 4, "pain": 7}),
    ("4\n7", MP, {"mood": 4, "pain": 7}),
    ("Mood 4. Pain 7.", MP, {"mood": 4, "pain": 7}),
    ("mood 4 pain 7 thx", MP, {"mood": 4, "pain": 7}),
    ("4 / 7", MP, {"mood": 4, "pain": 7}),
    ("pain 7/10 mood 4/10", MP, {"mood": 4, "pain": 7}),
    ("my back hurts a lot 8", MP, {"pain": 8}),
    ("me duele la espalda 8", MP, {"pain": 8}),
    ("me duele mucho, 7. humor 4", MP, {"mood": 4, "pain": 7}),
    ("my head hurts, mood 5", MP, {"mood": 5}),
    ("sore today 6 mood 7", MP, {"mood": 7, "pain": 6}),
    ("knee aching 5", P, {"pain": 5}),
]

# The same patterns over many value pairs: numbers, words, orders and separators.
_WORDS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_PAIRS: Final = ((2, 8), (7, 3), (5, 5), (0, 10), (9, 1), (3, 6))
_PATTERNS: Final = (
    "{m} {p}",
    "{m},{p}",
    "{m} and {p}",
    "mood {m} pain {p}",
    "pain {p} mood {m}",
    "m{m} p{p}",
    "{m} out of 10 mood, pain {p}",
    "pain is {p} out of 10 and mood {m}",
    "humor {m} dolor {p}",
    "my back is killing me {p}/10 mood {m}",
    "pain {p}, couldnt sleep, mood {m}/10",
    "hurts {p} mood {m}",
    "mood {m}/10, pain {p}/10",
    "{m} mood {p} pain",
    "{p} pain {m} mood",
    "M: {m} P: {p}",
    "estado de animo {m}, dolor {p}",
    "ok mood {m} and back pain {p}",
)


def _generated() -> list[Case]:
    cases: list[Case] = []
    for m, p in _PAIRS:
        for pattern in _PATTERNS:
            cases.append((pattern.format(m=m, p=p), MP, {"mood": m, "pain": p}))
        if m < 10 and p < 10:
            cases.append((f"{_WORDS[m]} {_WORDS[p]}", MP, {"mood": m, "pain": p}))
        cases.append((f"pain {p}", P, {"pain": p}))
        cases.append((f"{m}/10", M, {"mood": m}))
        low, high = sorted((p, min(p + 1, 10)))
        if low != high:
            cases.append((f"pain {low}-{high}", P, {"pain": high}))
    return cases


CORPUS: Final[list[Case]] = [*_HAND, *_generated()]
