"""Inbound text: normalisation, crisis language, consent keywords and appointment replies.

Every inbound text is checked for risk language before anything else (CLINICAL.md;
`worker.domain.risk.assess_risk`, whose crisis tier `detect_crisis` reports and whose core is
the phrase list below), then `classify_keyword` (and `find_opt_out` inside a risk text), then
`appointment_reply`, then parsed as an answer (`worker.domain.replies`).

Crisis matching leans towards false positives, because a clinician reviews every match and a
missed one is the costly error. It therefore keeps negations ("I'm not suicidal" matches) and
accepts broad variants. Two deliberate exclusions, both tested:

- "killing me" / "kill me" alone ("this pain is killing me", "el dolor me mata") is not matched:
  it is how patients describe pain every day, and an urgent page for each would bury the real
  ones. "kill myself", "killing myself" and "matarme" are matched.
- "kms" is internet shorthand for "kill myself" and is matched, except straight after a number or
  a quantity word ("5 kms", "ten kms", "a few kms"), where it means kilometres. "cortarme" is
  matched except with "el pelo", "las uñas" and the like after it (a haircut).

Texts are compared in three forms: letters repeated 3+ times cut to two ("diiiie" -> "diie"),
cut to one ("die"), and every repeat cut to one, against patterns reduced the same way ("kiiill"
and "kil" both reach "kill myself"). The last form is not used for "od", because "odd" reduces
to "od". Accents are folded for matching ("hacerme dano" matches "hacerme daño"), and
punctuation counts as a space ("self-harm", "end.my.life"). HTML tags are read both ways.
Hyperbole such as "I'd rather die than go to the dentist" is matched: a false positive.

Keywords are whole-message. Choices: HELP/INFO/AYUDA must stand alone ("help me" may be
distress, so it goes to a human rather than an automatic reply); "para", "alto", "basta",
"cancelar" are Spanish opt-outs (whole message only); "leave me alone" and "wrong number" are
not opt-outs (a human reads them). After a recent reminder, OK and 👍 confirm the appointment.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Final, Literal

Keyword = Literal["opt_out", "opt_in", "help"]
AppointmentReply = Literal["confirm", "reschedule", "cancel_request", "late"]

# Phones send U+2019 for "'" and U+201C/D for quotes; "´" and "`" are typed as apostrophes too.
_QUOTES: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u02bc": "'",
        "\u00b4": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
    }
)
_SPACES_RE: Final = re.compile(r"\s+")
_REPEATS_3_RE: Final = re.compile(r"([^\W\d_])\1{2,}")
_REPEATS_2_RE: Final = re.compile(r"([^\W\d_])\1+")
_NON_WORD_RE: Final = re.compile(r"[^\w']+|_")
_LOOSE_APOSTROPHE_RE: Final = re.compile(r"(?<!\w)'|'(?!\w)")

# Only contractions whose apostrophe-less spelling is not itself a common word ("ill", "well",
# "were", "its", "shell", "id" stay as they are). "cannot" becomes "can't" so that one
# pattern covers both.
_CONTRACTIONS: Final = {
    "cant": "can't",
    "cannot": "can't",
    "dont": "don't",
    "wont": "won't",
    "im": "i'm",
    "ive": "i've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "isnt": "isn't",
    "arent": "aren't",
    "wasnt": "wasn't",
    "werent": "weren't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hadnt": "hadn't",
    "couldnt": "couldn't",
    "wouldnt": "wouldn't",
    "shouldnt": "shouldn't",
    "aint": "ain't",
    "youre": "you're",
    "theyre": "they're",
    "thats": "that's",
    "whats": "what's",
    "youve": "you've",
    "theyve": "they've",
    "wouldve": "would've",
}
_CONTRACTION_RE: Final = re.compile(
    r"(?<![\w'])(" + "|".join(sorted(_CONTRACTIONS, key=len, reverse=True)) + r")(?![\w'])"
)


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.translate(_QUOTES)).translate(_QUOTES).lower()
    kept: list[str] = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char)[0] != "C":
            # Cc, Cf (zero-width spaces, soft hyphens, bidi marks), Co, Cs, Cn are dropped, so
            # "sui\u200bcide" reads as "suicide".
            kept.append(char)
    return _SPACES_RE.sub(" ", "".join(kept)).strip()


def _restore_contractions(text: str) -> str:
    return _CONTRACTION_RE.sub(lambda m: _CONTRACTIONS[m.group(1)], text)


def normalize(text: str) -> str:
    """`text` lowercased, NFKC, curly quotes straightened, control and format characters
    removed, whitespace collapsed, letters repeated 3+ times cut to two ("soooo" -> "soo") and
    apostrophe-less contractions restored ("cant" -> "can't", "cannot" -> "can't").

    Accents are kept; see `strip_accents`.
    """
    return _restore_contractions(_REPEATS_3_RE.sub(r"\1\1", _clean(text)))


def strip_accents(text: str) -> str:
    """`text` without combining marks ("daño" -> "dano", "sí" -> "si")."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


