"""``python -m benchmarks.reliability``: the bad-input reliability suite.

Each case builds one bad (or unusual but valid) input in a temporary folder and runs it through a
real entry point: the CLI in-process (``engine.cli.main``, stderr captured), the library API, or
a studio handler. A case passes when the answer is a clean one-line refusal that names the file
(or the name) and says what to do, or, for a valid input, when the work succeeds; a traceback, an
unexpected exception type or a message without the file's name fails it. After all cases one good
edit runs in the same process, to show it keeps working.

Prints a markdown table (case | entry point | message | passed); ``--out`` writes the JSON report.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from benchmarks.reliability_inputs import (
    bomb_png, corrupt, exif_rotated, gradient, lora_file, lora_tensors, pairs_folder, png_bytes, saved, truncated, write_bytes, zip_with)
from benchmarks.report import add_out_argument, publish

CLI, LIBRARY, STUDIO = "CLI", "library", "studio"


@dataclass
class Case:
    case: str
    entry_point: str
    outcome: str  # "refused" (a one-line message) or "worked"
    message: str
    passed: bool
    detail: str = ""


@dataclass
class Answer:
    """What an entry point did: ``ok`` (the work was done), the one message it gave, or a crash."""

    ok: bool
    message: str = ""
    crash: str = ""


# --- running entry points ------------------------------------------------------------------

def run_cli(argv: list[str | Path]) -> Answer:
    """``python -m engine ARGV`` in this process; exit code 0 is success, 2 with one ``error:``
    line is a refusal, anything else (another code, several lines, an exception) is a crash."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(item) for item in argv])
    except SystemExit as error:  # argparse usage errors
        return Answer(False, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "", crash=f"exit {error.code}")
    except BaseException as error:  # noqa: BLE001 - a crash is what this suite looks for
        return Answer(False, crash=_crash(error))
    lines = err.getvalue().strip().splitlines()
    if code == 0:
        return Answer(True, out.getvalue().strip().splitlines()[-1] if out.getvalue().strip() else "")
    if code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return Answer(False, lines[0][len("error: "):])
    return Answer(False, crash=f"exit code {code}, stderr: {err.getvalue()!r}")


def run_call(call: Callable[[], object]) -> Answer:
    """A library or handler call: returning is success, an AtelierError or gradio.Error is a
    refusal (its message), anything else is a crash."""
    from engine.core.errors import AtelierError

    try:
        value = call()
    except AtelierError as error:
        return Answer(False, str(error))
    except Exception as error:  # noqa: BLE001
        message = getattr(error, "message", None)
        if type(error).__name__ == "Error" and type(error).__module__.startswith("gradio"):
            return Answer(False, str(message))
        return Answer(False, crash=_crash(error))
    return Answer(True, value if isinstance(value, str) else "")


