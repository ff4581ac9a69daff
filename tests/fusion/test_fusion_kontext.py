"""Fusion on the tiny FLUX.1 Kontext pipeline: text-to-image generation and an edit, with the
switch driven by the sampler's real (shifted) schedule, and the model restored afterwards."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from engine.fusion import FusionConfig, fuse, plan_fusion, render_fusion  # noqa: E402
from engine.models.backbones.registry import load_backbone  # noqa: E402
from engine.models.editing import generate_image  # noqa: E402
from engine.models.sampling.sampler import SamplerSettings  # noqa: E402
from tests.fusion.fusion_fixtures import assert_unchanged, pixels, random_lora, weight_snapshot  # noqa: E402
from tests.models.backbones.kontext_fixtures import TINY_RESOLUTION, tiny_kontext_folder  # noqa: E402, F401 - fixture

pytestmark = pytest.mark.timeout(180)
PROMPT = "a red cup on a table"


@pytest.fixture(scope="module")
def backbone(tiny_kontext_folder):  # noqa: F811 - the imported fixture
    return load_backbone(str(tiny_kontext_folder))


@pytest.fixture(scope="module")
def loras(backbone):
    return random_lora(backbone, seed=1, rank=2, magnitude=0.4), random_lora(backbone, seed=2, rank=3, magnitude=0.4)


def test_generation_with_est_fusion_on_kontext(backbone, loras):
    snapshot = weight_snapshot(backbone)
    settings = SamplerSettings(steps=4, seed=2)
    base = generate_image(backbone, (TINY_RESOLUTION, TINY_RESOLUTION), settings, prompt=PROMPT)
    plan = plan_fusion(backbone, *loras, FusionConfig(method="est"))
    previews = []
    result = render_fusion(backbone, plan, settings, PROMPT, callback=lambda step, total, preview: previews.append((step, total)))
    assert result.image.size == (TINY_RESOLUTION, TINY_RESOLUTION)
    assert previews == [(step, 12) for step in range(1, 13)]  # two beta samples and the fused run
    # FLUX's sigmas are shifted; tau is still the fraction of the steps done.
    assert [step.fraction_done for step in result.steps] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert 0.0 < result.beta <= 2.0
    assert not np.array_equal(pixels(result.image), pixels(base))
    assert_unchanged(backbone, snapshot)
    again = generate_image(backbone, (TINY_RESOLUTION, TINY_RESOLUTION), settings, prompt=PROMPT)
    assert np.array_equal(pixels(again), pixels(base))


@pytest.mark.parametrize("method", ["klora", "merge"])
def test_edit_with_fusion_on_kontext(backbone, loras, method):
    snapshot = weight_snapshot(backbone)
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    image = fuse(backbone, *loras, FusionConfig(method=method), prompt="make it blue", photo=photo,
                 settings=SamplerSettings(steps=3, seed=1))
    assert image.size == photo.size  # edits come back at the photo's own size
    assert_unchanged(backbone, snapshot)