def skeleton(text: str) -> str:
    """`text` with every run of a repeated letter cut to one ("kill" -> "kil", "mood" -> "mod")."""
    return _REPEATS_2_RE.sub(r"\1", text)


def _words(text: str) -> str:
    text = _LOOSE_APOSTROPHE_RE.sub(" ", _NON_WORD_RE.sub(" ", text))
    return _SPACES_RE.sub(" ", text).strip()


def _variants(text: str) -> tuple[str, str]:
    """The text as accent-folded words, with 3+ repeats cut to two and cut to one."""
    clean = _clean(text)
    two = _words(strip_accents(_restore_contractions(_REPEATS_3_RE.sub(r"\1\1", clean))))
    one = _words(strip_accents(_restore_contractions(_REPEATS_3_RE.sub(r"\1", clean))))
    return two, one


# ---------------------------------------------------------------------------------------------
# Crisis language

_SELF = "(my ?self|meself|myslef|my self)"
_CANT = "(can't|can not)"
_QUANTITY_WORDS = (
    "one two three four five six seven eight nine ten twenty fifty hundred few many couple some "
    "more extra several those these the of"
)
_QUANTITY_BEFORE_KMS = ("[0-9]", "[0-9] ", *(f"{word} " for word in _QUANTITY_WORDS.split()))

