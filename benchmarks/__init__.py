"""Benchmarks: the five-style benchmark, speed and memory measurements and the baselines they
compare against. Outside the product: the engine and the studio never import this package."""
