"""napari-micromotion: label-free detection of cellular micromotion.

The analysis core (``recording``, ``io``, ``rois``, ``filters``, ``scoring``,
``detectors``, ``pipeline``, ``simulate``, ``cli``) imports and runs without Qt
or napari; the napari side lives in ``_qt`` and the npe2 contribution modules.

Method: Rinner et al., "Detection of cellular micromotion by advanced signal
processing", Sci Rep 10:20078 (2020), doi:10.1038/s41598-020-77015-z.
"""

from __future__ import annotations

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - running from a tree without setuptools-scm
    __version__ = "0.0.0+unknown"

from .errors import Cancelled, MicromotionError
from .recording import Recording

__all__ = ["__version__", "Cancelled", "MicromotionError", "Recording"]
