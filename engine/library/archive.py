"""Sharing one style as a zip: its pairs, its weights and a ``style.json`` manifest.

A zip from elsewhere is untrusted: member paths that would escape the extraction folder, members
too large to be honest, encrypted or damaged data, a missing or malformed manifest and unknown
format versions are all refused with one line naming the zip. Only the files the manifest lists
are extracted, each checked against its sha256.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from engine.core.errors import InputError
from engine.core.files import atomic_path
from engine.library.names import validate_style_name
from engine.library.records import ADAPTER_KINDS, SPLITS, AdapterSource, NewStyle, StyleRecord, check_safetensors
from engine.library.schema import now
from engine.library.storage import CHUNK_BYTES, sha256_of
from engine.library.store import StyleLibrary
from engine.rendering.render_choice import RenderChoice

FORMAT = "atelier-style"
FORMAT_VERSION = 1
MANIFEST = "style.json"
WEIGHTS = "weights.safetensors"
THUMBNAIL = "thumbnail.png"
# Limits against zip bombs and hostile zips. A single style's adapter is tens of MB on the
# embedded backbone and a few hundred MB as a FLUX LoRA; photos are a few MB each.
MAX_MEMBER_BYTES = 2 << 30
MAX_TOTAL_BYTES = 4 << 30
MAX_MANIFEST_BYTES = 1 << 20
MAX_MEMBERS = 2000
# What to do with a file that is no Atelier style zip at all (a damaged one is exported again).
CHOOSE_STYLE_ZIP = "choose a style .zip exported from Atelier"
# What zipfile raises on damaged or unsupported member data.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


def export_style_zip(library: StyleLibrary, name: str, out_path: str | Path, weights_file: str | Path, *,
                     expert_key: str | None = None, adapter_metadata: dict[str, Any] | None = None) -> Path:
    """Write style ``name`` to ``out_path`` (a .zip), atomically. ``weights_file`` holds the
    style's weights alone (for a shared mixture of experts, the caller extracts its expert);
    ``expert_key`` and ``adapter_metadata`` describe that file, defaulting to the library's."""
    out_path, weights_file = Path(out_path), Path(weights_file)
    if out_path.suffix.lower() != ".zip":
        raise InputError(f"{out_path}: a style export must end in .zip")
    check_safetensors(weights_file)
    record = library.get_style(name)
    # A damaged style is refused here rather than producing a zip that fails on import.
    library.verify(record)
    manifest = _manifest(record, sha256_of(weights_file)[0], record.expert_key if expert_key is None else expert_key,
                         record.adapter.metadata if adapter_metadata is None else adapter_metadata)
    with atomic_path(out_path) as temporary:
        with zipfile.ZipFile(temporary, "w") as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True), compress_type=zipfile.ZIP_DEFLATED)
            # Weights and photos are already compressed, or nearly incompressible: stored as is.
            archive.write(weights_file, WEIGHTS)
            for pair in record.pairs:
                archive.write(pair.before, f"pairs/{pair.before.name}")
                archive.write(pair.after, f"pairs/{pair.after.name}")
            if record.thumbnail is not None:
                archive.write(record.thumbnail, THUMBNAIL)
    return out_path


def read_style_zip(path: str | Path, shown_as: str | None = None) -> tuple[dict[str, Any], Path]:
    """Validate a style zip and extract its files to a new temporary folder; return the manifest
    and that folder (the caller removes it, e.g. with ``shutil.rmtree``).

    ``shown_as`` is how messages name the zip (default: ``path``); the studio passes the name the
    user chose, since its ``path`` is a temporary copy of the upload.

    Raises:
        InputError: one line naming the zip, for anything unsafe, damaged or not understood.
    """
    path = Path(path)
    shown = str(path) if shown_as is None else shown_as
    if not path.is_file():
        raise InputError(f"no style zip at {shown}; check the path")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise InputError(f"{shown} is not a zip file; {CHOOSE_STYLE_ZIP}") from error
    except OSError as error:
        raise InputError(f"{shown} cannot be read ({error.strerror or error}); check the file, or {CHOOSE_STYLE_ZIP}") from error
    with archive:
        members = _check_members(shown, archive.infolist())
        manifest = _read_manifest(shown, archive, members)
        folder = Path(tempfile.mkdtemp(prefix="atelier-style-"))
        try:
            for member, expected in _listed_files(shown, manifest, members).items():
                _extract(shown, archive, members[member], folder, expected)
            try:
                check_safetensors(folder / WEIGHTS)
            except InputError as error:
                raise InputError(f"{shown}: {WEIGHTS} is not a readable safetensors file; export the style again") from error
        except BaseException:
            shutil.rmtree(folder)
            raise
    return manifest, folder


