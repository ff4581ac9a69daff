"""The five styles of the few-shot benchmark: deterministic effects that turn a photo into its
"after" image.

Each style is a function ``PIL RGB -> PIL RGB`` of the same size, written with numpy, scipy and
scikit-image only, so the benchmark rebuilds identically on any machine. The set mixes global
changes (a tone or colour mapping applied to every pixel alike) with local ones (lines, flat
regions, brush texture), and none resembles the base model's pretraining edits
(:mod:`engine.training.generic_edits`: exposure, contrast, white balance, saturation, grey, blur,
sharpen), so every style is new to the model:

* ``ink sketch`` (local): XDoG-style lines (Winnemöller et al. 2012) and a grey wash in the
  shadows, in dark ink on cream paper.
* ``cartoon`` (local): bilateral smoothing, a k-means colour palette and difference-of-Gaussians
  outlines (Winnemöller et al. 2006): flat regions with drawn edges.
* ``vintage`` (global): sepia toning, a faded (matte) tone curve and an oval vignette.
* ``teal-orange grade`` (global): split toning, shadows to teal and highlights to orange, with a
  luma S-curve: the blockbuster colour grade.
* ``oil paint`` (local): a generalised Kuwahara filter (Papari et al. 2007) for flat paint
  patches, brush streaks along the edges and an emboss relief for the raised paint.

Resolution: spatial parameters are given in pixels at a ``REFERENCE_SIDE`` image and scaled by
``sqrt(width * height) / REFERENCE_SIDE``, so a style looks alike at the model's ~128 px working
size and at 512 px. Sizes that round to under a pixel are kept at the smallest meaningful value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from PIL import Image
from scipy import ndimage

REFERENCE_SIDE = 256
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class StyleSpec:
    """A benchmark style. ``kind`` is ``global`` when each output pixel depends on its input pixel
    and position only (tone curves, colour grades, a vignette) and ``local`` when it depends on
    the neighbourhood (lines, flat regions, strokes)."""

    name: str
    description: str
    function: Callable[[Image.Image], Image.Image]
    kind: Literal["global", "local"]

    def __call__(self, image: Image.Image) -> Image.Image:
        return self.function(image)


# -- shared helpers -------------------------------------------------------------------------

def _to_float(image: Image.Image) -> np.ndarray:
    """RGB image to ``(H, W, 3)`` float32 in ``[0, 1]``."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8), mode="RGB")


def _luma(array: np.ndarray) -> np.ndarray:
    return array @ LUMA_WEIGHTS


def size_scale(height: int, width: int) -> float:
    """How many pixels of this image one pixel of a ``REFERENCE_SIDE``-square image spans."""
    return math.sqrt(height * width) / REFERENCE_SIDE


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# -- ink sketch -------------------------------------------------------------------------------

INK = np.array([0.13, 0.12, 0.16], dtype=np.float32)
PAPER = np.array([0.97, 0.95, 0.89], dtype=np.float32)


def dog_lines(luma: np.ndarray, scale: float) -> np.ndarray:
    """Soft line map in ``[0, 1]`` (0 = full ink): difference of Gaussians ``G_s - G_1.6s`` of the
    luma, soft-thresholded as in XDoG (Winnemöller, Kyprianidis & Olsen 2012, "XDoG: An eXtended
    difference-of-Gaussians compendium") by ``1 + tanh(phi (DoG + tau))``: ink on the dark side
    of every edge, none on flat areas however dark."""
    # Under ~0.6 px the inner Gaussian no longer smooths and the lines turn to pixel noise.
    sigma = max(0.6, 0.9 * scale)
    dog = ndimage.gaussian_filter(luma, sigma, mode="reflect") - ndimage.gaussian_filter(luma, 1.6 * sigma, mode="reflect")
    tau, phi = 0.02, 60.0
    return np.clip(1.0 + np.tanh(phi * (dog + tau)), 0.0, 1.0)


