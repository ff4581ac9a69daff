"""Reading photos safely and converting between Pillow images and model tensors."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from engine.core.errors import InputError
from engine.core.files import atomic_path


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB Pillow image to a float tensor ``(1, 3, H, W)`` in ``[-1, 1]``."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Float tensors ``(B, 3, H, W)`` in ``[-1, 1]`` to RGB Pillow images (values clamped)."""
    array = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(item.permute(1, 2, 0).cpu().numpy(), mode="RGB") for item in array]


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize with a filter that suits the direction: area averaging down, bicubic up."""
    if image.size == size:
        return image
    shrinking = size[0] * size[1] < image.size[0] * image.size[1]
    return image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)


# Pixels a photo may have before it is refused as a likely decompression bomb: a small file that
# decodes to a huge image. 64 megapixels covers every camera up to 8000 x 8000 while keeping the
# decoded RGB copy near 200 MB; the model works at well under one megapixel anyway. Pillow's own
# limit (Image.MAX_IMAGE_PIXELS, about 89 megapixels) is kept, and its warning is an error here.
MAX_PHOTO_PIXELS = 64_000_000

# Output formats by extension, and the options each is written with. PNG at zlib level 1: as
# lossless as level 6 (Pillow's default), about three times faster to write a 12 MP photo, and
# for a photo with grain about as small (docs/decisions/2026-12-07-fast-png-writes.md).
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
SAVE_OPTIONS: dict[str, dict[str, object]] = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 95}, "WEBP": {"quality": 95}}

WHITE = (255, 255, 255)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
# What Pillow and its plugins raise on damaged or unsupported files (besides OSError, which
# covers truncation and unidentified formats): header parsers use SyntaxError and struct.error,
# decoders ValueError, EOFError, IndexError and zlib.error.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error)


def load_photo(path: str | Path) -> Image.Image:
    """Read any photo Pillow reads as an upright 8-bit RGB image.

    * EXIF orientation is applied (a portrait taken sideways comes out upright).
    * Transparency (RGBA, LA, PA, a palette or colour key with transparency) is composited on white.
    * CMYK, palette, YCbCr, greyscale and 1-bit images are converted to RGB.
    * 16-bit greyscale (I;16, and I holding 0..65535) is scaled to 8 bits, so mid-grey stays
      mid-grey. 32-bit float greyscale (F) is read in the smallest of the ranges 0..1 (the float
      image convention), 0..255 or 0..65535 that holds its largest sample; negative samples are black.
    * A multi-frame file (GIF, APNG, multi-page TIFF) gives its first frame.

    Raises:
        InputError: naming the file, when it is missing, a folder, not an image, truncated or
            damaged, larger than :data:`MAX_PHOTO_PIXELS`, or has samples outside those ranges.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"no photo at {path}; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a photo file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; a bomb is a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(image.size, path)
                # Decode everything now: Image.open reads only the header, and a truncated file
                # fails here (LOAD_TRUNCATED_IMAGES stays off) rather than half-grey later.
                image.load()
                upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(f"{path} is too large to decode safely ({_one_line(error)}); downscale it first") from error
    except Image.UnidentifiedImageError as error:
        raise InputError(f"{path} is not an image Pillow can read (or its header is invalid); give a PNG, JPEG, WebP or TIFF photo") from error
    except PermissionError as error:
        raise InputError(f"cannot read {path}: permission denied; check the file's permissions") from error
    except DECODE_ERRORS as error:
        raise InputError(f"{path} cannot be decoded ({_one_line(error)}); the file is truncated or damaged, save it again") from error
    return _to_rgb(upright, path)


def output_format(path: str | Path) -> str:
    """The Pillow format an output path's extension names (``.png``, ``.jpg``/``.jpeg``, ``.webp``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        known = ", ".join(SAVE_FORMATS)
        raise InputError(f"{path}: cannot tell the image format from {suffix or 'no extension'!r}; end the name in {known}")
    return SAVE_FORMATS[suffix]


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Write ``image`` to ``path`` in the format its extension names, atomically: a failed write
    leaves neither a partial file nor a temporary one. Returns the path written.

    Raises:
        InputError: for an extension that names no supported format.
        OSError: when the file cannot be written (the caller says where).
    """
    image_format = output_format(path)
    with atomic_path(path) as temporary:
        image.save(temporary, format=image_format, **SAVE_OPTIONS[image_format])
    return Path(path)


def _check_size(size: tuple[int, int], path: Path) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise InputError(f"{path} has a zero side ({width}x{height}); give a photo with pixels in it")
    if width * height > MAX_PHOTO_PIXELS:
        limit = MAX_PHOTO_PIXELS / 1e6
        raise InputError(f"{path} is {width}x{height}, above the {limit:g}-megapixel limit that guards against decompression bombs; downscale it first")


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """Any decoded Pillow mode to 8-bit RGB (see :func:`load_photo` for the rules)."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        image = _greyscale_to_8_bit(image, path)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE + (255,)), rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise InputError(f"{path} uses the colour mode {image.mode}, which cannot be converted to RGB; save it as RGB") from error


def _greyscale_to_8_bit(image: Image.Image, path: Path) -> Image.Image:
    """16-bit integer or 32-bit integer/float greyscale to ``L``, scaled rather than clipped
    (Pillow's own conversion clips 16-bit values above 255 to white)."""
    samples = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        if not np.isfinite(samples).all():
            raise InputError(f"{path} holds NaN or infinite float samples; save it as an 8- or 16-bit image")
        top = next((white for white in (1.0, 255.0, 65535.0) if samples.max() <= white), None)
        if top is None:
            raise InputError(f"{path} holds float samples up to {samples.max():g}, beyond 0..65535; save it as an 8- or 16-bit image")
    else:
        top = 65535.0
        if image.mode == "I" and (samples.min() < 0 or samples.max() > top):
            raise InputError(f"{path} holds 32-bit samples outside 0..65535; save it as an 8- or 16-bit image")
    eight_bit = np.clip(np.rint(samples * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(eight_bit)


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (Pillow's messages sometimes span several)."""
    return " ".join(str(error).split()) or type(error).__name__
