"""``python -m benchmarks.reliability_kills``: ``kill -9`` a real style-training process at chosen
moments, restart the same training, and check the library and the result every time.

A library holding one style ("First") is trained once; each kill copies it, starts training a
second style ("Second", which joins the shared MoE adapter) in a child process of this module
(``child``: :func:`engine.training.add_style.train_style` with a tiny model, a few steps and a
checkpoint every few steps), and SIGKILLs it at one point drawn with a fixed seed:

* ``step``: inside a training step (after the backward pass, before the optimizer step),
* ``checkpoint-tensors`` / ``checkpoint-record``: inside a checkpoint write (the tensors file
  written but not renamed into place; the tensors in place, the JSON record not yet written),
* ``publish-staged`` / ``publish-moved`` / ``publish-committed``: inside the final publish (files
  staged; files moved into the library, database rows not yet inserted; committed, run not yet
  marked finished), ``cleanup`` (finished, checkpoint folder not yet removed) and ``finished``
  (the run over, the process not yet exited),
* ``time``: a random moment of the run, drawn as a share (5-95 %) of how long the uninterrupted
  reference run trained, so it lands while training.

The child stops at its point and waits to be killed, so each kill lands where it says. After the
kill the library is opened (its recovery runs) and must pass ``check(deep=True)`` with every style
verified, no run left 'running' and "First" unchanged; then the same training starts again
(resuming from the checkpoint) and must finish with "Second" published, the library clean, no run
folder left, and the adapter's tensors bit-for-bit equal to an uninterrupted run's (expert keys,
drawn at random per run, are renamed to one name before comparing). A kill that came after the run had
finished (published "Second" and removed its run folder) needs no restart (training it again is
refused, rightly, as a taken name); its published adapter must equal the reference's.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POINTS = ("step", "checkpoint-tensors", "checkpoint-record", "publish-staged", "publish-moved", "publish-committed",
          "cleanup", "finished", "time")
FIRST, SECOND = "First", "Second"
STEPS, CHECKPOINT_EVERY = 12, 4
STOPPED = "stopped at"


# --- the child: one training run that can stop at a point ---------------------------------

def child(argv: list[str]) -> int:
    """Train ``--style`` into ``--library``; with ``--stop POINT:N``, stop at the N-th ``POINT``
    (print a line and sleep until killed)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability_kills child")
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--library", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY)
    parser.add_argument("--stop", default="")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.stop:
        install_stop(*args.stop.split(":"))
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import load_backbone
    from engine.training.add_style import StyleRequest, train_style
    from engine.training.style_trainer import StyleTrainingConfig

    config = StyleTrainingConfig(steps=args.steps, batch_size=2, checkpoint_every=args.checkpoint_every, sample_every=0, warmup_steps=2)
    backbone = load_backbone(args.model)
    print("started", flush=True)
    with StyleLibrary.open(args.library) as library:
        train_style(library, backbone, StyleRequest(args.style, args.pairs), config)
    print("done", flush=True)
    return 0


