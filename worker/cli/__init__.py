"""The `checkin` command line (entry point `worker.cli:main`; also `python -m worker.cli`).

main.py assembles the command tree from the per-resource modules; common.py holds what they share.
"""

from __future__ import annotations

from worker.cli.main import app, main, with_crisis

__all__ = ["app", "main", "with_crisis"]
