"""One parameter schema: dataclass field metadata drives the CLI, the napari forms and validation.

Every user-settable parameter is a field of a frozen dataclass declared with
:func:`param`, which stores in the field's metadata what a person needs to set it:
a label, a plain-language help text, the unit, the allowed range or choices, the
command-line flag and whether it is an "advanced" setting.  From that one place

* :func:`specs` lists every parameter of a dataclass (nested dataclasses included,
  with dotted paths such as ``cnn1d.epochs``);
* :func:`add_arguments` / :func:`values_from_args` generate the argparse options and
  read them back (defaults come from the dataclass, never repeated);
* :func:`build` creates a dataclass from dotted values (from a form, a CLI or a
  ``run.json``), :func:`to_dict` turns one back into JSON-ready values;
* :func:`check_ranges` refuses values outside the declared range with one sentence
  in the words of the form (labels, never flag names);
* the napari forms (``_qt/forms.py``) build one editor per spec, with the help text
  as tooltip.

Parameters that the analysis sets for every method at once (the seed, the device)
are declared with ``inherit=True``: they are hidden from forms and options and
taken from :class:`~napari_micromotion.pipeline.AnalysisParams`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Iterable, Sequence

from .errors import MicromotionError, check

__all__ = ["param", "ParamSpec", "specs", "add_arguments", "values_from_args", "build", "to_dict", "check_ranges",
           "parse_frame_range", "format_value", "editor_kind", "replace_path", "get_path"]

_KEY = "napari_micromotion"


def param(default: Any = MISSING, *, label: str, help: str, unit: str | None = None, min: float | None = None,
          max: float | None = None, choices: Sequence[Any] | None = None, flag: str | None = None,
          flag_part: int | None = None, metavar: str | None = None, advanced: bool = False, cli: bool = True,
          gui: bool = True, inherit: bool = False, none_text: str | None = None, none_words: Sequence[str] = (),
          decimals: int | None = None, default_factory: Any = MISSING) -> Any:
    """A dataclass field carrying its schema.

    Parameters
    ----------
    default, default_factory
        As for :func:`dataclasses.field`.
    label
        Short name shown in forms and error messages ("band-pass low edge").
    help
        One or two plain-language sentences (tooltip and ``--help``).
    unit
        Unit of the value ("Hz", "s", "px", "frames"), shown beside the label.
    min, max
        Allowed range (inclusive).
    choices
        Allowed values of a text parameter.
    flag
        Command-line flag; default ``--<path with dashes>``.
    flag_part
        0 or 1 when two fields share one flag taking two values (``--passband LOW HIGH``).
    metavar
        Placeholder in ``--help``.
    advanced
        Folded away in forms.
    cli, gui
        Whether the parameter appears on the command line / in forms.
    inherit
        Set by the analysis from its own field of the same name (hidden).
    none_text
        How ``None`` is shown ("auto (15 Hz)", "full").
    none_words
        Words that mean ``None`` on the command line.
    decimals
        Decimals shown in forms.
    """
    meta = {"label": label, "help": help, "unit": unit, "min": min, "max": max,
            "choices": tuple(choices) if choices is not None else None, "flag": flag, "flag_part": flag_part,
            "metavar": metavar, "advanced": advanced, "cli": cli and not inherit, "gui": gui and not inherit,
            "inherit": inherit, "none_text": none_text, "none_words": tuple(none_words), "decimals": decimals}
    kwargs: dict[str, Any] = {"metadata": {_KEY: meta}}
    if default_factory is not MISSING:
        kwargs["default_factory"] = default_factory
    else:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


@dataclass(frozen=True)
class ParamSpec:
    """Everything known about one (leaf) parameter."""

    path: str                  # dotted path from the root dataclass ("cnn1d.epochs")
    name: str                  # field name
    kind: str                  # int, float, bool, choice, text, float?, int?, frames?, floats
    default: Any
    label: str
    help: str
    section: str = "General"
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    flag: str | None = None
    flag_part: int | None = None
    metavar: str | None = None
    advanced: bool = False
    cli: bool = True
    gui: bool = True
    inherit: bool = False
    none_text: str | None = None
    none_words: tuple[str, ...] = ()
    decimals: int | None = None

    @property
    def dest(self) -> str:
        return self.path.replace(".", "__")

    @property
    def option(self) -> str:
        return self.flag or "--" + self.path.replace(".", "-").replace("_", "-")

    @property
    def title(self) -> str:
        """Label with its unit: ``"band-pass low edge (Hz)"``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def tooltip(self) -> str:
        """The help text with the default and range, for a form's tooltip."""
        bits = [self.help.rstrip(".") + "."]
        rng = _range_text(self)
        if rng:
            bits.append(rng)
        bits.append(f"Default: {format_value(self, self.default)}.")
        return " ".join(bits)


