"""Benchmarks: the five-style benchmark, speed and memory measurements, image metrics."""
