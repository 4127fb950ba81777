"""A burst of crisis texts (issue 9, item 7): 40 replies arrive at once, 20 of them crisis texts
interleaved with 20 HELP requests, each from its own patient, through the real path (signed
webhook → web app → `checkin.inbound` on the urgent queue → the urgent worker → the emulator
through the real SDK). Measured from the moment the first webhook is posted: when the emulator
answered 201 to the first and the last crisis reply, and to the first and the last on-call page.

Run at the default pacing (1 segment/s per sender) and at 20/s. Pages go from their own sender
(CHECKIN_ONCALL_FROM), so they do not share the patient sender's budget; crisis replies take the
patient sender's slots ahead of the HELP replies (services/outbound/priority.py).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import ONCALL_PHONE, Stack, log, stack
from bench.seed import phone, seed_patients
from bench.system import start_system, utcnow
from bench.webhooks import Client, signed_inbound, start_web

LATENCY_MS = 50.0
CRISIS_TEXT = "I want to end my life"
OTHER_TEXT = "HELP"
ONCALL_FROM = "+12125559900"
RATES = (1.0, 20.0)
POSTERS = 8


def _burst(st: Stack, rate: float, crises: int, others: int) -> dict[str, Any]:
    port, public = start_web(st)
    crisis_phones = [phone(i) for i in range(crises)]
    other_phones = [phone(crises + i) for i in range(others)]
    # Interleaved: crisis, HELP, crisis, HELP ... as a busy evening would bring them.
    senders = [p for pair in zip(crisis_phones, other_phones, strict=False) for p in pair]
    senders += crisis_phones[len(other_phones) :] + other_phones[len(crisis_phones) :]
    texts = {p: CRISIS_TEXT for p in crisis_phones} | {p: OTHER_TEXT for p in other_phones}
    reqs = [signed_inbound(public, st.emulator.auth_token, p, texts[p]) for p in senders]
    seen = st.emulator.accepted()
    # One connection per posting thread, each posting every 8th request.
    clients = [Client(port) for _ in range(POSTERS)]

    def post(k: int) -> list[int]:
        return [clients[k].post(req) for req in reqs[k::POSTERS]]

    t0 = time.time()
    with ThreadPoolExecutor(POSTERS) as pool:
        statuses = [code for codes in pool.map(post, range(POSTERS)) for code in codes]
    for c in clients:
        c.close()
    if set(statuses) != {200}:
        raise RuntimeError(f"webhooks answered {sorted(set(statuses))}")
    replies: dict[str, float] = {}
    others_at: dict[str, float] = {}
    pages: list[float] = []
    order: list[str] = []  # who got each accepted message: C crisis reply, H HELP, P page
    deadline = time.monotonic() + (60 + 3 * (crises + others) / rate)
    crisis_set, other_set = set(crisis_phones), set(other_phones)
    while time.monotonic() < deadline and (
        len(replies) < crises or len(pages) < crises or len(others_at) < others
    ):
        new = st.emulator.accepts(since=seen)
        seen += len(new)
        for a in new:
            order.append("C" if a.to in crisis_set else "H" if a.to in other_set else "P")
            if a.to in crisis_set and a.to not in replies:
                replies[a.to] = a.answered - t0
            elif a.to in other_set and a.to not in others_at:
                others_at[a.to] = a.answered - t0
            elif a.to == ONCALL_PHONE:
                pages.append(a.answered - t0)
        time.sleep(0.05)
        st.procs.check_alive()
    r, o = sorted(replies.values()), sorted(others_at.values())
    pages.sort()

    def s(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "rate": rate,
        "crises": crises,
        "others": others,
        "crisis_reply_first_s": s(r[0] if r else None),
        "crisis_reply_last_s": s(r[-1] if r else None),
        "page_first_s": s(pages[0] if pages else None),
        "page_last_s": s(pages[-1] if pages else None),
        "other_reply_first_s": s(o[0] if o else None),
        "other_reply_last_s": s(o[-1] if o else None),
        "order": "".join(order),
        "crisis_replies_missing": crises - len(r),
        "pages_missing": crises - len(pages[:crises]),
        "others_missing": others - len(o),
    }


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    crises, others = (6, 6) if quick else (20, 20)
    out: dict[str, Any] = {"database": kind, "latency_ms": LATENCY_MS, "by_rate": []}
    for rate in RATES:
        with stack(kind, LATENCY_MS) as st:
            seed_patients(st.db_url, range(crises + others), utcnow())
            start_system(
                st,
                env={
                    "CHECKIN_SMS_RATE": f"{rate:g}",
                    "CHECKIN_ONCALL_FROM": ONCALL_FROM,
                },
            )
            res = _burst(st, rate, crises, others)
        out["by_rate"].append(res)
        log(
            f"crisis burst run {run_index} at {rate:g}/s: crisis replies "
            f"{res['crisis_reply_first_s']}–{res['crisis_reply_last_s']} s, pages "
            f"{res['page_first_s']}–{res['page_last_s']} s, HELP replies up to "
            f"{res['other_reply_last_s']} s"
        )
    return out
