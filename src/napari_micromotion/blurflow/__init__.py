"""3D motion from one motion-blurred frame (Shajkofci & Liebling, ISBI 2021), no Qt.

Modules
-------
``psf``       image formation (Eqs. 1-4): scalar pupil PSF, motion-blur PSF, :func:`~.psf.form_image`
``synth``     synthetic training and test images (Eq. 5), the two-zone and cylinder tests
``model``     the U-Net (ResNet-style encoder), target encoding, safetensors + JSON files
``train``     :func:`~.train.iter_train_blur_flow` / :func:`~.train.train_blur_flow` (Eq. 6, RAdam)
``predict``   :func:`~.predict.predict_blur_flow` -> :class:`~.predict.BlurFlowResult` ``(5, Y, X)``
``metrics``   the paper's R^2
``evaluate``  the paper's evaluation (two-zone, cylinder, Table 1) and a classical baseline

Importing this package loads neither torch nor the weights; the functions do.
"""

from .predict import (
    BlurFlowParams,
    BlurFlowResult,
    load_default_model,
    predict_blur_flow,
)

__all__ = ["BlurFlowParams", "BlurFlowResult", "load_default_model", "predict_blur_flow"]
