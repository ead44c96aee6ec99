"""Content-aware frame interpolation (issue 14): linear, motion-compensated and learned interpolators.

:mod:`.flows` (linear and flow-based frames on OpenCV), :mod:`.model` (the IFNet-like network),
:mod:`.train` (pretraining and fine-tuning by CAFI's protocol), :mod:`.files` (safetensors +
JSON weights, the shipped pretrained model in ``weights/``), :mod:`.core` (the interpolators'
interface, held-out evaluation and :func:`~.core.iter_interpolate`), :mod:`.pretrain` (the
``micromotion train-interpolator`` command that reproduces the shipped weights).
The tool ``micromotion interpolate`` is :mod:`napari_micromotion.tools.interpolate`.
"""

from .core import METHODS, Interpolation, Normaliser, iter_interpolate, make_interpolator, psnr_ssim

__all__ = ["METHODS", "Interpolation", "Normaliser", "iter_interpolate", "make_interpolator", "psnr_ssim"]
