"""SMS character set, encoding and segment arithmetic (GSM 03.38 / 3GPP TS 23.038).

An SMS is sent as GSM-7 only if every character is in the GSM default alphabet or its extension
table; a single other character (a curly quote, an en dash, a non-breaking space, an emoji, or a
Spanish "á") switches the whole message to UCS-2, where a segment holds 70 characters instead of
160. Carriers bill per segment, so that one character roughly doubles or triples the price, and a
long message is split into parts the handset reassembles (153 GSM-7 or 67 UCS-2 characters each,
the rest of each part being the concatenation header).
"""

from __future__ import annotations

import unicodedata
from typing import Final

# The 128 characters of the GSM 03.38 default alphabet, in code order, without ESC (0x1B), which
# only introduces the extension table. 0x09 is "Ç" in the standard (many phones render it "ç").
GSM7_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters reached through ESC: each costs two septets.
GSM7_EXTENDED: Final[frozenset[str]] = frozenset("\f^{}\\[~]|€")
# Both tables: `issuperset` runs in C, which matters because every SMS is measured several
# times on the send path (the body, the STOP notice's candidates, the pacer's segment count).
_GSM7_ALL: Final[frozenset[str]] = GSM7_BASIC | GSM7_EXTENDED

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67

# Typographic characters that word processors, phones and copy-paste bring in, mapped to the
# GSM-7 text a reader would expect. Each of these alone would turn the message into UCS-2.
_REPLACEMENTS: Final[dict[str, str]] = {
    "\u2018": "'",  # left single quote
    "\u2019": "'",  # right single quote / apostrophe
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",  # prime
    "\u00b4": "'",  # acute accent on its own
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2026": "...",
    "\u2022": "-",  # bullet
    "\u00b7": "-",  # middle dot
    "\u2122": "TM",
    "\u00ae": "(R)",
    "\u00a9": "(C)",
    "\t": " ",
    "\u2028": "\n",
    "\u2029": "\n",
    # Spaces that look like spaces but are not GSM-7 (no-break, thin, figure, ideographic...).
    "\u00a0": " ",
    "\u2000": " ",
    "\u2001": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2004": " ",
    "\u2005": " ",
    "\u2006": " ",
    "\u2007": " ",
    "\u2008": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u205f": " ",
    "\u3000": " ",
    # Invisible characters: zero-width spaces and joiners, soft hyphen, byte-order mark.
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\u2060": "",
    "\u00ad": "",
    "\ufeff": "",
}


def is_gsm7(text: str) -> bool:
    """True if every character of `text` is in the GSM-7 default alphabet or extension table."""
    return _GSM7_ALL.issuperset(text)


def encoding(text: str) -> str:
    """ "GSM-7" or "UCS-2": the encoding a carrier will use for `text`."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _pack(costs: list[int], single: int, part: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # Greedy packing: an escaped GSM character or a UTF-16 surrogate pair is never split across
    # two parts, so a part can end a unit short of `part`.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part:
            parts += 1
            used = 0
        used += cost
    return parts


def segments(text: str) -> int:
    """How many SMS segments `text` is billed as; 0 for the empty string.

    GSM-7: 160 septets in a single message, 153 per part when concatenated (extension-table
    characters count 2). UCS-2: 70 UTF-16 code units single, 67 per part (a character outside
    the Basic Multilingual Plane, such as an emoji, counts 2).
    """
    if not text:
        return 0
    if is_gsm7(text):
        # Most texts have no extension character and fit one segment: count without a list.
        septets = len(text) + sum(text.count(c) for c in GSM7_EXTENDED)
        if septets <= GSM7_SINGLE:
            return 1
        return _pack([2 if c in GSM7_EXTENDED else 1 for c in text], GSM7_SINGLE, GSM7_PART)
    if len(text) <= UCS2_SINGLE and max(text) <= "\uffff":
        return 1  # one segment and no surrogate pair to count twice
    return _pack([2 if ord(c) > 0xFFFF else 1 for c in text], UCS2_SINGLE, UCS2_PART)


def _fold(c: str) -> str:
    """A letter outside GSM-7 with a diacritic (á, í, ó, ú, ç...) as its GSM-7 base letter."""
    if c in _GSM7_ALL:
        return c
    base = "".join(ch for ch in unicodedata.normalize("NFKD", c) if not unicodedata.combining(ch))
    if base and is_gsm7(base):
        return base
    return c


def to_gsm_safe(text: str) -> str:
    """`text` with typographic look-alikes replaced by GSM-7 characters.

    Curly quotes, dashes, the ellipsis, bullets and no-break or thin spaces become their plain
    equivalents; zero-width characters are dropped; letters outside GSM-7 whose base letter is
    in it lose their accent (á -> a; é, ñ, ü stay, being GSM-7). Why: one such character switches
    the whole SMS to UCS-2, 70 characters a segment instead of 160, doubling the price or more.
    Characters with no GSM-7 equivalent (emoji, non-Latin scripts) are kept: the message then
    goes as UCS-2 rather than losing what it says. Meant for English text; Spanish wording
    needs its accents and is sent as written.
    """
    if is_gsm7(text):
        return text  # nothing to replace (the usual case): skip the per-character walk
    out = []
    for c in text:
        replaced = _REPLACEMENTS.get(c)
        out.append(replaced if replaced is not None else _fold(c))
    return "".join(out)
