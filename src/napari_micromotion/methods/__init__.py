"""Analysis methods: one module each, found through a registry.

``METHODS`` lists every registered method in registration order (the project's:
``bandpass``, ``matched``, ``cnn1d``, ``cnn3d``, ``flow``; then those of installed plug-ins,
entry-point group ``napari_micromotion.methods``).  See :mod:`.base` for the
interface a method implements.
"""

from __future__ import annotations

from ..registry import Registry
from .base import AnalysisContext, Method, NoParams, PixelChunk, RegionFit, Requirements

__all__ = ["METHODS", "Method", "Requirements", "AnalysisContext", "PixelChunk", "RegionFit", "NoParams", "label_of"]

METHODS: Registry[Method] = Registry(
    "method", "napari_micromotion.methods",
    builtins=tuple(f"napari_micromotion.methods.{m}" for m in ("bandpass", "matched", "cnn1d", "cnn3d", "flow")))


def label_of(name: str) -> str:
    """The label of method *name* (the name itself when the method is not installed)."""
    m = METHODS.get(name)
    return m.label if m is not None else name