# (canonical phrase, pattern, whether the all-repeats-cut form may be used). Patterns are written
# on accent-folded, lowercased words separated by single spaces, and must not contain
# backslashes, so that `skeleton` can reduce them safely. Order: most specific first.
_CRISIS_PATTERNS: Final[tuple[tuple[str, str, bool], ...]] = (
    ("suicidal", "suicidal|suicidial|sucidal|suisidal|suicidality", True),
    ("suicide", "suicides?|sucides?|suisides?|suicde", True),
    (
        "kill myself",
        f"(kill|kills|killing|killed) {_SELF}"
        f"|(hang|hanging|shoot|shooting|drown|drowning|poison|poisoning|off|offing) {_SELF}"
        "|jump(ing)? (off|from) (a|the) (bridge|building|roof)",
        True,
    ),
    ("kill myself", "".join(f"(?<!{w})" for w in _QUANTITY_BEFORE_KMS) + "kms", True),
    ("end my life", "(end|ends|ending|ended) (my|this|my own) life", True),
    ("take my own life", "(take|taking|took) my (own )?life", True),
    (
        "end it all",
        "(end|ending) it all"
        "|(want|wanna|going|gonna|ready|plan|planning|thinking about|think about|thought about"
        "|feel like|felt like|feeling like|i'll just|i could just)( to)? (end|ending) "
        "(it|things|everything)",
        True,
    ),
    (
        "want to be dead",
        "(want|wants|wanted|wanting|wanna|wish)( to| 2)? be dead"
        "|wish i (was|were|could be) dead|rather be dead",
        True,
    ),
    (
        "want to die",
        "(want|wants|wanted|wanting|wanna|wana|would like|wish)( to| 2)? die"
        "|wish i (could|would) die|(ready|deserve|deserved) to die|let me die|rather die"
        "|(pray|praying) (to|that i|i) die",
        True,
    ),
    ("better off dead", "better off dead|better off without me", True),
    (
        "no reason to live",
        "no (reason|point|purpose|will) (to|in|of|for) (live|living|life|going on|go on)"
        "|no reason for living|nothing (left )?to live for|(give|giving|gave) up on life",
        True,
    ),
    (
        "not worth living",
        "(not|isn't|ain't|wasn't|no longer|never) worth (living|it anymore|it any more)"
        "|life (is not|isn't|ain't) worth it",
        True,
    ),
    ("tired of living", "(tired|sick) of (living|being alive|life)|life is pointless", True),
    (
        "thoughts of death",
        "(think|thinks|thinking|thought|thoughts) (about|of) (dying|death|being dead"
        "|not being here|not waking up)",
        True,
    ),
    (
        "want to disappear",
        "(want|wanna|wish i could)( to)? (disappear|sleep forever|never wake up)"
        "|(better|easier) (for everyone )?if i (was|were|wasn't|weren't) (gone|dead|here|around)"
        "|(nobody|no one) would (care|notice|miss me) if i (was|were|died|disappeared)"
        "|(quiero|quisiera) desaparecer",
        True,
    ),
    (
        "don't want to be alive",
        "(don't|do not|no longer|not|never|didn't) (want|wanna|wish)( to)? "
        "(be alive|live|exist|wake up|be here anymore|be here any more|be around anymore"
        "|be around any more)",
        True,
    ),
    ("hurt myself", f"(hurt|hurts|hurting) {_SELF}", True),
    ("harm myself", f"(harm|harms|harming|harmed) {_SELF}", True),
    (
        "self harm",
        "self ?harm(s|ing|ed)?|self ?injur(y|e|ing|ed|ies)|self ?mutilat(e|ion|ing)",
        True,
    ),
    (
        "cut myself",
        f"(cut|cuts|cutting) ({_SELF[1:-1]}|my wrists?)|(slit|slitting) my wrists?"
        "|(started|start|been|keep|back to) cutting|cutting again",
        True,
    ),
    ("overdose", "overdos(e|es|ed|ing)|over dos(e|es|ed|ing)", True),
    # "odd" reduces to "od" in the skeleton form, so this one is matched as typed only.
    ("overdose", "od|od'd|o'd|oding|od'ing|oded|od'ed", False),
    (
        "can't go on",
        f"{_CANT} (go on|going on|carry on|keep going|do this anymore|do this any more"
        "|take it anymore|take it any more|live like this)",
        True,
    ),
    ("unalive", "un ?aliv(e|ed|ing)", True),
    # Spanish, accent-folded.
    ("suicidio", "suicidios?", True),
    ("suicidarme", "suicidar(me|se)?|suicidas?", True),
    (
        "matarme",
        "matarme|me (quiero|voy a|pienso|quisiera|gustaria) matar|(ahorcarme|tirarme de)",
        True,
    ),
    ("quitarme la vida", "quitar(me|se)? la vida|(acabar|terminar) con mi vida", True),
    (
        "no quiero vivir",
        "no quiero (seguir )?(vivir|viviendo|estar viv[oa])|no (tengo|hay) (razon|razones|motivo|motivos"
        "|ganas) (para|de) vivir|no vale la pena vivir",
        True,
    ),
    (
        "quiero morir",
        "(quiero|quisiera|deseo|prefiero|me quiero|ojala pudiera) morir(me)?"
        "|(quiero|quisiera) estar muert[oa]|mejor muert[oa]|ganas de morir(me)?",
        True,
    ),
    ("hacerme daño", "hacerme dano|lastimarme|herirme|autolesion(es|arme)?", True),
    (
        "cortarme",
        "cortarme( las venas)?(?! (el|mi|las|los) (pelo|cabello|unas|flequillo|barba|puntas))"
        "|cortar(me)? las venas",
        True,
    ),
    ("sobredosis", "sobredosis", True),
    ("no puedo más", "no puedo (mas|seguir)", True),
)


_HTML_TAG_RE: Final = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]{0,500})?/?>")


def _bounded(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])(?:" + pattern + r")(?!\w)")


_CRISIS: Final = tuple(
    (canonical, _bounded(pattern), _bounded(skeleton(pattern)) if use_skeleton else None)
    for canonical, pattern, use_skeleton in _CRISIS_PATTERNS
)


def detect_crisis(text: str) -> str | None:
    """The canonical crisis phrase found in `text` (e.g. "end my life", "quiero morir"), or None.

    Negations are not filtered out; see the module docstring for what is and is not matched.
    This is the crisis tier of `worker.domain.risk.assess_risk` (which also reads typos, digits
    for letters, means and plans, and finds the possible-risk tier); these patterns are its core.
    """
    # Imported here: risk.py builds on this module's normalisation and patterns.
    from worker.domain.risk import crisis_phrase

    return crisis_phrase(text)


