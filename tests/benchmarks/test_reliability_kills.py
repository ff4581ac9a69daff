"""The kill part of the reliability suite on two points: SIGKILL between a checkpoint's tensors
and its record, and between the publish's files and its database rows. Each time the library is
clean after the kill and the restarted run publishes the same adapter, bit for bit, as an
uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import reliability_kills

pytestmark = pytest.mark.timeout(1800)


def test_two_kills_are_survived_with_the_same_weights(tmp_path: Path) -> None:
    report = reliability_kills.run_kills(tmp_path, 2, seed=1, points=["checkpoint-record", "publish-moved"])
    for row in report["rows"]:
        assert row["landed"].split()[0] == row["point"], row
        assert row["library_after_kill"] == "clean" and row["library_after_restart"] == "clean", row
        assert row["restart"] == "finished" and row["weights_identical"], row
    assert report["survived"] == report["kills"] == 2


def test_a_kill_after_the_run_finished_needs_no_restart(tmp_path: Path) -> None:
    """Training the finished style again would be refused as a taken name; the published adapter
    is compared with the reference instead."""
    [row] = reliability_kills.run_kills(tmp_path, 1, seed=1, points=["finished"])["rows"]
    assert row["landed"] == "finished 1" and row["restart"] == "not needed: the run had finished", row
    assert row["library_after_kill"] == "clean" and row["library_after_restart"] == "clean", row
    assert row["weights_identical"] and row["survived"], row


def test_kill_points_are_fixed_by_the_seed() -> None:
    first, again = reliability_kills.choose_kills(12, 17), reliability_kills.choose_kills(12, 17)
    assert first == again and {kind for kind, _, _ in first} == set(reliability_kills.POINTS)
