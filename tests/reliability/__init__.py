"""Reliability tests: faults, floods, leaks and scale (see docs/reliability.md)."""