# ---------------------------------------------------------------------------------------------
# Whole-message keywords

_OPT_OUT_WORDS: Final = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "unsuscribe",
        "unsubcribe",
        "unsub",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        # Spanish. "para" alone is the imperative "stop"; as a whole message it has no other
        # likely meaning.
        "alto",
        "basta",
        "para",
        "parar",
        "detener",
        "cancelar",
        "baja",
    }
)
_CANCEL_WORDS: Final = frozenset({"cancel", "cancelar"})
_OPT_IN_WORDS: Final = frozenset({"start", "unstop", "subscribe", "resume"})
_HELP_WORDS: Final = frozenset({"help", "info", "ayuda"})
_YES_WORDS: Final = frozenset({"yes", "y", "yeah", "yea", "yep", "yup", "si"})


def _swaps(word: str) -> set[str]:
    """`word` with two neighbouring letters swapped, each way: "stop" -> stpo, sotp, tsop."""
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)} - {word}


def _with_swaps(words: frozenset[str], *, other: frozenset[str]) -> frozenset[str]:
    """The one-word keywords of 4+ letters with their neighbour-swapped typos ("stpo", "cancle",
    "unsubscirbe"): a patient typing fast who sends STOP as "stpo" has asked to stop, and only
    this service, not the carrier, can see it (the FCC counts any reasonable means of revoking
    consent). Left out: words under 4 letters (END's swaps are too close to other words), any
    swap that is a keyword of another kind, swaps that double a letter ("paar" would also match
    "par", since repeated letters are ignored) and "alot", which is how many write "a lot"."""
    typos = {
        t
        for w in words
        if " " not in w and len(w) >= 4
        for t in _swaps(w)
        if len(skeleton(t)) == len(skeleton(w))
    }
    return frozenset(words | (typos - other - _NOT_TYPOS))


_NOT_TYPOS: Final = frozenset({"alot"})
_OPT_OUT_TYPED: Final = _with_swaps(_OPT_OUT_WORDS, other=_OPT_IN_WORDS | _HELP_WORDS | _YES_WORDS)
_CANCEL_TYPED: Final = _with_swaps(_CANCEL_WORDS, other=_OPT_IN_WORDS | _HELP_WORDS | _YES_WORDS)

_TEXTS = (
    "(texts|text messages|txts|messages|msgs|sms|emails|reminders|notifications|stuff|things"
    "|alerts|crap|spam)"
)
_SENDING = (
    "(texting|txting|texing|messaging|msging|sending|contacting|emailing|calling|bothering"
    "|spamming|harassing)"
)
_DETERMINER = "(the|these|those|this|all|your|all the|all these|any|all your|all of these)"
_TO_ME = "( (to me|to this number|to my number|to my phone|to my cell))?"
_OPT_OUT_RES: Final = tuple(
    re.compile(p)
    for p in (
        "(stop|quit|cease|stahp)( (it|this|that|everything|all of it))?",
        f"(stop|quit|cease) {_SENDING}( (me|us|to me))?( {_DETERMINER})?( {_TEXTS})?{_TO_ME}",
        f"(stop|quit|cease|cancel|end) ({_DETERMINER} )?{_TEXTS}{_TO_ME}",
        "(i )?(don't|do not|never)( ever)? (text|message|msg|contact|email|sms|send|call)"
        f"( (me|us))?( (any )?(more )?{_TEXTS})?( (again|ever again))?",
        "(remove|take|delete|unsubscribe|drop|opt) (me|us|my number|this number|my phone"
        "|my phone number|my cell)( (from|off|out of|out) ((this|the|your|all|these|that) )?"
        "(list|texts|text list|messages|mailing list|texting list|contact list|sms list"
        "|system|program|service|texting|database))?( out)?",
        f"no more {_TEXTS}( (to me|to this number))?",
        "(i want|i wanna|i would like|i'd like|i need|want|wanna|would like|need)( to)? "
        "(unsubscribe|opt out|optout"
        f"|stop (receiving |getting )?({_DETERMINER} )?{_TEXTS}"
        "|be removed( from ((this|the|your) )?list)?|be taken off( ((this|the|your) )?list)?)",
        "(unsubscribe|opt out|optout)( (me|us))?( (from|of) ((this|the|these|all|your) )?"
        "(list|texts|messages|program|service))?",
        "cancel (my |the |this )?(subscription|texts|messages|text messages)",
        # Spanish, accent-folded.
        "cancelar (la |mi )?suscripcion|(darme|dar|me doy|quiero darme) de baja",
        "no mas (mensajes|textos|sms|recordatorios)( por favor)?",
        "dejen de (enviarme|mandarme|escribirme|enviar|mandar|escribir)( (mensajes|textos|sms))?",
        "no me (envien|manden|escriban|envie|mande|escriba)( mas)?( (mensajes|textos|sms))?( mas)?",
        "(ya )?no quiero (recibir )?(mas )?(mensajes|textos|sms)",
    )
)
_OPT_IN_RES: Final = (
    re.compile("(start|unstop|subscribe|resume)( (again|texts|messages|texting|messaging))?"),
)

