"""The embedded model behind the :class:`~engine.models.backbones.base.Backbone` contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from engine.core.assets import BASE_MODEL
from engine.core.configuration import from_dict, to_dict
from engine.core.errors import InputError
from engine.core.files import atomic_path, write_text_atomic
from engine.models.backbones.base import ADAPTABLE_LAYERS, Backbone, Condition, linear_layer_names
from engine.models.backbones.embedded.config import PRESETS, EmbeddedConfig
from engine.models.backbones.embedded.instructions import DEFAULT_ID, GENERATE, IDENTITY, instruction_id
from engine.models.backbones.embedded.model import EmbeddedEditor

ASSETS = BASE_MODEL
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class EmbeddedBackbone(Backbone):
    """Atelier's own pixel-space editing DiT (see :mod:`engine.models.backbones.embedded.model`)."""

    family = "atelier-embedded"  # what config.json's "backbone" says; the name adds the version

    def __init__(self, model: EmbeddedEditor, dtype: torch.dtype = torch.float32) -> None:
        self.model = model.eval().requires_grad_(False)
        if dtype != torch.float32:
            self.model.transformer.to(dtype)
        self.transformer = self.model.transformer
        self.config = model.config
        self.name = self.family if model.config.version == 1 else f"{self.family}-v{model.config.version}"
        self.native_resolution = model.config.native_resolution
        self.resolution_multiple = model.config.patch_size
        self.default_steps = model.config.default_steps
        self.generation_steps = model.config.generation_steps
        self.generation_shift = model.config.generation_shift
        self.min_timestep = model.config.min_timestep
        self.edit_noise_scale = model.config.edit_noise_scale

    @classmethod
    def from_config(cls, config: EmbeddedConfig | str, seed: int = 0, dtype: torch.dtype = torch.float32) -> "EmbeddedBackbone":
        """A randomly initialised model (tests, or the start of pretraining)."""
        if isinstance(config, str):
            config = PRESETS[config]
        torch.manual_seed(seed)
        return cls(EmbeddedEditor(config), dtype=dtype)

    @classmethod
    def from_pretrained(cls, folder: str | Path = ASSETS, dtype: torch.dtype = torch.float32) -> "EmbeddedBackbone":
        """Load ``config.json`` and ``model.safetensors`` from ``folder`` (default: the shipped base)."""
        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
            raise InputError(f"{folder} holds no embedded model ({CONFIG_FILE} and {WEIGHTS_FILE}); run the pretraining script")
        config = from_dict(EmbeddedConfig, json.loads((folder / CONFIG_FILE).read_text())["model"])
        model = EmbeddedEditor(config)
        model.load_state_dict(load_file(folder / WEIGHTS_FILE))
        return cls(model, dtype=dtype)

    def save_pretrained(self, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``config.json`` (the model config plus ``extra`` facts such as training settings)
        and ``model.safetensors`` to ``folder``, each atomically."""
        folder = Path(folder)
        state = {name: tensor.detach().float().contiguous() for name, tensor in self.model.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as temporary:
            save_file(state, temporary, metadata={"format": "pt", "backbone": self.name})
        write_text_atomic(folder / CONFIG_FILE, json.dumps({"backbone": self.family, "model": to_dict(self.config), **(extra or {})}, indent=2))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, torch.float32)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def encode_prompt(self, prompts: list[str]) -> Condition:
        ids = torch.tensor([instruction_id(prompt, self.model.vocabulary) for prompt in prompts], dtype=torch.long)
        return Condition(list(prompts), {"instruction_ids": ids})

    def predict_velocity(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        source: torch.Tensor | None,
        condition: Condition,
        **transformer_kwargs: Any,
    ) -> torch.Tensor:
        ids = condition.tensors["instruction_ids"].to(noisy.device)
        default = self.model.vocabulary.index(IDENTITY if source is not None else GENERATE)
        ids = torch.where(ids == DEFAULT_ID, torch.full_like(ids, default), ids)
        offset = transformer_kwargs.get("grid_offset") or self.sampling_grid_offset(timestep, generation=source is None)
        clean = self.model(noisy, timestep, source, ids, joint_attention_kwargs=transformer_kwargs.get("joint_attention_kwargs"),
                           grid_offset=offset)
        # v = (x_t - x_0) / t; t is floored so the division stays finite near the data end.
        time = timestep.to(noisy.dtype).clamp(min=self.config.min_timestep).view(-1, 1, 1, 1)
        return (noisy - clean) / time

    def sampling_grid_offset(self, timestep: torch.Tensor, generation: bool = False) -> tuple[int, int]:
        """The patch-grid offset of a sampling step: ``(0, 0)`` unless ``config.grid_shift`` (or, for
        a generation, ``config.generation_grid_shift``), else a function of the step's time alone, so
        a seeded edit stays a deterministic function of its photo while successive steps put the
        patch borders in different places."""
        if not (self.config.grid_shift or (generation and self.config.generation_grid_shift)):
            return (0, 0)
        index = int(round(float(timestep.flatten()[0]) * 1000))
        patch = self.config.patch_size
        return ((index * 5) % patch, (index * 3) % patch)

    def prompt_choices(self) -> list[str]:
        """The edit instructions (generation has no photo, so it is not an edit choice)."""
        return [instruction for instruction in self.model.vocabulary if instruction != GENERATE]

    def adapter_targets(self) -> list[str]:
        return linear_layer_names(self.transformer, ADAPTABLE_LAYERS)
