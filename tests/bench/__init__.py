"""Benchmark smoke tests: each benchmark runs once, briefly, as the real command."""
