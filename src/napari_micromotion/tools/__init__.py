"""Tools: video -> video, video -> ROIs, video -> vectors; one module each, found through a registry.

``TOOLS`` lists every registered tool (the project's own and those of installed
plug-ins, entry-point group ``napari_micromotion.tools``).  Each becomes a
``micromotion <name>`` sub-command and a napari form, both generated from its
parameter dataclass; see :mod:`.base`.
"""

from __future__ import annotations

from ..registry import Registry
from .base import RecordEntry, Tool, ToolResult

__all__ = ["TOOLS", "Tool", "ToolResult", "RecordEntry"]

TOOLS: Registry[Tool] = Registry("tool", "napari_micromotion.tools",
                                 builtins=tuple(f"napari_micromotion.tools.{t}" for t in ("motion", "blurflow", "denoise", "interpolate", "cells")))
