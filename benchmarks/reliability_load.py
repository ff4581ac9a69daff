"""``python -m benchmarks.reliability_load``: concurrent edits through the studio's API while a
style trains in the same app.

Starts the studio as a subprocess on 127.0.0.1 (``serve``: what ``app.py`` does, plus a hook that
keeps the Train page's :class:`engine.services.jobs.TrainingJobs` runner, and a status file with
the runner's state), waits for it, reads its resident memory (idle), starts training a style
through that runner (the call the Train button makes; the Train page's events are private to the
page, so gradio_client cannot press the button), waits for the first training step, then submits
``--edits`` edits at once with gradio_client to the ``/edit`` endpoint. Every edit must come back
with a result file; the report gives the latency of each (submit to result) as p50/p90/max, the
app's peak resident memory (``VmHWM`` in ``/proc/PID/status``) against idle, and the training
steps taken during the edits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STYLE = "Load test"


# --- the served app ---------------------------------------------------------------------------

def serve(argv: list[str]) -> int:
    """``app.py``'s start-up with the training runner kept; training starts when ``--trigger``
    appears, and ``--status`` holds the runner's state every 0.2 s."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability_load serve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--library", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--trigger", required=True)
    parser.add_argument("--status", required=True)
    args = parser.parse_args(argv)
    import studio.app as studio_app
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import compute_dtype, load_backbone
    from engine.training.add_style import StyleRequest
    from engine.training.style_trainer import StyleTrainingConfig
    from studio.context import new_context

    kept = {}
    build_train_tab = studio_app.build_train_tab

    def keeping(*arguments, **keywords):
        kept["jobs"] = build_train_tab(*arguments, **keywords)
        return kept["jobs"]

    studio_app.build_train_tab = keeping
    backbone = load_backbone(args.model, dtype=compute_dtype("auto", styled=True))
    library = StyleLibrary.open(args.library)

    def watch() -> None:
        started = False
        while True:
            if not started and Path(args.trigger).exists():
                kept["jobs"].start(StyleRequest(STYLE, args.pairs), StyleTrainingConfig(steps=args.steps, sample_every=10))
                started = True
            state = kept["jobs"].state() if "jobs" in kept else None
            text = json.dumps({"status": state.status if state else "none", "step": state.step if state else 0,
                               "error": getattr(state, "error", "") or ""} if state else {"status": "none", "step": 0})
            Path(args.status + ".tmp").write_text(text)
            os.replace(args.status + ".tmp", args.status)
            time.sleep(0.2)

    with library:
        studio = studio_app.build_studio(new_context(backbone, args.model, library))
        threading.Thread(target=watch, daemon=True, name="load-status").start()
        studio_app.launch_studio(studio, host="127.0.0.1", port=args.port)
    return 0


# --- the client side --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def read_status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"status": "none", "step": 0}


