"""Shared fixtures: small simulated recordings (cached per session) and paths to the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real"

# keep the numba/torch thread pools small and deterministic in tests
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def small_sim():
    """1500 frames x 64 px: enough for band-pass scores and beats."""
    from napari_micromotion.simulate import simulate

    return simulate(n_frames=1500, size=64, seed=3)


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory, small_sim):
    """The same recording written by the simulator (ImageJ TIFFs + rois.json)."""
    from napari_micromotion.simulate import write_simulation

    out = tmp_path_factory.mktemp("sim") / "rec"
    write_simulation(out, small_sim.params)
    return out


@pytest.fixture(scope="session")
def shared_ohw():
    path = SHARED / "ohw-tissue-tif-series" / "sampletifseries"
    assert path.is_dir(), f"shared data missing: {path}"
    return path


@pytest.fixture(scope="session")
def shared_mp4():
    path = SHARED / "cm-monolayer-phase-mp4" / "adult.mp4"
    assert path.is_file(), f"shared data missing: {path}"
    return path


def assert_one_line_error(capsys_or_text, code, expected_code=2):
    """CLI contract: exit 2 and exactly one 'error: ...' line on stderr."""
    text = capsys_or_text
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert code == expected_code, text
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    assert "Traceback" not in text


rng = np.random.default_rng


def page_note(fig, marker: str) -> str:
    """The one note of *fig* (text on an axes-less panel) holding *marker*, checked to lie whole on the page and
    clear of every plotted axes; returns its text with wrapped lines joined."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    notes = [t for ax in fig.axes if not ax.axison for t in ax.texts if marker in t.get_text()]
    assert len(notes) == 1, [t.get_text() for t in notes]
    box = notes[0].get_window_extent(renderer)
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0     # whole, on the page
    assert not [ax for ax in fig.axes if ax.axison and ax.get_tightbbox(renderer).overlaps(box)]
    return notes[0].get_text().replace("\n   ", " ")
