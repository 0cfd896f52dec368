"""Benchmarks: `make bench-ingest` and `make bench-alerts` measure and write docs/benchmarks.md;
the test suite runs them only in smoke mode (tests/bench/test_smoke.py), judging no speed."""
