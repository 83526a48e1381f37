"""Security tests: hostile agents, hostile requests, fuzzed frames (see docs/reliability.md)."""
