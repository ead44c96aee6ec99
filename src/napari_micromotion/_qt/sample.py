"""The sample recording, simulated in a background worker with a progress bar (the UI stays responsive).

napari calls sample-data commands in the GUI thread and needs a layer back at once; this
one returns a one-frame placeholder ("transmission (simulating...)") and, when the
simulation is done a few seconds later, fills it with the recording and adds the
fluorescence and ROI layers.  Without a running viewer it simulates synchronously.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_sample_async", "load_sample"]


def _layers(sim: Any) -> list:
    from .._layers import recording_layers, rois_layer

    rec = sim.recording()
    px = rec.pixel_size_um or 1.0
    return [*recording_layers(rec), rois_layer(sim.rois, scale=(px, px))]


PLACEHOLDER = "transmission (simulating...)"


#: metadata key that ties a placeholder layer to the simulation that replaces it
PLACEHOLDER_KEY = "micromotion_sample_placeholder"


def _placeholders(viewer: Any, tag: str | None) -> list:
    """The placeholder layers of simulation *tag* (napari may have renamed them ``... [1]``), or named
    :data:`PLACEHOLDER` when *tag* is ``None``."""
    if tag is None:
        return [la for la in viewer.layers if la.name == PLACEHOLDER]
    return [la for la in viewer.layers if la.metadata.get(PLACEHOLDER_KEY) == tag]


def load_sample(viewer: Any, n_frames: int | None = None, size: int | None = None, seed: int | None = None,
                tag: str | None = None) -> Any:
    """Simulate the sample in a worker and add its layers to *viewer* when done; returns the task.

    The placeholder layer of this simulation (metadata :data:`PLACEHOLDER_KEY` = *tag*, or named
    :data:`PLACEHOLDER` without a tag) is replaced by the transmission layer.
    """
    from .._sample_data import SAMPLE
    from ..simulate import iter_simulate
    from ._state import get_session
    from ._tasks import Task

    kw = {"n_frames": SAMPLE["n_frames"] if n_frames is None else n_frames,
          "size": SAMPLE["size"] if size is None else size, "seed": SAMPLE["seed"] if seed is None else seed}
    session = get_session(viewer)
    task = Task(lambda: iter_simulate(**kw), what="simulating the sample", title="micromotion sample",
                parent=session)

    def add(sim: Any) -> None:
        layers = _layers(sim)
        placeholder = next(iter(_placeholders(viewer, tag)), None)
        if placeholder is not None:
            data, kwargs, _ = layers.pop(0)
            placeholder.data = data
            placeholder.metadata.pop(PLACEHOLDER_KEY, None)
            for key in ("scale", "contrast_limits", "metadata", "colormap"):
                if key in kwargs:
                    setattr(placeholder, key, kwargs[key])
            placeholder.name = kwargs["name"]
        for data, kwargs, kind in layers:
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        if viewer.dims.ndim >= 3:
            viewer.dims.set_current_step(0, 0)
        viewer.reset_view()

    def dropped() -> None:  # cancelled or failed: remove the placeholder
        if task.result is None:
            for la in _placeholders(viewer, tag):
                viewer.layers.remove(la)

    task.succeeded.connect(add)
    task.finished.connect(dropped)
    session.sample_task = task
    return task.start()


def open_sample_async() -> list:
    """npe2 sample-data command: start the simulation in the background (or simulate now without a viewer)."""
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        from .._sample_data import make_sample_data

        return make_sample_data()
    import uuid

    import numpy as np

    from .._sample_data import SAMPLE

    tag = uuid.uuid4().hex      # each request replaces its own placeholder, however napari names it
    load_sample(viewer, tag=tag)
    blank = np.zeros((1, SAMPLE["size"], SAMPLE["size"]), np.uint16)
    return [(blank, {"name": PLACEHOLDER, "colormap": "gray", "contrast_limits": (0, 1),
                     "metadata": {PLACEHOLDER_KEY: tag}}, "image")]
