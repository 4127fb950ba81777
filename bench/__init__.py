"""Benchmarks for checkin-worker: `python -m bench.run [--quick] [--only NAME] [--runs N]`.

Every benchmark drives the real system (Celery worker and beat processes, the web app, a
redis-server, PostgreSQL or SQLite, and the Twilio emulator over HTTP through the real SDK) and
returns plain numbers; `bench.run` takes the median of several runs, stores the raw results in
`bench/results/` and writes `bench/REPORT.md`. Nothing here is a test: speed is measured, never
asserted.
"""
