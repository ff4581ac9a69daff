"""What callers hand the library (:class:`NewStyle`, :class:`AdapterSource`) and what it hands
back (:class:`StyleRecord` and its parts), with the input checks made before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import safetensors
from PIL import Image

from engine.core.errors import InputError
from engine.library.names import name_key, validate_style_name
from engine.library.runs import RunRecord, to_json
from engine.rendering.full_resolution import RenderSettings
from engine.rendering.render_choice import RenderChoice

ADAPTER_KINDS = ("moe", "lora", "subject")
SPLITS = ("train", "holdout")
MAX_DESCRIPTION_LENGTH = 2000
MAX_TRIGGER_LENGTH = 200


@dataclass(frozen=True, eq=False)
class NewStyle:
    """A style about to be published.

    ``pairs`` are ``(before_path, after_path, split)`` with split ``'train'`` or ``'holdout'``;
    the photos are copied into the library. ``expert_key`` names the style's expert inside the
    adapter file (None for an adapter that holds one style only). ``thumbnail`` is saved as PNG.
    ``render`` is how its edits reach the photo's size (None: the :class:`RenderSettings` defaults).
    """

    name: str
    description: str = ""
    trigger: str = ""
    pairs: Sequence[tuple[str | Path, str | Path, str]] = ()
    expert_key: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    thumbnail: Image.Image | None = None
    render: RenderChoice | None = None


@dataclass(frozen=True)
class AdapterSource:
    """An adapter weights file written by the trainer, to be copied into the library."""

    path: str | Path
    kind: str
    backbone: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PairRecord:
    """A stored before/after pair; paths are absolute, inside the library."""

    position: int
    before: Path
    after: Path
    split: str
    before_sha256: str
    after_sha256: str


@dataclass(frozen=True)
class AdapterRecord:
    """A stored adapter file. ``path`` is absolute; ``relative_path`` is what the database holds."""

    id: int
    kind: str
    path: Path
    relative_path: str
    sha256: str
    size_bytes: int
    backbone: str
    metadata: dict[str, Any]
    created: str


@dataclass(frozen=True)
class StyleRecord:
    """A published style with everything the studio shows about it. ``run`` is the training run
    that made it (its ``settings``), when one was given at publishing; ``render`` its stored
    render choice (None: the defaults, see :attr:`render_settings`)."""

    id: int
    name: str
    description: str
    trigger: str
    created: str
    backbone: str
    expert_key: str | None
    metrics: dict[str, Any]
    folder: Path
    thumbnail: Path | None
    pairs: tuple[PairRecord, ...]
    adapter: AdapterRecord
    run: RunRecord | None
    render: RenderChoice | None = None

    @property
    def render_settings(self) -> RenderSettings:
        """How this style's edits reach the photo's size: its stored choice, else the defaults."""
        return RenderSettings() if self.render is None else self.render.settings

    @property
    def settings(self) -> dict[str, Any] | None:
        """The training run's settings, None when the style has no recorded run."""
        return None if self.run is None else self.run.settings


def check_new_styles(styles: Sequence[NewStyle]) -> list[NewStyle]:
    """Check every new style's fields and files; names must differ from each other."""
    if isinstance(styles, NewStyle):
        raise InputError("new styles must be a list of NewStyle; wrap the single style in a list")
    styles = list(styles)
    seen: dict[str, str] = {}
    for style in styles:
        if not isinstance(style, NewStyle):
            raise InputError(f"expected a NewStyle, got {type(style).__name__}")
        validate_style_name(style.name)
        if name_key(style.name) in seen:
            raise InputError(f"style names {seen[name_key(style.name)]!r} and {style.name!r} are the same name; give each style its own name")
        seen[name_key(style.name)] = style.name
        check_text(style.description, "description", style.name, MAX_DESCRIPTION_LENGTH)
        check_text(style.trigger, "trigger", style.name, MAX_TRIGGER_LENGTH, one_line=True)
        if style.expert_key is not None and (not isinstance(style.expert_key, str) or not style.expert_key):
            raise InputError(f"style {style.name!r}: expert key {style.expert_key!r} must be a non-empty string or None")
        to_json(style.metrics, f"metrics of style {style.name!r}")
        if style.thumbnail is not None and not isinstance(style.thumbnail, Image.Image):
            raise InputError(f"style {style.name!r}: the thumbnail must be a Pillow image or None")
        if style.render is not None and not isinstance(style.render, RenderChoice):
            raise InputError(f"style {style.name!r}: the render choice must be a RenderChoice or None")
        for pair in style.pairs:
            check_pair(style.name, pair)
    return styles


def check_text(value: object, what: str, name: str, limit: int, one_line: bool = False) -> str:
    if not isinstance(value, str):
        raise InputError(f"the {what} of style {name!r} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise InputError(f"the {what} of style {name!r} is {len(value)} characters long; shorten it to at most {limit}")
    if one_line and ("\n" in value or "\r" in value):
        raise InputError(f"the {what} of style {name!r} spans several lines; write it on one line")
    return value


def check_pair(name: str, pair: object) -> None:
    if not isinstance(pair, (tuple, list)) or len(pair) != 3:
        raise InputError(f"style {name!r}: each pair must be (before_path, after_path, split), not {pair!r}")
    before, after, split = pair
    if split not in SPLITS:
        raise InputError(f"style {name!r}: pair split {split!r} must be 'train' or 'holdout'")
    for photo in (before, after):
        check_photo_file(Path(photo))


def check_photo_file(path: Path) -> None:
    """An existing file Pillow recognises as an image (header only: the trainer has decoded it)."""
    if not path.is_file():
        raise InputError(f"no photo at {path}; check the pair's path")
    try:
        with Image.open(path):
            pass
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(f"{path} is not an image Pillow can read; give PNG, JPEG, WebP or TIFF photos") from error


def check_adapter_source(adapter: AdapterSource) -> Path:
    """Check an adapter source; return its path."""
    if not isinstance(adapter, AdapterSource):
        raise InputError(f"expected an AdapterSource, got {type(adapter).__name__}")
    path = Path(adapter.path)
    if adapter.kind not in ADAPTER_KINDS:
        raise InputError(f"adapter kind {adapter.kind!r} is unknown; use one of {', '.join(ADAPTER_KINDS)}")
    if not isinstance(adapter.backbone, str) or not adapter.backbone:
        raise InputError(f"adapter {path} has no backbone name; give the backbone it was trained on")
    to_json(adapter.metadata, f"metadata of adapter {path}")
    check_safetensors(path)
    return path


def check_safetensors(path: Path) -> None:
    """An existing ``.safetensors`` file whose header safetensors can read."""
    if path.suffix != ".safetensors":
        raise InputError(f"adapter {path} is not a .safetensors file; save the weights with safetensors")
    if not path.is_file():
        raise InputError(f"no adapter file at {path}; check the path")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as weights:
            weights.keys()
    except (safetensors.SafetensorError, OSError) as error:
        raise InputError(f"adapter {path} is not a readable safetensors file ({error}); write it again") from error
