"""Training: Eq. 6 loss, determinism per seed, progress events, the command line."""

import json

import numpy as np
import pytest
import torch

from napari_micromotion.blurflow import synth as S
from napari_micromotion.blurflow.model import NetConfig, load_blur_flow
from napari_micromotion.blurflow.train import (
    BlurFlowTrainParams,
    eq6_loss,
    iter_train_blur_flow,
    learning_rate_at,
    main,
    train_blur_flow,
)
from napari_micromotion.errors import MicromotionError
from napari_micromotion.progress import Progress

TINY = BlurFlowTrainParams(steps=3, batch_size=2, crop_px=64, net=NetConfig(widths=(8, 8, 16, 16, 16)),
                           validation_every=3, validation_images=1, threads=1)


def test_eq6_loss_weights_regression_by_validity():
    out = torch.zeros(1, 5, 2, 2)
    target = torch.zeros(1, 5, 2, 2)
    target[0, :4] = 1.0
    # w = 0 everywhere: only the validity term, (0 - sigmoid(0))^2 = 0.25
    assert float(eq6_loss(out, target)) == pytest.approx(0.25)
    target[0, 4] = 1.0
    # w = 1: (1 - 0.5)^2 + 1/4 * 4 * 1^2
    assert float(eq6_loss(out, target)) == pytest.approx(1.25)
    assert float(eq6_loss(out, target, gamma=0.0)) == pytest.approx(1.0)


def test_learning_rate_schedule():
    p = BlurFlowTrainParams(steps=100, learning_rate=1e-3, warmup_steps=10)
    assert learning_rate_at(0, p) == pytest.approx(1e-4)
    assert learning_rate_at(10, p) == pytest.approx(1e-3)
    assert learning_rate_at(99, p) < 0.05e-3


def test_training_is_deterministic_and_reports_progress():
    events = []
    a = train_blur_flow(TINY, seed=5, progress=events.append)
    b = train_blur_flow(TINY, seed=5)
    assert a.loss_curve == b.loss_curve and len(a.loss_curve) == 3
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(isinstance(e, Progress) for e in events) and events[-1].fraction == 1.0
    assert [s for s, _ in a.validation] == [3]
    c = train_blur_flow(TINY, seed=6)
    assert c.loss_curve != a.loss_curve
    assert a.n_images == 6 and a.params["steps"] == 3 and a.seconds > 0


def test_bad_training_parameters_are_one_sentence_errors():
    with pytest.raises(MicromotionError, match="multiple of 32"):
        BlurFlowTrainParams(crop_px=70).validate()
    with pytest.raises(MicromotionError):
        next(iter_train_blur_flow(BlurFlowTrainParams(steps=0)))


def test_command_line_trains_and_saves(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["--out", str(out), "--steps", "2", "--seed", "1", "--threads", "1", "--batch-size", "1"]) == 0
    m = load_blur_flow(out)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["training_params"]["steps"] == 2 and side["seed"] == 1 and len(m.loss_curve) == 2
    assert "saved" in capsys.readouterr().out
    assert main(["--out", str(tmp_path / "x"), "--steps", "2", "--minutes", "1"]) == 2
    assert "error:" in capsys.readouterr().err
    # an existing model is not replaced without --overwrite (and nothing is trained)
    before = out.read_bytes()
    assert main(["--out", str(out), "--steps", "2", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_reused_half_batch_is_a_flipped_view_of_the_previous_fresh_half():
    from napari_micromotion.blurflow.train import iter_batches

    p = BlurFlowTrainParams(steps=2, batch_size=4, crop_px=64, reuse=True)
    b0, b1 = list(iter_batches(p, seed=3))
    assert b0.images.shape == (4, 64, 64) and b1.truth.shape == (4, 5, 64, 64)
    # the second half of batch 1 holds the fresh half of batch 0, flipped/transposed
    for k in range(2):
        src, view = b0.images[k], b1.images[2 + k]
        assert any(np.array_equal(view, S.dihedral(src, b0.truth[k], j)[0]) for j in range(1, 8))
    q = BlurFlowTrainParams(steps=1, batch_size=4, crop_px=64, reuse=False)
    assert next(iter_batches(q, seed=3)).images.shape == (4, 64, 64)


def test_command_line_recipe_options_reach_the_training_record(tmp_path):
    out = tmp_path / "m.safetensors"
    assert main(["--out", str(out), "--steps", "1", "--threads", "1", "--batch-size", "2", "--crop-px", "64",
                 "--axial-weight", "4", "--reuse", "--quiet"]) == 0
    p = json.loads(out.with_suffix(".json").read_text())["training_params"]
    assert p["crop_px"] == 64 and p["axial_weight"] == 4.0 and p["reuse"] is True and p["batch_size"] == 2
    assert main(["--out", str(tmp_path / "y"), "--steps", "1", "--crop-px", "70", "--quiet"]) == 2


def test_the_defaults_and_the_documented_command_reproduce_the_shipped_model():
    # the shipped weights say how they were trained; the defaults, the CLI's help and the README's command must
    # name the same recipe, or "the command that reproduces them" trains something else
    import dataclasses
    from pathlib import Path

    from napari_micromotion.blurflow.predict import default_model_path

    side = json.loads(default_model_path().with_suffix(".json").read_text())
    shipped = side["training_params"]
    defaults = json.loads(json.dumps(dataclasses.asdict(BlurFlowTrainParams())))
    for key in ("steps", "batch_size", "crop_px", "learning_rate", "warmup_steps", "beta2", "gamma", "axial_weight",
                "reuse", "net", "synth"):
        assert shipped[key] == defaults[key], key
    command = f"--steps {shipped['steps']} --seed {side['seed']} --threads {shipped['threads']}"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"train-blur-flow --out ... {command}" in readme
    docs = (Path(__file__).resolve().parents[2] / "docs" / "blurflow.md").read_text()
    assert f"--out my_model.safetensors {command}" in docs
    from napari_micromotion.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.choices and "train-blur-flow" in a.choices)
    assert f"The shipped model: {command}." in sub.choices["train-blur-flow"].description
