"""Recurrence rules for check-ins: validation, frequency limits and DST-correct expansion.

A schedule keeps the clinician's intent as patient-local wall-clock time (an RRULE whose
BYHOUR/BYMINUTE are read in the patient's IANA zone) and is turned into UTC instants only here,
at planning time. Nothing in this module reads the clock: every moment is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

from worker.domain.names import INSTRUMENTS, TWO_WEEK_INSTRUMENTS


class ScheduleError(ValueError):
    """A schedule a clinician asked for cannot be used; the message is one line to show them."""


# Files under the zoneinfo directory that load but are not places: "localtime" follows the
# server's own setting, which says nothing about where the patient lives.
_NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})

_ALLOWED_FREQS = ("DAILY", "WEEKLY", "MONTHLY")
_TOO_FREQUENT = ("SECONDLY", "MINUTELY", "HOURLY")
# Output order of the normalised rule; also the set of parts we accept. BYYEARDAY and BYWEEKNO
# only make sense with FREQ=YEARLY (RFC 5545), which is refused.
_PART_ORDER = (
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYMONTH",
    "BYMONTHDAY",
    "BYDAY",
    "BYHOUR",
    "BYMINUTE",
    "BYSETPOS",
    "WKST",
)
_KNOWN_PARTS = frozenset((*_PART_ORDER, "BYSECOND"))
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY_RE = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_RE = re.compile(r"^\d{8}(T\d{6})?$")

MIN_DAYS_BETWEEN_TWO_WEEK_INSTRUMENTS = 7


@dataclass(frozen=True)
class Occurrence:
    """One firing of a schedule.

    `local` is the intended patient-local wall-clock time, naive: the clinician's intent and the
    identity used to de-duplicate. `at` is the aware UTC instant it is due, which differs from
    `local` placed in the zone only when `local` falls in a spring-forward gap.
    """

    local: datetime
    at: datetime


def validate_zone(name: str) -> str:
    """Return `name` unchanged if it is an IANA time zone; raise ScheduleError otherwise."""
    if _load_zone(name) is None:
        raise ScheduleError(f"unknown time zone {name!r}")
    return name


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; ScheduleError (as validate_zone) if it is not one."""
    loaded = _load_zone(name)
    if loaded is None:
        raise ScheduleError(f"unknown time zone {name!r}")
    return loaded


@lru_cache(maxsize=1024)
def _load_zone(name: str) -> ZoneInfo | None:
    if not name or name in _NOT_PLACES or name.startswith(("posix/", "right/")):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: names that are not normalised relative paths ("../x", "/etc/localtime");
        # OSError: a directory name such as "America".
        return None


