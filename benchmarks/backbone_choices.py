"""The measurements behind the embedded model's representation and size
(``python -m benchmarks.backbone_choices``).

Times one forward pass of randomly initialised ``FluxTransformer2DModel`` variants at batch 1:
conditioning by channel concatenation (source patch beside the noisy patch: N tokens) against
sequence concatenation as Kontext does (2N tokens), at 128 and 192 pixels, for three widths,
in fp32 and bf16. All variants are timed interleaved, so ratios are comparable.
"""

from __future__ import annotations

import argparse
import json

import torch
from diffusers import FluxTransformer2DModel

from benchmarks.timing import interleaved_medians

PATCH_FEATURES = 3 * 8 * 8


def variant(heads: int, single_blocks: int, tokens: int, in_channels: int, dtype: torch.dtype):
    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=PATCH_FEATURES, num_layers=2, num_single_layers=single_blocks,
        attention_head_dim=64, num_attention_heads=heads, joint_attention_dim=64, pooled_projection_dim=64, axes_dims_rope=(8, 28, 28),
    ).eval()
    if dtype != torch.float32:
        model.to(dtype)
    inputs = dict(
        hidden_states=torch.randn(1, tokens, in_channels, dtype=dtype), encoder_hidden_states=torch.randn(1, 4, 64, dtype=dtype),
        pooled_projections=torch.randn(1, 64, dtype=dtype), timestep=torch.tensor([0.5], dtype=dtype),
        img_ids=torch.zeros(tokens, 3), txt_ids=torch.zeros(4, 3), return_dict=False,
    )
    parameters = sum(p.numel() for p in model.parameters())

    def forward():
        with torch.inference_mode():
            model(**inputs)

    return forward, parameters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backbone_choices", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args(argv)
    variants, sizes = {}, {}
    for heads, single in ((4, 4), (6, 6)):
        for layout, resolution, tokens, in_channels in (
            ("channels", 128, 256, 2 * PATCH_FEATURES), ("sequence", 128, 512, PATCH_FEATURES), ("channels", 192, 576, 2 * PATCH_FEATURES),
        ):
            for dtype in (torch.float32, torch.bfloat16):
                name = f"width {heads * 64}, {2 + single} blocks, {layout}, {resolution}px, {str(dtype)[6:]}"
                variants[name], sizes[name] = variant(heads, single, tokens, in_channels, dtype)
    seconds = interleaved_medians(variants, arguments.repeats)
    print(json.dumps({name: {"parameters_m": round(sizes[name] / 1e6, 1), "forward_ms": round(value * 1000, 1)} for name, value in seconds.items()}, indent=2))


if __name__ == "__main__":
    main()
