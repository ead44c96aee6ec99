"""Cell finding (issue 15): candidate ROIs from the videos, classified by 3CNet, curated, typed by micromotion.

The pipeline reads as a short sequence of stages, one module each:

* :mod:`.candidates`: candidate extraction, PCA/ICA (Mukamel et al. 2009) for independently
  firing populations or segmentation of the mean/correlation image or the brightfield still
  for syncytia; each candidate a pixel mask, a polygon and a trace (:class:`Candidate`);
* :mod:`.encode`: the classifier's input, 92 x 92 x 2 (image patch + trace), with the report's
  trace encoding and better ones;
* :mod:`.model`, :mod:`.train`: 3CNet exactly as in Woo's report and a compact variant, the
  multiclass hinge loss, Adam, fine-tuning on a user's labels; :mod:`.dataset`: labelled
  candidates from the simulator;
* :mod:`.kinds`: strong / weak / silent from the micromotion scores of an analysis;
* :mod:`.interop`: suite2p ``stat.npy``/``iscell.npy`` and ImageJ ``RoiSet.zip``.

The tool that runs them is :mod:`napari_micromotion.tools.cells`.
"""

from __future__ import annotations

from .candidate import LABELS, Candidate

__all__ = ["Candidate", "LABELS"]