# Words around a keyword that do not change it ("stop please", "ok STOP", "basta ya").
_POLITE: Final = (
    "please",
    "pls",
    "plz",
    "plse",
    "plez",
    "kindly",
    "thanks",
    "thank you",
    "thank u",
    "thx",
    "ty",
    "now",
    "right now",
    "for now",
    "asap",
    "immediately",
    "already",
    "ok",
    "okay",
    "just",
    "anymore",
    "any more",
    "seriously",
    "i said",
    "por favor",
    "gracias",
    "ya",
)
_AFFIRM_FILLERS: Final = (
    "please",
    "pls",
    "plz",
    "thanks",
    "thank you",
    "thank u",
    "thx",
    "ty",
    "ok",
    "okay",
    "por favor",
    "gracias",
)


def _strip_fillers(text: str, fillers: Iterable[str]) -> str:
    fillers = tuple(sorted(fillers, key=len, reverse=True))
    changed = True
    while changed and text:
        changed = False
        for filler in fillers:
            if text.startswith(filler + " "):
                text, changed = text[len(filler) + 1 :], True
            elif text.endswith(" " + filler):
                text, changed = text[: -len(filler) - 1], True
    return text


def _forms(text: str, fillers: Iterable[str] = ()) -> list[str]:
    """The whole message as candidate words, fillers stripped at both ends.

    A form reduced to one character from a longer message is left out, so "xxx" is not "x".
    """
    two, one = _variants(text)
    typed = _strip_fillers(two, fillers)
    forms: list[str] = [typed] if typed else []
    for form in (_strip_fillers(one, fillers), skeleton(typed)):
        if form and form not in forms and (len(form) > 1 or len(typed) == 1):
            forms.append(form)
    return forms


@cache
def _skeletons(words: frozenset[str], *, multi_word: bool) -> frozenset[str]:
    """The keyword sets' words with repeats cut, once per set (not per inbound message): with
    multi_word, every word of 2+ letters (one-letter words must be typed as one letter); without,
    the one-word keywords only."""
    if multi_word:
        return frozenset(skeleton(w) for w in words if len(w) > 1)
    return frozenset(skeleton(w) for w in words if " " not in w)


def _in(forms: list[str], words: frozenset[str]) -> bool:
    # One-letter words (C, R, X, Y) must be typed as one letter: "xx" is not "x".
    reduced = _skeletons(words, multi_word=True)
    return any(form in words or skeleton(form) in reduced for form in forms)


def _fullmatch(forms: list[str], patterns: Iterable[re.Pattern[str]]) -> bool:
    return any(pattern.fullmatch(form) for pattern in patterns for form in forms)


def _only_words(forms: list[str], words: frozenset[str]) -> bool:
    """Every word is one of `words` (or "and"): "STOP STOP", "stop unsubscribe"."""
    reduced = _skeletons(words, multi_word=False)
    for form in forms:
        tokens = [t for t in form.split() if t not in ("and", "&", "y")]
        if tokens and all(skeleton(t) in reduced for t in tokens):
            return True
    return False