def _range_text(spec: ParamSpec) -> str:
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.min is not None and spec.max is not None:
        return f"Range {spec.min:g}-{spec.max:g}{unit}."
    if spec.min is not None:
        return f"At least {spec.min:g}{unit}."
    if spec.max is not None:
        return f"At most {spec.max:g}{unit}."
    return ""


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return tp, False


def editor_kind(tp: Any, meta: dict[str, Any]) -> str:
    """Editor / parser kind of a field's type."""
    base, optional = _strip_optional(tp)
    origin = typing.get_origin(base)
    if origin is tuple:
        args = typing.get_args(base)
        if args and args[-1] is Ellipsis:
            return "floats"
        if len(args) == 2 and all(a is int for a in args):
            return "frames?" if optional else "frames"
        raise TypeError(f"unsupported tuple parameter type {tp!r}")
    if base is bool:
        return "bool"
    if base is int:
        return "int?" if optional else "int"
    if base is float:
        return "float?" if optional else "float"
    if base is str:
        return "choice" if meta.get("choices") else ("text?" if optional else "text")
    raise TypeError(f"unsupported parameter type {tp!r}")


def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def specs(cls_or_obj: Any, prefix: str = "", section: str = "General", *, exclude: Iterable[str] = ()) -> list[ParamSpec]:
    """Every leaf parameter of a dataclass (class or instance), nested dataclasses flattened.

    A nested dataclass field is a section of its own (titled by its ``label``); fields
    without schema metadata are skipped (they are not user parameters).
    """
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    inst = cls_or_obj if not isinstance(cls_or_obj, type) else None
    hints = _hints(cls)
    out: list[ParamSpec] = []
    exclude = set(exclude)
    for f in fields(cls):
        if f.name in exclude:
            continue
        meta = f.metadata.get(_KEY)
        if meta is None:
            continue
        default = getattr(inst, f.name) if inst is not None else _default_of(f)
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        if is_dataclass(default):
            out += specs(default, prefix=path + ".", section=meta["label"])
            continue
        out.append(ParamSpec(path=path, name=f.name, kind=editor_kind(tp, meta), default=default,
                             label=meta["label"], help=meta["help"], section=section, unit=meta["unit"],
                             min=meta["min"], max=meta["max"], choices=meta["choices"], flag=meta["flag"],
                             flag_part=meta["flag_part"], metavar=meta["metavar"], advanced=meta["advanced"],
                             cli=meta["cli"], gui=meta["gui"], inherit=meta["inherit"], none_text=meta["none_text"],
                             none_words=meta["none_words"], decimals=meta["decimals"]))
    return out


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise TypeError(f"parameter {f.name!r} has no default")


# ---------------------------------------------------------------- values as text
def parse_frame_range(text: str, n_frames: int | None = None) -> tuple[int, int]:
    """``START:STOP`` (0-based, half-open frames) as a pair of ints.

    As in a Python slice either end may be left out when *n_frames* is known: ``START:`` runs to the
    last frame, ``:STOP`` starts at frame 0 (``12:`` drops a 12-frame fade-in).
    """
    parts = [p.strip() for p in str(text).split(":")]
    check(len(parts) == 2 and any(parts) and all(p == "" or p.lstrip("-").isdigit() for p in parts),
          f"a frame range must look like START:STOP in frames (e.g. 0:3072), got {text!r}.")
    check(parts[1] != "" or n_frames is not None,
          f"the frame range {text!r} needs its STOP here (e.g. {parts[0]}:3072).")
    return (int(parts[0]) if parts[0] else 0), (int(parts[1]) if parts[1] else int(n_frames))


