"""Benchmarks: each prints its numbers against a baseline measured in the same run."""