def classify_keyword(text: str) -> Keyword | None:
    """ "opt_out", "opt_in" or "help" when the whole message is that keyword, else None.

    Case, repeated letters, accents, punctuation, emoji and surrounding whitespace are ignored,
    as are polite words around it ("Stop please!!", "ok STOP"). Opt-out also accepts free-text
    requests ("stop texting me", "remove me from this list", "no más mensajes"); a longer
    message merely containing "stop" ("my pain won't stop") is not an opt-out. YES is not an
    opt-in word here: see `is_yes`. HELP is the bare word only: "help me" is left to a human.
    """
    forms = _forms(text, _POLITE)
    if (
        _in(forms, _OPT_OUT_TYPED)
        or _only_words(forms, _OPT_OUT_WORDS)
        or _fullmatch(forms, _OPT_OUT_RES)
    ):
        return "opt_out"
    if _in(forms, _OPT_IN_WORDS) or _fullmatch(forms, _OPT_IN_RES):
        return "opt_in"
    if _in(_forms(text), _HELP_WORDS):
        return "help"
    return None


def is_cancel_word(text: str) -> bool:
    """True when the whole message is CANCEL (or "cancelar"): an opt-out that may have been
    meant for an appointment, so staff should be asked to check the intent (CLINICAL.md)."""
    return _in(_forms(text, _AFFIRM_FILLERS), _CANCEL_TYPED)


def is_yes(text: str) -> bool:
    """True when the whole message is YES, Y, YEAH, YEA, YEP, YUP, SI or SÍ (with "please",
    "thanks" or "ok" around it allowed)."""
    return _in(_forms(text, _AFFIRM_FILLERS), _YES_WORDS)


_CONFIRM_WORDS: Final = _YES_WORDS | {
    "c",
    "confirm",
    "confirmed",
    "confirming",
    "confirmo",
    "confirmado",
    "confirmada",
    "confirmar",
}
_RESCHEDULE_WORDS: Final = frozenset({"r", "reschedule", "resched", "reprogramar"})
_CANCEL_REQUEST_WORDS: Final = frozenset({"x"})
_APPOINTMENT = "(my |the |this |that |mi |la )?(appointment|appt|appointments|cita)"
_CONFIRM_RES: Final = (re.compile(f"(confirm|confirmed|confirmo|confirmar) {_APPOINTMENT}"),)
_RESCHEDULE_RES: Final = (
    re.compile(f"(reschedule|resched|reprogramar|cambiar|move) {_APPOINTMENT}"),
)
_CANCEL_REQUEST_RES: Final = (re.compile(f"(cancel|cancelar) {_APPOINTMENT}"),)


# A patient's own words, English and Spanish, matched anywhere in a short message (accents
# folded). Checked in this order: "I'll be there but running late" is late, "can't make it, can
# we move it?" a reschedule.
_OWN_PATTERNS: Final[tuple[tuple[AppointmentReply, str], ...]] = (
    (
        "late",
        r"running late|run late|running behind|(?:be|am|i'm|im) (?:a (?:bit|little) )?late"
        r"|\d{1,3} ?(?:min|mins|minutes|minute) (?:late|behind)|(?:llego|llegare|voy) tarde"
        r"|voy a llegar tarde|llegando tarde|(?:un poco|unos minutos) tarde",
    ),
    (
        "reschedule",
        r"move it|move my|move the|different (?:day|time|date)|another (?:day|time|date)"
        r"|(?:can|could|may) (?:i|we) reschedule|(?:need|want|have|like) to reschedule"
        r"|new (?:time|day|date)|change (?:the|my) (?:time|day|date|appointment|appt)"
        r"|otro dia|otra (?:fecha|hora|dia)|cambiar (?:la|mi) (?:cita|hora|fecha)"
        r"|reprogramar|reagendar",
    ),
    (
        "cancel_request",
        r"(?:can't|won't|not going to|unable to|couldn't) make it|can't come|can't go"
        r"|won't be (?:able to make it|there|coming)|(?:need|have|want|going) to cancel"
        r"|(?:i'll|i will|i must|must) cancel|no (?:puedo|podre|voy a poder) (?:ir|asistir|llegar)"
        r"|(?:tengo|necesito|quiero) que cancelar|(?:necesito|quiero) cancelar",
    ),
    (
        "confirm",
        r"(?:i'll|i will|we'll|we will|will) be there|see you (?:then|there|tomorrow|soon)"
        r"|sounds good|ahi estare|alli estare|ahi estaremos|nos vemos|de acuerdo|claro que si",
    ),
)
_OWN_WORDS: Final = tuple(
    (verdict, re.compile(rf"\b(?:{pattern})\b")) for verdict, pattern in _OWN_PATTERNS
)
_OWN_WORDS_MAX: Final = 12  # words; a longer message is a story for a human to read
_CONFIRM_ALONE: Final = frozenset({"ok", "okay", "k", "kk", "👍", "👌", "✅", "vale", "perfecto"})
_NUMBER_RE: Final = re.compile(r"\d")