def install_stop(point: str, occurrence: str) -> None:
    """Wrap the function that runs at ``point`` so its ``occurrence``-th call stops the process there."""
    import engine.library.store as store
    import engine.training.add_style as add_style
    import engine.training.checkpoint as checkpoint
    import torch

    seen = {"count": 0}
    wanted = int(occurrence)

    def reached() -> None:
        seen["count"] += 1
        if seen["count"] == wanted:
            print(f"{STOPPED} {point} {wanted}", flush=True)
            time.sleep(3600)

    def before(function, test=lambda *a, **k: True):
        def wrapped(*arguments, **keywords):
            if test(*arguments, **keywords):
                reached()
            return function(*arguments, **keywords)
        return wrapped

    def after(function):
        def wrapped(*arguments, **keywords):
            value = function(*arguments, **keywords)
            reached()
            return value
        return wrapped

    if point == "step":
        torch.nn.utils.clip_grad_norm_ = before(torch.nn.utils.clip_grad_norm_)
    elif point == "checkpoint-tensors":
        checkpoint.save_file = after(checkpoint.save_file)
    elif point == "checkpoint-record":
        checkpoint.write_text_atomic = before(checkpoint.write_text_atomic)
    elif point == "publish-staged":
        store.StyleLibrary._move_into_place = before(store.StyleLibrary._move_into_place)
    elif point == "publish-moved":
        store.insert_adapter = before(store.insert_adapter)
    elif point == "publish-committed":
        store.StyleLibrary.finish_run = before(store.StyleLibrary.finish_run, lambda self, run_id, status, *rest: status == "finished")
    elif point == "cleanup":
        add_style.shutil.rmtree = before(add_style.shutil.rmtree)
    elif point == "finished":
        add_style.train_style = after(add_style.train_style)
    else:
        raise SystemExit(f"unknown point {point!r}")


# --- the parent -----------------------------------------------------------------------------

