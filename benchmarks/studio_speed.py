"""How the studio feels: launch time, edit latency and memory, measured in a real browser
(``python -m benchmarks.studio_speed``).

Starts ``app.py`` on the shipped model with a copy of the shipped style library, then drives it
with Debian's Chromium through Playwright as a person would:

* launch: seconds from starting the process to the first HTTP answer, and to an interactive page
  (the Edit button visible in the browser);
* edit: seconds from clicking *Edit* (a photo uploaded, the first library style picked) to the
  first live step preview, and to the finished result, median over ``--repeats`` edits;
* memory: resident memory of the app process (with any children), idle after the first edits,
  and its peak while a style trains in the Train tab (sampled every 0.1 s) with an edit made
  meanwhile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from benchmarks.dataset import load_benchmark_photo, write_pairs
from benchmarks.report import add_out_argument, publish

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
EDIT_PHOTO = "city"  # a held-out benchmark photo


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_mb(process: psutil.Process) -> float:
    """Resident memory of ``process`` and its children, in MB."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


class PeakSampler:
    """Samples a process's resident memory in a thread; ``peak`` is the largest sample in MB."""

    def __init__(self, process: psutil.Process, every: float = 0.1) -> None:
        self.process, self.every, self.peak = process, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_mb(self.process))
            time.sleep(self.every)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_for_http(url: str, server: subprocess.Popen, timeout: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited with {server.returncode} before serving")
        try:
            with opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"app.py did not serve {url} within {timeout:.0f} s")


def timed_edit(page, seed: int) -> tuple[float, float]:
    """Click Edit; seconds to the first live preview and to the result."""
    page.locator("#edit-seed input").fill(str(seed))
    began = time.perf_counter()
    page.get_by_role("button", name="Edit", exact=True).click()
    page.locator("#edit-preview img").first.wait_for(state="visible", timeout=60_000)
    first_preview = time.perf_counter() - began
    page.locator("#edit-status").filter(has_text="Done").wait_for(timeout=120_000)
    return first_preview, time.perf_counter() - began


def train_while_measuring(page, process: psutil.Process, pairs_folder: Path, steps: int) -> dict:
    """Start a training run in the Train tab, make an edit meanwhile, and sample memory."""
    page.get_by_role("tab", name="Train").click()
    befores = sorted((pairs_folder / "before").iterdir())
    afters = sorted((pairs_folder / "after").iterdir())
    page.locator("#train-before input[type=file]").set_input_files([str(path) for path in befores])
    page.locator("#train-after input[type=file]").set_input_files([str(path) for path in afters])
    page.locator("#train-name input, #train-name textarea").first.fill("bench style")
    page.locator("#train-pairs-status").filter(has_text="pairs ready").wait_for(timeout=60_000)
    page.locator("#train-steps input[type=number]").fill(str(steps))
    page.locator("#train-steps input[type=number]").press("Tab")
    with PeakSampler(process) as sampler:
        began = time.perf_counter()
        page.locator("#train-run").click()
        page.locator("#train-status").filter(has_text="Training").wait_for(timeout=120_000)
        page.get_by_role("tab", name="Edit").click()
        edit_during_training = timed_edit(page, seed=99)
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-status").filter(has_text="in your library").wait_for(timeout=30 * 60_000)
        seconds = time.perf_counter() - began
    return {"peak_mb": round(sampler.peak, 1), "training_seconds": round(seconds, 1), "steps": steps,
            "edit_during_training_seconds": round(edit_during_training[1], 3)}


def measure(repeats: int, train_steps: int, library: Path) -> dict:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="atelier-studio-speed-"))
    try:
        shutil.copytree(library, work / "library", ignore=shutil.ignore_patterns(".lock", "checkpoints"))
        photo = work / f"{EDIT_PHOTO}.png"
        load_benchmark_photo(EDIT_PHOTO).save(photo)
        port = free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        began = time.perf_counter()
        server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--library", str(work / "library")],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for_http(url, server, timeout=300)
            http_seconds = time.perf_counter() - began
            process = psutil.Process(server.pid)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.get_by_role("button", name="Edit", exact=True).wait_for(timeout=120_000)
                interactive_seconds = time.perf_counter() - began
                page.locator("#edit-photo input[type=file]").set_input_files(str(photo))
                page.locator("#edit-photo img").first.wait_for(timeout=30_000)
                page.locator("#edit-settings").get_by_text("Settings").click()  # the seed lives there
                timed_edit(page, seed=0)  # the first edit loads and folds the style
                timings = [timed_edit(page, seed=seed) for seed in range(1, repeats + 1)]
                time.sleep(2)
                idle_mb = resident_mb(process)
                report = {
                    "launch_to_http_seconds": round(http_seconds, 2),
                    "launch_to_interactive_seconds": round(interactive_seconds, 2),
                    "edit_first_preview_seconds": round(statistics.median(first for first, _ in timings), 3),
                    "edit_result_seconds": round(statistics.median(total for _, total in timings), 3),
                    "edit_repeats": repeats,
                    "idle_mb": round(idle_mb, 1),
                }
                if train_steps:
                    pairs = write_pairs("vintage", "train", work / "pairs")
                    report["training"] = train_while_measuring(page, process, pairs, train_steps)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studio_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="Timed edits (after one warm-up edit).")
    parser.add_argument("--train-steps", type=int, default=60, help="Steps of the training run measured for memory (0: skip).")
    parser.add_argument("--library", type=Path, default=REPO / "styles", help="Library to copy and serve (default: the shipped one).")
    add_out_argument(parser)
    arguments = parser.parse_args(argv)
    report = measure(arguments.repeats, arguments.train_steps, arguments.library)
    publish(report, arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