def appointment_reply(text: str) -> AppointmentReply | None:
    """The reply to an appointment reminder the whole message makes, or None.

    C, Y, YES (and the other `is_yes` words), CONFIRM, CONFIRMED, OK, 👍 -> "confirm"; R,
    RESCHEDULE -> "reschedule"; X -> "cancel_request"; also "confirm/reschedule/cancel my
    appointment" and Spanish "confirmo", "reprogramar", "cancelar la cita". A patient's own
    words in a short message: "yes I'll be there", "see you then", "ahí estaré" -> "confirm";
    "can we move it", "different day?", "otro día" -> "reschedule"; "can't make it", "I need to
    cancel", "no puedo ir" -> "cancel_request"; "running late", "10 min late", "llego tarde" ->
    "late". A message with any other number in it ("mood 4 pain 7, see you then") is left to the
    answer parser. CANCEL alone is not an appointment reply: it is an opt-out word. The caller
    applies this only when a reminder was sent recently.
    """
    folded = strip_accents(normalize(text)).strip(" .!?\t\r\n")
    if folded in _CONFIRM_ALONE or (folded and set(folded.replace(" ", "")) <= {"👍"}):
        return "confirm"
    forms = _forms(text, _AFFIRM_FILLERS)
    if _in(forms, _CONFIRM_WORDS) or _fullmatch(forms, _CONFIRM_RES):
        return "confirm"
    if _in(forms, _RESCHEDULE_WORDS) or _fullmatch(forms, _RESCHEDULE_RES):
        return "reschedule"
    if _in(forms, _CANCEL_REQUEST_WORDS) or _fullmatch(forms, _CANCEL_REQUEST_RES):
        return "cancel_request"
    if len(folded.split()) > _OWN_WORDS_MAX:
        return None
    for verdict, pattern in _OWN_WORDS:
        match = pattern.search(folded)
        if match is None:
            continue
        if _NUMBER_RE.search(folded[: match.start()] + folded[match.end() :]):
            return None  # "mood 4 pain 7, see you then": an answer first
        return verdict
    return None


# ---------------------------------------------------------------------------------------------
# An opt-out inside a longer text

_CLAUSE_RE: Final = re.compile(r"[.!?;,:\n]+|\s[-\u2013\u2014]+\s")
# A request that names the messages ("stop texting me", "unsubscribe", "no más mensajes"). A bare
# "end", "quit", "para" or "cancel" at the start of a sentence is too often something else
# ("end it all", "para qué seguir"), so only these words count without a whole sentence of
# their own.
_STANDALONE_PREFIX_WORDS: Final = frozenset({"stop", "stopall", "unsubscribe", "unsub", "optout"})
_MESSAGES_RE: Final = re.compile(
    r"\b(text|texts|texting|txt|txts|txting|message|messages|messaging|msgs?|sms|email|emails"
    r"|list|number|unsubscribe|opt out|optout|mensajes|textos|escribirme|enviarme|mandarme"
    r"|suscripcion|baja)\b"
)


def find_opt_out(text: str) -> bool:
    """True when a longer text also asks to stop the messages: a sentence of its own that is an
    opt-out ("STOP. I want to die", "i can't anymore. unsubscribe") or a sentence that starts with
    one ("stop texting me i want to kill myself").

    Meant for texts with risk language, which are never read as anything else; other texts keep
    the whole-message rule of `classify_keyword`, so "my pain won't stop" stays a reply.
    """
    if classify_keyword(text) == "opt_out":
        return True
    for clause in _CLAUSE_RE.split(text):
        if not clause.strip():
            continue
        if classify_keyword(clause) == "opt_out":
            return True
        two, _ = _variants(clause)
        words = _strip_fillers(two, _POLITE).split()
        for n in range(len(words) - 1, 0, -1):
            prefix = " ".join(words[:n])
            if classify_keyword(prefix) != "opt_out":
                continue
            if _MESSAGES_RE.search(prefix) or set(prefix.split()) <= _STANDALONE_PREFIX_WORDS:
                return True
    return False
