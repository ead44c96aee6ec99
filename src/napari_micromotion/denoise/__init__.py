"""Self-supervised denoising of a recording's channel with calibrated uncertainty (issue 13).

:mod:`.data` (camera model, mean/SD prior, inputs), :mod:`.model` (the U-Net),
:mod:`.train` (training on the recording itself), :mod:`.predict` (Monte-Carlo inference,
calibration, hallucination guard), :mod:`.traces` (ROI dF/F0 traces with corridors),
:mod:`.files` (safetensors + JSON).  The tool is :mod:`napari_micromotion.tools.denoise`.
Nothing here imports Qt; torch is imported only where a network is built or run.
"""
