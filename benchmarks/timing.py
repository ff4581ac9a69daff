"""Timing helpers for benchmarks: medians of interleaved repeats, so that machine noise hits the
compared variants alike and ratios stay meaningful."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each variant, calling them in turn ``repeats`` times."""
    for function in variants.values():
        for _ in range(warmup):
            function()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, function in variants.items():
            began = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in samples.items()}
