"""Helpers shared by the project's own tests and benchmarks."""
