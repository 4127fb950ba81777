"""The clinic's own data: patients, schedules, appointments, staff accounts and sign-in, audit, imports and feeds."""
