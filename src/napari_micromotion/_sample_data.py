"""npe2 sample data: a simulated correlative recording with its ROIs."""

from __future__ import annotations

__all__ = ["make_sample_data"]


def make_sample_data(n_frames: int = 2000, size: int = 128, seed: int = 0) -> list:
    """Transmission, fluorescence and ROI layers from :func:`napari_micromotion.simulate.simulate`."""
    from ._layers import recording_layers, rois_layer
    from .simulate import simulate

    sim = simulate(n_frames=n_frames, size=size, seed=seed)
    rec = sim.recording()
    px = rec.pixel_size_um or 1.0
    return [*recording_layers(rec), rois_layer(sim.rois, scale=(px, px))]