def ink_sketch(image: Image.Image) -> Image.Image:
    """Pen and wash: :func:`dog_lines` of the luma (stretched between its 1st and 99th
    percentiles, so dim and bright photos are drawn alike) in dark ink, times a grey wash of up
    to 35 % in the darkest areas, on cream paper. Dark regions stay readable as grey instead of
    filling with ink."""
    array = _to_float(image)
    scale = size_scale(*array.shape[:2])
    luma = _luma(array)
    low, high = np.percentile(luma, [1, 99])
    # A floor on the range keeps a near-flat image from having its noise stretched into lines.
    luma = np.clip((luma - low) / max(high - low, 0.05), 0.0, 1.0)
    soft_luma = ndimage.gaussian_filter(luma, max(0.6, 0.9 * scale), mode="reflect")
    wash = 1.0 - 0.35 * _smoothstep((0.4 - soft_luma) / 0.3)
    tone = (dog_lines(luma, scale) * wash)[..., None]
    return _to_image(INK + (PAPER - INK) * tone)


# -- cartoon ----------------------------------------------------------------------------------

CARTOON_COLOURS = 16
CARTOON_OUTLINE = np.float32(0.08)


def palette_quantise(array: np.ndarray, colours: int, iterations: int = 10) -> np.ndarray:
    """Each pixel replaced by its centre after ``iterations`` of Lloyd's k-means (Lloyd 1982) in
    RGB. The centres start at the means of ``colours`` equal groups of pixels sorted by luma, so
    the result depends on the image alone (no random restarts)."""
    pixels = array.reshape(-1, 3)
    colours = min(colours, len(pixels))
    order = np.argsort(pixels @ LUMA_WEIGHTS, kind="stable")
    centres = np.stack([pixels[group].mean(axis=0) for group in np.array_split(order, colours)])

    def nearest(centres: np.ndarray) -> np.ndarray:
        # |p - c|^2 without the |p|^2 term, which is the same for every centre.
        return ((centres**2).sum(axis=1)[None, :] - 2.0 * pixels @ centres.T).argmin(axis=1)

    for _ in range(iterations):
        labels = nearest(centres)
        for index in range(colours):
            members = labels == index
            if members.any():  # an emptied cluster keeps its old centre
                centres[index] = pixels[members].mean(axis=0)
    return centres[nearest(centres)].reshape(array.shape)


def cartoon(image: Image.Image) -> Image.Image:
    """Cel shading after Winnemöller, Olsen & Gooch (2006), "Real-time video abstraction": a
    bilateral filter flattens texture but keeps edges (Tomasi & Manduchi 1998), a k-means palette
    of ``CARTOON_COLOURS`` colours makes flat regions, and :func:`dog_lines` of the original luma
    draw near-black outlines over them, so eyes and contours survive the flattening."""
    from skimage.restoration import denoise_bilateral

    array = _to_float(image)
    scale = size_scale(*array.shape[:2])
    smooth = denoise_bilateral(array, sigma_color=0.1, sigma_spatial=max(1.0, 2.0 * scale), channel_axis=-1,
                               mode="reflect").astype(np.float32)
    flat = palette_quantise(smooth, CARTOON_COLOURS)
    uninked = dog_lines(_luma(array), scale)[..., None]
    return _to_image(CARTOON_OUTLINE + (flat - CARTOON_OUTLINE) * uninked)


# -- vintage ----------------------------------------------------------------------------------

# Sepia toning matrix (rows: output R, G, B), the one Microsoft's and W3C's filter effects use.
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


def vintage(image: Image.Image) -> Image.Image:
    """An old print: 85 % sepia toning (W3C filter-effects matrix), a faded tone curve (blacks
    lifted to a brownish matte, whites dulled, midtones softened) and an oval vignette that darkens
    the corners by ~45 %. No grain: pseudo-random grain cannot be learned from the photo, so it
    would only add an error floor to every method."""
    array = _to_float(image)
    height, width = array.shape[:2]
    toned = 0.15 * array + 0.85 * np.clip(array @ SEPIA.T, 0.0, 1.0)
    matte_black = np.array([0.16, 0.12, 0.09], dtype=np.float32)
    dull_white = np.array([0.93, 0.89, 0.78], dtype=np.float32)
    faded = matte_black + (dull_white - matte_black) * toned ** 1.1
    # Normalised coordinates make the vignette an oval fitted to the frame at any size.
    y = (np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1
    x = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
    radius = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2) / math.sqrt(2)
    vignette = 1.0 - 0.45 * _smoothstep((radius - 0.35) / 0.65)
    return _to_image(faded * vignette[..., None])


