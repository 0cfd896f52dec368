"""The ingest benchmark's outcomes and the Markdown they become: what issue 9 asks, target by
target, each row judged, and the CPU figures that explain the rates on a shared machine."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.harness import Stored, met
from bench.measure import CpuUse, Drain, Latency
from core.settings import Settings

STAGES = ("receive", "decode", "store", "rules")
"""The worker's stages, as labels of ``heimvakt_ingest_stage_cpu_seconds_total``."""

TARGET_DRAIN_PER_SECOND = 21_000
TARGET_RATIO = 12.0
TARGET_SHAPE_RATIO = 1.5
TARGET_P99_MS = 100.0
TARGET_HISTORY_RATIO = 1.5
TARGET_RSS_MB = 250.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each phase sends. Shape A: `a_patients` with `a_devices` between them;
    shape B: `b_patients` with one device each. History, memory and two-worker phases use A."""

    naive_readings: int
    readings: int
    a_patients: int
    a_devices: int
    b_patients: int
    steady_rate: float
    steady_seconds: float
    history_readings: int
    history_days: tuple[int, int]
    rss_readings: int
    two_worker_readings: int
    publishers: int
    timeout: float


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """One timed drain by one or more workers, and what the workers and the machine did."""

    label: str
    drain: Drain
    stored: Stored
    history: int
    """Readings seeded as history before the drain (already in the table, not drained)."""
    cpu: CpuUse
    running_cpu: float
    """The workers' CPU seconds from the first commit to the last (start-up left out)."""
    peak_rss: int
    """The largest resident set size of any of the workers, sampled every 100 ms."""
    rss_samples: int
    """How many samples that peak is the largest of (a dead sampler would show few)."""
    stage_cpu: dict[str, float | None]
    """CPU seconds per stage from the workers' metrics; None where none exposes it."""
    disconnects: float | None
    stored_by_worker: list[float | None]
    checkpoints: int
    profile: str | None

    def per_reading(self, seconds: float | None) -> float | None:
        """Microseconds per drained reading."""
        return None if seconds is None else seconds / self.drain.count * 1e6

    @property
    def worker_per_reading(self) -> float:
        """The workers' CPU per reading from the first commit on, in microseconds (over every
        reading when all were seen committed at once)."""
        readings = self.drain.count - self.drain.first_count or self.drain.count
        return self.running_cpu / readings * 1e6

    def summary(self) -> str:
        d = self.drain
        return (
            f"{self.label}: {d.running_rate:,.0f} readings/s from the first commit,"
            f" {d.rate:,.0f}/s with start-up ({d.startup_seconds:.2f} s to it);"
            f" worker {self.worker_per_reading:.0f} µs/reading, peak RSS"
            f" {self.peak_rss / 2**20:.0f} MB, disconnects {_number(self.disconnects)},"
            f" quarantined {self.stored.quarantine_rows}"
        )


@dataclass(slots=True)
class Results:
    sizes: Sizes
    settings: Settings
    warnings: list[str]
    naive: Drain | None = None
    naive_stored: Stored | None = None
    a: DrainOutcome | None = None
    b: DrainOutcome | None = None
    latency: Latency | None = None
    latency_cpu: CpuUse | None = None
    history: list[DrainOutcome] = field(default_factory=list)
    rss: DrainOutcome | None = None
    two: DrainOutcome | None = None


def _number(value: float | None) -> str:
    return "not exposed" if value is None else f"{value:,.0f}"


def _us(value: float | None) -> str:
    return "not exposed" if value is None else f"{value:.1f}"


def _rate(value: float) -> str:
    return f"{value:,.0f} readings/s"


def _ratio(faster: float, slower: float) -> float:
    return max(faster, slower) / min(faster, slower)


def drain_rows(outcome: DrainOutcome, what: str, naive: Drain | None) -> list[str]:
    d, goal = outcome.drain, TARGET_DRAIN_PER_SECOND
    rows = [
        f"| {what}, from the first commit | >= {goal:,} readings/s | {_rate(d.running_rate)} |"
        f" {met(d.running_rate >= goal)} |",
        f"| The same, including start-up ({d.startup_seconds:.2f} s to the first commit,"
        f" {d.seconds:.1f} s in all) | >= {goal:,} readings/s | {_rate(d.rate)} |"
        f" {met(d.rate >= goal)} |",
    ]
    if naive is not None:
        running, whole = d.running_rate / naive.running_rate, d.rate / naive.rate
        rows.append(
            f"| Its rate / the naive baseline's: from the first commit (including start-up) |"
            f" >= {TARGET_RATIO:g}x | {running:.1f}x ({whole:.1f}x) |"
            f" {met(min(running, whole) >= TARGET_RATIO)} |"
        )
    rows.append(
        f"| Keepalive disconnects (`heimvakt_ingest_broker_disconnects_total`) / quarantine rows"
        f" | 0 / 0 | {_number(outcome.disconnects)} / {outcome.stored.quarantine_rows} |"
        f" {met(outcome.disconnects == 0 and outcome.stored.quarantine_rows == 0)} |"
    )
    return rows