def make_inputs(work: Path) -> tuple[Path, Path, Path]:
    """A tiny model with a non-zero output layer, two pair folders and the one-style base library."""
    import numpy as np
    import torch
    from PIL import Image

    from engine.models.backbones.embedded.backbone import EmbeddedBackbone

    model = work / "model"
    backbone = EmbeddedBackbone.from_config("tiny", seed=0)
    with torch.no_grad():  # a zero output layer would pass no gradient to the adapter
        weight = backbone.transformer.proj_out.weight
        weight.copy_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    backbone.save_pretrained(model)
    generator = np.random.default_rng(0)
    for name, change in (("first", lambda a: 255 - a), ("second", lambda a: (a // 2 + 64))):
        for side in ("before", "after"):
            (work / "pairs" / name / side).mkdir(parents=True)
        for index in range(4):
            image = (generator.random((40, 48, 3)) * 255).astype("uint8")
            Image.fromarray(image).save(work / "pairs" / name / "before" / f"p{index}.png")
            Image.fromarray(change(image).astype("uint8")).save(work / "pairs" / name / "after" / f"p{index}.png")
    base = work / "base-library"
    run_child(model, work / "pairs" / "first", base, FIRST)
    return model, work / "pairs" / "second", base


def child_command(model: Path, pairs: Path, library: Path, style: str, stop: str = "") -> list[str]:
    command = [sys.executable, "-m", "benchmarks.reliability_kills", "child", "--model", str(model), "--pairs", str(pairs),
               "--library", str(library), "--style", style]
    return command + (["--stop", stop] if stop else [])


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_child(model: Path, pairs: Path, library: Path, style: str) -> subprocess.CompletedProcess:
    done = subprocess.run(child_command(model, pairs, library, style), env=environment(), cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"training {style} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return done


def kill_at(model: Path, pairs: Path, library: Path, point: str, occurrence: int, delay: float) -> tuple[str, float]:
    """Start training "Second" and SIGKILL it at ``point`` (its ``occurrence``-th time), or
    ``delay`` seconds after it started for ``time`` (``math.inf``: never; the run ends on its
    own); returns where the kill landed and the seconds from the model loaded to the end of the
    training call (the child's ``done`` line; the interpreter's exit after it is not counted)."""
    stop = "" if point == "time" else f"{point}:{occurrence}"
    process = subprocess.Popen(child_command(model, pairs, library, SECOND, stop), env=environment(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    landed = "finished before the kill"
    started_at = done_at = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if started_at is None:
                timeout = 1.0
            else:
                timeout = None if math.isinf(delay) else max(0.0, started_at + delay - time.monotonic())
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            if not ready:
                if started_at is not None and point == "time":
                    landed = f"time {delay:.2f} s after the model loaded"
                    break
                continue
            line = process.stdout.readline()
            if not line:  # the child ended on its own
                break
            if line.startswith("started"):
                started_at = time.monotonic()
            if line.startswith("done"):
                done_at = time.monotonic()
            if line.startswith(STOPPED):
                landed = line[len(STOPPED):].strip()
                break
        else:
            landed = "timed out"
    finally:
        ran = (done_at or time.monotonic()) - started_at if started_at is not None else 0.0
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    if landed == "finished before the kill" and process.returncode != 0:
        raise RuntimeError(f"the child failed before its kill point (exit {process.returncode}): {stderr[-2000:]}")
    return landed, ran


def finished_before_the_kill(library_folder: Path) -> bool:
    """Whether the run had already published "Second" and removed its run folder: it was done, so
    there is nothing to restart (a run killed between the two is restarted: it finds its publish
    and removes the folder)."""
    from engine.library import StyleLibrary
    from engine.training.resumable import run_folder

    with StyleLibrary.open(library_folder) as library:
        done = any(record.name == SECOND for record in library.list_styles())
        return done and not run_folder(library.root, SECOND).exists()


def library_problems(library_folder: Path, first_tensors: dict, finished: bool) -> list[str]:
    """What is wrong with the library after a kill (``finished=False``) or after the restart."""
    from engine.library import StyleLibrary
    from engine.training.resumable import list_resumable, run_folder

    problems = []
    with StyleLibrary.open(library_folder) as library:
        problems += library.check(deep=True)
        styles = {record.name: record for record in library.list_styles()}
        for record in styles.values():
            try:
                library.verify(record)
            except Exception as error:  # noqa: BLE001 - reported, not raised
                problems.append(str(error))
        problems += [f"run {run.id} is still 'running'" for run in library.list_runs() if run.status == "running"]
        if FIRST not in styles:
            problems.append("the style First is gone")
        else:
            tensors = expert_tensors(library.adapter_path(styles[FIRST]), styles[FIRST].expert_key)
            if not same_tensors({name: tensors.get(name) for name in first_tensors}, first_tensors):
                problems.append("a tensor the style First had changed")
        folder = run_folder(library.root, SECOND)
        if finished:
            if SECOND not in styles:
                problems.append("the restarted run did not publish Second")
            if folder.exists():
                problems.append(f"the run folder {folder} is left after the restart")
        elif folder.exists() and SECOND not in styles and (folder / "resume.json").exists() and not list_resumable(library.root):
            problems.append(f"the run folder {folder} cannot be read back")
    return problems


def expert_tensors(path: Path, key: str | None = None) -> dict:
    """A safetensors file's tensors, ``key`` (an expert key) renamed to ``KEY``."""
    from safetensors.torch import load_file

    return {(name.replace(key, "KEY") if key else name): value for name, value in load_file(path).items()}


def same_tensors(left: dict, right: dict) -> bool:
    import torch

    return left.keys() == right.keys() and all(left[name] is not None and torch.equal(left[name], right[name]) for name in left)


def final_tensors(library_folder: Path) -> dict:
    """The adapter of a finished library, both styles' random expert keys renamed."""
    from engine.library import StyleLibrary

    with StyleLibrary.open(library_folder) as library:
        records = {record.name: record for record in library.list_styles()}
        tensors = expert_tensors(library.adapter_path(records[SECOND]))
        renames = {records[FIRST].expert_key: "FIRST", records[SECOND].expert_key: "SECOND"}
    renamed = {}
    for name, value in tensors.items():
        for key, label in renames.items():
            name = name.replace(key, label)
        renamed[name] = value
    return renamed


def choose_kills(count: int, seed: int, points: list[str] | None = None) -> list[tuple[str, int, float]]:
    """``count`` kill points: each kind of point once, in order (or ``points``), then random kinds;
    each with a random occurrence (which step, which checkpoint) and, for ``time``, a random share
    of the reference run's training time."""
    chooser = random.Random(seed)
    kinds = list(points or POINTS)[:count]
    kinds += [chooser.choice(POINTS) for _ in range(count - len(kinds))]
    kills = []
    for kind in kinds:
        checkpoints = STEPS // CHECKPOINT_EVERY
        occurrence = {"step": chooser.randint(1, STEPS), "checkpoint-tensors": chooser.randint(1, checkpoints),
                      "checkpoint-record": chooser.randint(1, checkpoints)}.get(kind, 1)
        kills.append((kind, occurrence, round(chooser.uniform(0.05, 0.95), 2)))
    return kills


def run_kills(work: Path, count: int = 12, seed: int = 17, points: list[str] | None = None) -> dict:
    """Train the reference, then each kill and its restart; returns the report."""
    started = time.perf_counter()
    model, pairs, base = make_inputs(work)
    from engine.library import StyleLibrary

    with StyleLibrary.open(base) as library:
        first = library.get_style(FIRST)
        first_tensors = expert_tensors(library.adapter_path(first), first.expert_key)
    reference_folder = work / "reference"
    shutil.copytree(base, reference_folder)
    _, reference_seconds = kill_at(model, pairs, reference_folder, "time", 0, math.inf)
    reference = final_tensors(reference_folder)
    rows = []
    for index, (point, occurrence, share) in enumerate(choose_kills(count, seed, points)):
        folder = work / f"kill-{index}"
        shutil.copytree(base, folder)
        landed, _ = kill_at(model, pairs, folder, point, occurrence, share * reference_seconds)
        after_kill = library_problems(folder, first_tensors, finished=False)
        restart_error = ""
        if finished_before_the_kill(folder):
            restart = "not needed: the run had finished"
        else:
            restart = "finished"
            try:
                run_child(model, pairs, folder, SECOND)
            except RuntimeError as error:
                restart_error = str(error).strip().splitlines()[-1]
        after_restart = library_problems(folder, first_tensors, finished=True)
        identical = not restart_error and not after_restart and same_tensors(final_tensors(folder), reference)
        survived = landed not in ("timed out", "finished before the kill") and not after_kill and not restart_error \
            and not after_restart and identical
        rows.append({"kill": index + 1, "point": point, "landed": landed, "library_after_kill": after_kill or "clean",
                     "restart": restart_error or restart, "library_after_restart": after_restart or "clean",
                     "weights_identical": identical, "survived": survived})
        print(f"kill {index + 1}: {landed}: {'survived' if survived else 'FAILED'}", file=sys.stderr, flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    return {"suite": "reliability-kills", "model": "embedded tiny (random weights)", "steps": STEPS,
            "checkpoint_every": CHECKPOINT_EVERY, "seed": seed, "comparison": "adapter tensors bit-for-bit (torch.equal)",
            "reference_training_seconds": round(reference_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
            "kills": len(rows), "survived": sum(row["survived"] for row in rows), "rows": rows}


def markdown_table(report: dict) -> str:
    lines = ["| kill | point | where it landed | library after the kill | restart | weights identical |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in report["rows"]:
        problems = row["library_after_kill"] if isinstance(row["library_after_kill"], str) else "; ".join(row["library_after_kill"])
        lines.append(f"| {row['kill']} | {row['point']} | {row['landed']} | {problems} | {row['restart']} | "
                     f"{'yes' if row['weights_identical'] else 'NO'} |")
    lines.append(f"\n{report['survived']} of {report['kills']} kills survived.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child(argv[1:])
    from benchmarks.report import add_out_argument, publish

    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability_kills", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12, help="How many kills (default 12).")
    parser.add_argument("--seed", type=int, default=17, help="Seed of the kill points (default 17).")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="atelier-kills-") as folder:
        report = run_kills(Path(folder), args.kills, args.seed)
    publish(report, args.out)
    print(markdown_table(report))
    return 0 if report["survived"] == report["kills"] else 1


if __name__ == "__main__":
    sys.exit(main())