def parse_rrule(text: str) -> str:
    """Validate an RRULE and return its normalised body (no 'RRULE:' prefix, no DTSTART).

    Accepts an optional 'RRULE:' prefix and any letter case. FREQ must be DAILY, WEEKLY or
    MONTHLY. BYHOUR (patient-local hours, one or a list) is required; BYMINUTE defaults to 0;
    BYSECOND is accepted only as 0 and dropped. DTSTART is refused: the start date is given
    separately. COUNT or UNTIL (not both) may end the rule; UNTIL is patient-local, either a
    date (YYYYMMDD, which includes that whole day) or a local date-time (YYYYMMDDTHHMMSS).
    The normal form lists parts in a fixed order with sorted, de-duplicated numeric lists, so
    equal rules compare equal. Raises ScheduleError naming the first problem found.
    """
    body = text.strip()
    if "DTSTART" in body.upper():
        raise ScheduleError("DTSTART is not allowed in the RRULE: give the start date separately")
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :].strip()
    if not body:
        raise ScheduleError("the RRULE is empty (e.g. FREQ=DAILY;BYHOUR=9)")
    if "\n" in body or "\r" in body:
        raise ScheduleError("the RRULE must be one line")

    raw: dict[str, str] = {}
    for chunk in body.split(";"):
        part = chunk.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise ScheduleError(f"malformed RRULE part {part!r} (expected NAME=VALUE)")
        if name not in _KNOWN_PARTS:
            raise ScheduleError(f"unsupported RRULE part {name!r}")
        if name in raw:
            raise ScheduleError(f"RRULE part {name} is given twice")
        raw[name] = value

    parts: dict[str, str] = {}
    freq = raw.get("FREQ")
    if freq is None:
        raise ScheduleError("the RRULE needs FREQ (DAILY, WEEKLY or MONTHLY)")
    if freq in _TOO_FREQUENT:
        raise ScheduleError(
            f"FREQ={freq} is too frequent: check-ins repeat DAILY, WEEKLY or MONTHLY"
        )
    if freq not in _ALLOWED_FREQS:
        raise ScheduleError(f"FREQ={freq} is not supported: use DAILY, WEEKLY or MONTHLY")
    parts["FREQ"] = freq

    if "INTERVAL" in raw:
        interval = _positive_int("INTERVAL", raw["INTERVAL"])
        if interval != 1:
            parts["INTERVAL"] = str(interval)
    if "COUNT" in raw and "UNTIL" in raw:
        raise ScheduleError("the RRULE may have COUNT or UNTIL, not both")
    if "COUNT" in raw:
        parts["COUNT"] = str(_positive_int("COUNT", raw["COUNT"]))
    if "UNTIL" in raw:
        parts["UNTIL"] = _normal_until(raw["UNTIL"])

    if "BYMONTH" in raw:
        parts["BYMONTH"] = _int_list("BYMONTH", raw["BYMONTH"], 1, 12, allow_negative=False)
    if "BYMONTHDAY" in raw:
        if freq == "WEEKLY":
            raise ScheduleError("BYMONTHDAY cannot be used with FREQ=WEEKLY")
        parts["BYMONTHDAY"] = _int_list("BYMONTHDAY", raw["BYMONTHDAY"], 1, 31, allow_negative=True)
    if "BYDAY" in raw:
        parts["BYDAY"] = _normal_byday(raw["BYDAY"], freq)

    if "BYHOUR" not in raw:
        raise ScheduleError("the RRULE needs BYHOUR: the patient-local hour(s), e.g. BYHOUR=9")
    parts["BYHOUR"] = _int_list("BYHOUR", raw["BYHOUR"], 0, 23, allow_negative=False)
    parts["BYMINUTE"] = _int_list("BYMINUTE", raw.get("BYMINUTE", "0"), 0, 59, allow_negative=False)
    if "BYSECOND" in raw and raw["BYSECOND"] not in ("0", "00"):
        raise ScheduleError("BYSECOND is not supported: check-ins are set to the minute")

    if "BYSETPOS" in raw:
        parts["BYSETPOS"] = _int_list("BYSETPOS", raw["BYSETPOS"], 1, 366, allow_negative=True)
    if "WKST" in raw:
        if raw["WKST"] not in _WEEKDAYS:
            raise ScheduleError(f"WKST={raw['WKST']} is not a weekday (MO..SU)")
        parts["WKST"] = raw["WKST"]

    normal = ";".join(f"{key}={parts[key]}" for key in _PART_ORDER if key in parts)
    _check_fires(normal)
    return normal


