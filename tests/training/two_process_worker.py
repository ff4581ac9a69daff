"""Run by ``accelerate launch`` in the multi-process test: trains the tiny styles and saves the adapter."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from accelerate import Accelerator  # noqa: E402
from tiny_styles import tiny_setup  # noqa: E402

from engine.training.style_trainer import StyleTrainingConfig  # noqa: E402

if __name__ == "__main__":
    accelerator = Accelerator(cpu=True)
    config = StyleTrainingConfig(steps=6, batch_size=4, adversarial_weight=0.1, adversarial_start=2, learning_rate=5e-3, checkpoint_every=0)
    _, adapter, trainer = tiny_setup(config, accelerator)
    trainer.train()
    if accelerator.is_main_process:
        adapter.save(sys.argv[1])
