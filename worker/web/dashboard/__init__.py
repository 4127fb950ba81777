"""The staff dashboard (server-rendered HTML): routes.py holds the pages, data.py their read
queries, imports.py the CSV import page."""

from __future__ import annotations

from worker.web.dashboard.routes import STATIC, dashboard_router

__all__ = ["STATIC", "dashboard_router"]
