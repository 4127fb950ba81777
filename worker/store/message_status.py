"""The states of an outbound message row, named once. A leaf module, so that the models can
take the column's values from it; the moves between the states, the groups of states and the
one way a row changes state are in worker/store/outbox.py, which re-exports this enum."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """The states of an outbound message row, in the order a send goes through them."""

    #: A row waiting for its due time (or for its retry, or for quiet hours to end).
    SCHEDULED = "scheduled"
    #: Claimed by a dispatcher (or by the code that wrote an urgent row); its id is in the broker.
    QUEUED = "queued"
    #: Claimed by a worker, which is rendering it or calling the provider now.
    SENDING = "sending"
    #: The provider accepted it (it has a provider id).
    SENT = "sent"
    #: The carrier says it reached the handset (SMS status callback).
    DELIVERED = "delivered"
    #: The carrier says it did not reach the handset.
    UNDELIVERED = "undelivered"
    #: Not sent: the schedule, the appointment or the patient changed first.
    CANCELLED = "cancelled"
    #: Not sent: no consent, opted out, too late to be useful, or its follow-up was acknowledged.
    SUPPRESSED = "suppressed"
    #: Not sent: rejected for good, no address, or out of retries.
    FAILED = "failed"
    #: The provider call may or may not have gone through (a timeout after the request left);
    #: reconciliation asks the provider, never resends blindly.
    UNKNOWN = "unknown"
