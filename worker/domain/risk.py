"""Risk language in an inbound text, in two tiers (CLINICAL.md, "Crisis path").

- **crisis**: explicit intent ("want to die", "kill myself", "me quiero morir"), self-harm, means
  and plans (pills with a count, "all" or "not wake up"; a drug name with intent; the pill emoji
  with intent; a gun, a rope, a bridge or a height with intent; a note, giving things away) and
  final goodbyes ("goodbye everyone", "this is my last message", "take care of my kids for me").
  Everything the original phrase list matched (`keywords._CRISIS_PATTERNS`) stays in this tier,
  so nothing that was urgent yesterday is downgraded.
- **possible_risk**: indirect language: hopelessness ("what's the point", "no aguanto más"),
  being a burden ("I'm a burden to my family", "soy una carga"), a goodbye without means ("I'm
  not going to be here much longer").

The text is compared in several normalised forms, each tried against every rule: case, accents,
curly quotes and control characters folded; letters repeated 3+ times cut to two and to one;
digits and symbols used as letters read as letters ("d1e", "k!ll", "$uicide"), but only inside a
word that starts with a letter, so "4 7", "10kms" and "30 pills" keep their numbers; the pill,
gun, rope and skull emoji read as words; words run together split ("killmyself", "wanttodie");
misspellings of the key words within one edit (two for long words) corrected ("wnat", "suicde",
"overdoes" excepted because it is a word), never for words of three letters ("die" is not "diet")
and never when the typo is itself a common word. Negations are not filtered (a clinician reviews
every match): "I'm not suicidal" is crisis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

from worker.domain import keywords as kw

Tier = Literal["crisis", "possible_risk"]
Language = Literal["en", "es"]


@dataclass(frozen=True)
class RiskMatch:
    tier: Tier
    category: str
    phrase: str  # the evidence, as matched in the normalised text
    language: Language
    canonical: str  # the rule's name ("want to die", "pills with a count")


# ---------------------------------------------------------------------------------------------
# Normalisation

_EMOJI: Final = {
    "\U0001f48a": " pillemoji ",  # pill
    "\U0001f489": " pillemoji ",  # syringe
    "\U0001f52b": " gunemoji ",  # pistol
    "\U0001faa2": " ropeemoji ",  # knot
    "\U0001f480": " deathemoji ",  # skull
    "\u2620": " deathemoji ",  # skull and crossbones
    "\u26b0": " deathemoji ",  # coffin
    "\U0001faa6": " deathemoji ",  # headstone
    "\U0001f52a": " knifeemoji ",  # knife
    "\U0001fa78": " bloodemoji ",  # drop of blood
}
_EMOJI_RE: Final = re.compile("|".join(map(re.escape, _EMOJI)))
_LEET: Final = {"1": "i", "3": "e", "0": "o", "4": "a", "@": "a", "$": "s", "5": "s", "7": "t"}
_INNER_LEET: Final = {"!": "i", "|": "l"}
_TOKEN_RE: Final = re.compile(r"[\w@$!|]+")
_SPACES_RE: Final = re.compile(r"\s+")


def _deleet_token(match: re.Match[str]) -> str:
    token = match.group(0)
    # Only a word that starts with a letter (or "$"/"@") and has a letter in it: "d1e", "k1ll",
    # "$uicide". "4", "7", "30", "10kms", "2day" are left as typed.
    # A single leading digit counts when three letters follow ("0verdose"), not "10kms", "5mg".
    leading = token[0].isalpha() or token[0] in "$@"
    leading = leading or (token[0] in _LEET and token[1:4].isalpha() and len(token) >= 4)
    if not leading or not any(c.isalpha() for c in token):
        return token
    out = []
    for i, char in enumerate(token):
        if char in _LEET:
            out.append(_LEET[char])
        elif char in _INNER_LEET and 0 < i < len(token) - 1:
            inner = token[i - 1].isalpha() and token[i + 1].isalpha()
            out.append(_INNER_LEET[char] if inner else char)
        else:
            out.append(char)
    return "".join(out)


_LEET_CHAR_RE: Final = re.compile(r"[0-9@$!|]")


def _deleet(text: str) -> str:
    if not _LEET_CHAR_RE.search(text):
        return text
    return _TOKEN_RE.sub(_deleet_token, text)


# Words run together: split at the boundaries of the key words.
_JOINS: Final = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"(?<=[a-z])(myself|myslef|meself|mylife)\b", r" \1"),
        (r"\bmy(self|life)\b", r"my \1"),
        (r"\bmy self\b", "myself"),
        (r"\b(i|im)(want|wanna|wana|wnat|need|gonna|have)(?=[a-z])", r"\1 \2 "),
        (
            r"\b(want|wanna|wana|wnat|going|gonna|ready|need)(to|2)(die|be|end|kill|disappear)\b",
            r"\1 \2 \3",
        ),
        (r"\b(wanna|wana|to)(die|diee)\b", r"\1 \2"),
        (r"\b(end|ending)(it|my|this)(all|life)?\b", r"\1 \2 \3"),
        (r"(?<=[a-z])(suicid)", r" \1"),
        (r"\b(no|what'?s|whats)(thepoint|point)\b", r"\1 \2"),
        (r"\bthepoint\b", "the point"),
        (r"\bgood bye\b", "goodbye"),
        (r"\bno one\b|\bnoone\b", "nobody"),
        (r"\bany more\b", "anymore"),
        (r"\bsleep(ing)?pills\b", r"sleep\1 pills"),
        # Letters typed one by one: "k m s", "d i e".
        (r"\b[a-z](?: [a-z]){2,}\b", lambda m: m.group(0).replace(" ", "")),
    )
)


# Key words whose near misses are corrected, with the common words that are one edit away and
# must stay as they are.
def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_KEY_WORDS: Final = _word_set(
    "want wanna kill killing myself suicide suicidal overdose pills sleeping alive living "
    "goodbye burden hopeless worthless anymore pointless everyone tomorrow "
    "quiero morir matarme suicidarme pastillas aguanto"
)
_REAL_WORDS: Final = _word_set(
    "wand wane wart ward wait what went watt wont walt wants wanta warn "
    "kiln kilt kiss kits kind king kilo kilns kills billing "
    "polls pulls piles pills pile palls spills "
    "alike alice align aliveness "
    "loving lining liking liming giving lighting "
    "helpless homeless hopeful "
    "overdoes overdone overdue overuse overused overdrive "
    "sweeping seeping steeping sleeting sleepily "
    "pointers painless "
    "burdens burned burner "
    "anyone "
    "quiere quieto quiera moris motor morin "
    "pastilla pasillos castillas "
    "aguante aguanta "
    "vivid suicidio suicidios suicida suicidas suicidarse suicidarte "
)
# Three-letter typos are too risky to correct by distance; these few are safe.
_SHORT_TYPOS: Final = {
    "dei": "die",
    "ded": "dead",
    "wnt": "want",
    "wna": "wanna",
    "kil": "kill",
    # Spanish spelled as it sounds.
    "kiero": "quiero",
    "qiero": "quiero",
    "kero": "quiero",
    "kisiera": "quisiera",
}


def _distance_at_most(a: str, b: str, limit: int) -> bool:
    """Optimal string alignment distance (a transposition is one edit) is at most `limit`."""
    if abs(len(a) - len(b)) > limit:
        return False
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return False
        prev2, prev = prev, row
    return prev[-1] <= limit


@cache
def _correct(token: str) -> str:
    if token in _SHORT_TYPOS:
        return _SHORT_TYPOS[token]
    if len(token) < 4 or token in _KEY_WORDS or token in _REAL_WORDS or not token.isalpha():
        return token
    for word in sorted(_KEY_WORDS):
        # Typos rarely change the first letter; requiring it keeps look-alikes out.
        if word[0] != token[0]:
            continue
        if _distance_at_most(token, word, 2 if len(word) >= 8 else 1):
            return word
    return token


def _fix_typos(text: str) -> str:
    return " ".join(_correct(t) for t in text.split(" "))


def _split_joins(text: str) -> str:
    for pattern, repl in _JOINS:
        text = pattern.sub(repl, text)
    return _SPACES_RE.sub(" ", text).strip()


# A run of the same emoji counts as three at most: "💊" x 300 says no more than "💊💊💊", and
# long runs would make the patterns slow.
_EMOJI_RUN_RE: Final = re.compile("(" + "|".join(map(re.escape, _EMOJI)) + r")(?:\s*\1){3,}")


def normal_forms(text: str) -> list[str]:
    """The normalised readings of `text` that the rules are matched against (deduplicated):
    first as typed (only case, accents, quotes and repeats folded), then repaired (digits and
    symbols read as letters, joined words split, typos corrected)."""
    text = _EMOJI_RUN_RE.sub(lambda m: m.group(1) * 3, text)
    raws = [text]
    if kw._HTML_TAG_RE.search(text):
        raws.append(kw._HTML_TAG_RE.sub(" ", text))
    typed: list[str] = []
    repaired: list[str] = []
    for raw in raws:
        clean = kw.strip_accents(_EMOJI_RE.sub(lambda m: _EMOJI[m.group(0)], kw._clean(raw)))
        cuts = {kw._REPEATS_3_RE.sub(r"\1\1", clean), kw._REPEATS_3_RE.sub(r"\1", clean)}
        for cut_text in sorted(cuts, key=len, reverse=True):
            words = kw._words(kw._restore_contractions(cut_text))
            typed.append(words)
            for reading in dict.fromkeys((cut_text, _deleet(cut_text))):
                words = kw._words(kw._restore_contractions(reading))
                repaired.append(kw._restore_contractions(_fix_typos(_split_joins(words))))
    forms: list[str] = []
    for form in typed + repaired:
        if form and form not in forms:
            forms.append(form)
    return forms


# ---------------------------------------------------------------------------------------------
# Rules. Patterns are written on the normalised words (lowercase, accent-folded, single spaces,
# apostrophes kept in contractions) and contain no backslashes, so that `keywords.skeleton`
# can reduce them for the all-repeats-cut reading.

_DRUG = (
    "(pills?|tablets?|tabs|meds|medications?|medicines?|capsules?|sleeping pills|sleep pills"
    "|sleeping tablets|painkillers|pain killers|pain pills|pain meds|oxy|oxys|oxies|oxycodone"
    "|oxycontin|oxycotton|percs|perc|percocets?|vicodin|vics|hydrocodone|norco|dilaudid|fentanyl"
    "|fent|morphine|methadone|tramadol|codeine|opioids?|opiates?|heroin|xanax|xans|xannies"
    "|zannies|bars|klonopin|klonnies|valium|ativan|benzos?|ambien|zolpidem|trazodone|seroquel"
    "|lithium|insulin|tylenol|acetaminophen|paracetamol|advil|ibuprofen|aleve|aspirin|gabapentin"
    "|lyrica|antidepressants|sertraline|zoloft|prozac|lexapro|wellbutrin|amitriptyline"
    "|pillemoji)"
)
_DRUG_ES = (
    "(pastillas?|pildoras?|medicinas?|medicamentos?|tabletas?|capsulas?|pastillas para dormir"
    "|somniferos|calmantes|analgesicos|opioides|oxicodona|fentanilo|morfina|tramadol|xanax"
    "|clonazepam|rivotril|diazepam|alprazolam|tylenol|paracetamol|ibuprofeno|aspirinas?"
    "|insulina|pillemoji)"
)
_BIG_COUNT = (
    "([1-9][0-9]+|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|hundred|a hundred"
    "|a dozen|dozen|a whole bottle|the whole bottle|whole bottle|a bottle|the bottle|an entire"
    " bottle|the entire bottle|a full bottle|a handful|handful|handfuls|a bunch|bunch|a lot|lots"
    "|a ton|tons|enough|the rest|(my|the|a|his|her) (whole|entire) (script|prescription|supply"
    "|stash|bottle|pack|box|month's supply|months supply))"
)
_UNITS = "(mg|milligrams?|mcg|ml|units|iu|hours?|hrs|minutes?|mins|days?|am|pm|percent)"
_GAP = f"( (?!{_UNITS}(?![a-z]))[a-z']+){{0,3}}"
_TAKE_NOW = (
    "(take|taking|took|taken|swallow|swallowing|swallowed|pop|popping|popped|down|downing"
    "|downed|chug|chugging|chugged|eat|ate|od on|od'd on|overdose on|overdosing on)"
)
_INTENT = (
    "(going to|gonna|about to|ready to|want to|wanna|will|i'll|planning to|plan to|thinking"
    " about|thinking of|i could|should i|i might|tonight i'm|i'm|im)"
)
_NOT_WAKE = (
    "(and|to|so i|so that i|then) (not|never|don't|won't|wont) (wake up|wake|have to wake up)"
)
_GUN = (
    "(gun|guns|firearm|pistol|handgun|revolver|rifle|shotgun|glock|9mm|gunemoji|bullet|bullets"
    "|arma|pistola|escopeta|revolver)"
)
_GUN_INTENT = (
    "(end (it|it all|things|everything|this|my life|me)|kill (myself|me)|to die|myself|my head"
    "|my mouth|my temple|my brains?|(use|using) it( on me)?|pull the trigger|be done with it"
    "|be done|matarme|acabar con todo|mi cabeza|quitarme la vida)"
)
_HEIGHT = (
    "(bridge|building|roof|rooftop|cliff|balcony|overpass|parking garage|garage roof|window"
    "|ledge|tower|top floor|skyscraper|dam)"
)
# Jumping "off the bus" is how people get off a bus; in front of one, or into the river, is not.
_VEHICLE = "(train|tracks|subway|bus|truck|traffic|river|freeway|highway|car|cars|semi|lake)"
_HEIGHT_ES = (
    "(puente|edificio|techo|azotea|balcon|ventana|metro|tren|vias|barranco|precipicio|risco"
    "|piso|segundo piso|tercer piso|carro|camion)"
)
_FAMILY = (
    "(kids|children|babies|baby|son|sons|daughter|daughters|dog|dogs|cat|cats|pets|family|wife"
    "|husband|mom|mother|dad|father|parents|girls|boys|grandkids|sister|brother|partner)"
)
_NOT_HERE = (
    "((won't|will not|wont|not going to|not gonna|i'm not going to|never going to)"
    " be (here|around|alive)( anymore)? (tomorrow|by (tomorrow|morning|the morning|tonight"
    "|monday|next week|the weekend|the end of the week)|in the morning|next week|much longer"
    "|for long|long|after tonight))"
)
# "what's the point of ..." is hopeless about these, not about a survey or a dose.
_POINTLESS = (
    "(anything|trying|living|going on|it all|any of it|any of this|getting up|life|me|it|this"
    " (life|anymore)|this$|anymore|being (here|alive)|waking up|carrying on|even trying)"
)
_TAKE_ALL = (
    "((take|taking|swallow|swallowing|pop|popping|down|downing|eat|took|swallowed|popped) (them|these"
    "|those|it) all|(take|taking|swallow|swallowing|pop|popping|down|took|swallowed|popped) all"
    " (of )?(them|these|those))"
)
_BYE = "(goodbye|bye|farewell|adios)"
_FAMILY_ES = "(hijos|hijas|ninos|nenes|hijo|hija|perros?|gatos?|mascotas|familia|mama|papa|esposa|esposo|nietos)"

# (tier, category, language, canonical, pattern, use the skeleton form)
_Rule = tuple[Tier, str, Language, str, str, bool]

_RULES: Final[tuple[_Rule, ...]] = (
    # --- crisis: means and plans ------------------------------------------------------------
    (
        "crisis",
        "means_plan",
        "en",
        "pills with a count",
        f"{_TAKE_NOW}( (like|about|maybe|over|around|at least|nearly|almost|another))?"
        f" {_BIG_COUNT}( of)?{_GAP} {_DRUG}(?! ((a|per|each|every) (day|week|night|morning)|daily))",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with intent",
        f"{_INTENT}( just)? {_TAKE_NOW}( (all|every|the rest|some|a few|more|extra))?( of)?{_GAP} {_DRUG}"
        f"( [a-z']+){{0,4}} ({_NOT_WAKE}|tonight|at once|together|to (die|end it|end this|sleep"
        "|be done)|and (die|end it|be done|go to sleep))",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with intent",
        f"{_INTENT}( just)? (take|swallow|pop|down|chug|eat|od on|overdose on) (all|every|the rest"
        f"|a whole bottle|the whole bottle|a bottle|the bottle|a handful|handfuls)( of)?{_GAP} {_DRUG}",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with intent",
        f"{_TAKE_NOW}( (all|every|the rest))( of)?{_GAP} {_DRUG}( [a-z']+){{0,4}} ({_NOT_WAKE}|at once"
        "|at the same time|together|to (die|end it|end this|be done)|and (die|end it|be done))",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with intent",
        f"(swallowed|popped|downed|chugged) (all|every|the rest|a whole bottle|the whole bottle"
        f"|a bottle|the bottle|a handful|handfuls)( of)?{_GAP} {_DRUG}",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills and not waking up",
        f"{_DRUG}( [a-z']+){{0,8}} {_NOT_WAKE}|{_NOT_WAKE}( [a-z']+){{0,8}} {_DRUG}",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with a count",
        f"([1-9][0-9]+|thirty|forty|fifty|sixty|hundred)( of)?( (my|the|his|her|mom's|moms|those"
        f"|these|left over|leftover|saved|extra))?( [a-z']+)? {_DRUG}( (saved|stashed|hidden|ready"
        "|in my hand|right here|in front of me|lined up))",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "saving pills",
        f"(saving|saved|stockpiling|stockpiled|hoarding|hoarded|collecting|stashing|stashed)( up)?"
        f"( (all|my|the|some|enough))*( of)?( (my|the))?( [a-z']+)? {_DRUG}",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with a count",
        f"(whole|entire|full) bottle of {_DRUG}|(take|taking|swallow|swallowing|down|downing|chug"
        "|chugging|drink|drinking|empty|emptying) (the|a|my|this|that) (whole|entire|full) bottle"
        f"|{_DRUG} and (vodka|wine|alcohol|booze|liquor"
        "|whiskey|whisky|beer|tequila|rum|gin)",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pill emoji with intent",
        "pillemoji( pillemoji)*( [a-z']+){0,6} (deathemoji|goodbye|bye|night night|gn|tonight|all"
        "|enough|done|wake|end|forever|sleep)|(deathemoji|goodbye|bye|tonight|forever)( [a-z']+){0,6}"
        " pillemoji",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "how many pills",
        f"how (many|much)( [a-z']+){{0,2}} {_DRUG}( [a-z']+){{0,6}} (to die|to kill|would it take|does it"
        " take|is lethal|is a lethal|is deadly|is fatal|to not wake up|to overdose|to od|to end it)"
        "|(lethal|deadly|fatal) (dose|amount|overdose)|painless (way|ways) to (die|go|do it)"
        "|(easiest|quickest|fastest|best) (way|ways) to (die|kill myself|end it)",
        False,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "a gun",
        f"{_GUN}( [a-z']+){{0,10}} {_GUN_INTENT}|{_GUN_INTENT}( [a-z']+){{0,10}} {_GUN}",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "a gun",
        "(put|putting) (a|the) (bullet|gun) (in|to|through) my (head|brain|mouth)|gun to my head"
        "|eat (a|my) (bullet|gun)|eat lead|blow my (brains|head) out|blowing my (brains|head) out"
        "|pull(ing)? the trigger|(gun|pistol|handgun|revolver|glock) (is )?(out|loaded|in my hand"
        "|in my mouth|next to me|on my lap)|(loaded|cocked) (the|my) (gun|pistol|handgun|revolver"
        "|glock)",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "a rope",
        "noose|(rope|belt|cord|extension cord|ropeemoji|sheet|sheets|scarf)( [a-z']+){0,8}"
        " (around my neck|neck|hang|hanging|ceiling|beam|rafter|rafters|tree|myself|closet rod"
        "|door handle)|(hang|hanging) (myself|from)|hung myself",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "a height",
        f"(jump|jumping|jumped|leap|leaping|throw myself|throwing myself|step|stepping|walk|walking"
        f"|drive|driving|steer|swerve|crash|crashing)( (my|the) (car|truck))? (off|from|in front of|into|onto|out of|in to)"
        f"( of)?( (a|the|this|that|my|an|some|oncoming))?( [a-z']+)? {_HEIGHT}"
        "|(jump|jumping|jumped|leap|leaping|throw myself|throwing myself|step|stepping|walk"
        "|walking|lie down|lay down|lying down) (in front of|into|onto|on) (a|the|an|some|oncoming)?"
        f" ?{_VEHICLE}|(i'm|im|i am|standing|sitting|waiting) (at|on) the (train )?tracks"
        f"|(standing|sitting|stood|up|i'm|i am|im) on (the|a|this|that) ({_HEIGHT}|edge|ledge)( [a-z']+){{0,6}}"
        " (jump|looking down|right now|about to|end it|ready|goodbye|bye)"
        "|how high( [a-z']+){1,7} (to die|to kill|fatal|to not survive|to be fatal)"
        "|crash (my|the) car (on purpose|into)|walk into traffic",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "other means",
        "(drink|drank|drinking|swallow|swallowed) (the |some |a cup of |a bottle of )?(bleach"
        "|antifreeze|poison|drano|rat poison)|carbon monoxide|car running in (the|a) garage"
        "|garage( [a-z']+){0,5} (car|engine) running|(car|engine) running( [a-z']+){0,4} garage"
        "|(i cut|cut myself|cutting) (deep|deeper|too deep|my (arm|arms|leg|legs|wrist|wrists|thigh"
        "|thighs))|(bleeding|blood)( [a-z']+){0,5} (i cut|cut myself)|i cut( [a-z']+){0,4}"
        " (bleeding|blood|bloodemoji)"
        "|(razor|razors|blade|blades|knife|knifeemoji)( [a-z']+){0,6} (wrist|wrists|myself|my arms?"
        "|my legs?|my thighs?|my throat|bloodemoji)|slit my (wrists?|throat)",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "a plan",
        "(have|got|made|make|making|working on|came up with|figured out) a plan( [a-z']+){0,4} (die"
        "|end|kill|do it|not be here|go through)|(i know|figured out|decided) (how|when) (i'm going"
        " to|i'll|i'd|i will|to) (do it|end it|kill myself|die)|(wrote|writing|written|left|leaving"
        "|finished) (a|my|the) (suicide )?note|(wrote|writing|written) (goodbye|farewell) (letters"
        "|notes|messages)|(giving|gave|given) away (all )?(my|of my) (stuff|things|belongings|pets"
        "|cat|dog|clothes|stuff)|tonight's the night|tonight is the night|(set|picked|chose) a date"
        "|(researching|looking up|googling|searched|searching) (how to|ways to) (die|kill myself"
        "|end it|overdose|od)",
        True,
    ),
    # --- crisis: explicit (beyond the original phrase list) --------------------------------
    (
        "crisis",
        "explicit",
        "en",
        "want to die",
        "(want|wanna|wana|need|ready|going|gonna|about|trying|tryna|tried|planning|plan|wish|try"
        "|decided)"
        "( to| 2)? (die|be dead|stop living|stop existing|cease to exist|stop breathing|not exist"
        "|not be alive|not be here)(?! (laughing|of|from|for|with|laughin))"
        "|(go to sleep|sleep|fall asleep)( and)? (forever|never wake up|not wake up)",
        True,
    ),
    (
        "crisis",
        "explicit",
        "en",
        "kill myself",
        "(sewerslide|sewer slide|sewerside|suicide|s word)|commit (it|suicide|sewerslide)"
        "|(end|delete|erase|unalive|off) (myself|me)(?! (from|off)) (tonight|now|today|for good"
        "|forever)|(should|gonna|going to|want to|wanna|i'll|will) kys|kill (myself|me) (tonight"
        "|now|today)|(i'll|i will|i'm gonna|i'm going to) be dead (by|before) (tomorrow|morning|tonight"
        "|the weekend|monday)",
        True,
    ),
    (
        "crisis",
        "explicit",
        "en",
        "end it",
        "^(i'll |i will |just |i'm gonna |gonna |time to |i need to |i have to |i should |i might )?"
        "end it( all| tonight| now| today| here| for good)?$|end it (tonight|for good)",
        True,
    ),
    (
        "crisis",
        "explicit",
        "en",
        "want to die",
        "(should|could|might|gonna|going to|want to|wanna|will|i'll|i'm gonna)( just)? end it( all)?"
        "|(pray|praying|hope|hoping|wish)( every night| every day| at night| each night)?( that)?"
        " i (die|don't wake up|won't wake up|never wake up|wouldn't wake up)"
        "|(wanna|want to|want|wish|hope|hoping|praying|pray|ready to)( [a-z']+){0,4} (and |to |then )?"
        "(not|never) wake up|better off if i (was|were) (dead|gone)"
        "|(should|gonna|going to|want to|wanna|i'll|will|might)( just)? kys|overdos[a-z]*",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with intent",
        f"{_DRUG}( [a-z']+){{0,10}} {_TAKE_ALL}|{_TAKE_ALL}( [a-z']+){{0,6}} (be over|end it|die"
        f"|not wake up|never wake up|be done|end this)|(have|got|holding) (the|my|all|all my|all the)"
        f"( [a-z']+)? {_DRUG}( are| is)? (in my hand|ready|lined up|in front of me|counted out"
        "|right here)|(looking at|staring at|keep looking at|tied|tying|knotted|hung up|hanging up"
        "|set up) (the|a) (rope|belt|cord|noose)",
        False,
    ),
    (
        "crisis",
        "explicit",
        "en",
        "end it",
        "(ima|i'ma|imma|just|decided to|plan on|planning on|i've decided to|gonna just|i'm just"
        " gonna|it's time to|time to) end(ing)? (it|things|everything|my life)"
        "|end it (tonight|tn|tonite|2nite|now|for good|this weekend|soon|today)"
        "|(want|wanna|wish|ready)( to)? be gone|(want|wanna|gonna|going to|thinking about|thinking"
        " of|might|should|about to) commit$|(don't|do not|dont) (want|wanna)( to)? be (here|alive"
        "|around) (no more|nomore|anymore)|(going to|gonna|about to|ready to|i'll|i will|i'm gonna"
        "|tonight i'm going to|tonight im going to) jump(?! (in|into|on|at|rope|start|through|the"
        " gun|right|back|up|over|ahead|around))|(don't|dont|do not) care (if|whether) i (live|die"
        "|wake up|make it)",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "en",
        "pills with intent",
        "(swallowed|took|taken|ate|downed|taking|swallowing) everything in (my|the) (medicine"
        f" cabinet|cabinet|house|bathroom)|{_DRUG}( [a-z']+){{0,8}} {_BYE}"
        "|(i have|i've got|got|ive got) everything (ready|planned|set up|lined up)"
        "|(i'm|im|i am|i'll be) ending (it|things|everything|my life)",
        True,
    ),
    # --- crisis: goodbyes --------------------------------------------------------------------
    (
        "crisis",
        "goodbye",
        "en",
        "goodbye",
        f"{_BYE} (everyone|everybody|all|world|forever|for good|for real|for the last time|cruel"
        " world|y'all|yall|all of you|to everyone)|this (is|will be|'ll be) (my|the) last (message"
        "|text|txt|time)|my (last|final) (words|goodbye)|(last|final) goodbye"
        "|my (last|final) (message|text)( ever| to (you|anyone|everyone))?$"
        "|last time (you'll|you will|you) (hear|be hearing) from me|you (won't|will not|wont)"
        " (hear|be hearing) from me (again|anymore|ever again)"
        f"|take care of my {_FAMILY}( [a-z']+){{0,3}} (for me|when i'm gone|after i'm gone|after"
        f" i go|once i'm gone)|(tell|please tell) my {_FAMILY}( [a-z']+){{0,2}} (i|that i)"
        " (love|loved|am sorry|'m sorry|i'm sorry)"
        f"|{_NOT_HERE}( [a-z']+){{0,6}} {_BYE}|{_BYE}( [a-z']+){{0,6}} {_NOT_HERE}"
        "|this is (goodbye|the end)|(it's|its) goodbye"
        f"|{_BYE}( [a-z']+){{0,4}} thank you for (trying|everything)|thank you for (trying"
        f"|everything)( [a-z']+){{0,4}} {_BYE}|(i love you all|i love you guys|love you"
        " all|sorry for everything|i'm sorry (mom|mama|dad|everyone|guys|to everyone|for"
        f" everything))( [a-z']+){{0,3}} {_BYE}",
        True,
    ),
    # --- crisis: Spanish ---------------------------------------------------------------------
    (
        "crisis",
        "means_plan",
        "es",
        "pastillas",
        "(me voy a|voy a|quiero|pienso|me quiero|me tome|me tomare|tomarme|tome|tomar|tomando"
        "|me estoy tomando|trague|tragarme|tragar|me trague)( [a-z]+)?( (todas|todos|un frasco|el"
        " frasco|un bote|el bote|una caja|la caja|un punado|un monton|muchas|[1-9][0-9]+|treinta|cuarenta"
        f"|cincuenta|cien))( (las|los|mis|de|de las|de mis|sus))*( [a-z]+)? {_DRUG_ES}",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "es",
        "pastillas",
        f"{_DRUG_ES}( [a-z]+){{0,8}} (y|para) (no|nunca) (despertar|despertarme|volver a despertar)"
        f"|(juntando|guardando|ahorrando) {_DRUG_ES}|(tengo|guardo|guarde|junte)( [a-z]+){{0,2}} "
        f"{_DRUG_ES} (guardadas|guardados|escondidas|escondidos|juntadas|ahorradas)|cuantas {_DRUG_ES}( [a-z]+){{0,4}} para"
        " (morir|matarme|no despertar)",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "es",
        "arma",
        "(tengo|compre|consegui|agarre|cargue|cargada)( [a-z]+){0,3} (una |un |el |la |mi )?"
        "(arma|pistola|escopeta|revolver)( [a-z]+){0,8} (matarme|acabar con|terminar con|mi cabeza"
        "|quitarme la vida|disparar(me)?|usarla)|(pistola|arma) en (la|mi) cabeza|dispararme"
        "|(pegar|dar|meter|pegarme|darme|meterme)( me)? un (tiro|balazo)|volarme la cabeza",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "es",
        "cuerda",
        "(cuerda|soga|cinturon)( [a-z]+){0,6} (cuello|ahorcar(me)?|colgarme|viga|techo)"
        "|colgarme|ahorcarme",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "es",
        "altura",
        f"(tirarme|aventarme|lanzarme|saltar|me voy a (tirar|aventar|lanzar)|me tiro|me aviento)( (de|del|desde|al"
        f"|a|por|frente al|enfrente del))( (un|una|el|la|las|los))?( [a-z]+)? {_HEIGHT_ES}",
        True,
    ),
    (
        "crisis",
        "means_plan",
        "es",
        "un plan",
        "tengo un plan (para|de) (matarme|morir|quitarme|acabar)|(escribi|escribiendo|deje)"
        " (una|mi) carta de despedida|(regale|regalando) (todas )?mis cosas",
        True,
    ),
    (
        "crisis",
        "explicit",
        "es",
        "quiero morir",
        "(acabar|terminar) con todo|dejar de (vivir|existir)|no quiero (seguir|estar) en este mundo"
        "|(me )?(corte|cortaba|cortando|cortare) (las venas|mis venas|los brazos|las munecas)"
        f"|{_DRUG_ES}( [a-z]+){{0,6}} (adios|perdon|ya me voy)|no quiero (existir|estar aqui|seguir aqui|seguir existiendo"
        "|despertar|despertarme)|quiero (dormir|dormirme) y (no|nunca) despertar|dejar de existir"
        "|(estarian|estarias|estaria) (mejor|mas felices) sin mi|(cansad[oa]|harta|harto) de vivir",
        True,
    ),
    (
        "crisis",
        "goodbye",
        "es",
        "despedida",
        "(ya )?me despedi de (todos|todas|mi familia|mis hijos)|adios (a todos|para siempre|mundo"
        "|a todas)|(este es|es|sera) mi ultimo (mensaje|texto)"
        "|ultimo mensaje|ya no (van a|vas a|volveran a) saber (nada )?de mi"
        f"|(cuiden|cuida|cuidan|cuidenme) (a|de) mis {_FAMILY_ES}( por mi)?"
        f"|(diganle|dile|digan) a mis? {_FAMILY_ES} que (los|las|la|lo|les) (quiero|amo|quise)",
        True,
    ),
    # --- possible risk: indirect -------------------------------------------------------------
    (
        "possible_risk",
        "hopelessness",
        "en",
        "what's the point",
        f"(what's|what is|what|wats|wat's|whats)( even)? the point(?! (of|in) (?!{_POINTLESS}))"
        f"|(there's|there is|theres)( just)? no point(?! (in|of|to) (?!{_POINTLESS}))",
        True,
    ),
    (
        "possible_risk",
        "hopelessness",
        "en",
        "hopeless",
        "hopeless|no hope|lost (all )?hope|losing hope|giving up hope|no way out|nothing (will"
        " ever|will|is going to|is gonna|ever) (get|gets|getting) better|(never|not) (going to|gonna)"
        " get (any )?better|it (will never|won't ever|never) (end|get better|stop)|nothing matters"
        "|i give up|i'm giving up|i've given up|(gave|give|giving) up on (everything|myself|trying"
        "|me)|i'm done with (everything|it all|life|all of this|this life|living)|(can't|can not)"
        " (anymore|cope|handle (this|it|life) anymore|keep fighting|fight anymore|keep doing this)"
        "|(tired|exhausted|sick) of (everything|fighting|trying|it all|this life|being me|waking up"
        "|existing)|(want|wish) (it all|everything|it|this|life) to (end|stop|be over)( forever)?"
        "(?! (soon|already))|i hate (my life|myself|being alive|existing)|(feel|feeling|i'm) (so )?"
        "(empty|trapped|numb inside)|wish i (was|were|had) never (been )?born|wish i (never|didn't)"
        " (woke|wake) up",
        True,
    ),
    (
        "possible_risk",
        "burden",
        "en",
        "a burden",
        "(i'm|i am|feel like|i feel like|feeling like|being|i've become|become|just|such|nothing but)"
        " (a |such a |just a |nothing but a |the )?(burden|bother|drain)( (to|on|for) [a-z']+)?"
        "|burden (to|on|for) (everyone|everybody|my [a-z]+|them|you|all|people|others)"
        "|(everyone|everybody|they|my [a-z]+|people|you|they'd|you'd|everyone'd)( (would|will))?"
        "( all)? be (happier|fine"
        "|better) without me|(worthless|useless|waste of (space|air|oxygen)|i'm a failure|i ruin"
        " everything)",
        True,
    ),
    (
        "possible_risk",
        "hopelessness",
        "en",
        "nobody would notice",
        "(nobody|no one|noone) (would|will|'d)( even| ever| really)? (notice|care|miss me|know)"
        "|(nobody|no one) (cares|loves me|gives a)|no (reason|point) to (keep going|keep trying"
        "|get up|carry on|try)|(everything|it all|it's all|life|all of this|my life) (is|feels"
        "|seems) (pointless|meaningless|hopeless)|(don't|dont|do not) (want to|wanna) (do this"
        "|live like this|keep doing this|be like this|feel like this) anymore|deserves? better"
        " than me|(never|not) (going|gonna) to change|will never change|(what's|whats|what is)"
        " the use|(i've|i have|ive) had enough( of (everything|life|it all|all of this))?$|(do it"
        " tonight|doing it tonight)|"
        "(don't|dont|do not|can't|cant|no longer)"
        f" see (the|any) point(?! (in|of|to) (?!{_POINTLESS}))|(everyone|everybody|they|my family"
        "|people|my kids) (would|will|'d) be better off$|(don't|dont|do not) care what happens to"
        " me|(feel like|feeling like|thinking (about|of)|want to|wanna|ready to) giv(e|ing) up"
        "|(bought|got|buying|getting|have|own) (a|my|the) (gun|firearm|pistol|handgun|revolver)"
        "(?! (for|safe|license|permit|class))",
        True,
    ),
    (
        "possible_risk",
        "goodbye",
        "en",
        "not going to be here",
        f"{_NOT_HERE}|sorry for everything|when i'm gone|after i'm gone|you (won't|will not|wont)"
        " have to (worry|deal) (about|with) me|i love you all|thank you for everything( [a-z']+){0,3}"
        " (bye|goodbye)|pillemoji pillemoji pillemoji",
        True,
    ),
    (
        "possible_risk",
        "hopelessness",
        "es",
        "no aguanto más",
        "(ya )?no aguanto( (mas|esto|nada|la vida|vivir|este mundo))?|para que (seguir|vivir|sigo"
        "|intentar|luchar)|de que sirve( (seguir|vivir|todo|nada|intentar))?|ya nada (importa|tiene"
        " sentido)|no tiene sentido( (seguir|nada|la vida|vivir))?$|no hay esperanza|sin esperanza"
        "|perdi (la|toda) esperanza|me rindo|ya me rendi|(estoy|me siento) (cansad[oa]|harta|harto)"
        " de (todo|luchar|la vida|intentar)|nadie (me quiere|se daria cuenta|me extranaria|notaria"
        "|lo notaria|me echaria de menos)|odio mi vida|me odio|no valgo nada|no sirvo para nada"
        "|no puedo con esto|(ya )?no puedo$|ya no puedo",
        True,
    ),
    (
        "possible_risk",
        "burden",
        "es",
        "soy una carga",
        "(soy|me siento|ser|solo soy|siento que soy) (una carga|un estorbo|un peso|una molestia)"
        "|carga para (todos|mi familia|mis hijos|ellos)",
        True,
    ),
    (
        "possible_risk",
        "goodbye",
        "es",
        "despedida",
        "(me quiero ir|irme|me voy a ir) para siempre|(ya )?no tengo ganas de nada|no le importo a"
        " nadie|a nadie le importo|no (hay|veo|tengo) salida|sin salida|(ya )?me canse de (luchar|todo|intentar|la vida)|no (le )?veo (el |ningun )?sentido"
        "|(la|mi) vida no tiene sentido|no voy a estar (aqui|aca|mas)( (manana|mucho tiempo|por mucho))?|(perdon|perdonen(me)?)"
        " por todo|ya no (van|vas) a tener que preocupar(se|te) por mi|cuando ya no este",
        True,
    ),
)

# The original phrase list (keywords._CRISIS_PATTERNS), by category and language.
_LEGACY_CATEGORY: Final = {
    "hurt myself": "self_harm",
    "harm myself": "self_harm",
    "self harm": "self_harm",
    "cut myself": "self_harm",
    "hacerme daño": "self_harm",
    "cortarme": "self_harm",
    "overdose": "means_plan",
    "sobredosis": "means_plan",
    "better off dead": "hopelessness",
    "no reason to live": "hopelessness",
    "not worth living": "hopelessness",
    "tired of living": "hopelessness",
    "thoughts of death": "hopelessness",
    "want to disappear": "hopelessness",
    "don't want to be alive": "hopelessness",
    "can't go on": "hopelessness",
    "no puedo más": "hopelessness",
    "no quiero vivir": "hopelessness",
}
_LEGACY_SPANISH: Final = frozenset(
    (
        "suicidio",
        "suicidarme",
        "matarme",
        "quitarme la vida",
        "no quiero vivir",
        "quiero morir",
        "hacerme daño",
        "cortarme",
        "sobredosis",
        "no puedo más",
    )
)


@dataclass(frozen=True)
class _Compiled:
    tier: Tier
    category: str
    language: Language
    canonical: str
    pattern: re.Pattern[str]
    reduced: re.Pattern[str] | None


def _bounded(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])(?:" + pattern + r")(?!\w)")


@cache
def _compiled() -> tuple[_Compiled, ...]:
    rules: list[_Compiled] = []
    for canonical, legacy, reduced in kw._CRISIS:
        spanish = canonical in _LEGACY_SPANISH
        rules.append(
            _Compiled(
                "crisis",
                _LEGACY_CATEGORY.get(canonical, "explicit"),
                "es" if spanish else "en",
                canonical,
                legacy,
                reduced,
            )
        )
    for tier, category, language, canonical, pattern, use_skeleton in _RULES:
        rules.append(
            _Compiled(
                tier,
                category,
                language,
                canonical,
                _bounded(pattern),
                _bounded(kw.skeleton(pattern)) if use_skeleton else None,
            )
        )
    return tuple(rules)


def assess_risk(text: str) -> RiskMatch | None:
    """The strongest risk language in `text`: the first crisis-tier match if there is one,
    otherwise the first possible-risk match, otherwise None."""
    forms = [(form, kw.skeleton(form)) for form in normal_forms(text)]
    # Crisis before possible risk; within a tier, a reading as typed before a repaired one, so
    # the evidence is as close to the text as possible ("suicidio" is not read as "suicidal").
    for tier in ("crisis", "possible_risk"):
        rules = [rule for rule in _compiled() if rule.tier == tier]
        for form, reduced in forms:
            for rule in rules:
                match = rule.pattern.search(form)
                if match is None and rule.reduced is not None:
                    match = rule.reduced.search(reduced)
                if match is not None:
                    return RiskMatch(
                        rule.tier, rule.category, match.group(0), rule.language, rule.canonical
                    )
    return None


def crisis_phrase(text: str) -> str | None:
    """The canonical phrase of a crisis-tier match ("want to die", "a gun"), or None."""
    match = assess_risk(text)
    return match.canonical if match is not None and match.tier == "crisis" else None
