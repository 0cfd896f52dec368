"""Benchmarks, run by hand (`make bench-ingest`); never part of the test suite."""
