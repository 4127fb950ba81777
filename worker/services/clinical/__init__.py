"""What answers mean: rules after answers, crisis, escalation ladder, follow-ups, expiry, FHIR/CSV export, scores."""
