"""Ingest: device messages in, readings (or quarantine rows with a reason) out."""
