"""Building the bad (and unusual but valid) inputs of the reliability suite
(:mod:`benchmarks.reliability`): images, zips, LoRA files and pair folders, each written to a
path the suite gives."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file


def gradient(size: tuple[int, int] = (48, 32)) -> Image.Image:
    return Image.linear_gradient("L").resize(size).convert("RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A few-hundred-byte PNG whose header declares ``width x height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b""))
    return path


def saved(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, **options)
    return path


def truncated(path: Path, source: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def corrupt(path: Path, source: Path) -> Path:
    """``source`` with the middle third of its bytes overwritten by random ones."""
    data = bytearray(source.read_bytes())
    start, stop = len(data) // 3, 2 * len(data) // 3
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def exif_rotated(path: Path) -> Path:
    """A 48x32 JPEG whose EXIF orientation (6) says: rotate 90 degrees to show it upright (32x48)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    gradient((48, 32)).save(path, exif=exif.tobytes())
    return path


def zip_with(path: Path, members: list[tuple[str, bytes]], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            info.create_system = 3
            archive.writestr(info, "/etc/passwd")
    return path


def png_bytes(colour: tuple[int, int, int] = (90, 40, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def lora_tensors(backbone, seed: int = 0, rank: int = 2) -> dict[str, torch.Tensor]:
    """A diffusers/peft-keyed LoRA with small random factors on two layers of ``backbone``."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(backbone.transformer.named_modules())
    tensors = {}
    for name in ("transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.proj_out"):
        linear = modules[name]
        tensors[f"transformer.{name}.lora_A.weight"] = 0.3 * torch.randn(rank, linear.in_features, generator=generator)
        tensors[f"transformer.{name}.lora_B.weight"] = 0.3 * torch.randn(linear.out_features, rank, generator=generator)
    return tensors


def lora_file(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(path))
    return path


def pairs_folder(folder: Path, befores: list[str], afters: list[str]) -> Path:
    for side, names in (("before", befores), ("after", afters)):
        (folder / side).mkdir(parents=True, exist_ok=True)
        for name in names:
            suffix = Path(name).suffix.lower()
            Image.new("RGB", (24, 16), (90, 40, 20)).save(folder / side / name, format="JPEG" if suffix == ".jpg" else "PNG")
    return folder


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
