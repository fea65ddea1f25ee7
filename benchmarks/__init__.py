"""Benchmarks: measurements with their figures recorded, not timed tests."""
