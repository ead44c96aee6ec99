"""Training-set generator of Eq. 5: determinism, masks, parameter ranges, validity, evaluation sets."""

import numpy as np
import pytest

from napari_micromotion.blurflow import synth as S
from napari_micromotion.errors import MicromotionError


def test_training_samples_are_deterministic_per_seed_and_index():
    a = S.training_sample(3, 5, 64)
    b = S.training_sample(3, 5, 64)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)
    c = S.training_sample(3, 6, 64)
    d = S.training_sample(4, 5, 64)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.image, d.image)


def test_batches_are_independent_of_batch_size_and_bounded():
    big = next(S.iter_training_batches(1, 4, 64, start=1, n_batches=1))    # images 4..7
    small = list(S.iter_training_batches(1, 2, 64, start=2, n_batches=2))  # images 4..5, 6..7
    np.testing.assert_array_equal(big.images, np.concatenate([b.images for b in small]))
    np.testing.assert_array_equal(big.truth, np.concatenate([b.truth for b in small]))
    assert big.images.shape == (4, 64, 64) and big.truth.shape == (4, 5, 64, 64)
    assert big.images.dtype == np.float32 and big.truth.dtype == np.float32


def test_masks_partition_the_image_and_carry_their_parameters():
    for k in range(12):
        s = S.training_sample(0, k, 64)
        n = s.params.shape[0]
        assert 1 <= n <= S.SynthParams().max_masks
        assert s.labels.min() >= 0 and s.labels.max() < n          # every pixel in exactly one mask
        for r in np.unique(s.labels):
            sel = s.labels == r
            np.testing.assert_allclose(s.truth[:4, sel], np.repeat(s.params[r][:, None], sel.sum(), 1), atol=1e-6)
        p = s.params
        assert np.all(np.abs(p[:, :2]) <= 1) and np.all((p[:, 2:] >= 0) & (p[:, 2:] <= 1))
        assert set(np.unique(s.truth[4])) <= {0.0, 1.0}
        assert s.image.min() >= 0 and np.isfinite(s.image).all()


def test_partition_kinds_and_min_fraction():
    rng = np.random.default_rng(0)
    for kind in ("voronoi", "smooth"):
        lab = S.partition(rng, (80, 90), 3, kind, min_fraction=0.1)
        counts = np.bincount(lab.ravel(), minlength=3) / lab.size
        assert lab.shape == (80, 90) and counts.min() >= 0.1
    with pytest.raises(MicromotionError):
        S.partition(rng, (10, 10), 2, "squares")


def test_validity_map_marks_texture_not_flat_or_dim_areas():
    rng = np.random.default_rng(1)
    obj = np.full((64, 64), 0.3)
    obj[:, 32:] = S.texture(rng, (64, 32), "fibres")
    w = S.validity_map(2000 * obj, 10.0)
    assert w[:, :16].mean() == 0.0          # flat (an edge near x = 32 is texture, hence the margin)
    assert w[:, 40:].mean() > 0.8           # bright texture
    w_dim = S.validity_map(2 * obj, 10.0)   # same texture, 1000x fewer photons: drowned in noise
    assert w_dim[:, 40:].mean() < 0.2


def test_test_streams_are_disjoint_from_training():
    tz = S.two_zone_sample(0, 0, 96)
    tr = S.training_sample(0, 0, 96)
    assert not np.array_equal(tz.image, tr.image)
    assert tz.params.shape == (2, 4)
    frac = (tz.labels == 1).mean()
    assert 0.2 <= frac <= 0.8                # two real zones
    ho = S.held_out_sample(0, 0, 96)
    assert ho.family == "photo" and ho.image.shape == (96, 96)


def test_cylinder_flow_profile():
    s = S.cylinder_sample(0, 0, 112, n_bands=14)
    lateral = np.hypot(s.truth[0], s.truth[1])[:, 0]
    axial = s.truth[2][:, 0]
    assert lateral[-1] > 0.95 and lateral[0] < 0.15         # lateral largest at the bottom
    assert axial[0] > 0.95 and axial[-1] < 0.15             # axial largest at the top
    assert np.all(np.diff(lateral) >= -1e-6) and np.all(np.diff(axial) <= 1e-6)
    assert np.allclose(s.truth[3], 0.2)


@pytest.mark.parametrize("family", S.TEXTURE_FAMILIES)
def test_every_texture_family_is_in_unit_range(family):
    t = S.texture(np.random.default_rng(2), (70, 60), family)
    assert t.shape == (70, 60) and t.min() >= 0 and t.max() <= 1 and t.std() > 0.01


def test_bad_synth_parameters_are_refused():
    with pytest.raises(MicromotionError):
        S.SynthParams(beta=(0.0, 1.0)).validate()
    with pytest.raises(MicromotionError):
        S.training_sample(-1, 0)


def test_dihedral_views_are_the_transformed_scene():
    from napari_micromotion.blurflow.psf import form_image

    obj = S.texture(np.random.default_rng(0), (72, 72), "fibres")
    p = np.array([0.3, 0.6, 0.4, 0.2])
    img = form_image(obj, np.zeros(obj.shape, int), [p])
    truth = np.concatenate([np.broadcast_to(p[:, None, None], (4, 72, 72)), np.ones((1, 72, 72))]).astype(np.float32)
    for k in range(8):
        view, t = S.dihedral(img, truth, k)
        obj_k, _ = S.dihedral(obj, truth, k)
        assert t.shape == truth.shape and np.all(t[4] == 1)
        np.testing.assert_allclose(t[2:4, 0, 0], p[2:])
        if k & 4:
            assert abs(t[0, 0, 0]) == pytest.approx(0.6) and abs(t[1, 0, 0]) == pytest.approx(0.3)
        expected = form_image(obj_k, np.zeros(obj.shape, int), [t[:4, 0, 0]])
        # the same up to the bilinear sub-pixel rounding of the trajectory (<< the signal)
        assert np.abs(view - expected).max() < 0.05 * img.max()
