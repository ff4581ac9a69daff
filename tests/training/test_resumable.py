"""A run the studio saved resumes with the settings it was started with."""

import json

from engine.core.configuration import to_dict
from engine.training.resumable import REQUEST_FILE, REQUEST_FOLDER, ResumableRun, load_request, save_request
from engine.training.style_trainer import StyleTrainingConfig


def run_at(folder) -> ResumableRun:
    return ResumableRun("dusk", folder, "Dusk", 0, 10, 0)


def test_a_saved_request_comes_back_with_its_settings(tmp_path) -> None:
    (tmp_path / "pairs" / "before").mkdir(parents=True)
    (tmp_path / "pairs" / "after").mkdir()
    config = StyleTrainingConfig(steps=10, crop_margin=1.2)
    save_request(tmp_path, "Dusk", "warm", "", tmp_path / "pairs", config)
    assert load_request(run_at(tmp_path)).config == config


def test_a_run_saved_before_training_scales_existed_resumes_at_the_native_scale(tmp_path) -> None:
    old = to_dict(StyleTrainingConfig(steps=10, crop_margin=1.15))
    del old["training_scale"]
    (tmp_path / REQUEST_FOLDER).mkdir()
    (tmp_path / REQUEST_FOLDER / REQUEST_FILE).write_text(json.dumps({"name": "Dusk", "training": old}))
    config = load_request(run_at(tmp_path)).config
    assert (config.training_scale, config.crop_margin, config.steps) == ("native", 1.15, 10)