def format_value(spec: ParamSpec, value: Any) -> str:
    """*value* as a person would type it."""
    if value is None:
        return spec.none_text or "auto"
    if spec.kind.startswith("frames"):
        return f"{int(value[0])}:{int(value[1])}"
    if spec.kind == "floats":
        return ",".join(f"{float(v):g}" for v in value)
    if spec.kind == "bool":
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(spec: ParamSpec, text: str, integer: bool) -> Any:
    try:
        v = int(text) if integer else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if integer else 'a number'}") from None
    if not integer and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    if spec.min is not None and v < spec.min:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {spec.min:g}")
    if spec.max is not None and v > spec.max:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {spec.max:g}")
    return v


def _parser_for(spec: ParamSpec):
    kind = spec.kind
    words = {w.lower() for w in spec.none_words} | {"auto", "none"}

    def parse(text: str) -> Any:
        if kind.endswith("?") and text.strip().lower() in words:
            return None
        if kind in ("int", "int?"):
            return _number(spec, text, True)
        if kind in ("float", "float?"):
            return _number(spec, text, False)
        if kind.startswith("frames"):
            try:
                return parse_frame_range(text)
            except MicromotionError as exc:
                raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
        if kind == "floats":
            return tuple(_number(spec, t, False) for t in text.split(",") if t.strip())
        return text

    parse.__name__ = spec.label  # argparse names the type in its error messages
    return parse


# ---------------------------------------------------------------- argparse
def _help(spec: ParamSpec) -> str:
    text = spec.help.rstrip(".")
    if spec.kind == "bool":
        return f"{text} (default {'on' if spec.default else 'off'})"
    return f"{text} (default {format_value(spec, spec.default)})".replace("%", "%%")


def _metavar(spec: ParamSpec) -> str:
    if spec.unit and len(spec.unit) <= 6 and spec.unit.replace("-", "").isalpha():
        return spec.unit.upper()
    return {"int": "N", "int?": "N", "floats": "X,Y,..."}.get(spec.kind, "X")


def add_arguments(parser: Any, param_specs: Sequence[ParamSpec], *, groups: bool = True) -> dict[str, Any]:
    """Add one option per command-line parameter of *param_specs* (two-part flags as one option).

    Options are grouped by section; unset options keep the dataclass default (argparse
    stores nothing for them).  Returns the argument groups by section.
    """
    by_flag: dict[str, list[ParamSpec]] = {}
    for s in param_specs:
        if not s.cli:
            continue
        group = by_flag.get(s.option)
        pair = group is not None and len(group) == 1 and {group[0].flag_part, s.flag_part} == {0, 1}
        if group is not None and not pair:   # a clash (e.g. a plug-in reusing a flag): fall back to the path
            s = dataclasses.replace(s, flag=None, flag_part=None)
        by_flag.setdefault(s.option, []).append(s)
    sections: dict[str, Any] = {}
    for option, group in by_flag.items():
        group.sort(key=lambda s: s.flag_part or 0)
        s0 = group[0]
        target = parser
        if groups:
            if s0.section not in sections:
                sections[s0.section] = parser.add_argument_group(s0.section)
            target = sections[s0.section]
        if len(group) == 2:
            metavar = tuple(s.metavar or s.name.upper() for s in group)
            defaults = " ".join(format_value(s, s.default) for s in group)
            text = (f"{group[0].title} and {group[1].title}. {group[0].help.rstrip('.')}. "
                    f"{group[1].help.rstrip('.')} (default {defaults})")
            target.add_argument(option, nargs=2, type=_parser_for(s0), metavar=metavar, dest=s0.dest + "__pair",
                                default=argparse.SUPPRESS, help=text.replace("%", "%%"))
        elif s0.kind == "bool":
            target.add_argument(option, action=argparse.BooleanOptionalAction, dest=s0.dest,
                                default=argparse.SUPPRESS, help=_help(s0))
        else:
            kw: dict[str, Any] = {"dest": s0.dest, "default": argparse.SUPPRESS, "help": _help(s0),
                                  "metavar": s0.metavar or _metavar(s0)}
            if s0.kind == "choice":
                kw["choices"] = list(s0.choices)
                kw.pop("metavar")
            else:
                kw["type"] = _parser_for(s0)
            target.add_argument(option, **kw)
    return sections


