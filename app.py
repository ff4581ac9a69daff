"""Start Atelier's studio: ``python app.py [--host H] [--port P] [--model SPEC]``.

Loads the backbone once (``embedded``: the shipped model; or a model folder; or a FLUX.1 Kontext
folder or hub id), builds the studio and serves it at http://127.0.0.1:7860 by default.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--port`` defaults to $GRADIO_SERVER_PORT, then 7860."""
    parser = argparse.ArgumentParser(prog="app.py", description="Atelier: a desktop studio for few-shot multi-style image editing.")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to serve on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=int, default=None, help=f"port to serve on (default $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    parser.add_argument("--model", default="embedded", help="'embedded' (the shipped model), a model folder, or a FLUX.1 Kontext hub id (default: embedded)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="compute precision (default auto: float32, since styles are folded into the weights)")
    parser.add_argument("--library", default=None, metavar="DIR",
                        help="the style library folder (default: $ATELIER_LIBRARY, else the repository's styles/)")
    args = parser.parse_args(argv)
    if args.port is None:
        env_port = os.environ.get("GRADIO_SERVER_PORT", "")
        try:
            args.port = int(env_port) if env_port else DEFAULT_PORT
        except ValueError:
            parser.error(f"GRADIO_SERVER_PORT must be a port number, not {env_port!r}")
    if not 0 < args.port < 65536:
        parser.error(f"--port must lie between 1 and 65535, not {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Load the model, build the studio and serve it until interrupted."""
    args = parse_args(argv)
    # torch and gradio load after parsing, so --help answers at once.
    from engine.core.errors import AtelierError
    from engine.library import StyleLibrary
    from engine.models.backbones.registry import compute_dtype, load_backbone
    from studio.app import build_studio, launch_studio
    from studio.context import new_context

    print(f"Loading model {args.model!r}…", flush=True)
    try:
        backbone = load_backbone(args.model, dtype=compute_dtype(args.dtype, styled=True))
        library = StyleLibrary.open(args.library)
    except AtelierError as error:
        print(f"atelier: {error}", file=sys.stderr)
        return 2
    with library:
        studio = build_studio(new_context(backbone, args.model, library))
        launch_studio(studio, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