def _crash(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def judge(case: str, entry: str, answer: Answer, names: str | None, valid: bool = False,
          check: Callable[[], str] | None = None) -> Case:
    """A valid input passes when the work is done (and ``check`` returns no problem); a bad one
    when the message is one line, names ``names`` and says what to do (a clause after ``;``)."""
    if answer.crash:
        return Case(case, entry, "crashed", answer.crash.splitlines()[0][:200], False, answer.crash[:2000])
    if valid:
        problem = (check() if check else "") if answer.ok else f"refused a valid input: {answer.message}"
        return Case(case, entry, "worked" if answer.ok else "refused", answer.message or "(done)", not problem, problem)
    if answer.ok:
        return Case(case, entry, "worked", answer.message or "(done)", False, "accepted a bad input")
    message = answer.message
    problems = []
    if "\n" in message.strip():
        problems.append("several lines")
    if names and names not in message:
        problems.append(f"does not name {names!r}")
    if "; " not in message and ": " not in message:
        problems.append("does not say what to do")
    return Case(case, entry, "refused", message.strip().splitlines()[0] if message.strip() else "", not problems, "; ".join(problems))


# --- the suite ------------------------------------------------------------------------------

def run_suite(work: Path) -> dict:
    """Build every case in ``work``, run them all, then one good edit; returns the report."""
    from engine.core.imaging import load_photo
    from engine.library import StyleLibrary
    from engine.models.backbones.embedded.backbone import EmbeddedBackbone
    from engine.training.pairs import read_pairs

    started = time.perf_counter()
    model = work / "model"
    backbone = EmbeddedBackbone.from_config("tiny")
    backbone.save_pretrained(model)
    library = work / "library"
    good_lora = lora_file(work / "good-lora.safetensors", lora_tensors(backbone, seed=1))
    style_lora = lora_file(work / "style-lora.safetensors", lora_tensors(backbone, seed=2))
    with StyleLibrary.open(library):
        pass
    photos = work / "photos"
    photos.mkdir()
    good_png = saved(photos / "good.png", gradient())
    good_jpg = saved(photos / "good.jpg", gradient(), quality=90)
    good_webp = saved(photos / "good.webp", gradient(), quality=90)
    out = work / "out"
    out.mkdir()
    cases: list[Case] = []

    def edit(photo: Path) -> Answer:
        return run_cli(["edit", "--input", photo, "--out", out / f"{photo.stem}-edited.png", "--model", model,
                        "--steps", 1, "--library", library])

    def result_size(photo: Path, expected: tuple[int, int]) -> Callable[[], str]:
        def check() -> str:
            with Image.open(out / f"{photo.stem}-edited.png") as result:
                return "" if result.size == expected else f"result is {result.size}, expected {expected}"
        return check

    # Photos through `edit`: files that are no photo, damaged photos, a bomb, edge sizes.
    text_jpg = photos / "notes.jpg"
    text_jpg.write_text("these are my holiday notes, not a photo\n")
    noise_png = photos / "noise.png"
    noise_png.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = photos / "empty.png"
    empty.write_bytes(b"")
    bad_photos = [
        ("text file named .jpg", text_jpg),
        ("random bytes named .png", noise_png),
        ("zero-byte file", empty),
        ("truncated PNG", truncated(photos / "cut.png", good_png)),
        ("corrupt PNG (random bytes inside)", corrupt(photos / "corrupt.png", good_png)),
        ("truncated JPEG", truncated(photos / "cut.jpg", good_jpg, keep=0.4)),
        ("truncated WebP", truncated(photos / "cut.webp", good_webp)),
        ("corrupt WebP (random bytes inside)", corrupt(photos / "corrupt.webp", good_webp)),
        ("decompression bomb (PNG declaring 100000x100000)", bomb_png(photos / "bomb.png")),
        ("decompression bomb under Pillow's limit (PNG declaring 9000x8000, over MAX_PHOTO_PIXELS)",
         bomb_png(photos / "bomb-72mp.png", 9000, 8000)),
        ("photo that does not exist", photos / "missing.png"),
        ("a folder given as the photo", photos),
    ]
    for case, photo in bad_photos:
        cases.append(judge(case, CLI + " edit", edit(photo), photo.name))

    # Corrupt JPEG data decodes (JPEG has no checksum): either a clean refusal or an edit passes.
    corrupt_jpg = corrupt(photos / "corrupt.jpg", good_jpg)
    answer = edit(corrupt_jpg)
    cases.append(judge("corrupt JPEG (random bytes inside)", CLI + " edit", answer, corrupt_jpg.name, valid=answer.ok))

    # Valid but unusual photos: these must work.
    valid_photos = [
        ("1x1 image", saved(photos / "dot.png", Image.new("RGB", (1, 1), (200, 10, 10))), (1, 1)),
        ("CMYK JPEG", saved(photos / "cmyk.jpg", gradient().convert("CMYK")), (48, 32)),
        ("16-bit greyscale PNG", saved(photos / "deep.png", Image.fromarray(
            (np.linspace(0, 65535, 48 * 32).reshape(32, 48)).astype(np.uint16))), (48, 32)),
        ("palette PNG", saved(photos / "palette.png", gradient().convert("P")), (48, 32)),
        ("RGBA PNG with transparency", saved(photos / "alpha.png", gradient().convert("RGBA")), (48, 32)),
        ("EXIF-rotated JPEG (orientation 6)", exif_rotated(photos / "rotated.jpg"), (32, 48)),
    ]
    for case, photo, size in valid_photos:
        cases.append(judge(case, CLI + " edit", edit(photo), photo.name, valid=True, check=result_size(photo, size)))
    rotated = load_photo(photos / "rotated.jpg")
    cases.append(judge("EXIF-rotated JPEG read upright", LIBRARY + " load_photo", Answer(True, f"{rotated.width}x{rotated.height}"),
                       None, valid=True, check=lambda: "" if rotated.size == (32, 48) else f"read as {rotated.size}"))

    # Training pairs: names that do not pair up, duplicates, unsafe zips.
    pairs = work / "pairs"
    mismatched = pairs_folder(pairs / "mismatched", ["a.png", "b.png"], ["a.png", "c.png"])
    cases.append(judge("pairs with mismatched names", LIBRARY + " read_pairs", run_call(lambda: read_pairs(mismatched)), "b.png"))
    duplicate = pairs_folder(pairs / "duplicate", ["a.png", "a.jpg", "b.png"], ["a.png", "b.png"])
    cases.append(judge("pairs with a duplicate name (a.png, a.jpg)", LIBRARY + " read_pairs",
                       run_call(lambda: read_pairs(duplicate)), "a.jpg"))
    cases.append(judge("pairs with mismatched names", CLI + " train", run_cli(
        ["train", "--pairs", mismatched, "--style", "mismatch", "--model", model, "--library", library]), "b.png"))
    image = png_bytes()
    pair_zips = [
        ("pairs zip with an absolute path", zip_with(pairs / "absolute.zip", [("before/a.png", image), ("/tmp/atelier-evil.png", image)])),
        ("pairs zip with a .. entry", zip_with(pairs / "parent.zip", [("before/a.png", image), ("../evil.png", image)])),
        ("pairs zip with a symlink", zip_with(pairs / "symlink.zip", [("before/a.png", image), ("after/a.png", image)],
                                              symlink="before/b.png")),
        ("pairs zip with 10,000 entries", zip_with(pairs / "many.zip", [(f"before/{index}.txt", b"") for index in range(10_000)])),
        ("pairs zip that is not a zip", write_bytes(pairs / "garbage.zip", b"PK\x03\x04 not really a zip" * 10)),
    ]
    for case, archive in pair_zips:
        cases.append(judge(case, LIBRARY + " read_pairs", run_call(lambda archive=archive: read_pairs(archive)), archive.name))

    # Style zips through `styles import`.
    zips = work / "zips"
    zips.mkdir()
    style_zips = [
        ("style zip with an absolute path", zip_with(zips / "absolute.zip", [("style.json", b"{}"), ("/etc/evil", b"x")])),
        ("style zip with a .. entry", zip_with(zips / "parent.zip", [("style.json", b"{}"), ("../../evil", b"x")])),
        ("style zip with a symlink", zip_with(zips / "symlink.zip", [("style.json", b"{}")], symlink="link")),
        ("style zip with 10,000 entries", zip_with(zips / "many.zip", [(f"f{index}", b"") for index in range(10_000)])),
        ("style zip that is not a zip", write_bytes(zips / "garbage.zip", os.urandom(2048))),
        ("style zip without a manifest", zip_with(zips / "plain.zip", [("hello.txt", b"hi")])),
    ]
    for case, archive in style_zips:
        cases.append(judge(case, CLI + " styles import", run_cli(
            ["styles", "import", archive, "--library", library, "--model", model]), archive.name))

    # LoRA files through `styles import FILE --name N` and `fuse --subject FILE`.
    loras = work / "loras"
    loras.mkdir()
    tensors = lora_tensors(backbone)
    first = next(iter(tensors))
    nan = dict(tensors, **{first: torch.full_like(tensors[first], float("nan"))})
    wrong = dict(tensors, **{first: torch.ones(tensors[first].shape[0], tensors[first].shape[1] + 3)})
    unknown = {"transformer.no_such_layer.lora_A.weight": torch.ones(2, 4), "transformer.no_such_layer.lora_B.weight": torch.ones(4, 2)}
    pickle_file = loras / "pickled.safetensors"
    torch.save(tensors, pickle_file)
    bad_loras = [
        ("LoRA with NaN", lora_file(loras / "nan.safetensors", nan)),
        ("LoRA with wrong shapes", lora_file(loras / "shapes.safetensors", wrong)),
        ("LoRA with unknown keys", lora_file(loras / "unknown.safetensors", unknown)),
        ("LoRA that is a torch pickle named .safetensors", pickle_file),
        ("LoRA that is a zero-byte file", write_bytes(loras / "empty.safetensors", b"")),
    ]
    for index, (case, file) in enumerate(bad_loras):
        cases.append(judge(case, CLI + " styles import", run_cli(
            ["styles", "import", file, "--name", f"bad {index}", "--library", library, "--model", model, "--no-thumbnail"]), file.name))
    for case, file in bad_loras[:4]:
        cases.append(judge(case, CLI + " fuse --subject", run_cli(
            ["fuse", "--subject", file, "--style", style_lora, "--out", out / "fused.png", "--model", model,
             "--library", library, "--steps", 1, "--input", good_png]), file.name))

    # Style names: unsafe and confusable.
    bad_names = [
        ("style name with a path separator", "ink/../../etc"),
        ("style name with a control character", "ink\x07wash"),
        ("style name '..'", ".."),
        ("style name with a leading space", " ink"),
        ("style name with a trailing space", "ink "),
    ]
    for case, name in bad_names:
        answer = run_cli(["styles", "import", good_lora, "--name", name, "--library", library, "--model", model, "--no-thumbnail"])
        cases.append(judge(case, CLI + " styles import", answer, repr(name)))
    composed, decomposed = "Caf\u00e9", "CAFE\u0301"
    first_import = run_cli(["styles", "import", good_lora, "--name", composed, "--library", library, "--model", model, "--no-thumbnail"])
    cases.append(judge("LoRA imported under a Unicode name (valid)", CLI + " styles import", first_import, composed, valid=True))
    answer = run_cli(["styles", "import", good_lora, "--name", decomposed, "--library", library, "--model", model, "--no-thumbnail"])
    cases.append(judge("style name equal to another after NFC+casefold", CLI + " styles import", answer, decomposed))

    # A library database that is garbage.
    broken = work / "broken-library"
    broken.mkdir()
    (broken / "library.db").write_bytes(os.urandom(4096))
    cases.append(judge("library.db full of garbage bytes", CLI + " styles list", run_cli(["styles", "list", "--library", broken]),
                       "library.db"))
    cases.append(judge("library.db full of garbage bytes", LIBRARY + " StyleLibrary.open",
                       run_call(lambda: StyleLibrary.open(broken).close()), "library.db"))

    cases += studio_cases(work, model, library, text_jpg, bomb_png(photos / "studio-bomb.png"), pickle_file,
                          pairs / "parent.zip", good_png)

    # The process keeps working: one good edit after everything above.
    answer = edit(good_png)
    cases.append(judge("a good edit after all the bad inputs", CLI + " edit", answer, good_png.name, valid=True,
                       check=result_size(good_png, (48, 32))))
    # The temporary folder's name changes every run; the report names it WORK.
    rows = [{key: value.replace(str(work), "WORK") if isinstance(value, str) else value for key, value in asdict(case).items()}
            for case in cases]
    return {"suite": "reliability", "model": "embedded tiny (random weights)", "seconds": round(time.perf_counter() - started, 1),
            "distinct_cases": len({(case.case, case.entry_point) for case in cases}),
            "passed": sum(case.passed for case in cases), "cases": rows, "summary": summary(cases)}


def studio_cases(work: Path, model: Path, library_folder: Path, text_jpg: Path, bomb: Path, pickle_file: Path,
                 unsafe_pairs_zip: Path, good_png: Path) -> list[Case]:
    """The studio's handlers, called as the page calls them (no browser)."""
    import gradio as gr

    from engine.library import StyleLibrary
    from engine.models.backbones.registry import load_backbone
    from studio import edit_run, library_run, train_uploads
    from studio.context import new_context

    cases = []
    with StyleLibrary.open(library_folder) as library:
        backbone = load_backbone(str(model))
        context = new_context(backbone, str(model), library, workshop=load_backbone(str(model)))
        try:
            def edit(photo: Path) -> Callable[[], str]:
                def call() -> str:
                    events = list(edit_run.run_edit(context.editor, context.output_folder, [], str(photo), "", 1, 0, None, None))
                    return str(events[-1][2])
                return call

            for case, photo in (("text file named .jpg", text_jpg), ("decompression bomb", bomb)):
                cases.append(judge(case, STUDIO + " run_edit", run_call(edit(photo)), photo.name))
                checked = edit_run.check_photo(str(photo))
                cases.append(judge(case, STUDIO + " check_photo", Answer(not checked, checked), photo.name))
            cases.append(judge("LoRA that is a torch pickle", STUDIO + " import_file", run_call(
                lambda: library_run.import_file(context, str(pickle_file), "pickled", "", "", 0)), pickle_file.name))
            uploads, _, text, _ = train_uploads.update_uploads(None, None, None, str(unsafe_pairs_zip), work / "studio-work")
            cases.append(judge("pairs zip with a .. entry", STUDIO + " update_uploads",
                               Answer(not uploads.zip_problem, uploads.zip_problem), unsafe_pairs_zip.name))
            answer = run_call(edit(good_png))
            cases.append(judge("a good edit after the bad ones", STUDIO + " run_edit", answer, good_png.name, valid=True))
        finally:
            context.editor.release()
    del gr
    return cases


def summary(cases: list[Case]) -> list[dict]:
    rows = {}
    for case in cases:
        kind = case.entry_point.split(" ")[0]
        row = rows.setdefault(kind, {"entry_point": kind, "cases": 0, "answered": 0, "passed": 0})
        row["cases"] += 1
        row["answered"] += case.outcome in ("refused", "worked")
        row["passed"] += case.passed
    return list(rows.values())


def markdown_table(report: dict) -> str:
    lines = ["| case | entry point | message | passed |", "| --- | --- | --- | --- |"]
    for case in report["cases"]:
        message = case["message"].replace("|", "\\|")
        lines.append(f"| {case['case']} | {case['entry_point']} | {message} | {'yes' if case['passed'] else 'NO: ' + case['detail']} |")
    lines += ["", "| entry point | cases | answered with a message or handled | passed |", "| --- | --- | --- | --- |"]
    for row in report["summary"]:
        lines.append(f"| {row['entry_point']} | {row['cases']} | {row['answered']} | {row['passed']} |")
    return "\n".join(lines)


PARTS = ("inputs", "kills", "load", "all")


def part_out(out: Path | None, part: str, alone: bool) -> Path | None:
    """Where a part's report goes: ``--out`` itself when one part runs; with ``all``, ``--out``
    for the inputs and ``NAME-kills.json`` / ``NAME-load.json`` beside it."""
    if out is None or alone or part == "inputs":
        return out
    return out.with_name(f"{out.stem}-{part}{out.suffix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.splitlines()[0])
    add_out_argument(parser)
    add_part_argument(parser)
    args = parser.parse_args(argv)
    parts = ("inputs", "kills", "load") if args.part == "all" else (args.part,)
    code = 0
    for part in parts:
        out = part_out(args.out, part, len(parts) == 1)
        if part == "kills":
            from benchmarks import reliability_kills

            code |= reliability_kills.main([*(["--out", str(out)] if out else [])])
            continue
        if part == "load":
            from benchmarks import reliability_load

            code |= reliability_load.main([*(["--out", str(out)] if out else [])])
            continue
        with tempfile.TemporaryDirectory(prefix="atelier-reliability-") as folder:
            report = run_suite(Path(folder))
        if out:
            publish(report, out)
        print(markdown_table(report))
        code |= 1 if [case for case in report["cases"] if not case["passed"]] else 0
    return code


def add_part_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=PARTS, default="inputs",
                        help="Which part: 'inputs' (bad inputs, default), 'kills' (kill -9 of training, then resume), "
                             "'load' (concurrent edits through the studio's API while a style trains) or 'all'.")


if __name__ == "__main__":
    sys.exit(main())
