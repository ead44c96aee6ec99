import json
import pickle

import numpy as np
import pytest
import torch

from napari_micromotion.detectors.cnn1d import Normalisation, TrainedCNN1D, build_cnn1d, predict_cnn1d
from napari_micromotion.detectors.cnn3d import TrainedCNN3D
from napari_micromotion.detectors.models import load_cnn1d, load_cnn3d_weights, save_cnn1d, save_cnn3d
from napari_micromotion.errors import MicromotionError


def _model():
    net = build_cnn1d(4)
    g = torch.Generator().manual_seed(4)  # the global RNG's seed varies between pytest runs
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return TrainedCNN1D(net=net, normalisation=Normalisation(2.5, 0.1, 3.0, mode="noise"), fps=50.0,
                        passband_hz=(2.0, 15.0), filter_order=2, training_frames=[(3072, 10570)],
                        loss_curve=[1.0, 0.5], epoch_loss=[0.7], params={"epochs": 3})


def test_cnn1d_round_trip_is_bit_exact(tmp_path):
    m = _model()
    path = save_cnn1d(m, tmp_path / "model")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    back = load_cnn1d(path)
    for (ka, a), (kb, b) in zip(m.net.state_dict().items(), back.net.state_dict().items()):
        assert ka == kb and torch.equal(a, b)
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    np.testing.assert_array_equal(predict_cnn1d(m.net, x), predict_cnn1d(back.net, x))
    assert back.normalisation == m.normalisation and back.training_frames == [(3072, 10570)]
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["architecture"] == "rinner2020-cnn1d" and side["architecture_version"] == 1
    assert side["n_parameters"] == 3863 and side["loss_curve"] == [1.0, 0.5]
    assert "torch" in side["package_versions"] and side["passband_hz"] == [2.0, 15.0]


def test_wrong_architecture_version_and_pickles_are_refused(tmp_path):
    path = save_cnn1d(_model(), tmp_path / "m.safetensors")
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "architecture_version": 99}))
    with pytest.raises(MicromotionError, match="version 99"):
        load_cnn1d(path)
    side.write_text(json.dumps({**meta, "architecture": "resnet"}))
    with pytest.raises(MicromotionError, match="resnet"):
        load_cnn1d(path)
    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    fake.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(MicromotionError, match="pickle"):
        load_cnn1d(fake)
    torch.save(build_cnn1d(0).state_dict(), tmp_path / "torch.safetensors")
    with pytest.raises(MicromotionError, match="pickle|zip"):
        load_cnn1d(tmp_path / "torch.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(MicromotionError):
        load_cnn1d(tmp_path / "junk.safetensors")


def test_wrong_shapes_are_refused(tmp_path):
    from safetensors.numpy import save_file

    path = save_cnn1d(_model(), tmp_path / "m.safetensors")
    meta = path.with_suffix(".json").read_text()
    bad = tmp_path / "bad.safetensors"
    save_file({"body.0.weight": np.zeros((4, 1, 3), np.float32)}, str(bad))
    bad.with_suffix(".json").write_text(meta)
    with pytest.raises(MicromotionError, match="Table 1"):
        load_cnn1d(bad)


def test_cnn3d_round_trip(tmp_path):
    w = np.random.default_rng(1).normal(size=(3, 5, 7)).astype(np.float32)
    m = TrainedCNN3D(roi="weak", box=(10, 15, 20, 27), weights=w, bias=0.25, prediction=np.zeros(10, np.float32),
                     mc_mean=np.zeros(10, np.float32), mc_sd=np.zeros(10, np.float32), loss_curve=[1.0])
    path = save_cnn3d(m, tmp_path / "c3", fps=50.0, passband_hz=(2, 15), normalisation=Normalisation(1, 0, 1),
                      training_frames=[(0, 10)])
    weights, bias, meta = load_cnn3d_weights(path)
    np.testing.assert_array_equal(weights, w)
    assert bias == 0.25 and meta["roi_box"] == [10, 15, 20, 27] and meta["roi"] == "weak"
    with pytest.raises(MicromotionError, match="rinner2020-cnn1d"):
        load_cnn1d(path)


def test_the_same_weights_give_the_same_bytes(tmp_path):
    """safetensors writes its metadata in a hash order that changes between processes; the file is canonical, so two
    identical runs' models have the same bytes (and checksums) in any process."""
    import subprocess
    import sys

    script = ("import sys, numpy as np\n"
              "from napari_micromotion.detectors.models import write_pair\n"
              "t = {'w': np.arange(12, dtype=np.float32).reshape(3, 4), 'b': np.ones(3, np.float32)}\n"
              "write_pair(sys.argv[1], t, {'architecture': 'a', 'architecture_version': 1, 'z': 2, 'c': 3})\n")
    blobs = set()
    for k in range(6):                      # one process each: the hash order differs between processes
        p = tmp_path / f"m{k}.safetensors"
        subprocess.run([sys.executable, "-c", script, str(p)], check=True)
        blobs.add(p.read_bytes())
    assert len(blobs) == 1
    blob = blobs.pop()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == ["architecture", "architecture_version"]
    from safetensors.numpy import load_file

    assert np.array_equal(load_file(str(tmp_path / "m0.safetensors"))["w"], np.arange(12, dtype=np.float32).reshape(3, 4))


def test_a_model_name_near_the_file_system_limit_is_written(tmp_path):
    """'<name>.tmp' temporary files overflowed the 255-byte name limit: a 240-character model name was refused."""
    path = save_cnn1d(_model(), tmp_path / ("m" * 240 + ".safetensors"))
    assert load_cnn1d(path).fps == 50.0 and path.with_suffix(".json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.with_suffix(".json").name])
