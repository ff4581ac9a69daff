import importlib
import json

import pytest

from benchmarks.report import publish


def test_publish_prints_and_writes_the_same_json(tmp_path, capsys):
    out = tmp_path / "reports" / "run.json"
    report = {"mean": {"psnr": 21.5}, "styles": ["vintage"]}
    text = publish(report, out)
    assert json.loads(capsys.readouterr().out) == report
    assert out.read_text() == text + "\n"
    assert json.loads(out.read_text()) == report


def test_publish_without_out_writes_nothing(tmp_path, capsys):
    publish({"ratio": 1.2}, None)
    assert json.loads(capsys.readouterr().out) == {"ratio": 1.2}
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_earlier_report(tmp_path, monkeypatch):
    out = tmp_path / "run.json"
    out.write_text('{"earlier": true}\n')

    def failing_fsync(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", failing_fsync)  # the atomic writer syncs before it renames
    with pytest.raises(OSError, match="disk full"):
        publish({"later": True}, out)
    assert out.read_text() == '{"earlier": true}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["run.json"]


@pytest.mark.parametrize("script", ["ablations", "fusion_bench", "held_back", "library_growth", "noise_scale",
                                    "seed_spread", "studio_speed", "style_speed", "train_speed", "full_resolution",
                                    "render_speed", "training_scale", "generation_schedule", "cartoon_parts"])
def test_every_reporting_script_offers_out(script, capsys):
    module = importlib.import_module(f"benchmarks.{script}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])  # builds the whole parser, shared --out included
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out
