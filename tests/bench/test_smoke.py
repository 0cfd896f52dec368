"""The benchmarks run end to end with small numbers, so a change that breaks one fails here and
not at the next measurement. They judge no speed target (machines are shared and noisy) but do
check what a run must show: every reading stored once, none quarantined, every alert raised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import MOSQUITTO


@pytest.mark.slow
@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (apt-get install mosquitto)")
@pytest.mark.parametrize("benchmark", ["bench.ingest", "bench.alerts"])
def test_the_benchmark_runs_in_smoke_mode(
    benchmark: str, postgres_server_url: str, repo_root: Path
) -> None:
    _smoke(benchmark, postgres_server_url, repo_root)


@pytest.mark.slow
@pytest.mark.parametrize(
    "benchmark", ["bench.figures", "bench.fhir", "bench.dashboard", "bench.storage"]
)
def test_the_in_process_benchmarks_run_in_smoke_mode(
    benchmark: str, postgres_server_url: str, repo_root: Path
) -> None:
    """bench.figures, bench.fhir, bench.dashboard and bench.storage need no broker: the app
    serves in the benchmark's own process, or there is no app at all."""
    _smoke(benchmark, postgres_server_url, repo_root)


def _smoke(benchmark: str, postgres_server_url: str, repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", benchmark, "--smoke"],
        check=False,
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "HEIMVAKT_BENCH_DATABASE_URL": postgres_server_url},
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