def style_from_zip(manifest: dict[str, Any], folder: Path, name: str | None = None) -> tuple[NewStyle, AdapterSource]:
    """What :meth:`StyleLibrary.publish_styles` needs to add a read zip's style (as ``name``
    when given, e.g. when the zip's name is taken)."""
    thumbnail = None
    if manifest["thumbnail"] is not None:
        with Image.open(folder / manifest["thumbnail"]) as image:
            thumbnail = image.copy()
    style = NewStyle(
        name=manifest["name"] if name is None else name, description=manifest["description"], trigger=manifest["trigger"],
        pairs=[(folder / pair["before"], folder / pair["after"], pair["split"]) for pair in manifest["pairs"]],
        expert_key=manifest["adapter"]["expert_key"], metrics=manifest["metrics"], thumbnail=thumbnail,
        render=None if manifest.get("render") is None else RenderChoice.from_json(manifest["render"]),
    )
    adapter = AdapterSource(folder / WEIGHTS, manifest["adapter"]["kind"], manifest["backbone"], manifest["adapter"]["metadata"])
    return style, adapter


def import_style_zip(library: StyleLibrary, path: str | Path, name: str | None = None, shown_as: str | None = None) -> StyleRecord:
    """Read a style zip and publish its style (as ``name`` when given); the extracted temporary
    folder is removed afterwards. ``shown_as`` names the zip in messages (:func:`read_style_zip`)."""
    manifest, folder = read_style_zip(path, shown_as)
    try:
        style, adapter = style_from_zip(manifest, folder, name)
        return library.publish_styles([style], adapter)[0]
    finally:
        shutil.rmtree(folder)


def _manifest(record: StyleRecord, weights_sha256: str, expert_key: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "exported": now(),
        "name": record.name, "description": record.description, "trigger": record.trigger, "backbone": record.backbone,
        "metrics": record.metrics, "settings": record.settings, "render": None if record.render is None else record.render.to_json(),
        "adapter": {"kind": record.adapter.kind, "file": WEIGHTS, "sha256": weights_sha256, "expert_key": expert_key, "metadata": metadata},
        "thumbnail": None if record.thumbnail is None else THUMBNAIL,
        "pairs": [
            {"before": f"pairs/{pair.before.name}", "after": f"pairs/{pair.after.name}", "split": pair.split,
             "before_sha256": pair.before_sha256, "after_sha256": pair.after_sha256}
            for pair in record.pairs
        ],
    }