def _positive_int(name: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ScheduleError(f"{name}={value} must be a whole number of at least 1")
    return int(value)


def _int_list(name: str, value: str, low: int, high: int, *, allow_negative: bool) -> str:
    numbers: set[int] = set()
    for item in value.split(","):
        token = item.strip()
        if not re.fullmatch(r"[+-]?\d+", token):
            raise ScheduleError(f"{name}={value} must be a number or a comma-separated list")
        number = int(token)
        magnitude = abs(number) if allow_negative else number
        if not low <= magnitude <= high or (number < 0 and not allow_negative):
            span = f"{low}-{high}" + (f" or -{high}..-{low}" if allow_negative else "")
            raise ScheduleError(f"{name}={token} is out of range ({span})")
        numbers.add(number)
    return ",".join(str(n) for n in sorted(numbers))


def _normal_byday(value: str, freq: str) -> str:
    seen: list[str] = []
    for item in value.split(","):
        token = item.strip()
        match = _BYDAY_RE.match(token)
        if match is None:
            raise ScheduleError(f"BYDAY={value} must list weekdays MO,TU,WE,TH,FR,SA,SU")
        if match.group(1) is not None:
            if freq != "MONTHLY":
                raise ScheduleError(
                    f"BYDAY={token}: a numbered weekday needs FREQ=MONTHLY (e.g. 1MO, -1FR)"
                )
            if not 1 <= abs(int(match.group(1))) <= 5:
                raise ScheduleError(f"BYDAY={token}: the week number must be 1-5 or -1..-5")
            token = f"{int(match.group(1))}{match.group(2)}"
        if token not in seen:
            seen.append(token)
    # Weekday order (MO first), so that equal rules have equal text.
    seen.sort(key=lambda token: (_WEEKDAYS.index(token[-2:]), token))
    return ",".join(seen)


def _normal_until(value: str) -> str:
    if value.endswith("Z"):
        raise ScheduleError(
            f"UNTIL={value}: give a patient-local date (YYYYMMDD) or time, not UTC (no Z)"
        )
    if not _UNTIL_RE.match(value):
        raise ScheduleError(f"UNTIL={value} must be YYYYMMDD or YYYYMMDDTHHMMSS")
    try:
        if len(value) == 8:
            # A date means "up to and including that day", which is what a clinician means by it;
            # RFC 5545 would otherwise read it as midnight and drop that day's check-ins.
            datetime.strptime(value, "%Y%m%d")
            return f"{value}T235959"
        datetime.strptime(value, "%Y%m%dT%H%M%S")
    except ValueError:
        raise ScheduleError(f"UNTIL={value} is not a real date") from None
    return value


def _rule(body: str, dtstart: datetime) -> rrule:
    built = rrulestr(body, dtstart=dtstart)
    assert isinstance(built, rrule)
    return built


def _check_fires(body: str) -> None:
    # A rule that never fires (BYMONTH=2;BYMONTHDAY=30) would make dateutil walk to year 9999 on
    # every expansion; refuse it here. Eight years covers leap days and every weekday/date pair
    # that matters in practice.
    dtstart = datetime(2024, 1, 1)
    try:
        probe = _rule(body, dtstart).replace(count=None, until=datetime(2031, 12, 31, 23, 59, 59))
        first = next(iter(probe), None)
    except ValueError as exc:
        raise ScheduleError(f"invalid RRULE: {exc}") from None
    if first is None:
        raise ScheduleError("the RRULE never fires (check BYMONTH/BYMONTHDAY/BYDAY/BYSETPOS)")


def check_instrument_frequency(instrument: str, rrule: str) -> None:
    """Refuse an instrument the project does not know, or a two-week questionnaire sent too often.

    PHQ-2/PHQ-9/GAD-2/GAD-7 ask about the last two weeks, so they go at most weekly (CLINICAL.md):
    a rule for one of them is refused if, for some start date, two of its firings can fall on
    patient-local dates less than 7 days apart. A COUNT=1 rule (a single baseline) always passes.
    Calendar dates, not hours, are compared, so a weekly 09:00 stays weekly across DST.
    Raises ScheduleError; the rule itself is validated with parse_rrule first.
    """
    if instrument not in INSTRUMENTS:
        raise ScheduleError(f"unknown instrument {instrument!r} (known: {', '.join(INSTRUMENTS)})")
    body = parse_rrule(rrule)
    if instrument not in TWO_WEEK_INSTRUMENTS:
        return
    if _part(body, "COUNT") == "1":
        return
    rule = _rule(body, datetime(2024, 1, 1))
    # Without COUNT/UNTIL the rule repeats a pattern whose closest pair shows up within a few
    # years whatever the start date; a bounded rule is a prefix of it, so checking the unbounded
    # rule is the conservative answer for every start date.
    unbounded = rule.replace(count=None, until=datetime(2027, 12, 31, 23, 59, 59))
    previous: date | None = None
    for fired in unbounded:
        day = fired.date()
        if previous is not None and (day - previous).days < MIN_DAYS_BETWEEN_TWO_WEEK_INSTRUMENTS:
            gap = (day - previous).days
            how = "twice on one day" if gap == 0 else f"{gap} day(s) apart"
            raise ScheduleError(
                f"{instrument} asks about the last two weeks and can be sent at most weekly; "
                f"this rule can send it {how}"
            )
        previous = day


def _part(body: str, name: str) -> str | None:
    """The value of one part of a normalised rule body, or None."""
    for chunk in body.split(";"):
        key, _, value = chunk.partition("=")
        if key == name:
            return value
    return None


def local_times(rrule: str, start: date, until: date | None, through: date) -> list[datetime]:
    """The rule's naive patient-local firings, anchored at midnight of `start`, in order.

    Only firings on local dates up to `through` and, when given, up to `until` (both inclusive)
    are returned. The rule is validated with parse_rrule. This is wall-clock time: no zone.
    """
    body = parse_rrule(rrule)
    last = through if until is None else min(through, until)
    if last < start:
        return []
    return _expand(body, start, datetime.combine(start, time.min), _end_of(last))


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59))


