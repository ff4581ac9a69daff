"""Training crops of a subject's few photos: random resized crops and flips.

With 3 to 10 photos every view is seen hundreds of times, so each sample is a random square crop
covering ``min_crop`` to all of a photo's short side, at a random place, resized to the
backbone's native square, and flipped left-right half of the time. The model then sees the
subject at several scales and positions rather than memorising a few fixed frames (the
augmentation DreamBooth trainers use, e.g. diffusers' ``train_dreambooth_lora``'s random crop and
flip). Generation works at the native square, so training crops are square too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image

from engine.core.imaging import resize_to, to_tensor


def prepare_photos(images: list[Image.Image], side: int, min_crop: float) -> list[torch.Tensor]:
    """Each photo as a tensor ``(3, H, W)`` in ``[-1, 1]`` whose short side is ``side / min_crop``
    pixels, so even the smallest crop is at least ``side`` pixels and is only ever shrunk to it."""
    short_target = math.ceil(side / min_crop)
    tensors = []
    for image in images:
        scale = short_target / min(image.size)
        size = (max(short_target, round(image.width * scale)), max(short_target, round(image.height * scale)))
        tensors.append(to_tensor(resize_to(image, size))[0])
    return tensors


def sample_crops(photos: list[torch.Tensor], side: int, batch_size: int, min_crop: float, flip: bool,
                 generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` augmented crops ``(B, 3, side, side)`` in ``[-1, 1]``, drawn from ``generator``."""
    crops = []
    for _ in range(batch_size):
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        short = min(photo.shape[1], photo.shape[2])
        fraction = min_crop + (1.0 - min_crop) * float(torch.rand((), generator=generator))
        crop_side = max(side, round(short * fraction))
        top = int(torch.randint(photo.shape[1] - crop_side + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[2] - crop_side + 1, (1,), generator=generator))
        crop = photo[:, top : top + crop_side, left : left + crop_side].unsqueeze(0)
        if crop_side != side:
            # Antialiased shrinking, as Pillow's resize would do, so small crops do not alias.
            crop = F.interpolate(crop, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        mirrored = float(torch.rand((), generator=generator)) < 0.5
        crops.append(crop.flip(-1) if flip and mirrored else crop)
    return torch.cat(crops).clamp(-1, 1)


def centre_square(image: Image.Image, side: int) -> Image.Image:
    """The largest centred square of ``image``, resized to ``side`` (for previews beside a sample)."""
    short = min(image.size)
    left, top = (image.width - short) // 2, (image.height - short) // 2
    return resize_to(image.crop((left, top, left + short, top + short)), (side, side))
