"""Shared care: organisations, patients, who is responsible for them, and their thresholds."""