def _expand(body: str, start: date, low: datetime, high: datetime) -> list[datetime]:
    """The rule's wall-clock firings in [low, high], anchored at midnight of `start`."""
    rule = _rule(body, datetime.combine(_anchor(body, start, low), time.min))
    if _part(body, "COUNT") is None:
        # Capping UNTIL stops the iteration at `high` even for rules that fire rarely; a rule
        # with COUNT already stops on its own (and dateutil refuses COUNT with UNTIL).
        rule_until = _part(body, "UNTIL")
        cap = high
        if rule_until is not None:
            cap = min(high, datetime.strptime(rule_until, "%Y%m%dT%H%M%S"))
        rule = rule.replace(until=cap)
    return [fired for fired in rule.between(low, high, inc=True) if isinstance(fired, datetime)]


def _anchor(body: str, start: date, low: datetime) -> date:
    """A start date, no later than `low`, from which the rule fires exactly as from `start` on
    every date from that anchor on.

    dateutil walks every period from DTSTART, so a daily schedule a few years old costs
    thousands of steps on each planning tick. A DAILY or WEEKLY rule without COUNT repeats
    every INTERVAL days or weeks, so moving the start by whole repeats keeps its phase, its
    default weekday and its BYSETPOS sets. COUNT counts from the real start, and MONTHLY's
    default month day can't always move (the 31st), so those keep `start`.
    """
    repeat_days = _repeat_days(body)
    if repeat_days is None:
        return start
    repeats = (low.date() - start).days // repeat_days
    return start + timedelta(days=max(0, repeats) * repeat_days)


@lru_cache(maxsize=4096)
def _repeat_days(body: str) -> int | None:
    """Days after which a DAILY or WEEKLY rule without COUNT repeats itself; None otherwise.
    (Memoised: the planner asks once per schedule.)"""
    freq = _part(body, "FREQ")
    if _part(body, "COUNT") is not None or freq not in ("DAILY", "WEEKLY"):
        return None
    return int(_part(body, "INTERVAL") or "1") * (7 if freq == "WEEKLY" else 1)


def local_to_utc(local: datetime, tz: str) -> datetime:
    """Place a naive patient-local wall-clock time in zone `tz` and return the aware UTC instant.

    A time that exists once maps to that instant. In a fall-back overlap the first (earlier,
    fold=0) instant is used, so it happens once. A time in a spring-forward gap moves to the
    first valid whole minute after the gap (02:30 on a 02:00->03:00 night becomes 03:00).
    ValueError if `local` is aware; ScheduleError for an unknown zone.
    """
    if local.tzinfo is not None:
        raise ValueError("local_to_utc takes a naive wall-clock time")
    return place_local(local, zone(tz))


def place_local(local: datetime, tzinfo: ZoneInfo, *, moving_earlier: bool = False) -> datetime:
    """Like local_to_utc, with a ZoneInfo; `moving_earlier` resolves DST the other way.

    With `moving_earlier` (used when a message must not go later than a wall time, such as a
    reminder pulled back out of quiet hours) an overlap gives the later instant, still showing
    that wall time, and a gap gives the last valid whole minute before it.
    """
    if local.tzinfo is not None:
        raise ValueError("place_local takes a naive wall-clock time")
    instant = local.replace(tzinfo=tzinfo, fold=1 if moving_earlier else 0).astimezone(UTC)
    if _wall(instant, tzinfo) == local:
        return instant
    after_gap = _gap_end(local, tzinfo)
    if not moving_earlier:
        return after_gap
    last = after_gap - timedelta(minutes=1)
    wall = _wall(last, tzinfo)
    return last - timedelta(seconds=wall.second, microseconds=wall.microsecond)


def _wall(instant: datetime, tzinfo: ZoneInfo) -> datetime:
    return instant.astimezone(tzinfo).replace(tzinfo=None)


