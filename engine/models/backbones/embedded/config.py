"""Configuration and presets of the embedded editing DiT."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.configuration import option, require


@dataclass
class EmbeddedConfig:
    """Size and representation of the embedded model (see ``assets/base/MODEL_CARD.md``)."""

    version: int = option(1, "Model version. Styles and LoRAs record the backbone's name, atelier-embedded for 1 and "
                              "atelier-embedded-vN after, so each is only used with the model it was trained on.")
    native_resolution: int = option(128, "Side of the square whose area the model works at, in pixels.")
    patch_size: int = option(8, "Pixels per side of a patch; one patch is one token.")
    num_double_blocks: int = option(2, "Double-stream (MMDiT) blocks: separate image and instruction weights.")
    num_single_blocks: int = option(4, "Single-stream blocks over the joined sequence.")
    num_heads: int = option(4, "Attention heads per block.")
    head_dim: int = option(64, "Channels per attention head; the width is num_heads * head_dim.")
    instruction_tokens: int = option(4, "Learned tokens per instruction, the model's 'text' sequence.")
    instruction_dim: int = option(64, "Width of an instruction token before the context embedder.")
    min_timestep: float = option(0.05, "Smallest t the velocity is divided by when converting the x_0 prediction.")
    pixel_head_channels: int = option(0, "Channels per pixel the transformer unpatchifies into a convolutional pixel head "
                                           "(version 2); 0 maps each token linearly to its own patch (version 1).")
    detail_bands: int = option(0, "Frequency bands of the source whose per-pixel gains the transformer predicts (version 3, "
                                   "engine/models/backbones/embedded/detail_bands.py); 0: none.")
    detail_guides: bool = option(False, "Guide each band's gains by its local energy and give its dark side gains of its own "
                                         "(version 4, four coefficient maps a band), so a gain can differ between a patch's flat "
                                         "and edge pixels.")
    detail_gain_scale: float = option(10.0, "Factor on the transformer's band-gain outputs: the gains' zero-initialised rows "
                                            "then learn this many times faster under Adam, as a learning-rate multiplier would.")
    restoration_edits: bool = option(False, "Know the restoration instructions (version 3: 'denoise'), trained on degraded "
                                             "photos; a model grown into one with them keeps its other instructions.")
    pixel_head_hidden: int = option(32, "Hidden channels of the pixel head's 3x3 convolutions.")
    grid_shift: bool = option(False, "Move the patch grid by a few pixels at every sampling step (a different offset per "
                                     "step, fixed by the timestep), so patch borders do not stay in one place.")
    generation_grid_shift: bool = option(False, "Move the patch grid at every step of a generation only (version 5): with no "
                                                "photo to anchor it, a still grid draws a mosaic of squares; edits keep it "
                                                "still, so an identity edit stays exact.")
    default_steps: int = option(8, "Euler steps of an edit when the caller gives none.")
    generation_steps: int = option(0, "Euler steps of a generation (no photo) when the caller gives none; 0 uses "
                                      "default_steps. A generation starts from pure noise, an edit from the photo.")
    generation_shift: float = option(1.0, "Timestep shift of a generation's schedule (1: evenly spaced steps; above 1 "
                                          "spends more of them at high noise, where the layout and colours are drawn).")
    edit_noise_scale: float = option(0.0, "Scale of an edit's starting noise when the caller gives none: 0 starts from zero "
                                          "noise, so an edit is a deterministic function of its photo (BENCHMARKS.md).")

    def __post_init__(self) -> None:
        require(self.version >= 1, "version must be at least 1")
        require(self.native_resolution % self.patch_size == 0, "native_resolution must be a multiple of patch_size")
        require(self.patch_size >= 1 and self.num_heads >= 1, "patch_size and num_heads must be at least 1")
        require(self.head_dim % 4 == 0 and self.head_dim >= 8, "head_dim must be a multiple of 4 and at least 8")
        require(self.num_double_blocks + self.num_single_blocks >= 1, "the model needs at least one block")
        require(0.0 < self.min_timestep < 0.5, "min_timestep must lie in (0, 0.5)")
        require(self.pixel_head_channels == 0 or self.pixel_head_channels >= 3, "pixel_head_channels must be 0 or at least 3")
        require(0 <= self.detail_bands <= 3, "detail_bands must lie in 0..3")
        require(not self.detail_guides or self.detail_bands > 0, "detail_guides needs detail_bands above 0")
        require(self.detail_gain_scale > 0, "detail_gain_scale must be above 0")
        require(self.pixel_head_hidden >= 1, "pixel_head_hidden must be at least 1")
        require(self.default_steps >= 1, "default_steps must be at least 1")
        require(self.generation_steps >= 0, "generation_steps must be 0 (default_steps) or more")
        require(self.generation_shift > 0, "generation_shift must be above 0")
        require(0.0 <= self.edit_noise_scale <= 1.0, "edit_noise_scale must lie in [0, 1]")

    @property
    def detail_channels(self) -> int:
        """Output channels per pixel the band gains take: one a band, or four with guides."""
        return self.detail_bands * (4 if self.detail_guides else 1)

    @property
    def rope_axes(self) -> tuple[int, int, int]:
        """RoPE channels per axis (unused index axis, row, column); they sum to ``head_dim``, as
        FLUX's (16, 56, 56) sum to 128."""
        spatial = (self.head_dim * 7 // 16) // 2 * 2
        return (self.head_dim - 2 * spatial, spatial, spatial)


PRESETS: dict[str, EmbeddedConfig] = {
    # For tests: a forward pass takes milliseconds.
    "tiny": EmbeddedConfig(native_resolution=32, patch_size=8, num_double_blocks=1, num_single_blocks=1,
                           num_heads=2, head_dim=16, instruction_tokens=2, instruction_dim=16, default_steps=4),
    # Version 2's recipe at the tiny size: tiny grown by a block and a pixel head, grid shift on.
    "tiny-v2": EmbeddedConfig(native_resolution=32, patch_size=8, num_double_blocks=1, num_single_blocks=2,
                              num_heads=2, head_dim=16, instruction_tokens=2, instruction_dim=16, default_steps=4,
                              version=2, pixel_head_channels=4, pixel_head_hidden=8, grid_shift=True),
    "tiny-v3": EmbeddedConfig(native_resolution=32, patch_size=8, num_double_blocks=1, num_single_blocks=1,
                              num_heads=2, head_dim=16, instruction_tokens=2, instruction_dim=16, default_steps=4,
                              version=3, detail_bands=3, restoration_edits=True),
    "tiny-v4": EmbeddedConfig(native_resolution=32, patch_size=8, num_double_blocks=1, num_single_blocks=1,
                              num_heads=2, head_dim=16, instruction_tokens=2, instruction_dim=16, default_steps=4,
                              version=4, detail_bands=3, detail_guides=True, restoration_edits=True),
    "tiny-v5": EmbeddedConfig(native_resolution=32, patch_size=8, num_double_blocks=1, num_single_blocks=1,
                              num_heads=2, head_dim=16, instruction_tokens=2, instruction_dim=16, default_steps=4,
                              version=5, detail_bands=3, detail_guides=True, restoration_edits=True,
                              generation_grid_shift=True),
    # Version 1, trained from scratch (MODEL_CARD.md's history).
    "small": EmbeddedConfig(),
    # Version 2: version 1 grown by two single-stream blocks and a convolutional pixel head.
    "small-v2": EmbeddedConfig(version=2, num_single_blocks=6, pixel_head_channels=8, grid_shift=True),
    # Version 3: version 1 with the detail-band head (three bands) and the denoise instruction.
    "small-v3": EmbeddedConfig(version=3, detail_bands=3, restoration_edits=True),
    # Version 4: version 3 with guided band gains (grown from version 3, it starts as exactly version 3), generating
    # with 32 steps at shift 6 (docs/decisions/2026-12-07-guided-detail-gains.md).
    "small-v4": EmbeddedConfig(version=4, detail_bands=3, detail_guides=True, restoration_edits=True,
                               generation_steps=32, generation_shift=6.0),
    # Version 5: version 4 trained on with the patch grid moved per sample, on the photo pool, generating with the
    # grid moved per step (docs/decisions/2026-12-07-version-5.md).
    "small-v5": EmbeddedConfig(version=5, detail_bands=3, detail_guides=True, restoration_edits=True,
                               generation_steps=32, generation_shift=6.0, generation_grid_shift=True),
    # Version 3's ablation: the denoise instruction without the detail-band head.
    "small-v3-no-bands": EmbeddedConfig(version=3, restoration_edits=True),
    # Version 2's ablation: the growth and the grid shift without the pixel head.
    "small-v2-linear": EmbeddedConfig(version=2, num_single_blocks=6),
    # A larger base for a machine with more time: same recipe, more width and depth.
    "base": EmbeddedConfig(native_resolution=192, num_double_blocks=2, num_single_blocks=6, num_heads=6),
}
