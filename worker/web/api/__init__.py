"""The clinician API under /api: router.py assembles the resources' routes; common.py holds what
they share (auth, paging, problem details)."""

from __future__ import annotations

from worker.web.api.common import install_error_handlers, problem
from worker.web.api.router import api_router

__all__ = ["api_router", "install_error_handlers", "problem"]