def targets_table(results: Results) -> list[str]:
    sizes = results.sizes
    rows = ["| Measure | Target | Measured | Met |", "| --- | --- | --- | --- |"]
    naive, a, b = results.naive, results.a, results.b
    if naive is not None:
        rows.append(
            f"| Naive baseline: one INSERT and commit per message ({naive.count:,} readings,"
            f" shape A), from the first commit (including start-up) | |"
            f" {_rate(naive.running_rate)} ({_rate(naive.rate)}) | |"
        )
    if a is not None:
        what = (
            f"Drain A: {a.drain.count:,} readings, {sizes.a_patients:,} patients,"
            f" {sizes.a_devices:,} devices; one worker, rules on"
        )
        rows += drain_rows(a, what, naive)
    if b is not None:
        what = (
            f"Drain B: {b.drain.count:,} readings, {sizes.b_patients:,} patients with one"
            " device each; one worker, rules on"
        )
        rows += drain_rows(b, what, naive)
    if a is not None and b is not None:
        running = _ratio(a.drain.running_rate, b.drain.running_rate)
        whole = _ratio(a.drain.rate, b.drain.rate)
        rows.append(
            f"| Faster shape / slower shape, from the first commit (including start-up) |"
            f" <= {TARGET_SHAPE_RATIO:g}x | {running:.2f}x ({whole:.2f}x) |"
            f" {met(max(running, whole) <= TARGET_SHAPE_RATIO)} |"
        )
    latency = results.latency
    if latency is not None:
        rows.append(
            f"| Publish-to-commit at {latency.published / latency.publish_seconds:,.0f}"
            f" readings/s for {latency.publish_seconds:.0f} s ({latency.committed:,} of"
            f" {latency.published:,} seen): p50 / p99 / max | p99 <= {TARGET_P99_MS:g} ms |"
            f" {latency.p50_ms:.1f} / {latency.p99_ms:.1f} / {latency.max_ms:.1f} ms |"
            f" {met(latency.p99_ms <= TARGET_P99_MS)} |"
        )
    if len(results.history) == 2:
        short, long = results.history
        rules = [h.per_reading(h.stage_cpu["rules"]) for h in results.history]
        what = f"Rule CPU per reading with {long.label[8:]} / {short.label[8:]} of history"
        if rules[0] and rules[1] is not None:
            ratio = rules[1] / rules[0]
            rows.append(
                f"| {what} (table below) | <= {TARGET_HISTORY_RATIO:g}x | {ratio:.2f}x |"
                f" {met(ratio <= TARGET_HISTORY_RATIO)} |"
            )
        else:
            rows.append(
                f"| {what} | <= {TARGET_HISTORY_RATIO:g}x | not measurable: `rules` stage"
                f" {_us(rules[0])} / {_us(rules[1])} µs | |"
            )
    if results.rss is not None:
        mb = results.rss.peak_rss / 2**20
        rows.append(
            f"| Peak RSS of the worker draining {results.rss.drain.count:,} readings (sampled"
            f" every 100 ms, {results.rss.rss_samples:,} samples) | <= {TARGET_RSS_MB:g} MB |"
            f" {mb:.0f} MB | {met(mb <= TARGET_RSS_MB)} |"
        )
    two = results.two
    if two is not None:
        shares = [s for s in two.stored_by_worker if s is not None]
        split = " / ".join(f"{s / sum(shares):.0%}" for s in shares) if shares else "not exposed"
        rows.append(
            f"| Two workers, one shared subscription, {two.drain.count:,} readings: combined,"
            f" from the first commit (including start-up); each worker's share of"
            f" `heimvakt_readings_stored_total` | | {_rate(two.drain.running_rate)}"
            f" ({_rate(two.drain.rate)}); {split} | |"
        )
    return rows


def cpu_table(outcomes: list[DrainOutcome]) -> list[str]:
    """CPU per reading by stage (the worker's own counters) and by process (the kernel's)."""
    rows = [
        "| CPU per reading (µs) | " + " | ".join(o.label for o in outcomes) + " |",
        "| --- |" + " --- |" * len(outcomes),
    ]
    for stage in STAGES:
        rows.append(
            f"| Worker stage `{stage}` | "
            + " | ".join(_us(o.per_reading(o.stage_cpu[stage])) for o in outcomes)
            + " |"
        )

    def row(label: str, values: list[str]) -> str:
        return f"| {label} | " + " | ".join(values) + " |"

    return [
        *rows,
        row(
            "Whole worker, from the first commit on",
            [f"{o.worker_per_reading:.1f}" for o in outcomes],
        ),
        row(
            "PostgreSQL for the benchmark database (backends, WAL writer, checkpointer, background"
            " writer), whole drain",
            [_us(o.per_reading(o.cpu.postgres)) for o in outcomes],
        ),
        row("Mosquitto, whole drain", [_us(o.per_reading(o.cpu.mosquitto)) for o in outcomes]),
        row(
            "Other work on the machine meanwhile (share of all its CPU)",
            [f"{o.cpu.others_share:.0%}" for o in outcomes],
        ),
        row("Checkpoints during the drain", [str(o.checkpoints) for o in outcomes]),
        row(
            "Drain rate from the first commit (readings/s)",
            [f"{o.drain.running_rate:,.0f}" for o in outcomes],
        ),
    ]


