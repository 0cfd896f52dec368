"""Optional profiling of a drain (``python -m bench.ingest --profile FILE``): py-spy records the
worker without pausing it, and a summary says per thread and per function where time went.

py-spy is not a project dependency: ``.venv/bin/pip install py-spy``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


class PySpy:
    """py-spy recording a process without pausing it, as collapsed stacks, until stopped."""

    RATE = 200

    def __init__(self, pid: int, output: Path) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.output = output
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                binary, "record", "--pid", str(pid), "--rate", str(self.RATE), "--format", "raw",
                "--threads", "--nonblocking", "--output", str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> float:
        """Stop recording (py-spy writes its file on SIGINT); returns the seconds recorded."""
        seconds = time.monotonic() - self.started
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return seconds


def summarise_profile(path: Path, seconds: float, rate: int, top: int = 25) -> str:
    """Per thread, the share of wall time it was on CPU; then the functions seen most.

    Inclusive: samples with the function anywhere on the stack; self: at the top of it.
    Percentages are of all on-CPU samples of the process (py-spy leaves idle threads out).
    """
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    total = sum(stacks.values())
    if not total:
        return "py-spy recorded no samples"
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, samples in stacks.items():
        threads[_thread_label(frames)] += samples
        for name in {_function(f) for f in frames[1:]}:
            inclusive[name] += samples
        own[_function(frames[-1])] += samples
    possible = seconds * rate
    lines = [f"{total} on-CPU samples over {seconds:.1f} s at {rate} Hz"]
    lines += [
        f"  thread {name}: {n / total:6.1%} of samples, on CPU {n / possible:6.1%} of the time"
        for name, n in threads.most_common()
    ]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (file.py)``; lines differ within one function."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def _thread_label(frames: Sequence[str]) -> str:
    """Which of the worker's threads a stack belongs to, by a function only that thread runs."""
    text = ";".join(frames)
    for marker, label in (
        ("_write_forever", "ingest-writer"),
        ("loop_forever", "paho network loop"),
        ("psycopg_pool", "connection pool"),
    ):
        if marker in text:
            return label
    return frames[0]
