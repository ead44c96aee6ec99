"""The denoiser: camera model, leave-one-out inputs, training, calibration, guard, the tool's command and files.

One small low-light simulation (20 photo-electrons per pixel, rare single-cell events, a cell
without dye, noise-free movies as truth) is denoised once through ``micromotion denoise``;
the tests look at what it wrote.  Torch runs on one thread (the machine is shared).
"""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import tifffile

from napari_micromotion.cli import main
from napari_micromotion.denoise.data import Prior, fit_camera_model, neighbour_table, neighbours
from napari_micromotion.progress import drive

from ..conftest import assert_one_line_error

N_FRAMES, SIZE, FPS = 200, 48, 50.0
FAST = ["--epochs", "6", "--steps-per-epoch", "30", "--patch", "48", "--threads", "1", "--mc-passes", "4"]


@pytest.fixture(scope="module")
def torch_one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def low_light(tmp_path_factory):
    from napari_micromotion.simulate import write_simulation

    folder = tmp_path_factory.mktemp("denoise") / "sim"
    assert main(["simulate", str(folder), "--frames", str(N_FRAMES), "--size", str(SIZE), "--low-light", "20",
                 "--rare-events", "2", "--unloaded-cells", "1", "--clean", "--seed", "4", "-q"]) == 0
    del write_simulation
    return folder


@pytest.fixture(scope="module")
def denoised(low_light, torch_one_thread, tmp_path_factory):
    out = tmp_path_factory.mktemp("denoise-out") / "out"
    digest = hashlib.sha256((low_light / "fluorescence.tif").read_bytes()).hexdigest()
    code = main(["denoise", str(low_light / "fluorescence.tif"), "--rois", str(low_light / "rois.json"),
                 "--fps", str(FPS), "--out", str(out), "-q", *FAST])
    assert code == 0
    assert hashlib.sha256((low_light / "fluorescence.tif").read_bytes()).hexdigest() == digest   # input untouched
    return out


def _disc(center, radius, shape):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2


def _psnr(x, clean):
    rng = float(clean.max() - clean.min())
    return 10 * np.log10(rng * rng / np.mean((x.astype(np.float64) - clean) ** 2))


# ---------------------------------------------------------------- building blocks
def test_neighbours_leave_the_frame_out_and_mirror_at_the_ends():
    table = neighbour_table(12, 3)
    assert table.shape == (12, 6)
    assert all(t not in table[t] for t in range(12))
    assert neighbours(0, 12, 3).tolist() == [3, 2, 1, 1, 2, 3]
    assert neighbours(11, 12, 3).tolist() == [8, 9, 10, 10, 9, 8]
    assert neighbours(5, 12, 2).tolist() == [3, 4, 6, 7]