def _check_members(shown: str, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > MAX_MEMBERS:
        raise InputError(f"{shown} holds {len(infos)} files, more than the {MAX_MEMBERS} a style zip may; {CHOOSE_STYLE_ZIP}")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if _unsafe(info.filename):
            raise InputError(f"{shown} contains the unsafe path {info.filename!r} (outside the extraction folder); {CHOOSE_STYLE_ZIP}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InputError(f"{shown} contains the symbolic link {info.filename!r}; {CHOOSE_STYLE_ZIP}")
        if info.is_dir():
            continue
        if info.filename in members:
            raise InputError(f"{shown} contains {info.filename!r} twice; {CHOOSE_STYLE_ZIP}")
        if info.flag_bits & 0x1:
            raise InputError(f"{shown}: {info.filename!r} is encrypted; export the style again without a password")
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputError(f"{shown}: {info.filename!r} unpacks to {info.file_size:,} bytes, above the {MAX_MEMBER_BYTES:,}-byte limit; "
                             "this is not a style zip")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise InputError(f"{shown} unpacks to more than {MAX_TOTAL_BYTES:,} bytes; this is not a style zip")
        members[info.filename] = info
    return members


def _unsafe(name: str) -> bool:
    """A member path that is absolute, climbs out with '..', or uses Windows separators/drives."""
    if not name or name.startswith("/") or "\\" in name or ":" in name or "\0" in name:
        return True
    parts = PurePosixPath(name.rstrip("/")).parts
    return any(part in ("..", ".") for part in parts) or "//" in name


def _read_manifest(shown: str, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
    if MANIFEST not in members:
        raise InputError(f"{shown} has no {MANIFEST}, so it is not an Atelier style zip; {CHOOSE_STYLE_ZIP}")
    if members[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        raise InputError(f"{shown}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES:,} bytes; this is not a style zip")
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except ZIP_ERRORS as error:
        raise InputError(f"{shown}: {MANIFEST} cannot be read ({error}); the zip is damaged, export the style again") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{shown}: {MANIFEST} is not valid JSON ({error}); export the style again") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{shown}: {MANIFEST} does not describe an Atelier style (format {FORMAT!r}); {CHOOSE_STYLE_ZIP}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        hint = "update Atelier" if isinstance(version, int) and version > FORMAT_VERSION else "export the style again"
        raise InputError(f"{shown} uses style format version {version!r}; this Atelier reads version {FORMAT_VERSION}, {hint}")
    _check_manifest_fields(shown, manifest)
    return manifest


def _check_manifest_fields(shown: str, manifest: dict[str, Any]) -> None:
    def require(condition: bool, what: str) -> None:
        if not condition:
            raise InputError(f"{shown}: {MANIFEST} has {what}; export the style again")

    def is_text(value: Any, optional: bool = False) -> bool:
        return isinstance(value, str) or (optional and value is None)

    try:
        validate_style_name(manifest.get("name"))
    except InputError as error:
        raise InputError(f"{shown}: {error}") from error
    for key in ("description", "trigger", "backbone"):
        require(is_text(manifest.get(key)), f"no text {key!r}")
    require(isinstance(manifest.get("metrics"), dict), "no 'metrics' object")
    adapter = manifest.get("adapter")
    require(isinstance(adapter, dict), "no 'adapter' object")
    require(adapter.get("kind") in ADAPTER_KINDS, f"an adapter kind other than {', '.join(ADAPTER_KINDS)}")
    require(adapter.get("file") == WEIGHTS, f"an adapter file other than {WEIGHTS!r}")
    require(is_text(adapter.get("sha256")) and is_text(adapter.get("expert_key"), optional=True), "a malformed 'adapter' object")
    require(isinstance(adapter.get("metadata"), dict), "no adapter 'metadata' object")
    require(is_text(manifest.get("thumbnail"), optional=True), "a malformed 'thumbnail'")
    pairs = manifest.get("pairs")
    require(isinstance(pairs, list), "no 'pairs' list")
    for pair in pairs:
        require(isinstance(pair, dict) and all(is_text(pair.get(key)) for key in ("before", "after", "before_sha256", "after_sha256")),
                "a malformed pair")
        require(pair.get("split") in SPLITS, f"a pair split other than {' or '.join(SPLITS)}")


def _listed_files(shown: str, manifest: dict[str, Any], members: dict[str, zipfile.ZipInfo]) -> dict[str, str | None]:
    """Expected sha256 (None: unknown) of every file the manifest lists; all must be present."""
    files: list[tuple[str, str | None]] = [(WEIGHTS, manifest["adapter"]["sha256"])]
    for pair in manifest["pairs"]:
        files += [(pair["before"], pair["before_sha256"]), (pair["after"], pair["after_sha256"])]
    if manifest["thumbnail"] is not None:
        files.append((manifest["thumbnail"], None))
    listed: dict[str, str | None] = {}
    for member, expected in files:
        if member not in members:
            raise InputError(f"{shown}: {MANIFEST} lists {member!r} but the zip does not contain it; export the style again")
        if listed.get(member) is not None and expected is not None and listed[member] != expected:
            raise InputError(f"{shown}: {MANIFEST} gives {member!r} two different sha256s; export the style again")
        if listed.get(member) is None:
            listed[member] = expected
    return listed


def _extract(shown: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path, expected: str | None) -> None:
    target = (folder / info.filename).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise InputError(f"{shown} contains the unsafe path {info.filename!r} (outside the extraction folder); {CHOOSE_STYLE_ZIP}")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    try:
        with archive.open(info) as reading, open(target, "xb") as writing:
            while chunk := reading.read(CHUNK_BYTES):
                written += len(chunk)
                # zipfile stops at the declared size; this guards the limit all the same.
                if written > min(info.file_size, MAX_MEMBER_BYTES):
                    raise InputError(f"{shown}: {info.filename!r} unpacks to more than it declares; this is not a style zip")
                digest.update(chunk)
                writing.write(chunk)
    except ZIP_ERRORS as error:
        raise InputError(f"{shown}: {info.filename!r} cannot be unpacked ({error}); the zip is damaged, export the style again") from error
    if expected is not None and digest.hexdigest() != expected:
        raise InputError(f"{shown}: {info.filename!r} does not match its sha256 in {MANIFEST}; the zip is damaged, export the style again")
