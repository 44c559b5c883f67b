"""Benchmarks for sluice: each prints its figure, its peer measured in the same
run, and the target. They never pass or fail on time. See bench/README.md."""
