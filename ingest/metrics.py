"""Ingest's Prometheus metrics: the one place that defines them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READINGS_STORED = Counter(
    "heimvakt_readings_stored_total", "Readings stored, per measurement", ["code"]
)
READINGS_DUPLICATE = Counter(
    "heimvakt_readings_duplicate_total", "Readings received again and not stored twice"
)
QUARANTINED = Counter(
    "heimvakt_quarantined_total", "Messages or readings sent to quarantine, per reason", ["reason"]
)
BATCH_SIZE = Histogram(
    "heimvakt_ingest_batch_size",
    "Messages per committed batch",
    buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
COMMIT_SECONDS = Histogram("heimvakt_ingest_commit_seconds", "Time to store and commit one batch")
STORE_RETRIES = Counter(
    "heimvakt_ingest_store_retries_total", "Batches retried because the database was unavailable"
)
BACKLOG = Gauge("heimvakt_ingest_backlog", "Messages received from the broker and not yet stored")
CONNECTED = Gauge("heimvakt_ingest_broker_connected", "1 while connected to the broker")
RECONNECTS = Counter(
    "heimvakt_ingest_broker_disconnects_total", "Unplanned losses of the broker connection"
)
