"""The cartoon decomposition: its whole equals the benchmark's cartoon style."""

import numpy as np
from PIL import Image

from benchmarks import styles
from benchmarks.cartoon_parts import parts, psnr


def test_the_whole_style_is_the_benchmarks_cartoon_and_every_part_keeps_the_shape():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8), mode="RGB")
    pieces = parts(styles._to_float(photo))
    assert all(piece.shape == (40, 56, 3) for piece in pieces.values())
    target = styles._to_float(styles.cartoon(photo))
    assert psnr(pieces["the whole style"], target) > 50  # equal up to the target's 8-bit rounding
    assert psnr(pieces["unedited photo"], target) < 30
