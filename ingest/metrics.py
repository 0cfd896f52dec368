"""Ingest's Prometheus metrics: the one place that defines them."""

from __future__ import annotations

import threading

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

# HTTP ingest, apart from MQTT: the counters above count both channels, since both go through
# store_batch; these say what the HTTP route answered and how long a gateway waited for it.
HTTP_REQUESTS = Counter(
    "heimvakt_http_ingest_requests_total",
    "HTTP ingest requests answered, per status code (200 committed, 4xx refused, 503 retry)",
    ["status"],
)
HTTP_READINGS = Counter(
    "heimvakt_http_ingest_readings_total",
    "Readings in committed HTTP ingest messages, per outcome (stored, duplicate, quarantined)",
    ["outcome"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "heimvakt_http_ingest_request_seconds",
    "Time from an HTTP ingest request's arrival to its answer, commit included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

STAGE_CPU = Counter(
    "heimvakt_ingest_stage_cpu_seconds_total",
    "CPU time of the ingest pipeline per stage: receive, decode, store (without rules), rules",
    ["stage"],
)
_STAGES = {
    stage: STAGE_CPU.labels(stage=stage) for stage in ("receive", "decode", "store", "rules")
}
_this_thread = threading.local()


def add_stage_cpu(stage: str, seconds: float) -> None:
    """Count CPU time (`time.thread_time` deltas) of one stage; callers add per batch or wake-up.

    The stage is also totalled per thread, so a stage that contains another (store runs the
    rules inside its transaction) can subtract what its own thread spent there, untouched by
    other threads doing the same (HTTP requests store and evaluate too).
    """
    _STAGES[stage].inc(seconds)
    totals: dict[str, float] = _this_thread.__dict__.setdefault("totals", {})
    totals[stage] = totals.get(stage, 0.0) + seconds


def stage_cpu_in_this_thread(stage: str) -> float:
    """CPU seconds this thread has added to `stage` so far."""
    return _this_thread.__dict__.get("totals", {}).get(stage, 0.0)
