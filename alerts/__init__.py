"""Rules, triage and the alert lifecycle."""
