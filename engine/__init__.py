"""Atelier's engine: backbones, samplers, adapters, training, fusion and the style library.

The engine never imports the UI. ``studio/`` and the CLI (``python -m engine``) are two faces on
the same calls.
"""

from engine.core.errors import AtelierError, InputError

__all__ = ["AtelierError", "InputError"]