def section(results: Results, machine_line: str, measured: str) -> str:
    settings, sizes = results.settings, results.sizes
    outcomes = [o for o in (results.a, results.b, *results.history, results.rss, results.two) if o]
    lines = [
        "## Ingest",
        "",
        measured,
        "",
        machine_line,
        "",
        *targets_table(results),
        "",
        f"Worker settings (the product's defaults): batch {settings.ingest_batch_size} messages,"
        f" flush {settings.ingest_flush_seconds:g} s, queue {settings.ingest_queue_size}, Receive"
        f" Maximum {settings.ingest_receive_maximum}, {settings.ingest_writers} writer threads,"
        " device rate"
        f" {settings.ingest_device_rate:g}/s (burst {settings.ingest_device_burst}); rules"
        " evaluated as `heimvakt ingest` runs them. Patients have spo2 and pulse limits; each"
        " device measures one of SpO2, pulse, weight, temperature and respiratory rate, one"
        " reading per message, ten minutes of measured time apart.",
        "",
        *cpu_table(outcomes),
        "",
        f"History phases: {sizes.a_patients} patients (shape A) get 1 or 30 days of"
        " history each (SpO2 and pulse 3 a day, temperature and respiratory rate 2, weight 1,"
        " written with COPY before the drain; "
        + ", ".join(f"{h.history:,} rows for {h.label[8:]}" for h in results.history)
        + "), then drain the same shape of backlog. The rule stage's CPU per reading is"
        " compared; the whole worker's is shown beside it.",
    ]
    cpu = results.latency_cpu
    if cpu is not None:
        lines += [
            "",
            f"During the latency phase the worker used {cpu.ingest / cpu.wall:.0%} of one core,"
            f" PostgreSQL {cpu.postgres / cpu.wall:.0%}, Mosquitto {cpu.mosquitto / cpu.wall:.0%},"
            f" the benchmark's publisher and listener {cpu.bench / cpu.wall:.0%}; other work"
            f" {cpu.others_share:.0%} of the machine.",
        ]
    lines += ["", *METHOD]
    lines += [f"\n{warning}" for warning in results.warnings]
    return "\n".join(lines) + "\n"


METHOD = [
    "Method: the benchmark starts its own Mosquitto (loopback only, anonymous, unlimited"
    " queues, persistence off) and creates, migrates, seeds and finally drops its own database;"
    " every phase starts from emptied pipeline tables and uses its own topic root and client"
    " ids. For each drain the workers first open their persistent MQTT 5 sessions (each waits"
    " until its `heimvakt_ingest_broker_connected` metric is 1, set once the broker confirms"
    " the subscriptions) and stop; several publisher processes then publish the backlog with"
    " QoS 1, and the broker's PUBACK for every message confirms it holds the backlog (with"
    " persistence off Mosquitto acknowledges after queueing for each session); then the"
    " workers start again (`heimvakt ingest --metrics-port P`) and are timed until `count(*)`"
    " on readings reaches the total (polled every 50 ms near the start and end). Metrics are"
    " read from each worker just before it stops; CPU of each process from the kernel. The"
    " naive baseline uses the same session settings and attribution SQL but one autocommit"
    " INSERT per message. Two workers share one subscription (`HEIMVAKT_INGEST_SHARED_GROUP`,"
    " each its own `HEIMVAKT_MQTT_CLIENT_ID`); the broker splits the backlog between their"
    " sessions. For the latency, a trigger added to the benchmark database only meanwhile"
    " calls `pg_notify` per message recorded in `ingest_messages` (in the transaction that"
    " stores its reading); a LISTEN connection stamps each msg_id when the"
    " notification arrives, which PostgreSQL does at commit, and compares it with the time its"
    " publish call was made.",
]


def print_results(results: Results) -> None:
    print("\n".join(targets_table(results)))
    outcomes = [o for o in (results.a, results.b, *results.history, results.rss, results.two) if o]
    if outcomes:
        print("\n".join(cpu_table(outcomes)))
    for outcome in outcomes:
        print(outcome.summary())
        if outcome.profile:
            print(outcome.profile)
    cpu = results.latency_cpu
    if cpu is not None:
        print(
            f"latency phase: worker {cpu.ingest / cpu.wall:.0%} of one core, PostgreSQL"
            f" {cpu.postgres / cpu.wall:.0%}, Mosquitto {cpu.mosquitto / cpu.wall:.0%}, other"
            f" work {cpu.others_share:.0%} of the machine"
        )
    for warning in results.warnings:
        print(warning)
