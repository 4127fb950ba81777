"""The states of a check-in, a follow-up and an appointment row, named once. A leaf module (like
store/message_status.py), so that the models can take each column's default from it and every
service compares and assigns the same member instead of spelling the word again.

The values are the strings the `checkins.status`, `followups.status` and `appointments.status`
columns have always held: nothing is migrated. A StrEnum member equals, hashes and formats as its
string, so rows read back as plain strings compare equal to these members, and JSON, CSV, FHIR
and page output are unchanged. `domain/` imports nothing of the project, so domain/rules.py
keeps its own copy of the check-in words (CHECKIN_STATUSES).
"""

from __future__ import annotations

from enum import StrEnum


class CheckinStatus(StrEnum):
    """The states of a check-in (a prompt that went out and the window for its answer)."""

    #: Sent; waiting for its answer (the window may have passed until the next expiry run).
    OPEN = "open"
    #: Every item answered.
    ANSWERED = "answered"
    #: Some items answered, and no more are coming (the rest unclear, missing, or out of time).
    PARTIAL = "partial"
    #: The window closed with no answer at all.
    EXPIRED = "expired"


class FollowupStatus(StrEnum):
    """The states of a follow-up in the clinicians' queue, in the order it goes through them."""

    #: Raised; nobody has taken it yet (urgent ones are paged up the ladder while open).
    OPEN = "open"
    #: Someone took it; paging stops, it stays in the active queue.
    ACKNOWLEDGED = "acknowledged"
    #: Done (with an optional note); raising the same follow-up again opens a new item.
    RESOLVED = "resolved"


class AppointmentStatus(StrEnum):
    """The states of an appointment."""

    #: Booked and not cancelled: reminders and links are live while it is ahead.
    BOOKED = "booked"
    #: Cancelled (by us, the EHR feed, or FHIR import); a cancelled visit is not revived.
    CANCELLED = "cancelled"
    #: The patient did not come (front desk, HL7 S26, or FHIR `noshow`).
    NO_SHOW = "no_show"
    #: The patient came (marked after the visit); keeps its day-after check-in.
    ATTENDED = "attended"
