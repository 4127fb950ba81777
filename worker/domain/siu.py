"""HL7 v2 SIU scheduling messages: from text to a typed event, and ACKs back. No I/O.

Parsing uses the `hl7` library (python-hl7); fields are read by position with the message's own
separators. Anything wrong with the content raises Refusal with a reason code (metrics, the
inbox row) and a sentence for the ACK's ERR segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import hl7

from worker.domain.hl7_mapping import Hl7Mapping
from worker.domain.schedule import local_to_utc

EVENTS = ("S12", "S13", "S14", "S15", "S17", "S26")
# HL7 table 0357 (message error condition codes) for the ERR segment.
ERROR_CODES = {
    "not_hl7": "100^Segment sequence error^HL70357",
    "no_control_id": "101^Required field missing^HL70357",
    "no_patient_id": "101^Required field missing^HL70357",
    "no_appointment_id": "101^Required field missing^HL70357",
    "no_time": "101^Required field missing^HL70357",
    "bad_time": "102^Data type error^HL70357",
    "bad_contact": "102^Data type error^HL70357",
    "unknown_message_type": "200^Unsupported message type^HL70357",
    "unknown_event": "201^Unsupported event code^HL70357",
    "unknown_kind": "103^Table value not found^HL70357",
    "unknown_appointment": "204^Unknown key identifier^HL70357",
    "cancelled": "207^Application internal error^HL70357",
    "conflict": "205^Duplicate key identifier^HL70357",
    "unavailable": "207^Application internal error^HL70357",
}
_DTM = re.compile(r"^(\d{12})(\d{2})?(?:\.\d{1,4})?(?:([+-])(\d{2})(\d{2}))?$")


class Refusal(Exception):
    """The message is HL7 but its content cannot be applied (AE), or is not HL7 at all (AR)."""

    def __init__(self, reason: str, text: str, code: str = "AE") -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.code = code


@dataclass(frozen=True)
class Header:
    sender: str  # MSH-3^MSH-4
    control_id: str  # MSH-10
    event: str  # e.g. SIU^S12
    fields: dict[str, str]  # for the ACK: sending/receiving application and facility, version


@dataclass(frozen=True)
class SiuEvent:
    trigger: str  # S12 ... S26
    mrn_system: str
    mrn: str
    name: str
    birth_date: date | None
    phone: str | None
    email: str | None
    language: str
    appointment_ids: tuple[tuple[str, str], ...]
    starts_at: datetime | None
    kind: str | None
    location: str | None


class _Fields:
    """Field access by HL7 position (SEG-n.r.c) over one parsed message, never raising."""

    def __init__(self, message: Any) -> None:
        self.message = message
        msh = str(message.segment("MSH"))
        self.field_sep = msh[3]
        enc = msh[4:].split(self.field_sep)[0][:4]
        enc += "^~\\&"[len(enc) :]
        self.component, self.repetition, self.escape, self.sub = enc[0], enc[1], enc[2], enc[3]
        self._split: dict[str, list[str]] = {}

    def raw(self, seg: str, n: int) -> str:
        parts = self._split.get(seg)
        if parts is None:
            try:
                segment = self.message.segment(seg)
            except KeyError:
                return ""
            # Rendering a python-hl7 segment back to text is costly: once per segment.
            parts = self._split[seg] = str(segment).split(self.field_sep)
        # MSH-1 is the separator itself, so MSH-n is at index n - 1 of the split text.
        index = n - 1 if seg == "MSH" else n
        return parts[index] if index < len(parts) else ""

    def reps(self, seg: str, n: int) -> list[list[str]]:
        text = self.raw(seg, n)
        return [rep.split(self.component) for rep in text.split(self.repetition)] if text else []

    def get(self, seg: str, n: int, comp: int = 1, rep: int = 1) -> str:
        reps = self.reps(seg, n)
        if len(reps) < rep or len(reps[rep - 1]) < comp:
            return ""
        return self.unescape(reps[rep - 1][comp - 1])

    def unescape(self, value: str) -> str:
        if self.escape not in value:
            return value.strip()
        table = {
            "F": self.field_sep,
            "S": self.component,
            "R": self.repetition,
            "E": self.escape,
            "T": self.sub,
        }
        e = re.escape(self.escape)
        return re.sub(f"{e}([FSRET]){e}", lambda m: table[m.group(1)], value).strip()

    def first_sub(self, value: str) -> str:
        """The first subcomponent of a raw (still escaped) component, unescaped."""
        return self.unescape(value.split(self.sub)[0])

    def get_sub(self, seg: str, n: int, comp: int = 1) -> str:
        reps = self.reps(seg, n)
        if not reps or len(reps[0]) < comp:
            return ""
        return self.first_sub(reps[0][comp - 1])


def parse(text: str) -> tuple[Any, Header]:
    """Parse and read the header, or Refusal(code AR) when this is not an HL7 v2 message."""
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH") or len(text) < 9:
        raise Refusal("not_hl7", "not an HL7 v2 message (no MSH segment)", "AR")
    try:
        message = hl7.parse(text)
        f = _Fields(message)
    except Exception:  # the library raises many types on garbage; all mean "not HL7"
        raise Refusal("not_hl7", "not a parseable HL7 v2 message", "AR") from None
    control_id = f.get("MSH", 10)[:200]
    header = Header(
        sender=f"{f.get('MSH', 3)}^{f.get('MSH', 4)}"[:200],
        control_id=control_id,
        event=f"{f.get('MSH', 9)}^{f.get('MSH', 9, 2)}"[:20],
        fields={
            "app": f.get("MSH", 3),
            "facility": f.get("MSH", 4),
            "recv_app": f.get("MSH", 5),
            "recv_facility": f.get("MSH", 6),
            "version": f.get("MSH", 12) or "2.5.1",
            "trigger": f.get("MSH", 9, 2),
        },
    )
    if not control_id:
        raise Refusal("no_control_id", "MSH-10 (message control id) is empty", "AR")
    return message, header


def parse_dtm(value: str, clinic_tz: str) -> datetime:
    """An HL7 DTM to an aware UTC instant: its own offset if it has one, else the clinic's zone.
    Minutes are required (a date alone is not an appointment time)."""
    m = _DTM.match(value.strip())
    if not m:
        raise Refusal("bad_time", f"unparseable time {value!r} (YYYYMMDDHHMM[SS][+/-ZZZZ])")
    digits, seconds, sign, oh, om = m.groups()
    try:
        naive = datetime.strptime(digits + (seconds or "00"), "%Y%m%d%H%M%S")
    except ValueError:
        raise Refusal("bad_time", f"unparseable time {value!r}") from None
    if sign is None:
        return local_to_utc(naive, clinic_tz)
    if int(oh) > 14 or int(om) > 59:
        raise Refusal("bad_time", f"impossible UTC offset in {value!r}")
    offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
    return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)


def _birth_date(value: str) -> date | None:
    if len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def read_siu(message: Any, header: Header, mapping: Hl7Mapping, clinic_tz: str) -> SiuEvent:
    """The scheduling event in a parsed SIU message, or Refusal (AE) naming what is wrong."""
    f = _Fields(message)
    if f.get("MSH", 9).upper() != "SIU":
        raise Refusal("unknown_message_type", f"message type {header.event!r} is not SIU")
    trigger = f.get("MSH", 9, 2).upper()
    if trigger not in EVENTS:
        raise Refusal(
            "unknown_event", f"event {trigger or '(none)'} is not one of {', '.join(EVENTS)}"
        )
    # PID-3: the MRN (type MR by default) with its assigning authority.
    candidates = [r for r in f.reps("PID", 3) if r and r[0].strip()]
    chosen = next(
        (r for r in candidates if len(r) > 4 and r[4].strip().upper() in mapping.mrn_type_codes),
        candidates[0] if candidates else None,
    )
    if chosen is None:
        raise Refusal("no_patient_id", "PID-3 (patient identifier) is empty")
    mrn = f.unescape(chosen[0])
    authority = f.first_sub(chosen[3]) if len(chosen) > 3 else ""
    if not authority:
        authority = f.get("MSH", 4) or f.get("MSH", 3) or "local"
    family, given = f.get("PID", 5, 1), f.get("PID", 5, 2)
    name = " ".join(part for part in (given, f.get("PID", 5, 3), family) if part)
    phone, email = None, None
    mobile_by_use = None
    for rep in f.reps("PID", 13):
        comp = [f.unescape(c) for c in rep] + [""] * 12
        use, equipment = comp[1].upper(), comp[2].upper()
        if comp[3] and (use == "NET" or equipment in ("INTERNET", "X.400")):
            email = email or comp[3]
            continue
        number = comp[0] or (
            f"+{comp[4]}{comp[5]}{comp[6]}" if comp[4] and comp[6] else f"{comp[5]}{comp[6]}"
        )
        if not number:
            continue
        if equipment in mapping.mobile_equipment_types:
            phone = phone or number
        elif use in mapping.mobile_use_codes:
            mobile_by_use = mobile_by_use or number
    phone = phone or mobile_by_use
    language = mapping.language_for(f.get("PID", 15, 1), f.get("PID", 15, 2))
    # SCH-1 placer and SCH-2 filler appointment ids (EI: id^namespace).
    ids: list[tuple[str, str]] = []
    for n, role in ((1, "placer"), (2, "filler")):
        value = f.get("SCH", n, 1)
        if value:
            namespace = f.get("SCH", n, 2) or f.get("MSH", 3) or "hl7"
            ids.append((f"urn:hl7v2:{role}:{namespace}", value))
    if not ids:
        raise Refusal("no_appointment_id", "SCH-1 and SCH-2 (appointment ids) are both empty")
    # The start: SCH-11.4 (TQ), else TQ1-7, else AIS-4.
    raw_start = f.get("SCH", 11, 4) or f.get("TQ1", 7) or f.get("AIS", 4)
    starts_at = parse_dtm(raw_start, clinic_tz) if raw_start else None
    if starts_at is None and trigger in ("S12", "S13", "S14"):
        raise Refusal("no_time", "no start time (SCH-11.4, TQ1-7 or AIS-4)")
    kind = None
    codes = [
        c
        for c in (f.get("AIS", 3, 1), f.get("AIS", 3, 2), f.get("SCH", 7, 1), f.get("SCH", 7, 2))
        if c
    ]
    if trigger in ("S12", "S13", "S14"):
        kind = mapping.kind_for(*codes)
        if kind is None:
            raise Refusal(
                "unknown_kind",
                f"unknown appointment type {codes[0] if codes else '(none)'!r} (AIS-3/SCH-7): "
                "add it to the HL7 mapping file",
            )
    # AIL-3 (PL): point of care, room, bed, facility; the description (PL-9) when that is all.
    parts = [f.get_sub("AIL", 3, n) for n in (1, 2, 3, 4)]
    location = " ".join(p for p in parts if p) or f.get("AIL", 3, 9) or None
    return SiuEvent(
        trigger=trigger,
        mrn_system=mapping.mrn_system(authority),
        mrn=mrn,
        name=name,
        birth_date=_birth_date(f.get("PID", 7)),
        phone=phone,
        email=email,
        language=language,
        appointment_ids=tuple(ids),
        starts_at=starts_at,
        kind=kind,
        location=location,
    )


def _esc(value: str) -> str:
    out = value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    return out.replace("~", "\\R\\").replace("&", "\\T\\").replace("\r", " ").replace("\n", " ")


def ack(
    code: str,
    header: Header | None,
    *,
    now: datetime,
    ack_id: str,
    reason: str | None = None,
    text: str | None = None,
) -> str:
    """An original-mode ACK (MSH, MSA and, for AE/AR, ERR) answering `header`'s message."""
    h = header.fields if header is not None else {}
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            _esc(h.get("recv_app") or "CHECKIN"),
            _esc(h.get("recv_facility") or ""),
            _esc(h.get("app", "")),
            _esc(h.get("facility", "")),
            now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000"),
            "",
            f"ACK^{_esc(h.get('trigger', ''))}^ACK",
            ack_id,
            "P",
            _esc(h.get("version", "2.5.1")),
        ]
    )
    control = _esc(header.control_id) if header is not None else ""
    segments = [msh, f"MSA|{code}|{control}" + (f"|{_esc(text)[:80]}" if text else "")]
    if code != "AA" and reason:
        segments.append(
            f"ERR|||{ERROR_CODES.get(reason, ERROR_CODES['unavailable'])}|E||||{_esc(text or reason)}"
        )
    return "\r".join(segments)
