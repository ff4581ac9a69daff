"""Safe photo loading, saving and the tensor conversions of engine.core.imaging."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.core import imaging
from engine.core.errors import InputError
from engine.core.imaging import load_photo, output_format, resize_to, save_image, to_pil, to_tensor

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def near(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected))


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """An RGB image whose left half is ``left`` and right half ``right``."""
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def assert_names_file(error: pytest.ExceptionInfo, path: Path) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message


# --- conversions of the existing helpers ----------------------------------------------------------

def test_tensor_round_trip_is_exact() -> None:
    image = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3)
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 4, 6) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(np.asarray(to_pil(tensor)[0]), np.asarray(image))
    assert np.asarray(to_pil(torch.full((1, 3, 2, 2), 5.0))[0]).min() == 255  # clamped


def test_resize_to_changes_size_only_when_needed() -> None:
    image = Image.new("RGB", (40, 20))
    assert resize_to(image, (40, 20)) is image
    assert resize_to(image, (20, 10)).size == (20, 10)
    assert resize_to(image, (80, 40)).size == (80, 40)


# --- load_photo: orientation and colour modes -----------------------------------------------------

def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40x20 (left red, right blue) with orientation 6: shown rotated 90 degrees clockwise,
    # so upright it is 20x40 with red on top.
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    halves((40, 20), RED, BLUE).save(path, quality=95, exif=exif.tobytes())
    photo = load_photo(path)
    assert photo.mode == "RGB" and photo.size == (20, 40)
    assert near(photo.getpixel((10, 5)), RED, 40)
    assert near(photo.getpixel((10, 35)), BLUE, 40)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"alpha-{mode}.png"
    image = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 0, 255))
    image.putpixel((1, 0), (0, 0, 0, 128))
    image.convert(mode).save(path)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((3, 1)) == WHITE  # fully transparent: white, not black
    assert photo.getpixel((0, 0)) == (0, 0, 0)
    assert near(photo.getpixel((1, 0)), (127, 127, 127), 2)  # half transparent black: grey


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    image = Image.new("P", (4, 2), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.save(path, transparency=0)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((0, 0)) == RED
    assert photo.getpixel((3, 1)) == WHITE


def test_palette_without_transparency_keeps_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "palette.gif"
    halves((8, 4), RED, BLUE).quantize(colors=4).save(path)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((0, 0)) == RED and photo.getpixel((7, 3)) == BLUE


def test_cmyk_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "print.tif"
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(path)  # no cyan/key, full magenta+yellow: red
    photo = load_photo(path)
    assert photo.mode == "RGB" and photo.size == (6, 4)
    assert photo.getpixel((0, 0)) == RED


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    samples = np.array([[0, 32768, 65535, 257 * 64]], dtype=np.uint16)
    Image.fromarray(samples).save(path)
    assert Image.open(path).mode.startswith("I;16")
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert [photo.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 64]
    assert photo.getpixel((1, 0)) == (128, 128, 128)  # mid-grey stays mid-grey, not white


def test_32_bit_integer_grey_in_16_bit_range_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert [load_photo(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_32_bit_integer_grey_out_of_range_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(path)
    with pytest.raises(InputError, match="outside 0..65535") as error:
        load_photo(path)
    assert_names_file(error, path)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [([0.0, 0.5, 1.0], [0, 128, 255]), ([0.0, 128.0, 255.0], [0, 128, 255]), ([-0.1, 0.25, 0.75], [0, 64, 191])],
    ids=["unit-range", "byte-range", "negative-is-black"],
)
def test_float_grey_is_scaled_by_its_range(tmp_path: Path, samples: list[float], expected: list[int]) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([samples], dtype=np.float32)).save(path)
    assert Image.open(path).mode == "F"
    assert [load_photo(path).getpixel((x, 0))[0] for x in range(3)] == expected


def test_float_grey_with_nan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.tif"
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(path)
    with pytest.raises(InputError, match="NaN") as error:
        load_photo(path)
    assert_names_file(error, path)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel_become_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"grey-{mode}.png"
    halves((8, 4), (0, 0, 0), WHITE).convert(mode).save(path)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((0, 0)) == (0, 0, 0) and photo.getpixel((7, 0)) == WHITE


def test_multi_frame_gif_gives_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "animated.gif"
    frames = [Image.new("RGB", (6, 4), colour) for colour in (RED, BLUE, (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(path).n_frames == 3
    photo = load_photo(path)
    assert photo.mode == "RGB" and photo.size == (6, 4)
    assert photo.getpixel((0, 0)) == RED
    assert getattr(photo, "n_frames", 1) == 1


def test_loaded_photo_does_not_keep_the_file_open(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4), RED).save(path)
    photo = load_photo(path)
    path.unlink()
    assert photo.getpixel((3, 3)) == RED


# --- load_photo: refusals -------------------------------------------------------------------------

def test_missing_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.png"
    with pytest.raises(InputError, match="no photo at") as error:
        load_photo(path)
    assert_names_file(error, path)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder") as error:
        load_photo(tmp_path)
    assert_names_file(error, tmp_path)


def test_non_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(b"these are not the pixels you are looking for\n" * 20)
    with pytest.raises(InputError, match="not an image") as error:
        load_photo(path)
    assert_names_file(error, path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_is_refused(tmp_path: Path, suffix: str) -> None:
    whole = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(whole, format="PNG" if suffix == ".png" else "JPEG")
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(InputError, match="truncated") as error:
        load_photo(path)
    assert_names_file(error, path)


def test_image_above_the_module_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setattr(imaging, "MAX_PHOTO_PIXELS", 399)
    with pytest.raises(InputError, match="megapixel limit") as error:
        load_photo(path)
    assert_names_file(error, path)
    monkeypatch.setattr(imaging, "MAX_PHOTO_PIXELS", 400)
    assert load_photo(path).size == (20, 20)


@pytest.mark.parametrize("pillow_limit", [300, 150], ids=["pillow-warning", "pillow-error"])
def test_pillow_decompression_bomb_checks_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow_limit: int) -> None:
    # 400 pixels: above 300 Pillow only warns, above 2 * 150 it raises; both must be refused.
    path = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    with pytest.raises(InputError, match="too large to decode safely") as error:
        load_photo(path)
    assert_names_file(error, path)


def test_zero_sided_image_is_refused(tmp_path: Path) -> None:
    # Pillow cannot write an empty image, so build a PNG whose header says 0 x 5.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    path = tmp_path / "empty.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(InputError) as error:
        load_photo(path)
    assert_names_file(error, path)


def test_zero_side_check_names_the_file() -> None:
    # Pillow itself refuses zero sides today; the check guards plugins that would not.
    with pytest.raises(InputError, match=r"zero side \(0x7\)") as error:
        imaging._check_size((0, 7), Path("flat.png"))
    assert "flat.png" in str(error.value)


# --- save_image -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "image_format"), [("a.png", "PNG"), ("b.jpg", "JPEG"), ("c.JPEG", "JPEG"), ("d.webp", "WEBP")])
def test_save_image_picks_the_format_from_the_extension(tmp_path: Path, name: str, image_format: str) -> None:
    path = tmp_path / "nested" / name
    assert save_image(halves((16, 8), RED, BLUE), path) == path
    with Image.open(path) as written:
        assert written.format == image_format and written.size == (16, 8)
        assert near(written.convert("RGB").getpixel((1, 1)), RED, 20)
    assert sorted(p.name for p in path.parent.iterdir()) == [name]


def test_png_is_written_losslessly(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)  # noise: nothing to smooth away
    path = save_image(Image.fromarray(pixels, mode="RGB"), tmp_path / "noise.png")
    with Image.open(path) as written:
        assert np.array_equal(np.asarray(written.convert("RGB")), pixels)


@pytest.mark.parametrize("name", ["out.gif", "out.txt", "out"])
def test_unknown_extension_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match=r"\.png, \.jpg, \.jpeg, \.webp") as error:
        save_image(Image.new("RGB", (4, 4)), tmp_path / name)
    assert_names_file(error, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError):
        output_format(name)


def test_failing_save_leaves_neither_target_nor_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"

    def save_half_then_fail(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG half of it")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_image(Image.new("RGB", (4, 4)), target)
    assert list(tmp_path.iterdir()) == []


def test_failing_save_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jpg"
    save_image(Image.new("RGB", (4, 4), RED), target)
    before = target.read_bytes()
    with pytest.raises(OSError):
        save_image(Image.new("RGBA", (4, 4)), target)  # JPEG has no alpha: Pillow refuses mid-save
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]
