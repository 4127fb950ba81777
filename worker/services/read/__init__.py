"""Read models shared by the command line, the API and the dashboard (plain, JSON-ready)."""