def values_from_args(args: argparse.Namespace, param_specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Dotted-path values of the options given on the command line (others absent)."""
    ns = vars(args)
    out: dict[str, Any] = {}
    pairs: dict[str, list[ParamSpec]] = {}
    for s in param_specs:
        if s.cli and s.flag_part is not None and s.dest + "__pair" not in ns and s.dest in ns:
            out[s.path] = ns[s.dest]        # a pair member that fell back to its own option
        elif s.cli and s.flag_part is not None:
            pairs.setdefault(s.option, []).append(s)
        elif s.cli and s.dest in ns:
            out[s.path] = ns[s.dest]
    for group in pairs.values():
        group.sort(key=lambda s: s.flag_part or 0)
        key = group[0].dest + "__pair"
        if key in ns:
            for s, v in zip(group, ns[key]):
                out[s.path] = v
    return out


# ---------------------------------------------------------------- building and checking
def replace_path(obj: Any, values: dict[str, Any]) -> Any:
    """*obj* with dotted *values* replaced (nested frozen dataclasses rebuilt); unknown names in one sentence."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    known = {f.name for f in fields(obj)} if dataclasses.is_dataclass(obj) else set()
    for path, v in values.items():
        head, _, rest = path.partition(".")
        check(head in known, f"unknown parameter {path!r} for {type(obj).__name__}; known: {', '.join(sorted(known))}.")
        if rest:
            nested.setdefault(head, {})[rest] = v
        else:
            top[head] = v
    for head, sub in nested.items():
        top[head] = replace_path(getattr(obj, head), sub)
    return dataclasses.replace(obj, **top) if top else obj


def build(cls: type, values: dict[str, Any] | None = None) -> Any:
    """An instance of *cls* from nested or dotted *values* (missing keys keep defaults).

    Lists become tuples; unknown keys are refused with one sentence.
    """
    values = dict(values or {})
    inst = cls()
    known = {f.name: f for f in fields(cls)}
    top: dict[str, Any] = {}
    for key, v in values.items():
        head, _, rest = key.partition(".")
        check(head in known, f"unknown parameter {key!r}.")
        cur = getattr(inst, head)
        if rest:
            top.setdefault(head, {})[rest] = v
        elif is_dataclass(cur) and isinstance(v, dict):
            top[head] = v
        else:
            top[head] = tuple(v) if isinstance(v, list) else v
    out: dict[str, Any] = {}
    for head, v in top.items():
        cur = getattr(inst, head)
        out[head] = build(type(cur), v) if (is_dataclass(cur) and isinstance(v, dict)) else v
    return dataclasses.replace(inst, **out) if out else inst


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready nested dict of a parameter dataclass (tuples as lists)."""
    def conv(v: Any) -> Any:
        if is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        return v

    return conv(obj)


def check_ranges(obj: Any, param_specs: Sequence[ParamSpec] | None = None, context: str = "") -> None:
    """Refuse values outside their declared range or choices (one sentence, in the form's words)."""
    where = f" ({context})" if context else ""
    for s in param_specs if param_specs is not None else specs(obj):
        v = get_path(obj, s.path)
        if v is None:
            check(s.kind.endswith("?"), f"{s.label}{where} needs a value.")
            continue
        if s.kind == "choice":
            check(v in s.choices, f"{s.label}{where} must be one of {', '.join(map(str, s.choices))}, got {v!r}.")
        elif s.kind in ("int", "int?", "float", "float?"):
            integer = s.kind.startswith("int")
            ok_type = isinstance(v, (int,)) and not isinstance(v, bool) if integer else isinstance(v, (int, float))
            import numpy as np

            ok_type = ok_type or isinstance(v, (np.integer,) if integer else (np.integer, np.floating))
            check(ok_type, f"{s.label}{where} must be {'an integer' if integer else 'a number'}, got {v!r}.")
            check(integer or math.isfinite(float(v)), f"{s.label}{where} must be a finite number, got {v!r}.")
            unit = f" {s.unit}" if s.unit else ""
            if s.min is not None and v < s.min:
                raise MicromotionError(f"{s.label}{where} must be at least {s.min:g}{unit}, got {v!r}.")
            if s.max is not None and v > s.max:
                raise MicromotionError(f"{s.label}{where} must be at most {s.max:g}{unit}, got {v!r}.")
        elif s.kind == "floats":
            check(all(isinstance(x, (int, float)) and math.isfinite(x) and (s.min is None or x >= s.min) for x in v),
                  f"{s.label}{where} must be a list of numbers{'' if s.min is None else f' >= {s.min:g}'}.")


def get_path(obj: Any, path: str) -> Any:
    """The value at dotted *path* of a parameter dataclass."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