# -- teal-orange grade --------------------------------------------------------------------------

TEAL = np.array([0.0, 0.55, 0.6], dtype=np.float32)
ORANGE = np.array([1.0, 0.55, 0.15], dtype=np.float32)


def teal_orange(image: Image.Image) -> Image.Image:
    """Split toning: an S-curve on luma (smoothstep blended 70 %), then the chroma of shadows is
    pulled toward teal and of highlights toward orange, weighted by ``(1 - L)^2`` and ``L^2`` and
    added at constant luma so only the colour moves; skin and sky end up on opposite sides of the
    colour wheel, the look of many film grades."""
    array = _to_float(image)
    luma = _luma(array)
    curved = 0.3 * luma + 0.7 * _smoothstep(luma)
    chroma = array - luma[..., None]
    shadow, highlight = ((1 - curved) ** 2)[..., None], (curved**2)[..., None]
    teal_chroma, orange_chroma = TEAL - TEAL @ LUMA_WEIGHTS, ORANGE - ORANGE @ LUMA_WEIGHTS
    graded = curved[..., None] + 0.6 * chroma + 0.75 * (shadow * teal_chroma + highlight * orange_chroma)
    return _to_image(graded)


# -- oil paint --------------------------------------------------------------------------------

KUWAHARA_SECTORS = 8
KUWAHARA_SHARPNESS = 8  # q of Papari et al.: higher picks the flattest sector more decisively
KUWAHARA_SIGMA_UNIT = 10 / 255  # a sector this rough gets half the weight of a perfectly flat one
CANVAS_SEED = 2024


def _sector_kernels(radius: float) -> np.ndarray:
    """``KUWAHARA_SECTORS`` smooth pie-slice kernels ``(N, K, K)`` under a Gaussian of standard
    deviation ``radius / 2``; neighbouring slices overlap (cosine-squared in angle, zero beyond
    three quarters of a turn / N either side) so the result has no seams."""
    extent = int(math.ceil(radius))
    offsets = np.arange(-extent, extent + 1, dtype=np.float32)
    x, y = np.meshgrid(offsets, offsets)
    distance, angle = np.hypot(x, y), np.arctan2(y, x)
    radial = np.exp(-0.5 * (distance / (radius / 2)) ** 2) * (distance <= radius + 0.5)
    kernels = []
    for index in range(KUWAHARA_SECTORS):
        centre = 2 * math.pi * index / KUWAHARA_SECTORS
        offset = np.angle(np.exp(1j * (angle - centre))) * KUWAHARA_SECTORS / (1.5 * math.pi)
        angular = np.where(np.abs(offset) < 1, np.cos(offset * math.pi / 2) ** 2, 0.0)
        angular[extent, extent] = 1.0  # the centre pixel belongs to every sector
        kernel = radial * angular
        kernels.append(kernel / kernel.sum())
    return np.stack(kernels).astype(np.float32)


def kuwahara(array: np.ndarray, radius: float) -> np.ndarray:
    """Generalised Kuwahara filter (Papari, Petkov & Campisi 2007, after Kuwahara et al. 1976):
    the mean colour of each of ``KUWAHARA_SECTORS`` sectors around a pixel, weighted by
    ``1 / (1 + (sigma_i / unit)^q)`` of the sector's colour standard deviation, so the flattest
    sectors win and texture becomes paint patches while edges stay sharp."""
    total = np.zeros_like(array)
    weights = np.zeros(array.shape[:2], dtype=np.float32)
    for kernel in _sector_kernels(radius):
        means = np.stack([ndimage.correlate(array[..., c], kernel, mode="reflect") for c in range(3)], axis=-1)
        squares = np.stack([ndimage.correlate(array[..., c] ** 2, kernel, mode="reflect") for c in range(3)], axis=-1)
        sigma = np.sqrt(np.clip(squares - means**2, 0.0, None).sum(axis=-1))
        weight = 1.0 / (1.0 + (sigma / KUWAHARA_SIGMA_UNIT) ** KUWAHARA_SHARPNESS)
        total += weight[..., None] * means
        weights += weight
    return total / weights[..., None]