def _gap_end(local: datetime, tzinfo: ZoneInfo) -> datetime:
    """The first valid whole minute after the gap that swallows `local`, as UTC."""
    # Read with the offset after the jump, `local` names an instant before the transition; read
    # with the offset before it, an instant after. The transition lies between: bisect seconds.
    a = int(local.replace(tzinfo=tzinfo, fold=0).timestamp())
    b = int(local.replace(tzinfo=tzinfo, fold=1).timestamp())
    low, high = min(a, b), max(a, b)
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), tzinfo) < local:
            low = middle
        else:
            high = middle
    transition = datetime.fromtimestamp(high, UTC)
    wall = _wall(transition, tzinfo)
    if wall.second or wall.microsecond:
        # Historical transitions at odd seconds: round up so the result stays inside the
        # valid time after the gap and on a whole minute.
        transition += timedelta(seconds=60 - wall.second) - timedelta(microseconds=wall.microsecond)
    return transition


@lru_cache(maxsize=4096)
def _stored_rule(rrule: str) -> str:
    # A clinic has a few hundred distinct rules and the planner expands them for every schedule
    # on every run; validating each again was over half the planner's time (bench/ANALYSIS.md).
    # parse_rrule is pure, so its answer for a given text never changes.
    return parse_rrule(rrule)


def shared_start(rrule: str, tz: str, start: date, after: datetime) -> date:
    """A start date with which `occurrences(rrule, tz, ·, until, after, before)` gives exactly
    what it gives with `start`, for every `until` and `before`.

    For a DAILY or WEEKLY rule without COUNT that began well before `after`, that is the start
    moved on by whole repeats to just before the expansion window (what `_expand` anchors on
    anyway); otherwise `start` itself. Schedules with one rule but different start dates then
    share one expansion, which the planner memoises. ValueError if `after` is naive,
    ScheduleError for a bad rule or zone.
    """
    if after.tzinfo is None:
        raise ValueError("shared_start needs an aware `after`")
    body = _stored_rule(rrule)
    low = _wall(after.astimezone(UTC), zone(tz)) - timedelta(days=2)
    if datetime.combine(start, time.min) >= low:
        return start
    # occurrences() expands from max(low, start) = low here, anchored at _anchor(start, low);
    # from the anchor itself, low and the anchor are the same, so the firings are too.
    return _anchor(body, start, low)


def occurrences(
    rrule: str, tz: str, start: date, until: date | None, after: datetime, before: datetime
) -> list[Occurrence]:
    """The firings of `rrule` in zone `tz` whose UTC instant is in [after, before), sorted by `at`.

    The rule is anchored at local midnight of `start` (so WEEKLY without BYDAY fires on the start
    date's weekday) and, when `until` is given, ends with the local day `until` (inclusive). It is
    expanded on naive wall-clock times and each one placed with local_to_utc's DST rules: 09:00
    stays 09:00 local across a change, a time in a spring-forward gap moves to the first valid
    minute after it, a time in a fall-back overlap fires once (the earlier instant). When two
    rule times land on the same instant (both in one gap), only the earliest local time is kept.
    `after` and `before` must be aware; ValueError otherwise, ScheduleError for a bad rule or zone.
    """
    if after.tzinfo is None or before.tzinfo is None:
        raise ValueError("occurrences needs aware `after` and `before` datetimes")
    # Compare instants in UTC: aware datetimes sharing a ZoneInfo compare by wall clock.
    after, before = after.astimezone(UTC), before.astimezone(UTC)
    body = _stored_rule(rrule)
    tzinfo = zone(tz)
    if before <= after or (until is not None and until < start):
        return []
    # Gap moves shift a firing later by at most the gap (an hour; a day in Samoa's 2011 jump),
    # and an instant's wall time can differ from its intent across an overlap: two days of
    # margin on the wall-clock window covers both, and the exact filter below trims it.
    low = max(_wall(after, tzinfo) - timedelta(days=2), datetime.combine(start, time.min))
    high = _wall(before, tzinfo) + timedelta(days=2)
    if until is not None:
        high = min(high, _end_of(until))
    if high < low:
        return []

    found: dict[datetime, Occurrence] = {}
    for local in _expand(body, start, low, high):
        at = place_local(local, tzinfo)
        if after <= at < before and at not in found:
            found[at] = Occurrence(local=local, at=at)
    return sorted(found.values(), key=lambda occurrence: (occurrence.at, occurrence.local))
