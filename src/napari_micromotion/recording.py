"""The :class:`Recording`: one correlative video, validated once.

Arrays are ``(T, Y, X)``: time first, then rows and columns.  The transmission
(brightfield) video is what every detector sees; the fluorescence video (or a
ready-made ``(T,)`` trace) is the ground truth the detectors are trained and
scored against.  Large arrays may be read-only ``numpy.memmap`` objects; nothing
here copies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import MicromotionError, check

__all__ = ["Recording", "as_time_series", "kept_frames_provenance", "frames_to_skip", "FADE_IN_WORDS"]

#: The fewest frames any analysis can use (a band-pass filter needs a few periods).
MIN_FRAMES = 16


#: the words the reader's fade-in warning is known by (``io`` writes "<file> fades in: its first N frames ...")
FADE_IN_WORDS = " fades in: "


def frames_to_skip(provenance: Any) -> int:
    """How many of a recording's first frames a fade-in still darkens: the reader found it
    (``transmission.fade_in_frames``, in the file's frames) and its warning stands; 0 when there is none or the
    recording was cut past it (``"frames"``, see :func:`kept_frames_provenance`)."""
    if not isinstance(provenance, dict) or not any(FADE_IN_WORDS in str(w) for w in provenance.get("warnings") or []):
        return 0
    fade = int((provenance.get("transmission") or {}).get("fade_in_frames") or 0)
    return max(0, fade - int((provenance.get("frames") or [0])[0]))


def kept_frames_provenance(provenance: dict[str, Any] | None, start: int, stop: int) -> dict[str, Any]:
    """*provenance* of a recording cut to its frames ``start:stop``.

    ``"frames"`` counts in the file's frames (a cut of a cut adds up); the reader's warning that the video fades
    in is dropped once the cut starts past the fade (:func:`frames_to_skip`), as that is what it advised.
    """
    prov = dict(provenance or {})
    first = int((prov.get("frames") or [0])[0])
    skip = frames_to_skip(prov)
    if skip and start >= skip:
        prov["warnings"] = [w for w in prov.get("warnings", []) if FADE_IN_WORDS not in str(w)]
    prov["frames"] = [first + int(start), first + int(stop)]
    return prov


def as_time_series(array: Any, what: str) -> np.ndarray:
    """Return *array* as a numeric ``(T, Y, X)`` array or raise a one-sentence error.

    Parameters
    ----------
    array
        Anything array-like.  Memory maps stay memory maps.
    what
        Name used in the error message (``"transmission"``, ...).
    """
    arr = array if isinstance(array, np.ndarray) else np.asarray(array)
    if arr.dtype.kind not in "uif":
        raise MicromotionError(
            f"{what} has data type {arr.dtype}; a numeric (integer or float) image stack is needed."
        )
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        raise MicromotionError(
            f"{what} looks like an RGB{'A' if arr.shape[-1] == 4 else ''} video of shape {arr.shape}; "
            "convert it to one grey channel first."
        )
    if arr.ndim == 4:
        raise MicromotionError(
            f"{what} has 4 dimensions {arr.shape}; pick one channel (T, Y, X) or pass a channel index."
        )
    if arr.ndim != 3:
        raise MicromotionError(
            f"{what} has {arr.ndim} dimension(s) {arr.shape}; a time series of images (T, Y, X) is needed."
        )
    t, y, x = arr.shape
    check(t >= MIN_FRAMES, f"{what} has {t} frame(s); at least {MIN_FRAMES} are needed.")
    check(y >= 1 and x >= 1, f"{what} has empty frames of size {y} x {x}.")
    if not arr.dtype.isnative:     # a big-endian TIFF: the compiled kernels read native byte order only
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


#: the largest magnitude a float video may hold: its squares (energies, variances) must fit in float32
MAX_ABS_VALUE = 1e15


def _check_finite(arr: np.ndarray, what: str, chunk_frames: int = 256) -> None:
    """Refuse NaN/Inf (and magnitudes whose squares overflow float32) in float data, scanning in chunks so
    memory maps stay cheap."""
    if arr.dtype.kind != "f":
        return
    for start in range(0, arr.shape[0], chunk_frames):
        block = np.asarray(arr[start : start + chunk_frames])
        peak = float(np.abs(block).max()) if block.size else 0.0     # NaN or inf if any value is (one pass)
        if not math.isfinite(peak):
            bad = np.argwhere(~np.isfinite(block.reshape(block.shape[0], -1)))[0]
            frame, flat = int(bad[0]) + start, int(bad[1])
            where = f"frame {frame}"
            if arr.ndim == 3:
                where += f", pixel ({flat // arr.shape[2]}, {flat % arr.shape[2]})"
            raise MicromotionError(f"{what} contains NaN or infinite values (first at {where}).")
        check(peak <= MAX_ABS_VALUE, f"{what} holds values up to {peak:.3g}; beyond {MAX_ABS_VALUE:.0e} their squares "
                                     "overflow the float32 arithmetic of the analysis: rescale the data.")


@dataclass(frozen=True)
class Recording:
    """A transmission video with optional fluorescence ground truth.

    Parameters
    ----------
    transmission
        ``(T, Y, X)`` brightfield video, any integer or float dtype (memory maps welcome).
    fps
        Frame rate in frames per second (> 0).
    fluorescence
        Optional ``(T, Y, X)`` fluorescence video of the same frames, or a ``(T,)`` trace.
    pixel_size_um
        Pixel size in micrometres, if known.
    provenance
        Free-form record of where the data came from (paths, channels, checksums, metadata).
    """

    transmission: np.ndarray
    fps: float
    fluorescence: np.ndarray | None = None
    pixel_size_um: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        trans = as_time_series(self.transmission, "transmission")
        object.__setattr__(self, "transmission", trans)
        try:
            check(not isinstance(self.fps, (bool, np.bool_)), f"frame rate {self.fps!r} is not a number.")
            fps = float(self.fps)
        except (TypeError, ValueError):
            raise MicromotionError(f"frame rate {self.fps!r} is not a number.") from None
        check(math.isfinite(fps) and fps > 0, f"frame rate must be a positive number of frames per second, got {self.fps!r}.")
        object.__setattr__(self, "fps", fps)
        if self.pixel_size_um is not None:
            try:
                px = float(self.pixel_size_um)
            except (TypeError, ValueError):
                raise MicromotionError(f"pixel size {self.pixel_size_um!r} is not a number.") from None
            check(math.isfinite(px) and px > 0, f"pixel size must be a positive number of micrometres, got {self.pixel_size_um!r}.")
            object.__setattr__(self, "pixel_size_um", px)
        _check_finite(trans, "transmission")
        if self.fluorescence is not None:
            fl = self.fluorescence if isinstance(self.fluorescence, np.ndarray) else np.asarray(self.fluorescence)
            if fl.ndim == 1:
                check(fl.dtype.kind in "uif", f"fluorescence trace has data type {fl.dtype}; numbers are needed.")
            else:
                fl = as_time_series(fl, "fluorescence")
                check(
                    fl.shape[1:] == trans.shape[1:],
                    f"fluorescence frames are {fl.shape[1]} x {fl.shape[2]} px but transmission frames are "
                    f"{trans.shape[1]} x {trans.shape[2]} px; both channels must cover the same field.",
                )
            check(
                fl.shape[0] == trans.shape[0],
                f"fluorescence has {fl.shape[0]} frames but transmission has {trans.shape[0]}; "
                "both channels must be recorded frame by frame together.",
            )
            _check_finite(fl, "fluorescence")
            object.__setattr__(self, "fluorescence", fl)

    # ------------------------------------------------------------------ views
    @property
    def n_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.transmission.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Frame size ``(Y, X)`` in pixels."""
        return int(self.transmission.shape[1]), int(self.transmission.shape[2])

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.n_frames / self.fps

    @property
    def synthesized(self) -> dict[str, Any] | None:
        """The interpolate tool's marker of a video with synthesized (interpolated) frames, else ``None``.

        What the reader found in the file's metadata or its ``synthesized.csv`` (``channel``,
        ``factor``, ``synthesized_frames``, where known).
        """
        synth = self.provenance.get("synthesized_frames") if isinstance(self.provenance, dict) else None
        return synth if synth else None

    @property
    def measured_every(self) -> int:
        """``K`` when only every ``K``-th frame was measured (a video of the interpolate tool), else 1.

        From the interpolation factor the provenance's ``synthesized_frames`` marker records,
        or, when only a ``synthesized.csv`` marked the file, from the count of synthesized
        frames: ``(N - 1) * K + 1`` frames hold ``N`` measured ones (frames ``0, K, 2K, ...``).
        Noise measured from consecutive frames is to be measured on those frames only: a
        synthesized frame is a blend of its measured neighbours, so the frame-to-frame
        differences of an interpolated video understate the noise.
        """
        synth = self.synthesized
        if not isinstance(synth, dict):
            return 1

        def whole(key: str) -> int:      # a hand-made or damaged marker counts as unknown
            try:
                return int(synth.get(key) or 0)
            except (TypeError, ValueError):
                return 0

        k = whole("factor")
        if k < 2:
            measured = self.n_frames - whole("synthesized_frames")
            if 2 <= measured < self.n_frames:
                k = int(round((self.n_frames - 1) / (measured - 1)))
        return k if k >= 2 else 1

    @property
    def has_fluorescence(self) -> bool:
        """Whether a ground truth is available."""
        return self.fluorescence is not None

    def time_s(self) -> np.ndarray:
        """Time of every frame in seconds, starting at 0."""
        return np.arange(self.n_frames) / self.fps

    def still_frame(self, n_frames: int = 50) -> np.ndarray:
        """Mean of the first *n_frames* frames as float32 (a still image for display)."""
        n = max(1, min(n_frames, self.n_frames))
        return np.asarray(self.transmission[:n], dtype=np.float32).mean(axis=0)

    def fingerprint(self, n_samples: int = 8) -> str:
        """A short digest of the transmission video that tells this recording from another, cheaply.

        SHA-256 of the shape, the data type and *n_samples* frames spread over the video (a
        few frames' reads, also for a memory map), so a model can record which recording it
        learned from and warn when it is scored on its own training frames.  Two recordings
        that differ only between the sampled frames share it.
        """
        import hashlib

        video = self.transmission
        n = int(video.shape[0])
        h = hashlib.sha256(f"{tuple(video.shape)}|{np.dtype(video.dtype).str}".encode())
        for i in sorted({int(round(v)) for v in np.linspace(0, n - 1, max(1, min(n_samples, n)))}):
            h.update(np.ascontiguousarray(video[i]).tobytes())
        return "sha256:" + h.hexdigest()[:32]

    def keep_frames(self, start: int, stop: int) -> "Recording":
        """The recording's frames ``start:stop`` (0-based, half-open; e.g. to drop a fade-in), counted from 0.

        Both channels are cut alike, without a copy; the provenance's ``"frames"`` keeps ``[start, stop]`` in the
        file's frames (see :func:`kept_frames_provenance`).  Raises :class:`MicromotionError` for a range outside
        the recording or shorter than :data:`MIN_FRAMES`.
        """
        start, stop = int(start), int(stop)
        check(0 <= start < stop <= self.n_frames,
              f"frames {start}:{stop} lie outside the recording's {self.n_frames} frames (0:{self.n_frames}).")
        name = _source_name(self.provenance)
        check(stop - start >= MIN_FRAMES,
              f"keeping frames {start}:{stop} leaves {stop - start} of the {self.n_frames} frames"
              f"{f' of {name}' if name else ''}; at least {MIN_FRAMES} are needed.")
        fl = self.fluorescence[start:stop] if self.fluorescence is not None else None
        return replace(self, transmission=self.transmission[start:stop], fluorescence=fl,
                       provenance=kept_frames_provenance(self.provenance, start, stop))

    def with_(self, **changes: Any) -> "Recording":
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def describe(self) -> str:
        """One line for logs: size, rate, channels."""
        fl = "none" if self.fluorescence is None else ("trace" if self.fluorescence.ndim == 1 else "video")
        px = f", {self.pixel_size_um:g} um/px" if self.pixel_size_um else ""
        return (f"{self.n_frames} frames x {self.frame_shape[0]} x {self.frame_shape[1]} px at "
                f"{self.fps:g} fps ({self.duration_s:.1f} s){px}; fluorescence: {fl}")


def _source_name(provenance: Any) -> str:
    """The transmission's file name (or layer name) that *provenance* records, else ``""``."""
    if not isinstance(provenance, dict):
        return ""
    path = (provenance.get("transmission") or {}).get("path") if isinstance(provenance.get("transmission"), dict) \
        else None
    if path:
        return str(path).replace("\\", "/").rsplit("/", 1)[-1]
    return str(provenance.get("transmission_layer") or provenance.get("layer") or "")
