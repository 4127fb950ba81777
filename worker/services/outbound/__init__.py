"""A message going out: plan → dispatch → claim → send → record; pacing, leases, reconciliation, delivery reports."""
