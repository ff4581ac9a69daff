"""How every benchmark script hands back its report: JSON on standard output and, when asked, the
same JSON in a file written atomically (``engine.core.files``), so a run killed while writing never
leaves a truncated report where an earlier one stood."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.core.files import write_text_atomic


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--out`` option all benchmark scripts share."""
    parser.add_argument("--out", type=Path, default=None, help="Write the JSON report here too.")


def publish(report: dict, out: str | Path | None) -> str:
    """Print ``report`` as indented JSON, write it to ``out`` too when given, and return the text."""
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if out:
        write_text_atomic(out, text + "\n")
    return text
