"""The tool interface: a long computation on a recording with its own output folder.

A tool (denoising, frame interpolation, motion fields, cell finding, ...) follows the
analysis' conventions:

* its parameters are one frozen dataclass declared with
  :func:`napari_micromotion.schema.param` (the ``micromotion <name>`` options and the
  napari form are generated from it);
* :meth:`Tool.iter_run` is a generator of :class:`~napari_micromotion.progress.Progress`
  returning a :class:`ToolResult`: it checks the input (:meth:`Tool.validate`, as the command
  line and the napari tab do) and runs the tool's :meth:`Tool.compute`; :meth:`Tool.run` is its
  synchronous wrapper;
* its output folder is described once by :attr:`Tool.layout` (entries of
  :mod:`napari_micromotion.layout`), written atomically by :meth:`Tool.write` and read
  back by :meth:`Tool.read`; the run record ``<name>.json`` carries the parameters and,
  under ``result``, the scalars of :meth:`Tool.result_record`, which
  :meth:`Tool.fields_from_record` turns back into result fields.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Generator, Sequence

import numpy as np

from ..errors import MicromotionError
from ..methods.base import NoParams
from ..progress import Progress, drive

__all__ = ["Tool", "ToolResult", "RecordEntry", "json_default", "finite_or_none", "synthesized_warning",
           "with_source_pixel_size"]


@dataclass
class ToolResult:
    """Base of tool results: the parameters, what the tool was run on, timings and warnings."""

    params: Any
    source: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def synthesized_warning(recording: Any, consequence: str) -> str | None:
    """The warning for a tool run on a video with synthesized (interpolated) frames, else ``None``.

    *consequence*: what those frames do to this tool's result (one clause, lower case).
    The analysis refuses such a video unless asked; the tools run on it and say so.
    """
    if not recording.synthesized:
        return None
    k = recording.measured_every
    return ("this video contains synthesized (interpolated) frames, made by the interpolate tool"
            + (f": only one frame in {k} was measured" if k > 1 else "") + f"; {consequence}")


def with_source_pixel_size(params: Any, pixel_size_um: float | None) -> Any:
    """*params* with the pixel size its source records (a file's, a layer's) when the user left ``pixel_size_um``
    empty, else ``None`` (no such parameter, one given, none recorded, or one outside the parameter's range)."""
    import dataclasses

    from ..schema import specs

    spec = next((sp for sp in specs(params) if sp.name == "pixel_size_um"), None)
    if spec is None or params.pixel_size_um is not None or not pixel_size_um:
        return None
    px = float(pixel_size_um)
    if (spec.min is not None and px < spec.min) or (spec.max is not None and px > spec.max):
        return None
    return dataclasses.replace(params, pixel_size_um=px)


@dataclass
class RecordEntry:
    """The run record ``<name>.json`` in a tool's :attr:`~Tool.layout` (for its description; the tool writes it)."""

    path: str
    what: str

    def write(self, result: Any, folder: Path) -> None:
        """Nothing: :meth:`Tool.write` writes the record."""

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        """Nothing: :meth:`Tool.read` reads it (:meth:`Tool.fields_from_record`)."""


def finite_or_none(value: Any) -> Any:
    """*value* with every non-finite float replaced by ``None`` (nested dicts and lists): strict JSON has no
    NaN or infinity (a perfect reconstruction's PSNR, the median of no valid pixel)."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


class Tool:
    """Base class of tools.

    Class attributes
    ----------------
    name
        Sub-command and registry name (``motion``; dashes on the command line).
    label, description
        For people: form title, ``micromotion methods`` line.
    kind
        What it makes: ``"video -> video"``, ``"video -> ROIs"``, ``"video -> vectors"``, ...
    Params
        Its parameter dataclass.
    layout
        Entries of its output folder (besides ``<name>.json``, the run record).
    input
        ``"recording"`` (a video with the usual reading options), ``"fluorescence"`` (a fluorescence
        video, the transmission optional) or ``"image"``.
    result_type
        The :class:`ToolResult` subclass it returns (the layout reads back into it).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "video -> video"
    Params: ClassVar[type] = NoParams
    layout: ClassVar[list[Any]] = []
    input: ClassVar[str] = "recording"
    result_type: ClassVar[type] = ToolResult
    #: ``"module:Class"`` of a Qt widget showing results in the inspector (``set_result(result)``); "" for none
    result_view: ClassVar[str] = ""
    #: file name of the run record; "" for ``<name>.json``
    record_file: ClassVar[str] = ""
    #: parameters that only choose what :meth:`write` writes (napari's Export takes them from the form as it is then)
    export_options: ClassVar[tuple[str, ...]] = ()

    @property
    def record_path(self) -> str:
        """File name of the run record in the output folder."""
        return self.record_file or f"{self.name}.json"

    @property
    def command(self) -> str:
        return self.name.replace("_", "-")

    def check(self, recording: Any, params: Any) -> None:
        """Refuse impossible input before long work (one sentence)."""

    def validate(self, recording: Any, params: Any, rois: Sequence[Any] = ()) -> list[Any]:
        """Everything the command line and the napari tab check before the work, for scripts too.

        The input's type, every parameter's range and choice (:func:`~napari_micromotion.schema.check_ranges`),
        :meth:`check`, and the ROIs (objects or the file format's dicts), which must lie on the frames.
        Returns the ROIs as :class:`~napari_micromotion.rois.ROI` objects.
        """
        from ..errors import check
        from ..recording import Recording
        from ..rois import as_rois, rasterize
        from ..schema import check_ranges

        if self.input != "image":
            check(isinstance(recording, Recording),
                  f"the {self.label} works on a Recording (napari_micromotion.Recording(video, fps)), "
                  f"got {type(recording).__name__}.")
        check(isinstance(params, self.Params),
              f"the {self.label}'s parameters must be a {self.Params.__name__}, got {type(params).__name__}.")
        check_ranges(params)
        self.check(recording, params)
        rois = as_rois(rois)
        if rois:        # an ROI off the frames: one sentence now, not after the work
            shape = recording.frame_shape if self.input != "image" else np.shape(recording)[-2:]
            rasterize(rois, tuple(shape))
        return rois

    def iter_run(self, recording: Any, params: Any = None, *, rois: Sequence[Any] = ()
                 ) -> Generator[Progress, None, Any]:
        """The computation; yields progress, returns a :attr:`result_type` instance.

        It checks its input first (:meth:`validate`), then runs :meth:`compute`.
        """
        params = self.Params() if params is None else params
        rois = self.validate(recording, params, rois)
        return (yield from self.compute(recording, params, rois=rois))

    def compute(self, recording: Any, params: Any, *, rois: Sequence[Any] = ()) -> Generator[Progress, None, Any]:
        """The tool's own work on checked input (subclasses implement it)."""
        raise NotImplementedError

    def run(self, recording: Any, params: Any = None, *, rois: Sequence[Any] = (),
            progress: Callable[[Progress], None] | None = None, cancel: Callable[[], bool] | None = None) -> Any:
        """Synchronous :meth:`iter_run`."""
        return drive(self.iter_run(recording, params, rois=rois), progress=progress, cancel=cancel)

    def layer_data(self, result: Any) -> list[tuple[Any, dict[str, Any], str]]:
        """napari layer data tuples ``(data, kwargs, layer_type)`` showing *result* (no Qt; names unique per tool)."""
        return []

    # ------------------------------------------------------------ files
    def record(self, result: Any) -> dict[str, Any]:
        """The run record ``<name>.json``: parameters, source, timings, warnings, versions."""
        from datetime import datetime, timezone

        from ..detectors.models import package_versions
        from ..export import readers_first
        from ..schema import to_dict

        # everything the user was warned of: the reader's (a lossy video, ...; in the source) and the tool's
        rec = {"tool": self.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "parameters": to_dict(result.params), "source": result.source, "timings_s": result.timings_s,
               "warnings": readers_first(result.source, result.warnings), "package_versions": package_versions()}
        own = self.result_record(result)
        if own:
            rec["result"] = own
        return rec

    def result_record(self, result: Any) -> dict[str, Any]:
        """JSON-ready scalars of *result* kept in the run record's ``result`` section (none by default)."""
        return {}

    def fields_from_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Result fields from the run record's ``result`` section (the inverse of :meth:`result_record`)."""
        return {}

    def write(self, result: Any, out: str | os.PathLike, *, overwrite: bool = False,
              extra: dict[str, Any] | None = None) -> Path:
        """Write *result* into folder *out* atomically (its :attr:`layout` plus ``<name>.json``)."""
        from ..export import commit_output_dir, paths_in, prepare_output_dir

        out = Path(out)
        tmp = prepare_output_dir(out, overwrite, paths_in([(extra or {}).get("inputs"), result.source]))
        try:
            for entry in self.layout:
                entry.write(result, tmp)
            record = {**self.record(result), **(extra or {})}
            (tmp / self.record_path).write_text(json.dumps(record, indent=1, default=json_default) + "\n")
            commit_output_dir(tmp, out)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise MicromotionError(f"could not write results to {out} ({exc.strerror or exc}).") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def read(self, folder: str | os.PathLike) -> Any:
        """A result read back from an output folder written by :meth:`write`."""
        from ..errors import check
        from ..schema import build

        folder = Path(folder)
        rec_path = folder / self.record_path
        check(rec_path.is_file(), f"{folder} is not an output folder of the {self.label} tool (no {rec_path.name}).")
        try:
            record = json.loads(rec_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise MicromotionError(f"{rec_path} is not readable JSON ({str(exc)[:80]}).") from None
        fields: dict[str, Any] = {"params": build(self.Params, record.get("parameters", {})),
                                  "source": record.get("source", {}), "timings_s": record.get("timings_s", {}),
                                  "warnings": record.get("warnings", [])}
        fields.update(self.fields_from_record(record.get("result", {}) or {}))
        for entry in self.layout:
            entry.read(folder, fields)
        return self.result_type(**fields)

    def __repr__(self) -> str:
        return f"<tool {self.name}: {self.label}>"


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` of tool files: NumPy scalars and arrays, paths, tuples."""
    import numpy as np

    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
