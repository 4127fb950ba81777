"""No message state is spelled outside worker/store/outbox.py (and the enum's own leaf module):
every module uses `MessageStatus` and the groups defined there, so the state machine is read (and
changed) in one place.

The check reads every string literal in worker/**/*.py (the parsed source: comments and
docstrings are prose, not literals) and fails on one that equals a state's value, unless the
allowlist below names that file and word with the reason it is not a message's state. The
allowlist counts occurrences, so a new literal in an allowed file still fails."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from worker.store.outbox import MessageStatus

WORKER = Path(__file__).resolve().parents[2] / "worker"
HOME = ("store/message_status.py", "store/outbox.py")
#: Folders whose words are someone else's: the Twilio emulator speaks Twilio's own message
#: states (queued, sent, delivered...) to the SDK, as Twilio does.
OTHER_VOCABULARIES = ("emulator/",)

APPOINTMENT = "an appointment's status (AppointmentStatus): another state machine"
NO_ADDRESS = "a placeholder for a caller with no known address or name, not a message's state"
PROVIDER = "the provider's own word in SendResult.status (Twilio: queued/accepted); never stored"

#: (path under worker/, literal) -> (occurrences, why it is not a message state).
ALLOWED: dict[tuple[str, str], tuple[int, str]] = {
    ("channels/console.py", "sent"): (2, PROVIDER),
    ("channels/smtp_email.py", "sent"): (1, PROVIDER),
    ("domain/siu.py", "cancelled"): (1, "an HL7 refusal reason for a cancelled appointment"),
    ("services/records/audit.py", "unknown"): (2, NO_ADDRESS),
    ("services/clinical/fhir.py", "cancelled"): (1, "FHIR's appointment status, ours mapped to it"),
    ("services/clinical/fhir.py", "sent"): (1, "FHIR Communication.sent, a field name"),
    ("services/records/fhir_import.py", "cancelled"): (1, "an incoming FHIR Appointment's status"),
    ("services/records/hl7_inbox.py", "cancelled"): (2, "an HL7 refusal reason, not a state"),
    ("services/records/intake.py", "cancelled"): (1, "an intake outcome, not a state"),
    ("services/records/signin_throttle.py", "unknown"): (1, NO_ADDRESS),
    ("store/record_status.py", "cancelled"): (1, APPOINTMENT),
    ("web/access.py", "unknown"): (1, NO_ADDRESS),
    ("web/api/patients.py", "cancelled"): (1, APPOINTMENT),
    ("web/dashboard/common.py", "unknown"): (1, NO_ADDRESS),
    ("web/webhooks.py", "unknown"): (1, NO_ADDRESS),
}


def state_literals(root: Path = WORKER) -> Counter[tuple[str, str]]:
    values = {s.value for s in MessageStatus}
    found: Counter[tuple[str, str]] = Counter()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in HOME or name.startswith(OTHER_VOCABULARIES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=name)):
            if isinstance(node, ast.Constant) and node.value in values:
                found[(name, str(node.value))] += 1
    return found


def test_no_message_state_is_spelled_outside_the_outbox_module() -> None:
    found = state_literals()
    strays = {
        f"worker/{name}: {word!r} x{n}"
        for (name, word), n in found.items()
        if n > ALLOWED.get((name, word), (0, ""))[0]
    }
    assert not strays, (
        "message states spelled as strings; use MessageStatus or a group from "
        f"worker/store/outbox.py (or allow the word here with its reason): {sorted(strays)}"
    )


def test_the_allowlist_has_no_stale_entries() -> None:
    found = state_literals()
    stale = {key: n for key, (n, _why) in ALLOWED.items() if found.get(key, 0) != n}
    assert not stale, f"allowlist counts no longer match the code (lower them): {stale}"


def test_the_check_finds_a_state_in_code_and_not_in_prose(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "x.py").write_text(
        '"""Rows that are queued."""\n'
        "# a queued row\n"
        'if m.status == "queued" or m.status in ("sent", "delivered"):\n'
        '    log.info(f"sent {m.id}")\n',
        encoding="utf-8",
    )
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "outbox.py").write_text('QUEUED = "queued"\n', encoding="utf-8")
    assert state_literals(tmp_path) == {
        ("services/x.py", "queued"): 1,
        ("services/x.py", "sent"): 1,
        ("services/x.py", "delivered"): 1,
    }
