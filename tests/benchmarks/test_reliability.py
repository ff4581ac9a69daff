"""The bad-input reliability suite (``benchmarks/reliability.py``) run whole on the tiny model:
every case is a one-line refusal naming the file (or a success for a valid input), and the
process still edits afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import reliability

pytestmark = pytest.mark.timeout(120)


def test_every_bad_input_is_answered_and_the_process_keeps_working(tmp_path: Path) -> None:
    report = reliability.run_suite(tmp_path)
    failed = [f"{case['case']} ({case['entry_point']}): {case['detail'] or case['message']}"
              for case in report["cases"] if not case["passed"]]
    assert not failed, "\n".join(failed)
    assert report["distinct_cases"] >= 30
    assert {row["entry_point"] for row in report["summary"]} == {"CLI", "library", "studio"}
    assert report["cases"][-1]["case"] == "a good edit after all the bad inputs"
    assert str(tmp_path) not in str(report["cases"])  # the report names the temporary folder WORK


def test_the_judge_fails_a_crash_a_multi_line_message_and_a_message_without_the_file() -> None:
    judge, Answer = reliability.judge, reliability.Answer
    assert not judge("c", "CLI", Answer(False, crash="Traceback ...\nValueError: boom"), "x.png").passed
    assert not judge("c", "CLI", Answer(False, "x.png is bad;\nsee above"), "x.png").passed
    assert not judge("c", "CLI", Answer(False, "the file is bad; give another"), "x.png").passed
    assert not judge("c", "CLI", Answer(True, "done"), "x.png").passed  # a bad input accepted
    assert judge("c", "CLI", Answer(False, "x.png is bad; give another"), "x.png").passed
    assert judge("c", "CLI", Answer(True, "done"), "x.png", valid=True).passed


def test_a_crash_in_the_cli_is_caught_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.cli

    def broken(argv):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(engine.cli, "main", broken)
    assert reliability.run_cli(["edit"]).crash == "RuntimeError: unexpected"
