"""Interpolators: linear on a ramp, flow on a known sub-pixel translation, the learned network's
start, fine-tuning (deterministic, lowers the loss, never sees held-out frames), weights on disk,
and the whole run (measured frames exact, frame count, uncertainty)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_micromotion.errors import MicromotionError
from napari_micromotion.interpolate.core import (
    FlowInterpolator,
    LearnedInterpolator,
    LinearInterpolator,
    Normaliser,
    heldout_frames,
    iter_interpolate,
    output_times,
)
from napari_micromotion.interpolate.files import (
    default_weights_path,
    load_default_interpolator,
    load_interpolator,
    save_interpolator,
)
from napari_micromotion.interpolate.model import build_net
from napari_micromotion.interpolate.train import (
    TrainSettings,
    choose_windows,
    finetune_windows,
    iter_train,
    make_samples,
    mean_loss,
)
from napari_micromotion.progress import drive


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def texture(shape=(64, 64), seed=0, sigma=2.0):
    import cv2

    img = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    return (1000 + 400 * img / img.std()).astype(np.float32)


def shifted(img, dy, dx):
    """*img* translated by (dy, dx) px (content at x moves to x + d), by Fourier shift (exact for band-limited images)."""
    ky = np.fft.fftfreq(img.shape[0])[:, None]
    kx = np.fft.fftfreq(img.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (ky * dy + kx * dx)))).astype(np.float32)


def test_linear_is_exact_on_a_temporal_ramp():
    base = texture()
    ramp = np.linspace(0, 50, base.size, dtype=np.float32).reshape(base.shape)
    frames = [base + k * ramp for k in range(5)]
    got, unc = LinearInterpolator().between(frames[0], frames[4], [0.25, 0.5, 0.75])
    for j, k in enumerate((1, 2, 3)):
        np.testing.assert_allclose(got[j], frames[k], rtol=0, atol=1e-3)
    np.testing.assert_allclose(unc[1], 0.5 * np.abs(frames[4] - frames[0]), atol=1e-3)


def test_uncertainty_follows_the_error_where_a_frame_is_guessed():
    from napari_micromotion.interpolate.core import error_correlation

    rng = np.random.default_rng(0)
    err = np.abs(rng.normal(size=(64, 64))).astype(np.float32)
    err[20:40, 20:40] += 5.0                                   # a badly guessed patch
    good = np.zeros((64, 64), np.float32)
    good[20:40, 20:40] = 1.0
    assert error_correlation(err, good) > 0.8
    assert abs(error_correlation(err, rng.random((64, 64)).astype(np.float32))) < 0.3
    assert np.isnan(error_correlation(err, np.ones((64, 64), np.float32)))


def test_flow_recovers_a_subpixel_translation_better_than_linear():
    img = texture((96, 96), seed=1)
    d = np.array([0.7, -1.6])
    a, mid, b = img, shifted(img, *(d / 2)), shifted(img, *d)
    inner = (slice(8, -8), slice(8, -8))
    err = {}
    for it in (LinearInterpolator(), FlowInterpolator("dis"), FlowInterpolator("lk")):
        got, _ = it.between(a, b, [0.5])
        err[f"{it.name}-{getattr(it, 'engine', '')}"] = float(np.sqrt(np.mean((got[0] - mid)[inner] ** 2)))
    assert err["flow-dis"] < 0.5 * err["linear-"], err       # what is left is mostly bilinear resampling blur
    assert err["flow-lk"] < 0.5 * err["linear-"], err
    from napari_micromotion.interpolate.flows import pair_flow

    pf = pair_flow(a, b, "dis")
    np.testing.assert_allclose(np.median(pf.f01[(slice(None), *inner)].reshape(2, -1), axis=1), d, atol=0.1)
    np.testing.assert_allclose(np.median(pf.f10[(slice(None), *inner)].reshape(2, -1), axis=1), -d, atol=0.1)
    assert np.median(pf.e0[inner]) < 0.2                    # consistent forward and backward flows


def test_untrained_network_is_the_flow_interpolator():
    img = texture((48, 52), seed=2)              # sides not multiples of 4: padded inside and cropped back
    a, b = img, shifted(img, 0.8, 0.5)
    norm = Normaliser.of(np.stack([a, b]))
    got, unc = LearnedInterpolator(build_net(8), norm, "dis").between(a, b, [0.3, 0.5])
    ref, _ = FlowInterpolator("dis").between(a, b, [0.3, 0.5])
    assert got.shape == (2, 48, 52) and unc.shape == (2, 48, 52)
    assert np.max(np.abs(got - ref)) < 1e-3 * norm.range


@pytest.fixture(scope="module")
def small_video():
    from napari_micromotion.simulate import simulate

    return np.asarray(simulate(n_frames=24, size=48, seed=9, strong_px=3.0).transmission)


def test_finetune_windows_never_touch_heldout_frames():
    held = heldout_frames(40, every=6, max_frames=5)
    assert held.size == 5 and held.min() >= 2 and held.max() <= 37
    wins = finetune_windows(40, held, spans=(2, 4))
    assert wins and all(not set(w.frames) & set(held.tolist()) for w in wins)
    assert {w.t for w in wins} == {0.25, 0.5, 0.75}


def test_chosen_windows_keep_every_rare_fast_event():
    # a quiet noisy movie with three one-frame flashes: a random draw of 12 of its 198 windows
    # would usually miss them; the choice keeps the six windows whose ends straddle a flash
    rng = np.random.default_rng(0)
    video = rng.normal(100.0, 2.0, (200, 16, 16)).astype(np.float32)
    flashes = (40, 90, 160)
    video[list(flashes)] += 50.0
    wins = finetune_windows(200, [], spans=(2,))
    across = {w for w in wins if w.a in flashes or w.a + w.span in flashes}
    assert len(across) == 6
    got = choose_windows(video, wins, 12, np.random.default_rng(1))
    assert len(got) == 12 and [w.a for w in got] == sorted(w.a for w in got)
    assert across <= set(got)                                               # half: the largest changes
    assert choose_windows(video, wins, 12, np.random.default_rng(1)) == got  # deterministic per generator seed
    assert choose_windows(video, wins, 12, np.random.default_rng(2)) != got  # the other half drawn at random
    assert choose_windows(video, wins[:5], 12, np.random.default_rng(1)) == wins[:5]


def test_tiny_finetune_is_deterministic_and_lowers_the_loss(small_video):
    from napari_micromotion.interpolate.train import Window

    norm = Normaliser.of(small_video)
    wins = [Window(a, 1, 2) for a in range(0, 20, 2)]
    samples = drive(make_samples(small_video, wins, norm, engine="dis", crop_px=48, seed=0))
    states, losses = [], []
    for _ in range(2):
        net, _ = load_default_interpolator()
        before = mean_loss(net, samples)
        rec = drive(iter_train(net, samples, TrainSettings(steps=30, batch=4, patch_px=32, lr=1e-3, seed=3)))
        after = mean_loss(net, samples)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        losses.append((before, after, rec.loss_curve))
    assert all(np.array_equal(states[0][k].numpy(), states[1][k].numpy()) for k in states[0])   # same seed: same net
    assert losses[0] == losses[1]
    before, after, curve = losses[0]
    assert after < before, (before, after)


def test_weights_round_trip_and_refusals(tmp_path):
    import torch

    net = build_net(8)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_interpolator(net, tmp_path / "m", {"steps": 1})
    back, meta = load_interpolator(path)
    assert meta["steps"] == 1 and meta["width"] == 8
    for k, v in net.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    bad = tmp_path / "pickled.safetensors"
    torch.save(net.state_dict(), bad)
    with pytest.raises(MicromotionError, match="pickle"):
        load_interpolator(bad)
    other = tmp_path / "other.safetensors"
    other.write_bytes(path.read_bytes())
    other.with_suffix(".json").write_text('{"architecture": "something-else", "architecture_version": 1}')
    with pytest.raises(MicromotionError, match="not an interpolator"):
        load_interpolator(other)
    # the shipped weights: small, loadable, documented
    shipped = default_weights_path()
    assert shipped.stat().st_size <= 10 * 2**20
    _, meta = load_default_interpolator()
    assert meta["steps"] >= 1 and "train-interpolator" in meta["command"]


def test_run_keeps_measured_frames_exact(small_video):
    video = small_video[:12]
    got = drive(iter_interpolate(video, 25.0, factor=3, method="learned", finetune_epochs=1, steps_per_epoch=3,
                                 heldout_every=4, max_heldout=2))
    assert got.frames.shape == ((12 - 1) * 3 + 1, *video.shape[1:]) and got.frames.dtype == video.dtype
    assert np.array_equal(got.frames[::3], video)                         # bit for bit
    assert got.measured.tolist() == [j % 3 == 0 for j in range(34)]
    np.testing.assert_allclose(got.time_s[1], 1 / 75.0)
    assert np.all(got.uncertainty[::3] == 0) and got.uncertainty[1::3].max() > 0
    ev = got.evaluation
    assert set(ev["methods"]) == {"linear", "flow", "learned (pretrained)", "learned (fine-tuned)"}
    assert all(np.isfinite(v["psnr_db"]) and 0 < v["ssim"] <= 1 for v in ev["methods"].values())
    assert all(-1 <= v["uncertainty_error_correlation"] <= 1 for v in ev["methods"].values())
    assert got.training["finetune"]["heldout_frames_excluded"] == ev["heldout_frames"] and ev["heldout_frames"]
    t, m = output_times(5, 4, 10.0)
    assert t.size == 17 and m.sum() == 5 and t[-1] == pytest.approx(0.4)


def test_a_clearly_better_method_on_the_held_out_frames_is_named():
    """The learned interpolator is chosen by default, whatever it scores: a recording where another method
    reconstructs the held-out frames clearly better now says so, with the option that picks it."""
    from napari_micromotion.interpolate.core import better_method

    def scores(per_frame):
        return {"psnr_db": float(np.mean(per_frame)), "psnr_db_per_frame": list(per_frame)}

    tied = {"linear": scores([50.1, 50.2, 49.9, 50.0]), "flow": scores([49.0, 49.2, 48.8, 49.1]),
            "learned (fine-tuned)": scores([50.0, 50.1, 50.0, 49.9])}
    assert better_method(tied, "learned (fine-tuned)") is None                 # 0.05 dB: within the noise
    clear = {**tied, "linear": scores([51.0, 51.3, 50.2, 50.9])}
    said = better_method(clear, "learned (fine-tuned)")
    assert said == ("on this recording's held-out frames linear interpolation did better than the chosen learned "
                    "(fine-tuned) (50.9 against 50.0 dB PSNR, better on 4 of 4 frames); --method linear may suit "
                    "it better.")
    one_frame = {**tied, "linear": scores([53.5, 49.5, 49.5, 49.4])}            # higher mean, from one frame only
    assert better_method(one_frame, "learned (fine-tuned)") is None
    assert "--finetune-epochs 0" in better_method({**tied, "learned (pretrained)": scores([51, 51, 51, 51])},
                                                  "learned (fine-tuned)")
