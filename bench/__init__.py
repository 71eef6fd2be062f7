"""bgci's benchmark: zero downtime measured against what users do instead (see docs/benchmark.md)."""
