"""npe2 sample data: a simulated correlative recording with its ROIs."""

from __future__ import annotations

__all__ = ["make_sample_data", "SAMPLE"]

#: what *File > Open Sample* simulates (frames, frame size in px, seed); 40 s at 50 fps
SAMPLE = {"n_frames": 2000, "size": 128, "seed": 0}


def make_sample_data(n_frames: int | None = None, size: int | None = None, seed: int | None = None) -> list:
    """Transmission, fluorescence and ROI layers from :func:`napari_micromotion.simulate.simulate`."""
    n_frames = SAMPLE["n_frames"] if n_frames is None else n_frames
    size = SAMPLE["size"] if size is None else size
    seed = SAMPLE["seed"] if seed is None else seed
    from ._layers import recording_layers, rois_layer
    from .simulate import simulate

    sim = simulate(n_frames=n_frames, size=size, seed=seed)
    rec = sim.recording()
    px = rec.pixel_size_um or 1.0
    return [*recording_layers(rec), rois_layer(sim.rois, scale=(px, px))]
