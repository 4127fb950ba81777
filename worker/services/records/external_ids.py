"""Source systems' identifiers for our patients and appointments (MRNs, placer/filler ids).

One (entity, system, value) names one row of ours: feeds and imports look it up before they
create anything, and exports give it back so the source system can match what it receives.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.services.errors import ConcurrentCreate, InvalidInput
from worker.store.models import ExternalId

Entity = Literal["patient", "appointment"]
MAX_LEN = 200


def check(system: str, value: str) -> tuple[str, str]:
    """Stripped (system, value), or InvalidInput when either is empty or too long."""
    system, value = system.strip(), value.strip()
    if not system or not value:
        raise InvalidInput("an external id needs a system and a value")
    if len(system) > MAX_LEN or len(value) > MAX_LEN:
        raise InvalidInput(f"an external id's system and value are at most {MAX_LEN} characters")
    return system, value


def owners(
    session: Session, entity: Entity, ids: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """{(system, value): our id} for those of `ids` already known (one query)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(ExternalId.system, ExternalId.value, ExternalId.entity_id).where(
            ExternalId.entity == entity, ExternalId.value.in_({v for _, v in wanted})
        )
    ).all()
    return {(s, v): int(e) for s, v, e in rows if (s, v) in wanted}


def find(session: Session, entity: Entity, ids: Iterable[tuple[str, str]]) -> int | None:
    """Our id of the first of `ids` (system, value) already known, else None."""
    ordered = list(ids)
    known = owners(session, entity, ordered)
    return next((known[i] for i in ordered if i in known), None)


def link(
    session: Session,
    entity: Entity,
    entity_id: int,
    ids: Iterable[tuple[str, str]],
    *,
    now: datetime,
    created: bool = False,
) -> None:
    """Attach each (system, value) to our row; one already naming another row is refused.

    `created`: the row was created in this transaction after `find` saw none of `ids`. An id
    naming another row now was then committed by another transaction meanwhile, and the refusal
    is ConcurrentCreate (retry) rather than a plain InvalidInput (a real conflict)."""
    ordered = list(ids)
    known = owners(session, entity, ordered)
    for system, value in ordered:
        owner = known.get((system, value))
        if owner == entity_id:
            continue
        if owner is not None:
            error = ConcurrentCreate if created else InvalidInput
            raise error(f"{entity} id {system}|{value} already belongs to {entity} {owner}")
        session.add(
            ExternalId(
                entity=entity, entity_id=entity_id, system=system, value=value, created_at=now
            )
        )
    session.flush()


def ids_of(
    session: Session, entity: Entity, entity_ids: Iterable[int]
) -> dict[int, list[dict[str, str]]]:
    """{our id: [{"system", "value"}, ...]} for the given rows (rows without any are absent)."""
    wanted = list(dict.fromkeys(entity_ids))
    out: dict[int, list[dict[str, str]]] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(ExternalId.entity_id, ExternalId.system, ExternalId.value)
            .where(
                ExternalId.entity == entity, ExternalId.entity_id.in_(wanted[start : start + 500])
            )
            .order_by(ExternalId.id)
        ).all()
        for entity_id, system, value in rows:
            out.setdefault(int(entity_id), []).append({"system": system, "value": value})
    return out
