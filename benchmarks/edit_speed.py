"""Edit latency, forward-pass throughput against the CPU's peak, and peak memory of an edit
(``python -m benchmarks.edit_speed``); the figures in BENCHMARKS.md.

* Latency: a whole ``edit_photo`` call (resize, sampling, decode) at the native resolution and
  default steps, fp32 and bf16 interleaved; medians.
* Throughput: FLOPs of one transformer forward (``torch.utils.flop_counter``) divided by its
  median time, as a fraction of two peaks: the *theoretical* one from ``--peak-gflops`` (default:
  2 cores x 3 GHz x 32 fp32 FLOP/cycle, two 256-bit FMA pipes, AVX-512 split in halves as on AMD
  Zen 4) and the *achievable* one, measured here as a large fp32 matrix product.
* Memory: peak resident set size of a fresh process that loads the model and runs one edit,
  and of one that only loads it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import interleaved_medians
from engine.core.imaging import to_pil
from engine.models.backbones.registry import load_backbone
from engine.models.editing import edit_photo
from engine.models.sampling.sampler import SamplerSettings

THEORETICAL_PEAK_GFLOPS = 2 * 3.0 * 32


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    left, right = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = interleaved_medians({"mm": lambda: torch.mm(left, right)}, repeats)["mm"]
    return 2 * size**3 / seconds / 1e9


def forward_flops_and_time(backbone, repeats: int) -> tuple[int, float]:
    size = backbone.native_resolution
    noisy = torch.randn(1, 3, size, size)
    condition = backbone.encode_prompt([""])
    step = torch.tensor([0.5])
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            backbone.predict_velocity(noisy, step, noisy, condition)
        seconds = interleaved_medians({"forward": lambda: backbone.predict_velocity(noisy, step, noisy, condition)}, repeats)
    return counter.get_total_flops(), seconds["forward"]


def peak_memory_mb(model: str, edit: bool) -> float:
    """Peak RSS of a fresh process loading ``model`` (and running one edit if ``edit``)."""
    code = (
        "import resource, torch; from PIL import Image; from engine.models.backbones.registry import load_backbone;"
        "from engine.models.editing import edit_photo; torch.set_num_threads(2);"
        f"b = load_backbone({model!r});"
        + ("edit_photo(b, Image.new('RGB', (1600, 1200), (120, 90, 60)));" if edit else "")
        + "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(output.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edit_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="Backbone to measure (default: the shipped model).")
    parser.add_argument("--repeats", type=int, default=10, help="Interleaved repeats per variant.")
    parser.add_argument("--peak-gflops", type=float, default=THEORETICAL_PEAK_GFLOPS, help="Theoretical fp32 peak of the CPU.")
    arguments = parser.parse_args(argv)

    fp32 = load_backbone(arguments.model)
    bf16 = load_backbone(arguments.model, dtype=torch.bfloat16)
    photo = to_pil(torch.rand(1, 3, fp32.native_resolution, fp32.native_resolution) * 2 - 1)[0]
    settings = SamplerSettings()
    latency = interleaved_medians(
        {"fp32": lambda: edit_photo(fp32, photo, settings), "bf16": lambda: edit_photo(bf16, photo, settings)},
        arguments.repeats,
    )
    flops, forward_fp32 = forward_flops_and_time(fp32, arguments.repeats)
    _, forward_bf16 = forward_flops_and_time(bf16, arguments.repeats)
    achievable = matmul_gflops(torch.float32)
    achievable_bf16 = matmul_gflops(torch.bfloat16)
    results = {
        "model": arguments.model,
        "native_resolution": fp32.native_resolution,
        "default_steps": fp32.default_steps,
        "edit_seconds": {name: round(value, 3) for name, value in latency.items()},
        "bf16_speedup": round(latency["fp32"] / latency["bf16"], 2),
        "forward_gflop": round(flops / 1e9, 3),
        "forward_seconds": {"fp32": round(forward_fp32, 4), "bf16": round(forward_bf16, 4)},
        "forward_gflops": {"fp32": round(flops / forward_fp32 / 1e9, 1), "bf16": round(flops / forward_bf16 / 1e9, 1)},
        "peak_gflops": {"theoretical_fp32": arguments.peak_gflops, "matmul_fp32": round(achievable, 1), "matmul_bf16": round(achievable_bf16, 1)},
        "fraction_of_theoretical_fp32_peak": round(flops / forward_fp32 / 1e9 / arguments.peak_gflops, 3),
        "fraction_of_matmul_fp32_peak": round(flops / forward_fp32 / 1e9 / achievable, 3),
        "peak_rss_mb": {"load_only": round(peak_memory_mb(arguments.model, False), 1),
                        "load_and_edit_1600x1200_photo": round(peak_memory_mb(arguments.model, True), 1)},
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
