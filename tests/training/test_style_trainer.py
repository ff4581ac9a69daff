"""Style training: it learns, resumes exactly, and 2 processes equal 1 at the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_styles import tiny_setup

from engine.core.configuration import help_of
from engine.core.errors import ConfigError
from engine.training.style_trainer import StyleTrainingConfig

HERE = Path(__file__).resolve().parent


def adapter_weights(adapter):
    return {name: tensor.clone() for name, tensor in adapter.state_dict().items()}


def test_training_lowers_the_loss_and_only_touches_adapter_weights():
    config = StyleTrainingConfig(steps=40, batch_size=4, learning_rate=3e-2, warmup_steps=5, checkpoint_every=0)
    backbone, adapter, trainer = tiny_setup(config)
    adapter_names = {f"transformer.{name}" for name in adapter.state_dict()}
    base = {name: tensor.clone() for name, tensor in backbone.model.state_dict().items() if name not in adapter_names}

    def held_loss():  # the same batches before and after: a fair comparison
        with torch.no_grad():
            return sum(trainer.flow_loss(1000 + index)[0].item() for index in range(4))

    before = held_loss()
    trainer.train()
    assert held_loss() < 0.8 * before
    for name, tensor in backbone.model.state_dict().items():
        if name in base:
            assert torch.equal(tensor, base[name]), name
    assert all(not tensor.requires_grad for _, tensor in adapter.state_dict_tensors())


def test_callback_reports_steps_eta_and_previews():
    config = StyleTrainingConfig(steps=10, batch_size=2, sample_every=2, checkpoint_every=0)
    _, _, trainer = tiny_setup(config)
    seen = []
    trainer.train(callback=seen.append, preview=lambda: "preview")
    assert [progress.step for progress in seen] == list(range(1, 11))
    assert [progress.step for progress in seen if progress.preview == "preview"] == [2, 4, 6, 8, 10]
    assert seen[-1].seconds_left == 0 and all(progress.loss > 0 for progress in seen)


@pytest.mark.parametrize(("steps", "sample_every", "every"), [
    (300, 50, 50), (1000, 50, 50), (250, 50, 50), (249, 50, 49), (50, 50, 10), (20, 50, 4), (5, 50, 1), (4, 50, 1), (1, 50, 1),
    (50, 3, 3), (50, 0, 0), (3, 0, 0),
])
def test_previews_come_at_a_cadence_that_fits_the_run(steps, sample_every, every):
    config = StyleTrainingConfig(steps=steps, sample_every=sample_every)
    assert config.preview_every == every
    if every:  # any run of 5 or more steps shows at least 5 previews; a shorter one, one every step
        assert steps // every >= min(steps, 5)


def test_a_50_step_run_sends_five_previews_and_sample_every_0_none():
    seen = []
    _, _, trainer = tiny_setup(StyleTrainingConfig(steps=50, batch_size=2, warmup_steps=1, checkpoint_every=0))
    trainer.train(callback=seen.append, preview=lambda: "preview")
    assert [progress.step for progress in seen if progress.preview is not None] == [10, 20, 30, 40, 50]
    seen.clear()
    _, _, trainer = tiny_setup(StyleTrainingConfig(steps=6, batch_size=2, warmup_steps=1, sample_every=0, checkpoint_every=0))
    trainer.train(callback=seen.append, preview=lambda: "preview")
    assert len(seen) == 6 and all(progress.preview is None for progress in seen)
    with pytest.raises(ConfigError, match="sample_every must not be negative"):
        StyleTrainingConfig(sample_every=-1)
    assert "steps // 5" in help_of(StyleTrainingConfig, "sample_every") and "0: none" in help_of(StyleTrainingConfig, "sample_every")


def test_cancel_stops_early():
    config = StyleTrainingConfig(steps=10, batch_size=2, checkpoint_every=0)
    _, _, trainer = tiny_setup(config)
    calls = []
    history = trainer.train(should_stop=lambda: len(calls) >= 3 or calls.append(1))
    assert history["stopped_at"] == 3


def test_resumed_run_ends_where_an_uninterrupted_run_does(tmp_path):
    config = StyleTrainingConfig(steps=8, batch_size=4, adversarial_weight=0.1, adversarial_start=2, learning_rate=5e-3, checkpoint_every=4)
    _, straight, trainer = tiny_setup(config)
    trainer.train()
    expected = adapter_weights(straight)

    _, _, first = tiny_setup(config)
    calls = []
    first.train(tmp_path / "run", should_stop=lambda: len(calls) >= 6 or calls.append(1))  # "killed" after step 6
    _, resumed, second = tiny_setup(config)
    second.train(tmp_path / "run")  # picks up at the step-4 checkpoint
    for name, tensor in adapter_weights(resumed).items():
        torch.testing.assert_close(tensor, expected[name], atol=1e-6, rtol=1e-5)


def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    config = StyleTrainingConfig(steps=6, batch_size=4, adversarial_weight=0.1, adversarial_start=2, learning_rate=5e-3, checkpoint_every=0)
    _, single, trainer = tiny_setup(config)
    trainer.train()
    output = tmp_path / "two.safetensors"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": "29517"}
    subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517", str(HERE / "two_process_worker.py"), str(output)],
        check=True, env=environment, timeout=240, capture_output=True,
    )
    two = load_file(output)
    for name, tensor in single.state_dict().items():
        torch.testing.assert_close(two[name], tensor, atol=1e-5, rtol=1e-4)
    assert any((tensor.abs() > 0).any() for name, tensor in two.items() if ".style_up." in name)
