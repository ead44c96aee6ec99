"""Forms generated from the parameter schema (:mod:`napari_micromotion.schema`).

One :class:`ParamEditor` per :class:`~napari_micromotion.schema.ParamSpec`: the label
(with its unit), a tooltip from the help text, the range and the default, an editor
that fits the type.  :class:`ParamForm` lays them out in sections, with advanced
settings folded away; ``values()`` returns dotted paths for
``AnalysisParams.replace_values`` or :func:`napari_micromotion.schema.replace_path`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import MicromotionError, check
from ..schema import ParamSpec, format_value, parse_frame_range

__all__ = ["ParamEditor", "ParamForm", "flag_labels", "in_gui_words"]

_INT_MAX = 2**31 - 1

#: the command line's options for the recording and its ROIs (no parameter dataclass declares them), named as the
#: Recording and ROIs widgets name them
RECORDING_LABELS = {"--fps": "frame rate", "--pixel-size": "pixel size", "--channel": "channel",
                    "--fluorescence-channel": "channel", "--transmission": "transmission",
                    "--fluorescence": "fluorescence", "--rois": "ROI layer",
                    "--interleaved": "interleaved channels", "--frames": "keep frames"}
#: a command-line flag in a sentence, with the verb that asks for it ("pass --overwrite")
_FLAG = re.compile(r"(?<![\w-])(?:(pass|give it with|give|use|set)\s+)?(--[a-z][a-z0-9-]*)")


def flag_labels(params: Any = None) -> dict[str, str]:
    """Command-line flag -> the form's label, from the parameters' declarations (``param(label=..., flag=...)``).

    *params* (a parameter dataclass, e.g. a tool's) comes first, then the analysis' parameters, then the
    recording's options; two fields that share a flag (``--passband LOW HIGH``) are named together.
    """
    from ..pipeline import AnalysisParams
    from ..schema import specs

    out = dict(RECORDING_LABELS)
    for cls in (AnalysisParams, params):
        if cls is None:
            continue
        by_flag: dict[str, list[str]] = {}
        for spec in specs(cls):
            if spec.cli:
                by_flag.setdefault(spec.option, []).append(spec.label)
        out.update({flag: " and ".join(labels) for flag, labels in by_flag.items()})
    return out


def in_gui_words(text: str, params: Any = None) -> str:
    """*text* (a warning or error of the core) with command-line flags named as the forms name them.

    ``"... pass --use-interpolated to ..."`` becomes ``"... set 'use synthesized frames' to ..."``;
    *params* is the parameter dataclass of the form the text is shown beside (see :func:`flag_labels`).
    Flags no form shows stay as they are.
    """
    if "--" not in text:
        return text
    labels = flag_labels(params)

    def name(match: re.Match) -> str:
        label = labels.get(match.group(2))
        if label is None:
            return match.group(0)
        return f"{'set ' if match.group(1) else ''}'{label}'"

    return _FLAG.sub(name, text)


class ParamEditor:
    """A Qt editor for one parameter that reads and writes its Python value."""

    def __init__(self, spec: ParamSpec) -> None:
        self.spec = spec
        kind = spec.kind
        lo = spec.min if spec.min is not None else (-1e12 if kind.startswith("float") else -_INT_MAX)
        hi = spec.max if spec.max is not None else (1e12 if kind.startswith("float") else _INT_MAX)
        self._none_at: float | None = None
        if kind in ("int", "int?"):
            w: Any = QSpinBox()
            lo_i = int(max(lo, -_INT_MAX))
            if kind == "int?":
                lo_i -= 1
                self._none_at = lo_i
                w.setSpecialValueText(spec.none_text or "auto")
            w.setRange(lo_i, int(min(hi, _INT_MAX)))
        elif kind in ("float", "float?") and spec.decimals is not None:
            w = QDoubleSpinBox()
            w.setDecimals(spec.decimals)
            step = 10.0 ** -spec.decimals
            if kind == "float?":
                lo = lo - step
                self._none_at = lo
                w.setSpecialValueText(spec.none_text or "auto")
                w.setMinimumWidth(w.fontMetrics().horizontalAdvance(spec.none_text or "auto") + 50)
            w.setRange(float(lo), float(hi))
            w.setSingleStep(max(step, 10.0 ** math.floor(math.log10(max(abs(float(spec.default or 1)), 1e-12))) / 10))
        elif kind == "choice":
            w = QComboBox()
            w.addItems([str(c) for c in spec.choices])
        elif kind == "bool":
            w = QCheckBox()
        else:  # text, floats, frames?, and floats typed as text (learning rates like 8e-7)
            w = QLineEdit()
            if spec.none_text:
                w.setPlaceholderText(spec.none_text)
        self.widget = w
        w.setObjectName(spec.path)
        w.setToolTip(spec.tooltip())
        self.set(spec.default)

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def label(self) -> str:
        return self.spec.title

    def set(self, value: Any) -> None:
        w, kind = self.widget, self.spec.kind
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            if value is None:
                w.setValue(self._none_at if self._none_at is not None else w.minimum())
            else:
                w.setValue(int(value) if isinstance(w, QSpinBox) else float(value))
        elif kind == "choice":
            idx = w.findText(str(value))
            if idx < 0:
                w.addItem(str(value))
                idx = w.findText(str(value))
            w.setCurrentIndex(idx)
        elif kind == "bool":
            w.setChecked(bool(value))
        else:
            w.setText("" if value is None else format_value(self.spec, value))

    def get(self) -> Any:
        """The value in the editor (one-sentence :class:`MicromotionError` for what cannot be read)."""
        w, s = self.widget, self.spec
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            v = w.value()
            if self._none_at is not None and v <= self._none_at:
                return None
            return int(v) if isinstance(w, QSpinBox) else float(v)
        if s.kind == "choice":
            return w.currentText()
        if s.kind == "bool":
            return bool(w.isChecked())
        text = w.text().strip()
        if s.kind.endswith("?") and text.lower() in ("", "auto", "none", *(x.lower() for x in s.none_words)):
            return None
        if s.kind.startswith("frames"):
            return parse_frame_range(text)
        if s.kind in ("text", "text?"):
            return text
        try:
            if s.kind == "floats":
                v: Any = tuple(float(t) for t in text.replace(";", ",").split(",") if t.strip())
                check(v, f"{s.label} needs at least one number.")
                return v
            v = float(text)
        except ValueError:
            raise MicromotionError(f"{s.label} must be a number, got {text!r}.") from None
        check(math.isfinite(v), f"{s.label} must be a finite number, got {text!r}.")
        if s.min is not None:
            check(v >= s.min, f"{s.label} must be at least {s.min:g}, got {text!r}.")
        if s.max is not None:
            check(v <= s.max, f"{s.label} must be at most {s.max:g}, got {text!r}.")
        return v


class ParamForm(QWidget):
    """Editors for *specs*, one form per section; advanced rows folded into a collapsible per section.

    Attributes
    ----------
    editors
        ``{path: ParamEditor}``.
    sections
        ``{section title: QWidget}`` (collapsibles when superqt is available).
    """

    def __init__(self, specs: Sequence[ParamSpec], *, expanded: Sequence[str] = (), parent: QWidget | None = None,
                 titles: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        try:
            from superqt import QCollapsible
        except ImportError:  # pragma: no cover
            QCollapsible = None
        self.editors: dict[str, ParamEditor] = {}
        self.sections: dict[str, QWidget] = {}
        self.rows: dict[str, tuple[QLabel, QWidget]] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        order: list[str] = []
        by_section: dict[str, list[ParamSpec]] = {}
        for s in specs:
            if not s.gui:
                continue
            if s.section not in by_section:
                order.append(s.section)
            by_section.setdefault(s.section, []).append(s)
        for section in order:
            holder = QWidget()
            inner = QVBoxLayout(holder)
            inner.setContentsMargins(4, 0, 0, 0)
            basic, advanced = QFormLayout(), QFormLayout()
            for s in by_section[section]:
                ed = ParamEditor(s)
                self.editors[s.path] = ed
                label = QLabel(s.title)
                label.setToolTip(s.tooltip())
                (advanced if s.advanced else basic).addRow(label, ed.widget)
                self.rows[s.path] = (label, ed.widget)
            if basic.rowCount():
                inner.addLayout(basic)
            if advanced.rowCount():
                adv_holder = QWidget()
                adv_holder.setLayout(advanced)
                if QCollapsible is not None:
                    adv = QCollapsible("Advanced")
                    adv.addWidget(adv_holder)
                    inner.addWidget(adv)
                else:  # pragma: no cover
                    inner.addWidget(adv_holder)
            title = (titles or {}).get(section, section)
            if QCollapsible is not None:
                coll = QCollapsible(title)
                coll.addWidget(holder)
                if section in expanded:
                    coll.expand(animate=False)
                lay.addWidget(coll)
                self.sections[section] = coll
            else:  # pragma: no cover
                lay.addWidget(QLabel(title))
                lay.addWidget(holder)
                self.sections[section] = holder

    def values(self) -> dict[str, Any]:
        """``{path: value}`` of every editor (raises :class:`MicromotionError` for bad entries)."""
        return {path: ed.get() for path, ed in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for path, v in values.items():
            if path in self.editors:
                self.editors[path].set(v)

    def set_from(self, obj: Any) -> None:
        """Show the values of a parameter object (``AnalysisParams`` or a tool's Params)."""
        from ..schema import get_path

        for path, ed in self.editors.items():
            ed.set(get_path(obj, path))
