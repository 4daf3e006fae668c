"""Benchmarks behind every published number."""
