"""HL7 burst: SIU messages over MLLP into a real `checkin hl7 listen` process, as fast as the
listener acknowledges them, then every row counted.

`python -m bench.hl7_burst [--messages 10000] [--connections 4] [--db sqlite|postgres]`

The burst is what a practice-management system sends after an outage: new bookings (S12),
reschedules of some of them (S13, sent on the same connection after their S12, as a sender
keeps a patient's order) and resends of already-acknowledged messages with the same MSH-10
(about 1 in 10, as senders resend until they see an ACK). Each of `--connections` connections
sends its share one message at a time, waiting for each ACK (MLLP's original mode).

Pass: every message answered AA; one inbox row per distinct control id (0 duplicated); every
S12 an appointment and every S13 applied to it (0 lost); no appointment twice. The rate is
messages acknowledged per second of wall time. Writes bench/HL7_BURST.md, which
bench/REPORT.md includes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7
from hl7.mllp import open_hl7_connection
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from bench.harness import free_port, log, pg_admin_url
from bench.stats import median
from worker.store.migrate import upgrade
from worker.store.models import Appointment, Hl7Message, Patient

HERE = Path(__file__).resolve().parent
SECTION = HERE / "HL7_BURST.md"
CHECKIN = Path(sys.prefix) / "bin" / "checkin"


def message(trigger: str, control: str, n: int, start: str) -> str:
    return "\r".join(
        [
            f"MSH|^~\\&|PMS|CLINIC|CHECKIN|CLINIC|20261201120000||SIU^{trigger}^SIU_S12|{control}|P|2.5.1",
            f"SCH|B-{n}^PMS|F-{n}^EHR|||||INF^Infusion||||^^60^{start}",
            f"PID|1||MRN{n // 2}^^^HOSP^MR||Patient^Number{n // 2}||19800101|F|||||"
            f"^PRN^CP^^1^212^{5550000 + n // 2 % 10000:07d}||en",
            "RGS|1",
            "AIS|1||INF^Infusion",
            "AIL|1||SUITE1",
        ]
    )


def plan(messages: int, connections: int) -> list[list[tuple[str, str]]]:
    """Per connection, (control id, text) in sending order: S12s, S13s after their S12, and
    resends. Two appointments per patient, on the same connection."""
    per: list[list[tuple[str, str]]] = [[] for _ in range(connections)]
    resends = messages // 10
    moves = messages // 10
    bookings = messages - resends - moves
    for n in range(bookings):
        conn = (n // 2) % connections
        per[conn].append((f"S12-{n}", message("S12", f"S12-{n}", n, "20991210140000-0500")))
        if n < moves:
            per[conn].append((f"S13-{n}", message("S13", f"S13-{n}", n, "20991211093000-0500")))
    for i in range(resends):
        n = (i * 7) % bookings
        conn = (n // 2) % connections
        per[conn].append((f"S12-{n}", message("S12", f"S12-{n}", n, "20991210140000-0500")))
    return per


async def send_all(port: int, per: list[list[tuple[str, str]]]) -> dict[str, Any]:
    codes: dict[str, int] = {}

    async def one(items: list[tuple[str, str]]) -> None:
        reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
        try:
            for _control, body in items:
                writer.writemessage(hl7.parse(body))
                await writer.drain()
                ack = await asyncio.wait_for(reader.readmessage(), 60)
                code = str(ack.segment("MSA")[1])
                codes[code] = codes.get(code, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(items) for items in per))
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "codes": codes}


def count(url: str, per: list[list[tuple[str, str]]]) -> dict[str, Any]:
    distinct = {c for items in per for c, _ in items}
    s13 = {c for c in distinct if c.startswith("S13-")}
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = s.scalar(select(func.count()).select_from(Hl7Message)) or 0
            applied = s.scalar(select(func.count()).where(Hl7Message.ack_code == "AA")) or 0
            appts = s.scalar(select(func.count()).select_from(Appointment)) or 0
            moved = s.scalar(select(func.count()).where(Appointment.version > 1)) or 0
            patients = s.scalar(select(func.count()).select_from(Patient)) or 0
    finally:
        engine.dispose()
    bookings = len(distinct) - len(s13)
    return {
        "sent": sum(len(items) for items in per),
        "distinct": len(distinct),
        "inbox_rows": rows,
        "applied_rows": applied,
        "appointments": appts,
        "expected_appointments": bookings,
        "rescheduled": moved,
        "expected_rescheduled": len(s13),
        "patients": patients,
        "lost": max(len(distinct) - applied, 0)
        + max(bookings - appts, 0)
        + max(len(s13) - moved, 0),
        "duplicated": max(rows - len(distinct), 0) + max(appts - bookings, 0),
    }


def database(kind: str, workdir: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'burst.db'}"
        upgrade(url)
        return url, lambda: None
    admin_url = pg_admin_url()
    if admin_url is None:
        raise SystemExit("no PostgreSQL answers (CHECKIN_BENCH_PG_URL)")
    name = f"bench_hl7_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = str(create_engine(admin_url).url.set(database=name).render_as_string(hide_password=False))
    upgrade(url)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def run(messages: int, connections: int, db: str) -> dict[str, Any]:
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = database(db, Path(tmp))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKIN_", "TWILIO_"))}
        env |= {
            "CHECKIN_DATABASE_URL": url,
            "CHECKIN_HL7_PORT": str(port),
            "CHECKIN_CLINIC_TZ": "America/New_York",
        }
        proc = subprocess.Popen([str(CHECKIN), "hl7", "listen"], env=env, cwd=tmp)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    import socket

                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            per = plan(messages, connections)
            log(f"hl7 burst: {messages} messages over {connections} connections ({db})")
            sent = asyncio.run(send_all(port, per))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        counts = count(url, per)
        drop()
    rate = counts["sent"] / sent["elapsed"]
    return {
        "db": db,
        "connections": connections,
        **counts,
        **sent,
        "rate": rate,
        "load_at_start": load_at_start,
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def section(results: list[dict[str, Any]], command: str) -> str:
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        runs.setdefault(r["db"], []).append(r)
    n = max(len(v) for v in runs.values())
    lines = [
        "## HL7 burst (SIU over MLLP)",
        "",
        f"{n} run(s) per database, finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, with "
        f"`{command}`, on {os.cpu_count()} cores ({platform.machine()}). The 1-minute load "
        "at the start and end of each run is listed below: the previous run decays in it, and "
        "a load well above the core count means other work shared the CPU, making the rate a "
        "floor. A real `checkin hl7 listen` process; the client is python-hl7's "
        "MLLP client, each connection waiting for every ACK. 8 in 10 messages are new bookings "
        "(S12), 1 in 10 reschedules (S13) and 1 in 10 resends of an acknowledged message with "
        "the same MSH-10.",
        "",
        "| database | connections | messages | rate (msg/s): median (min–max) | AA | inbox rows | appointments | lost | duplicated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for db, rs in runs.items():
        rates = sorted(r["rate"] for r in rs)
        mid = median(rates) or 0.0
        spread = f"{mid:.1f}" if len(rs) == 1 else f"{mid:.1f} ({rates[0]:.1f}–{rates[-1]:.1f})"
        lines.append(
            f"| {db} | {rs[0]['connections']} | {rs[0]['sent']} each | {spread} | "
            f"{'/'.join(str(r['codes'].get('AA', 0)) for r in rs)} | "
            f"{'/'.join(str(r['inbox_rows']) for r in rs)} | "
            f"{'/'.join(str(r['appointments']) for r in rs)} | "
            f"{sum(r['lost'] for r in rs)} | {sum(r['duplicated'] for r in rs)} |"
        )
    lines += [
        "",
        "Each run, with the 1-minute load average (`/proc/loadavg`) at its start → end:",
        "",
    ]
    for db, rs in runs.items():
        for k, r in enumerate(rs, 1):
            if r.get("load_at_start"):
                lines.append(
                    f"- {db} run {k}: {r['rate']:.1f} msg/s; load {r['load_at_start'][0]:.1f} → "
                    f"{r['load_at_end'][0]:.1f} (finished {r.get('finished', '?')})"
                )
    lines += [
        "",
        "Each message is two transactions (store verbatim, then apply and mark the row); the "
        "listener is CPU-bound in the ORM (about 18 statements a message), so on a busy machine "
        "the rate follows the CPU share it gets.",
    ]
    return "\n".join(lines) + "\n"


def include_in_report() -> None:
    """Put the section into bench/REPORT.md now (bench/report.py keeps it on later runs)."""
    report = HERE / "REPORT.md"
    body = report.read_text()
    start, end = "<!-- hl7_burst -->", "<!-- /hl7_burst -->"
    block = f"{start}\n{SECTION.read_text().strip()}\n{end}"
    if start in body:
        before, rest = body.split(start, 1)
        body = before + block + rest.split(end, 1)[1]
    else:
        body = body.replace("## How to run", block + "\n\n## How to run", 1)
    report.write_text(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1, help="runs per database")
    args = parser.parse_args(argv)
    dbs = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    results = [run(args.messages, args.connections, db) for _ in range(args.runs) for db in dbs]
    for r in results:
        log(json.dumps({k: v for k, v in r.items()}, default=str))
    command = ".venv/bin/python -m bench.hl7_burst " + " ".join(argv or sys.argv[1:])
    SECTION.write_text(section(results, command.strip()))
    include_in_report()
    return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
