"""Check-in protocols: named sets of schedule steps, relative to the enrollment start.

Protocols are YAML files a clinic can read, copy and edit. The shipped ones live in
`worker/protocols/`; a clinic's own directory (CHECKIN_PROTOCOLS_DIR) adds to them, and a file
there with the same name as a shipped one replaces it. A file's shape:

    name: ketamine-induction        # must match the file name (ketamine-induction.yaml)
    title: Ketamine induction       # one line, shown in lists
    description: ...                # optional, free text
    steps:
      - instrument: phq9            # one of worker.domain.names.INSTRUMENTS
        rrule: FREQ=DAILY;COUNT=1;BYHOUR=10   # patient-local hours, as for `schedules add`
        start_day: 0                # days after the enrollment start (optional, default 0)
        days: 21                    # how long the step lasts (optional, default: open-ended)
    after_visit:                    # optional: a check-in the day after each visit of a kind
      kinds: [infusion]             # appointment kinds (optional, default [infusion])
      send_at: "10:00"              # patient-local HH:MM, quoted (optional, default "10:00")
      low: 3                        # answers 0..low go to a clinician (optional, default 3)

Every mistake is reported as "<file>:<line>: <reason>".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.domain.names import APPOINTMENT_KINDS, INSTRUMENTS, TWO_WEEK_INSTRUMENTS
from worker.domain.schedule import (
    MIN_DAYS_BETWEEN_TWO_WEEK_INSTRUMENTS,
    ScheduleError,
    check_instrument_frequency,
    local_times,
    parse_rrule,
)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "protocols"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TOP_KEYS = ("name", "title", "description", "steps", "after_visit")
_AFTER_VISIT_KEYS = ("kinds", "send_at", "low")
_HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_TOP_REQUIRED = ("name", "title", "steps")
_STEP_KEYS = ("instrument", "rrule", "start_day", "days")
_STEP_REQUIRED = ("instrument", "rrule")

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_TAG_NAMES = {
    _STR: "text",
    _INT: "a whole number",
    _NULL: "empty",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:float": "a decimal number",
    "tag:yaml.org,2002:timestamp": "a date",
}

# Enrollment start dates on which steps of one questionnaire are checked for coming too close
# together: every weekday (weekly rules with BYDAY), and month ends including a leap February
# (monthly rules with BYMONTHDAY).
_SAMPLE_STARTS = tuple(
    first + timedelta(days=n)
    for first in (date(2026, 1, 26), date(2026, 2, 22), date(2024, 2, 23))
    for n in range(7)
)
# Beyond the last bounded step, a year is enough for two open-ended rules to show their
# closest approach.
_CHECK_HORIZON_DAYS = 371


class ProtocolError(ValueError):
    """A protocol file cannot be used. str() is "<file>:<line>: <reason>" (or "<file>: <reason>",
    or just the reason) as far as the location is known; `path`, `line` and `reason` hold the parts.
    """

    def __init__(self, reason: str, path: Path | str | None = None, line: int | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self._located())

    def _located(self) -> str:
        if self.path is None:
            return self.reason
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"

    def __str__(self) -> str:
        return self._located()


@dataclass(frozen=True)
class ProtocolStep:
    """One schedule of a protocol, relative to the enrollment start."""

    instrument: str
    rrule: str  # normalised by parse_rrule, and within the instrument's frequency limit
    start_day: int  # days after the enrollment start date (0 = the start date itself)
    days: int | None  # how many days the step lasts from its own start (None = open-ended)


@dataclass(frozen=True)
class AfterVisit:
    """The check-in the day after each visit of `kinds` (docs/after-visit.md): at `send_at`
    patient-local; an answer of `low` or less, or any words, goes to a clinician."""

    kinds: tuple[str, ...] = ("infusion",)
    send_at: time = time(10, 0)
    low: int = 3


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    description: str
    steps: tuple[ProtocolStep, ...]
    source: str  # the file it was loaded from
    after_visit: AfterVisit | None = None


@dataclass(frozen=True)
class PlannedSchedule:
    """A concrete schedule for one enrollment: the rule runs from `start` to `until` (inclusive)."""

    instrument: str
    rrule: str
    start: date
    until: date | None


def expand(protocol: Protocol, start: date) -> list[PlannedSchedule]:
    """The concrete schedules, in step order, for an enrollment starting on the local date `start`.

    A step starts `start_day` days after `start`; with `days` it ends on the last of those days
    (start + start_day + days - 1), otherwise it is open-ended (until None).
    """
    return [_plan(step, start) for step in protocol.steps]


def _plan(step: ProtocolStep, start: date) -> PlannedSchedule:
    step_start = start + timedelta(days=step.start_day)
    until = None if step.days is None else step_start + timedelta(days=step.days - 1)
    return PlannedSchedule(
        instrument=step.instrument, rrule=step.rrule, start=step_start, until=until
    )


def load_protocols(extra_dir: Path | None = None) -> dict[str, Protocol]:
    """The shipped protocols plus those in `extra_dir` (its *.yaml files), by name.

    A file in `extra_dir` whose name matches a shipped protocol replaces it, so a clinic can copy
    and edit one. Raises ProtocolError for the first bad file, or if `extra_dir` is not a directory.
    """
    protocols = {p.name: p for p in _load_dir(SHIPPED_DIR)}
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ProtocolError("protocols directory not found", extra_dir)
        protocols.update((p.name, p) for p in _load_dir(extra_dir))
    return dict(sorted(protocols.items()))


def _load_dir(directory: Path) -> list[Protocol]:
    return [load_protocol_file(path) for path in sorted(directory.glob("*.yaml"))]


def load_protocol_file(path: Path) -> Protocol:
    """Load and validate one protocol file; ProtocolError ("<file>:<line>: <reason>") if it is bad.

    Refused: YAML syntax errors, anything but one mapping, unknown, duplicate or missing keys,
    values of the wrong type, a name that is not the file name, unknown instruments, RRULEs that
    parse_rrule or check_instrument_frequency refuse, negative start_day, days below 1, and steps
    of one two-week questionnaire (PHQ-9, GAD-7, ...) that together send it less than 7 days apart.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("not UTF-8 text", path) from None
    except OSError as exc:
        raise ProtocolError(f"cannot read: {exc.strerror or exc}", path) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return _Reader(path, loader).protocol(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and mark is not None and mark.index >= len(text):
            # "got '<stream end>'" points past the last line; the unclosed bracket or quote is
            # where the clinic has to look.
            mark = exc.context_mark
        reason = f"invalid YAML: {exc.problem or 'syntax error'}"
        if exc.context:
            reason += f" ({exc.context})"
        raise ProtocolError(reason, path, None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as exc:
        raise ProtocolError(f"invalid YAML: {exc}", path) from None
    finally:
        loader.dispose()


class _Reader:
    """Turns the composed YAML node tree into a Protocol, keeping line numbers for errors."""

    def __init__(self, path: Path, loader: yaml.SafeLoader):
        self.path = path
        self.loader = loader

    def error(self, node: Node, reason: str) -> ProtocolError:
        return ProtocolError(reason, self.path, node.start_mark.line + 1)

    def protocol(self, root: Node | None) -> Protocol:
        if root is None:
            raise ProtocolError("the file is empty", self.path, 1)
        fields = self.mapping(root, _TOP_KEYS, _TOP_REQUIRED, "the protocol")
        name_node = fields["name"]
        name = self.text(name_node, "name")
        if not _NAME_RE.match(name):
            raise self.error(
                name_node, f"name {name!r} must be lower-case letters, digits and dashes"
            )
        if name != self.path.stem:
            raise self.error(
                name_node,
                f"name {name!r} must match the file name ({name}.yaml), so overrides are clear",
            )
        title = self.text(fields["title"], "title")
        description = (
            self.text(fields["description"], "description") if "description" in fields else ""
        )

        steps_node = fields["steps"]
        if not isinstance(steps_node, SequenceNode) or not steps_node.value:
            raise self.error(steps_node, "steps must be a list of one or more steps")
        steps = [self.step(item) for item in steps_node.value]
        self.check_spacing(steps, steps_node.value)
        return Protocol(
            name=name,
            title=title,
            description=description.strip(),
            steps=tuple(steps),
            source=str(self.path),
            after_visit=self.after_visit(fields["after_visit"])
            if "after_visit" in fields
            else None,
        )

    def after_visit(self, node: Node) -> AfterVisit:
        fields = self.mapping(node, _AFTER_VISIT_KEYS, (), "after_visit")
        kinds: tuple[str, ...] = AfterVisit.kinds
        if "kinds" in fields:
            kinds_node = fields["kinds"]
            if not isinstance(kinds_node, SequenceNode) or not kinds_node.value:
                raise self.error(
                    kinds_node, "after_visit kinds must be a list of appointment kinds"
                )
            kinds = tuple(self.text(k, "kind") for k in kinds_node.value)
            for k, k_node in zip(kinds, kinds_node.value, strict=True):
                if k not in APPOINTMENT_KINDS:
                    raise self.error(
                        k_node,
                        f"unknown appointment kind {k!r} (known: {', '.join(APPOINTMENT_KINDS)})",
                    )
        send_at = AfterVisit.send_at
        if "send_at" in fields:
            at_node = fields["send_at"]
            if isinstance(at_node, ScalarNode) and at_node.tag == _INT:
                # YAML 1.1 reads an unquoted 10:00 as the number 600.
                raise self.error(at_node, 'after_visit send_at must be quoted: send_at: "10:00"')
            match = _HHMM_RE.match(self.text(at_node, "send_at"))
            if match is None:
                raise self.error(at_node, "after_visit send_at must be HH:MM, 00:00 to 23:59")
            send_at = time(int(match.group(1)), int(match.group(2)))
        low = AfterVisit.low
        if "low" in fields:
            low = self.integer(fields["low"], "low")
            if not 0 <= low <= 10:
                raise self.error(fields["low"], "after_visit low must be 0 to 10")
        return AfterVisit(kinds=kinds, send_at=send_at, low=low)

    def step(self, node: Node) -> ProtocolStep:
        fields = self.mapping(node, _STEP_KEYS, _STEP_REQUIRED, "a step")
        instrument = self.text(fields["instrument"], "instrument")
        if instrument not in INSTRUMENTS:
            raise self.error(
                fields["instrument"],
                f"unknown instrument {instrument!r} (known: {', '.join(INSTRUMENTS)})",
            )
        rrule_node = fields["rrule"]
        try:
            rrule = parse_rrule(self.text(rrule_node, "rrule"))
            check_instrument_frequency(instrument, rrule)
        except ScheduleError as exc:
            raise self.error(rrule_node, f"rrule: {exc}") from None
        start_day = 0
        if "start_day" in fields:
            start_day = self.integer(fields["start_day"], "start_day")
            if start_day < 0:
                raise self.error(fields["start_day"], "start_day must be 0 or more")
        days = None
        if "days" in fields and fields["days"].tag != _NULL:
            days = self.integer(fields["days"], "days")
            if days < 1:
                raise self.error(
                    fields["days"], "days must be 1 or more (leave it out: open-ended)"
                )
        return ProtocolStep(instrument=instrument, rrule=rrule, start_day=start_day, days=days)

    def check_spacing(self, steps: list[ProtocolStep], nodes: list[Node]) -> None:
        # Each step on its own is within its limit; two steps of the same questionnaire (a
        # baseline and a weekly series, say) can still land within a week of each other.
        for instrument in TWO_WEEK_INSTRUMENTS:
            indices = [i for i, step in enumerate(steps) if step.instrument == instrument]
            if len(indices) < 2:
                continue
            horizon = _CHECK_HORIZON_DAYS + max(
                steps[i].start_day + (steps[i].days or 0) for i in indices
            )
            for start in _SAMPLE_STARTS:
                fired: list[tuple[date, int]] = []
                for i in indices:
                    plan = _plan(steps[i], start)
                    through = start + timedelta(days=horizon)
                    for local in local_times(plan.rrule, plan.start, plan.until, through):
                        fired.append((local.date(), i))
                fired.sort()
                for (day_a, step_a), (day_b, step_b) in pairwise(fired):
                    gap = (day_b - day_a).days
                    if step_a != step_b and gap < MIN_DAYS_BETWEEN_TWO_WEEK_INSTRUMENTS:
                        first, later = sorted((step_a, step_b))
                        raise self.error(
                            nodes[later],
                            f"this {instrument} step and the one at line "
                            f"{nodes[first].start_mark.line + 1} can send it {gap} day(s) apart "
                            f"(days {(day_a - start).days} and {(day_b - start).days}); it asks "
                            f"about two weeks, so at most weekly: start the later step 7 days on",
                        )

    def mapping(
        self, node: Node, allowed: tuple[str, ...], required: tuple[str, ...], what: str
    ) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what} must be a mapping of {', '.join(allowed)}")
        fields: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                raise self.error(key_node, f"{what} has a key that is not a name")
            key = str(key_node.value)
            if key in fields:
                raise self.error(key_node, f"duplicate key {key!r}")
            if key not in allowed:
                raise self.error(
                    key_node, f"unknown key {key!r} in {what} (expected: {', '.join(allowed)})"
                )
            fields[key] = value_node
        for key in required:
            if key not in fields:
                raise self.error(node, f"{what} is missing {key!r}")
        return fields

    def text(self, node: Node, key: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            raise self.error(node, f"{key} must be text, not {self.kind(node)}")
        value = str(node.value).strip()
        if not value:
            raise self.error(node, f"{key} is empty")
        return value

    def integer(self, node: Node, key: str) -> int:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            raise self.error(node, f"{key} must be a whole number, not {self.kind(node)}")
        value: Any = self.loader.construct_object(node)
        assert isinstance(value, int)
        return value

    def kind(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return _TAG_NAMES.get(str(node.tag), "something else")
