"""The benchmark's baseline: suite2p's classifier features and a scikit-learn classifier.

suite2p (Pachitariu et al.) decides cell / not cell from a few statistics of each ROI:

``skew``
    skewness of the ROI's trace (here of its dF/F, :func:`~napari_micromotion.cells.encode.normalise_traces`):
    calcium transients make it large and positive, noise keeps it near 0;
``compact``
    mean distance of the mask's pixels to their centroid divided by that of a disk of the same
    area (1 for a disk, larger for elongated or ragged shapes);
``npix_norm``
    the mask's area over the median area of the recording's candidates;
``std_mean``
    standard deviation over mean of the raw trace.

suite2p feeds them to a naive-Bayes-like classifier of per-feature histograms; here a
:class:`~sklearn.pipeline.Pipeline` of a standard scaler and a logistic regression (``"logistic"``,
default) or a histogram gradient boosting classifier (``"boosting"``, stronger on interactions
between features).  :class:`FeatureClassifier` has the same ``fit`` / ``predict_proba`` API as
:class:`~napari_micromotion.cells.train.CellClassifier`, on the features of :func:`features`
instead of the encoded inputs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import check
from .candidate import Candidate
from .encode import normalise_traces

__all__ = ["FEATURES", "features", "FeatureClassifier"]

#: names of the columns of :func:`features`
FEATURES = ("skew", "compact", "npix_norm", "std_mean")


def _compactness(mask: np.ndarray) -> float:
    rr, cc = np.nonzero(mask)
    n = rr.size
    if n == 0:
        return float("nan")
    d = np.hypot(rr - rr.mean(), cc - cc.mean()).mean()
    disk = (2.0 / 3.0) * np.sqrt(n / np.pi)  # mean distance to the centre of a disk of area n
    return float(max(d, 1e-6) / max(disk, 1e-6))


def features(candidates: Sequence[Candidate]) -> np.ndarray:
    """``(N, 4)`` float64 columns :data:`FEATURES` for the candidates of one recording."""
    from scipy import stats

    n = len(candidates)
    out = np.zeros((n, len(FEATURES)))
    if n == 0:
        return out
    lengths = {c.trace.size for c in candidates}
    check(len(lengths) == 1, "compute features of one recording's candidates at a time.")
    raw = np.stack([c.trace for c in candidates]).astype(np.float64)
    dff = normalise_traces(raw).astype(np.float64)
    out[:, 0] = np.nan_to_num(stats.skew(dff, axis=1)) if raw.shape[1] > 2 else 0.0
    out[:, 1] = [_compactness(c.submask) for c in candidates]
    npix = np.array([c.area_px for c in candidates], np.float64)
    out[:, 2] = npix / max(float(np.median(npix)), 1.0)
    mean = raw.mean(axis=1)
    out[:, 3] = raw.std(axis=1) / np.where(np.abs(mean) > 1e-9, np.abs(mean), 1.0)
    return out


class FeatureClassifier:
    """suite2p-like classifier of :func:`features`.

    Parameters
    ----------
    model
        ``"logistic"`` (scaler + logistic regression) or ``"boosting"`` (histogram gradient boosting).
    seed
        Random state of the boosting model.
    """

    def __init__(self, model: str = "logistic", seed: int = 0) -> None:
        check(model in ("logistic", "boosting"), f"model must be 'logistic' or 'boosting', got {model!r}.")
        self.model = model
        self.seed = int(seed)
        self.pipeline = None

    def fit(self, feats, y) -> "FeatureClassifier":
        """Fit on ``(N, 4)`` features and labels (1 = cell)."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.nan_to_num(np.asarray(feats, np.float64))
        y = np.asarray(y).astype(np.int64).ravel()
        check(x.ndim == 2 and x.shape[0] == y.shape[0] and len(np.unique(y)) == 2,
              "the baseline needs (N, features) and labels of both classes.")
        clf = (LogisticRegression(max_iter=1000) if self.model == "logistic"
               else HistGradientBoostingClassifier(random_state=self.seed))
        self.pipeline = make_pipeline(StandardScaler(), clf).fit(x, y)
        return self

    def predict_proba(self, feats) -> np.ndarray:
        """``(N,)`` P(cell)."""
        check(self.pipeline is not None, "fit the baseline classifier first.")
        return self.pipeline.predict_proba(np.nan_to_num(np.asarray(feats, np.float64)))[:, 1]

    def predict(self, feats) -> np.ndarray:
        return (self.predict_proba(feats) >= 0.5).astype(np.int64)
