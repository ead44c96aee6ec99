"""Device choice (goal 5): CUDA when torch sees a GPU, else the CPU; a clear error for an unusable request."""

import pytest
import torch

from napari_micromotion import cli
from napari_micromotion.detectors.cnn1d import resolve_device
from napari_micromotion.errors import MicromotionError


@pytest.mark.parametrize("available,expected", [(True, "cuda"), (False, "cpu")])
def test_auto_picks_cuda_when_torch_sees_a_gpu(monkeypatch, available, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected


def test_cuda_requested_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MicromotionError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(MicromotionError, match="device must be"):
        resolve_device("tpu")


def test_cli_refuses_cuda_without_gpu_before_any_output(monkeypatch, sim_dir, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["analyze", str(sim_dir / "transmission.tif"), "--fluorescence", str(sim_dir / "fluorescence.tif"),
            "--rois", str(sim_dir / "rois.json"), "--methods", "cnn1d"]
    assert cli.main([*args, "--out", str(tmp_path / "a"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no CUDA GPU" in last and "Traceback" not in err
    assert not (tmp_path / "a").exists()