def test_leave_one_out_prior_matches_a_direct_mean_and_sd():
    rng = np.random.default_rng(0)
    video = rng.poisson(30, (20, 8, 9)).astype(np.uint16)
    prior = Prior.of(video, range(0, 20, 2))
    m, s = prior.without(4, video[4].astype(np.float32))
    others = video[[t for t in range(0, 20, 2) if t != 4]].astype(np.float64)
    np.testing.assert_allclose(m, others.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(s, others.std(axis=0), rtol=1e-4, atol=1e-4)
    m5, _ = prior.without(5, video[5].astype(np.float32))        # not a member: the whole prior
    np.testing.assert_allclose(m5, video[::2].astype(np.float64).mean(axis=0), rtol=1e-5)


def test_camera_model_measures_the_true_noise(low_light):
    video = tifffile.imread(low_light / "fluorescence.tif")
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    cam, report = fit_camera_model(video)
    noise = video - clean
    for lo, hi in np.percentile(clean, [(5, 30), (40, 60), (75, 99)]):
        sel = (clean >= lo) & (clean < hi)
        assert float(cam.var(clean[sel].mean())) == pytest.approx(float(noise[sel].var()), rel=0.15)
    assert report["pixels_kept"] > 0.5


def _correlated_noise(video, clean, sigma_px=1.0):
    """The movie with its noise correlated between neighbouring pixels (as a compressed video's), each pixel's
    noise variance unchanged."""
    from scipy import ndimage

    noise = video.astype(np.float64) - clean
    sd = np.sqrt(np.maximum(ndimage.uniform_filter(noise ** 2, (15, 9, 9)), 1e-12))
    z = ndimage.gaussian_filter(noise / sd, (0, sigma_px, sigma_px), mode="wrap")
    return (clean + z / z.std() * sd).astype(np.float32)


def _adjacent_correlation(noise):
    n = noise - noise.mean()
    var = float(np.mean(n * n))
    return float(np.mean(n[:, 1:] * n[:, :-1]) / var), float(np.mean(n[:, :, 1:] * n[:, :, :-1]) / var)


def test_camera_model_measures_noise_correlated_between_pixels(low_light):
    from napari_micromotion.denoise.data import CameraModel

    video = tifffile.imread(low_light / "fluorescence.tif")
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    cam, report = fit_camera_model(video)                   # independent pixels: no kernel
    assert cam.kernel is None and not report["noise_correlated"]
    assert max(abs(c) for c in report["noise_adjacent_correlation_yx"]) < 0.01
    blurred = _correlated_noise(video, clean)
    truth = _adjacent_correlation(blurred - clean)
    assert min(truth) > 0.6
    cam, report = fit_camera_model(blurred)
    assert report["noise_correlated"] and cam.kernel.shape == (17, 17)
    assert cam.adjacent_correlation == pytest.approx(truth, abs=0.02)
    noise = blurred - clean        # the variance is measured as on independent noise
    for lo, hi in np.percentile(clean, [(5, 30), (40, 60), (75, 99)]):
        sel = (clean >= lo) & (clean < hi)
        assert float(cam.var(clean[sel].mean())) == pytest.approx(float(noise[sel].var()), rel=0.15)
    again = CameraModel.from_dict(json.loads(json.dumps(cam.to_dict())))
    np.testing.assert_allclose(again.kernel, cam.kernel, atol=1e-5)


def test_camera_model_of_a_real_recording_finds_its_correlated_noise(shared_ohw):
    """The shared OHW brightfield series (uncompressed 16-bit camera counts) has noise correlated by about 0.3-0.4
    between adjacent pixels at rest: the model must keep its kernel, not take the pixels as independent."""
    from napari_micromotion.io import read_stack

    video = np.asarray(read_stack(shared_ohw).data)
    cam, report = fit_camera_model(video)
    assert report["noise_correlated"] and cam.kernel is not None
    assert all(0.25 < c < 0.6 for c in cam.adjacent_correlation), cam.adjacent_correlation
    # the same correlation as the second differences of two frames at rest, measured directly
    v = video.astype(np.float64)
    d = v[28] - 0.5 * (v[27] + v[29])
    d -= d.mean()
    direct = float(np.mean(d[:, 1:] * d[:, :-1]) / np.mean(d * d))
    assert cam.adjacent_correlation[1] == pytest.approx(direct, abs=0.05)


def test_training_is_deterministic_per_seed(low_light, torch_one_thread):
    from napari_micromotion.denoise.data import Normaliser
    from napari_micromotion.denoise.train import TrainSettings, iter_train

    video = tifffile.imread(low_light / "fluorescence.tif")[:60]
    cam, _ = fit_camera_model(video)
    prior = Prior.of(video)
    norm = Normaliser.of(prior.mean(), cam)

    def weights(seed):
        s = TrainSettings(context=2, epochs=1, steps_per_epoch=3, batch_size=4, patch_px=32, seed=seed, threads=1)
        model = drive(iter_train(video, range(0, 40), range(40, 60), prior, cam, norm, s))
        return np.concatenate([p.detach().numpy().ravel() for p in model.net.parameters()])

    a, b, c = weights(1), weights(1), weights(2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# ---------------------------------------------------------------- the tool's output
def test_denoise_writes_the_documented_folder(denoised, low_light):
    raw = tifffile.imread(low_light / "fluorescence.tif")
    files = sorted(p.name for p in denoised.iterdir())
    assert files == ["denoise.json", "denoised.tif", "guard.tif", "model.json", "model.safetensors",
                     "roi_traces.csv", "uncertainty.tif"]
    den = tifffile.imread(denoised / "denoised.tif")
    unc = tifffile.imread(denoised / "uncertainty.tif")
    assert den.dtype == np.float32 and unc.dtype == np.float32 and den.shape == unc.shape == raw.shape
    assert abs(float(den.mean()) - float(raw.mean())) < 0.02 * float(raw.mean())     # same units
    assert np.all(unc > 0)
    # the frame interval and the pixel size travel with the videos (analyze and Fiji read them back)
    from napari_micromotion.io import read_recording

    src, back = read_recording(low_light / "fluorescence.tif"), read_recording(denoised / "denoised.tif")
    assert back.fps == pytest.approx(src.fps) and back.pixel_size_um == pytest.approx(src.pixel_size_um, rel=1e-4)
    with open(denoised / "roi_traces.csv") as fh:
        rows = list(csv.DictReader(fh))
    rois = [r["name"] for r in json.loads((low_light / "rois.json").read_text())]
    assert len(rows) == N_FRAMES
    assert list(rows[0])[:2] == ["frame", "time_s"]
    assert list(rows[0])[2:] == [f"{r}/{k}" for r in rois for k in ("raw", "denoised", "lo90", "hi90", "combined",
                                                                  "combined_lo90", "combined_hi90")]
    assert float(rows[10]["time_s"]) == pytest.approx(10 / FPS)
    for row in rows:
        for r in rois:
            assert float(row[f"{r}/lo90"]) <= float(row[f"{r}/denoised"]) + 1e-6 <= float(row[f"{r}/hi90"]) + 2e-6
            assert (float(row[f"{r}/combined_lo90"]) <= float(row[f"{r}/combined"]) + 1e-6
                    <= float(row[f"{r}/combined_hi90"]) + 2e-6)
    # the combined trace averages two independent estimates: its corridor is the narrower one
    for r in rois:
        width = np.mean([float(row[f"{r}/hi90"]) - float(row[f"{r}/lo90"]) for row in rows])
        width_c = np.mean([float(row[f"{r}/combined_hi90"]) - float(row[f"{r}/combined_lo90"]) for row in rows])
        assert 0 < width_c < width, (r, width_c, width)
    rec = json.loads((denoised / "denoise.json").read_text())
    metrics = rec["result"]["metrics"]
    assert len(metrics["loss_curve"]) >= 5 and metrics["loss_curve"][-1] < metrics["loss_curve"][0]
    assert metrics["heldout_frames"] and metrics["calibration"]["factors"]
    assert rec["parameters"]["context"] == 4 and rec["timings_s"]["train"] > 0
    side = json.loads((denoised / "model.json").read_text())
    assert side["architecture"] == "micromotion-denoise-unet" and side["context"] == 4
    # the folder reads back into the tool's result
    from napari_micromotion.tools import TOOLS

    back = TOOLS["denoise"].read(denoised)
    assert back.regions == rois and back.fps == FPS and back.n_frames == N_FRAMES
    np.testing.assert_array_equal(back.denoised, den)
    np.testing.assert_allclose(back.traces["strong"]["hi90"], [float(r["strong/hi90"]) for r in rows])


def test_denoised_movie_is_closer_to_the_truth_and_intervals_hold(denoised, low_light):
    raw = tifffile.imread(low_light / "fluorescence.tif").astype(np.float64)
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    den = tifffile.imread(denoised / "denoised.tif")
    unc = tifffile.imread(denoised / "uncertainty.tif")
    gain = _psnr(den, clean) - _psnr(raw, clean)
    assert gain > 6.0, gain
    coverage = float(np.mean(np.abs(clean - den) <= 1.645 * unc))
    assert 0.8 <= coverage <= 0.97, coverage
    # the SD means something: pixels it calls more certain are closer to the truth
    err = np.abs(clean - den)
    lo, hi = np.percentile(unc, [25, 75])
    assert err[unc < lo].mean() < err[unc > hi].mean()


def test_silent_regions_stay_flat_and_rare_events_survive(denoised, low_light):
    truth = json.loads((low_light / "truth.json").read_text())
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    raw = tifffile.imread(low_light / "fluorescence.tif").astype(np.float64)
    den = tifffile.imread(denoised / "denoised.tif").astype(np.float64)
    shape = clean.shape[1:]
    # a cell without dye: no transient appears in it
    for c in truth["unloaded_centroids_yx"]:
        m = _disc(c, 2, shape)
        d, t = den[:, m].mean(axis=1), clean[:, m].mean(axis=1)
        raw_sd = float(raw[:, m].mean(axis=1).std())
        assert np.max(np.abs(d - t)) < 1.5 * raw_sd + 0.02 * t.mean()
    # rare single-cell transients: kept, at the right time
    for ev in truth["rare_events"]:
        m = _disc(ev["centroid_yx"], 2, shape)
        onset = int(round(ev["onset_s"] * FPS))
        win = slice(max(0, onset - 5), min(N_FRAMES, onset + 20))
        c_tr, d_tr = clean[win][:, m].mean(axis=1), den[win][:, m].mean(axis=1)
        c_amp = c_tr.max() - clean[:, m].mean(axis=1)[max(0, onset - 15):onset].mean()
        d_amp = d_tr.max() - den[:, m].mean(axis=1)[max(0, onset - 15):onset].mean()
        assert c_amp > 0 and d_amp > 0.6 * c_amp, (c_amp, d_amp)

        def half_rise(tr, amp):            # first frame above half the rise: the upstroke's time
            return int(np.argmax(tr > tr[:5].mean() + 0.5 * amp))

        assert abs(half_rise(d_tr, d_amp) - half_rise(c_tr, c_amp)) <= 1


def test_cross_fitting_denoises_every_frame_out_of_sample(low_light, torch_one_thread):
    """Two networks on alternating blocks: each frame comes from the network that never trained on it."""
    from napari_micromotion.denoise.data import Prior as _Prior
    from napari_micromotion.denoise.predict import iter_predict
    from napari_micromotion.tools.denoise import DenoiseParams, cross_fit_folds, iter_denoise

    video = tifffile.imread(low_light / "fluorescence.tif")
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    params = DenoiseParams(folds=2, epochs=4, steps_per_epoch=25, patch_px=48, threads=1, mc_passes=0, samples=50)
    stages = []

    def run():
        gen = iter_denoise(video, FPS, params)
        while True:
            try:
                stages.append(next(gen).stage)
            except StopIteration as stop:
                return stop.value

    res = run()
    fold = cross_fit_folds(N_FRAMES, params.context)
    assert fold[:10].tolist() == [0] * 10 and fold[10:20].tolist() == [1] * 10      # blocks of 2N + 2 >= 10 frames
    m = res.metrics
    assert m["folds"] == 2 and len(m["networks"]) == 2
    assert [n["targets"] for n in m["networks"]] == [int((fold == 0).sum()), int((fold == 1).sum())]
    assert m["heldout_frames"] == list(range(N_FRAMES))             # every frame calibrates
    assert m["calibration"]["cross_fitted"] is True
    assert {"train denoiser 1 of 2", "train denoiser 2 of 2"} <= set(stages)   # two loss series in the plot
    # the saved network (the first) trained on fold 0 only and denoised exactly the frames of fold 1
    runs = res.model.training_frames
    trained = np.concatenate([np.arange(a, b) for a, b in zip(runs[::2], runs[1::2])])
    np.testing.assert_array_equal(trained, np.nonzero(fold == 0)[0])
    mu = np.zeros_like(res.denoised)
    var = np.zeros_like(res.denoised)
    drive(iter_predict(video, res.model, _Prior.of(video), mu, var, mc_passes=0, threads=1))
    np.testing.assert_allclose(res.denoised[fold == 1], mu[fold == 1], rtol=1e-5, atol=1e-3)
    assert not np.allclose(res.denoised[fold == 0], mu[fold == 0], rtol=1e-5, atol=1e-3)   # the other network's
    assert _psnr(res.denoised, clean) - _psnr(video, clean) > 5.0


def test_repeated_frames_are_one_camera_frame(low_light, torch_one_thread):
    """A re-timed export copies frames: a copy must not be among the neighbours that predict its original.

    Otherwise the network learns to pass the copy's noise through and the camera model reads
    the copies as missing noise (a simulation with 14 % copies lost 8.7 dB and a third of its
    interval coverage).
    """
    from napari_micromotion.io import repeated_frames
    from napari_micromotion.rois import read_rois
    from napari_micromotion.tools.denoise import DenoiseParams, iter_denoise

    video = tifffile.imread(low_light / "fluorescence.tif")
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    true_var = float(np.var(video.astype(np.float64) - clean))
    rep = np.arange(3, N_FRAMES, 5)                    # 40 of the 200 frames copy the frame before
    video[rep], clean[rep] = video[rep - 1], clean[rep - 1]
    np.testing.assert_array_equal(repeated_frames(video, chunk=7), rep)      # copies across chunk borders too
    params = DenoiseParams(epochs=6, steps_per_epoch=30, patch_px=48, threads=1, mc_passes=4, samples=50)
    res = drive(iter_denoise(video, FPS, params, read_rois(low_light / "rois.json")))
    m = res.metrics
    assert m["repeated_frames"] == rep.tolist() and m["distinct_frames"] == N_FRAMES - rep.size
    assert res.warnings[0].startswith(f"{rep.size} of the {N_FRAMES} frames copy the frame before exactly")
    # a copy has its original's results
    assert res.denoised.shape == video.shape and res.n_frames == N_FRAMES
    np.testing.assert_array_equal(res.denoised[rep], res.denoised[rep - 1])
    np.testing.assert_array_equal(res.uncertainty[rep], res.uncertainty[rep - 1])
    for tr in res.traces.values():
        assert len(tr["lo90"]) == N_FRAMES
        np.testing.assert_array_equal(tr["lo90"][rep], tr["lo90"][rep - 1])
    assert set(np.asarray(m["heldout_frames"])[np.isin(m["heldout_frames"], rep)] - 1) <= set(m["heldout_frames"])
    # the noise is measured as it is, and the copies' noise did not pass through
    cam = m["camera"]
    level = float(np.mean(clean))
    assert cam["gain"] * level + cam["floor"] == pytest.approx(true_var, rel=0.15)
    assert _psnr(res.denoised, clean) - _psnr(video, clean) > 6.0
    coverage = float(np.mean(np.abs(clean - res.denoised) <= 1.645 * res.uncertainty))
    assert 0.8 <= coverage <= 0.97, coverage


def test_noise_correlated_between_pixels_is_not_taken_for_denoiser_error(low_light, torch_one_thread, tmp_path):
    """Compressed videos have camera noise correlated between neighbouring pixels.  The calibration reads the
    error's size from the products of adjacent residuals, which such noise inflates by its own covariance: on a
    simulation with adjacent noise correlated by 0.78 the intervals covered 100 % and stated an error variance 54
    times the true one.  With the camera model's kernel they hold, and the guard does not flag the noise."""
    from napari_micromotion.denoise.files import load_denoiser, save_denoiser
    from napari_micromotion.tools.denoise import DenoiseParams, iter_denoise

    video = tifffile.imread(low_light / "fluorescence.tif")
    clean = tifffile.imread(low_light / "fluorescence_clean.tif").astype(np.float64)
    blurred = _correlated_noise(video, clean)
    params = DenoiseParams(epochs=6, steps_per_epoch=30, patch_px=48, threads=1, mc_passes=4, samples=50)
    res = drive(iter_denoise(blurred, FPS, params))
    assert res.model.camera.kernel is not None
    err = np.abs(clean - res.denoised)
    coverage = float(np.mean(err <= 1.645 * res.uncertainty))
    assert 0.8 <= coverage <= 0.97, coverage
    stated, true = float(np.mean(res.uncertainty.astype(np.float64) ** 2)), float(np.mean(err ** 2))
    assert 0.5 < stated / true < 2.0, (stated, true)
    guard = res.metrics["guard"]
    assert guard["flagged_fraction"] < 10 * guard["expected_fraction_if_honest"] + 1e-4
    assert not [w for w in res.warnings if "departs from the raw data" in w]
    model, _ = load_denoiser(save_denoiser(res.model, res.calibration, tmp_path / "m.safetensors"))
    np.testing.assert_allclose(model.camera.kernel, res.model.camera.kernel, atol=1e-5)


def test_an_error_the_residuals_resolve_sizes_the_intervals(low_light, torch_one_thread):
    """A moving texture's error is not smooth over one pixel, so adjacent residual products read only part of it;
    where the residuals' mean square resolves the error it sizes the intervals (the simulator's transmission
    channel, whose cells move: the adjacent reading alone left these intervals at 77 %, stating 0.27 of the error)."""
    from napari_micromotion.tools.denoise import DenoiseParams, iter_denoise

    video = tifffile.imread(low_light / "transmission.tif")
    clean = tifffile.imread(low_light / "transmission_clean.tif").astype(np.float64)
    params = DenoiseParams(epochs=6, steps_per_epoch=30, patch_px=48, threads=1, mc_passes=4, samples=50)
    res = drive(iter_denoise(video, FPS, params))
    cal = res.metrics["calibration"]
    assert cal["mean_square_weight"] == 1.0
    assert cal["residual_mse_over_noise"] > 1.5 * cal["shared_error_over_noise"]     # the adjacent reading falls short
    err = np.abs(clean - res.denoised)
    coverage = float(np.mean(err <= 1.645 * res.uncertainty))
    assert 0.8 <= coverage <= 0.97, coverage
    stated, true = float(np.mean(res.uncertainty.astype(np.float64) ** 2)), float(np.mean(err ** 2))
    assert 0.6 < stated / true < 1.6, (stated, true)


def test_a_saved_model_applies_without_training(denoised, low_light, tmp_path, torch_one_thread):
    out = tmp_path / "again"
    assert main(["denoise", str(low_light / "fluorescence.tif"), "--model", str(denoised / "model.safetensors"),
                 "--fps", str(FPS), "--threads", "1", "--mc-passes", "4", "--out", str(out), "-q"]) == 0
    rec = json.loads((out / "denoise.json").read_text())
    assert rec["result"]["metrics"]["applied_saved_model"] and "train" not in rec["timings_s"]
    np.testing.assert_allclose(tifffile.imread(out / "denoised.tif"), tifffile.imread(denoised / "denoised.tif"),
                               rtol=1e-5, atol=1e-3)
    # settings the saved model fixes: the record says what was used, and a warning what did not apply
    trained = json.loads((denoised / "denoise.json").read_text())["parameters"]
    other = tmp_path / "other"
    assert main(["denoise", str(low_light / "fluorescence.tif"), "--model", str(denoised / "model.safetensors"),
                 "--fps", str(FPS), "--threads", "1", "--mc-passes", "4", "--context", str(trained["context"] + 1),
                 "--prior", "none", "--out", str(other), "-q"]) == 0
    rec = json.loads((other / "denoise.json").read_text())
    assert {k: rec["parameters"][k] for k in ("context", "prior", "width")} == \
        {k: trained[k] for k in ("context", "prior", "width")}
    assert any("did not apply" in w and "prior none" in w for w in rec["warnings"])
    np.testing.assert_array_equal(tifffile.imread(other / "denoised.tif"), tifffile.imread(out / "denoised.tif"))


def test_bad_input_is_refused_in_one_line_and_nothing_is_written(low_light, tmp_path, capsys):
    short = tmp_path / "short.tif"
    tifffile.imwrite(short, tifffile.imread(low_light / "fluorescence.tif")[:8])
    out = tmp_path / "out"
    code = main(["denoise", str(short), "--out", str(out), "-q"])
    assert_one_line_error(capsys.readouterr().err, code)
    assert not out.exists()
    pickle_model = tmp_path / "m.safetensors"
    pickle_model.write_bytes(b"\x80\x04" + b"\0" * 64)
    code = main(["denoise", str(low_light / "fluorescence.tif"), "--model", str(pickle_model), "--out", str(out), "-q"])
    text = capsys.readouterr().err
    assert_one_line_error(text, code)
    assert "pickle" in text and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no scratch left behind


def test_iter_denoise_checks_its_input_first():
    from napari_micromotion.errors import MicromotionError
    from napari_micromotion.tools.denoise import DenoiseParams, iter_denoise

    video = np.random.default_rng(0).random((40, 24, 24)).astype(np.float32)
    bad = video.copy()
    bad[5, 0, 0] = np.nan
    for args, kwargs, message in (((video[0], 20.0), {}, "time series of images"),
                                  ((video, 0), {}, "frame rate must be a positive number"),
                                  ((bad, 20.0), {}, "NaN or infinite values"),
                                  ((video, 20.0, DenoiseParams(prior="median")), {}, "prior must be one of"),
                                  ((video, 20.0), {"train_frames": [38, 39, 40]}, "frame numbers from 0 to 39")):
        with pytest.raises(MicromotionError, match=message):
            next(iter_denoise(*args, **kwargs))