def stroke_directions(luma: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors ``(dx, dy)`` along the local edges: the minor eigenvector of the smoothed
    structure tensor (Kass & Witkin 1987). A faint diagonal bias settles flat areas, where the
    tensor is near zero, on one stroke direction instead of on noise."""
    gradient_y, gradient_x = ndimage.sobel(luma, axis=0) / 8.0, ndimage.sobel(luma, axis=1) / 8.0
    sigma = max(1.0, 2.5 * scale)
    bias = 5e-5
    xx = ndimage.gaussian_filter(gradient_x * gradient_x, sigma) + bias
    yy = ndimage.gaussian_filter(gradient_y * gradient_y, sigma) + bias
    xy = ndimage.gaussian_filter(gradient_x * gradient_y, sigma) + bias
    along = 0.5 * np.arctan2(2 * xy, xx - yy) + math.pi / 2
    return np.cos(along), np.sin(along)


def brush_texture(luma: np.ndarray, scale: float) -> np.ndarray:
    """Brush streaks of unit standard deviation: a fixed canvas noise (seeded by
    ``CANVAS_SEED``, so it depends on the image size only) averaged along
    :func:`stroke_directions` over 8 px either side, a straight-line form of line integral
    convolution (Cabral & Leedom 1993)."""
    height, width = luma.shape
    noise = np.random.default_rng(CANVAS_SEED).standard_normal((height, width)).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, max(0.5, 0.8 * scale))
    along_x, along_y = stroke_directions(luma, scale)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    reach = max(2, int(round(8 * scale)))
    streaks = np.zeros_like(noise)
    for step in range(-reach, reach + 1):
        streaks += ndimage.map_coordinates(noise, [rows + step * along_y, cols + step * along_x], order=1, mode="reflect")
    return streaks / (streaks.std() + 1e-8)


def oil_paint(image: Image.Image) -> Image.Image:
    """Paint patches from a generalised Kuwahara filter (radius 6 px at the reference size),
    brush streaks along the edges (:func:`brush_texture`, +-8 % brightness), and the lighting of
    raised paint: the gradient of patches plus streaks along the light direction (upper left)
    brightens or darkens each stroke border, as an emboss does. Unlike grain (left out of
    ``vintage``), the streaks are this style's defining texture, so they stay although their phase
    comes from the canvas noise rather than the photo: pixel metrics (PSNR, SSIM) have an error
    floor on this style that the position-free style distance does not."""
    array = _to_float(image)
    scale = size_scale(*array.shape[:2])
    painted = kuwahara(array, max(2.5, 6.0 * scale))
    luma = _luma(painted)
    streaks = brush_texture(luma, scale)
    height_field = ndimage.gaussian_filter(luma + 0.04 * streaks, max(0.5, 0.6 * scale))
    relief = (ndimage.sobel(height_field, axis=0) + ndimage.sobel(height_field, axis=1)) / 8.0
    # Sobel differences are per pixel; multiplying by the scale keeps the relief resolution-free.
    lit = painted * (1.0 + 0.08 * streaks[..., None]) + 2.0 * scale * relief[..., None]
    return _to_image(lit)


STYLES: dict[str, StyleSpec] = {
    spec.name: spec
    for spec in (
        StyleSpec("ink sketch", "dark ink lines (DoG) and a grey wash in the shadows on cream paper", ink_sketch, "local"),
        StyleSpec("cartoon", "flat regions of a 16-colour palette with dark DoG outlines", cartoon, "local"),
        StyleSpec("vintage", "sepia, faded matte tones and a dark oval vignette", vintage, "global"),
        StyleSpec("teal-orange grade", "S-curve with teal shadows and orange highlights", teal_orange, "global"),
        StyleSpec("oil paint", "Kuwahara paint patches, brush streaks along edges, embossed relief", oil_paint, "local"),
    )
}