def make_inputs(work: Path) -> tuple[Path, Path]:
    """A 256x192 photo to edit and four small training pairs."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    y, x = np.mgrid[0:192, 0:256]
    photo = work / "photo.png"
    Image.fromarray(np.stack([x % 256, y * 255 // 191, (x + y) % 256], -1).astype("uint8")).save(photo)
    pairs = work / "pairs"
    for side in ("before", "after"):
        (pairs / side).mkdir(parents=True)
    for index in range(4):
        image = (generator.random((64, 80, 3)) * 255).astype("uint8")
        Image.fromarray(image).save(pairs / "before" / f"p{index}.png")
        Image.fromarray(255 - image).save(pairs / "after" / f"p{index}.png")
    return photo, pairs


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def run_load(work: Path, model: str, edits: int = 20, train_steps: int = 5000, edit_steps: int | None = None,
             start_timeout: float = 600.0) -> dict:
    """Serve, measure idle, start training, send ``edits`` edits at once; returns the report."""
    from gradio_client import Client, handle_file

    photo, pairs = make_inputs(work)
    library, trigger, status = work / "library", work / "start-training", work / "status.json"
    port = free_port()
    log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.reliability_load", "serve", "--model", model, "--library", str(library),
                               "--port", str(port), "--pairs", str(pairs), "--steps", str(train_steps), "--trigger", str(trigger),
                               "--status", str(status)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + start_timeout
        client = None
        while client is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the studio did not start: {(work / 'server.log').read_text()[-2000:]}")
            try:
                client = Client(url, verbose=False)
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1.0)
        parameters = [item["parameter_name"] for item in client.view_api(print_info=False, return_format="dict")
                      ["named_endpoints"]["/edit"]["parameters"]]
        time.sleep(2.0)
        idle_rss, idle_hwm = memory_kib(server.pid, "VmRSS"), memory_kib(server.pid, "VmHWM")
        trigger.write_text("go")
        while read_status(status)["step"] < 1:
            if time.monotonic() > deadline or read_status(status)["status"] in ("failed", "finished"):
                raise RuntimeError(f"training did not start: {read_status(status)}, {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        steps_before = read_status(status)["step"]
        keywords = {"photo_path": handle_file(str(photo))}
        if edit_steps is not None:
            keywords["steps_value"] = edit_steps
        unknown = set(keywords) - set(parameters)
        if unknown:
            raise RuntimeError(f"/edit has no parameter {sorted(unknown)}; it takes {parameters}")
        results: list[dict] = [{} for _ in range(edits)]

        def one(index: int) -> None:
            began = time.monotonic()
            try:
                outputs = client.predict(**keywords, api_name="/edit")
                comparison = outputs[1].get("value") if isinstance(outputs[1], dict) else outputs[1]  # (photo, result) files
                result = comparison[1] if isinstance(comparison, (list, tuple)) and len(comparison) == 2 else None
                served = bool(result) and Path(result).is_file() and Path(result).stat().st_size > 0
                results[index] = {"seconds": time.monotonic() - began, "served": served,
                                  "error": "" if served else f"no result file in {str(outputs)[:300]}"}
            except Exception as error:  # noqa: BLE001 - a failed edit is what this counts
                results[index] = {"seconds": time.monotonic() - began, "served": False, "error": f"{type(error).__name__}: {error}"[:300]}

        began = time.monotonic()
        threads = [threading.Thread(target=one, args=(index,)) for index in range(edits)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - began
        during = read_status(status)
        peak_hwm = memory_kib(server.pid, "VmHWM")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()
    latencies = [row["seconds"] for row in results]
    served = sum(row["served"] for row in results)
    return {"suite": "reliability-load", "model": model, "edits": edits, "served": served, "failed": edits - served,
            "errors": sorted({row["error"] for row in results if row["error"]}),
            "latency_seconds": {"p50": round(percentile(latencies, 0.5), 2), "p90": round(percentile(latencies, 0.9), 2),
                                "max": round(max(latencies), 2)},
            "wall_seconds": round(wall, 2),
            "training": {"status_after_edits": during["status"], "steps_before_edits": steps_before, "steps_after_edits": during["step"]},
            "rss_mib": {"idle": round(idle_rss / 1024, 1), "idle_peak": round(idle_hwm / 1024, 1), "peak": round(peak_hwm / 1024, 1)}}


def markdown_table(report: dict) -> str:
    latency, rss, training = report["latency_seconds"], report["rss_mib"], report["training"]
    return "\n".join([
        "| edits at once | served | failed | latency p50 / p90 / max (s) | training steps during the edits | RSS idle / peak (MiB) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {report['edits']} | {report['served']} | {report['failed']} | {latency['p50']} / {latency['p90']} / {latency['max']} | "
        f"{training['steps_before_edits']} to {training['steps_after_edits']} ({training['status_after_edits']}) | "
        f"{rss['idle']} / {rss['peak']} |"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    from benchmarks.report import add_out_argument, publish

    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability_load", description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20, help="Edits sent at once (default 20).")
    parser.add_argument("--model", default="embedded", help="The model the studio serves (default: the embedded model).")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="atelier-load-") as folder:
        report = run_load(Path(folder), args.model, args.edits)
    publish(report, args.out)
    print(markdown_table(report))
    return 0 if report["failed"] == 0 and report["training"]["status_after_edits"] == "running" else 1


if __name__ == "__main__":
    sys.exit(main())
