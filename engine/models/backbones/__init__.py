"""Backbones: image-editing flow models behind one contract (:class:`Backbone`)."""

from engine.models.backbones.base import Backbone, Condition

__all__ = ["Backbone", "Condition"]
