"""PSF model of Eqs. 1-4: normalisation, focus, lateral blur length, axial widening, image formation."""

import itertools

import numpy as np
import pytest

from napari_micromotion.blurflow.psf import (
    BlurParams,
    Optics,
    defocus_psf,
    form_image,
    motion_psf,
    psf_bank,
)
from napari_micromotion.errors import MicromotionError


def _moments(h):
    n = h.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    cy, cx = (h * yy).sum(), (h * xx).sum()
    vyy = (h * (yy - cy) ** 2).sum()
    vxx = (h * (xx - cx) ** 2).sum()
    vxy = (h * (yy - cy) * (xx - cx)).sum()
    return cy, cx, vyy, vxx, vxy


@pytest.mark.parametrize("p", [(0, 0, 0, 0), (0.3, -0.5, 0.2, 0.4), (1, 1, 1, 1), (0, 0.4, 1.2, 0)])
def test_psf_integrates_to_one_and_is_non_negative(p):
    h = motion_psf(p)
    assert h.shape == (65, 65)
    assert h.sum() == pytest.approx(1.0, abs=1e-9)
    assert h.min() >= 0


def test_static_in_focus_psf_is_the_centred_airy_spot():
    h0 = defocus_psf(Optics(), 0.0)
    h = motion_psf(BlurParams(0, 0, 0, 0))
    np.testing.assert_allclose(h, h0, atol=1e-9)
    assert np.unravel_index(h.argmax(), h.shape) == (32, 32)
    np.testing.assert_allclose(h, h[::-1, ::-1], atol=1e-12)      # point symmetric
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    # NA 0.3, 0.6 um, 0.65 um pixels: the pixel-integrated Airy peak holds ~29 % of the light
    assert 0.2 < h.max() < 0.4


def test_defocus_is_symmetric_and_spreads_light():
    o = Optics()
    np.testing.assert_allclose(defocus_psf(o, 0.7), defocus_psf(o, -0.7), atol=1e-12)
    peaks = [defocus_psf(o, z).max() for z in (0.0, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in itertools.pairwise(peaks))
    # one axial unit is one wave of pupil-edge defocus, about two depths of field (lambda n / NA^2)
    assert o.axial_unit_um == pytest.approx(0.6 / (1 - np.sqrt(1 - 0.09)))
    assert o.waves_per_axial_unit == pytest.approx(1.0)
    assert 1.9 < o.axial_unit_um / o.depth_of_field_um < 2.0


@pytest.mark.parametrize("v", [(0.0, 1.0), (1.0, 0.0), (0.6, -0.8), (-0.5, -0.5)])
def test_lateral_blur_length_matches_v(v):
    o = Optics()
    h0 = motion_psf((0, 0, 0, 0))
    h = motion_psf((v[0], v[1], 0, 0))
    _, _, a_yy, a_xx, a_xy = _moments(h0)
    cy, cx, b_yy, b_xx, b_xy = _moments(h)
    # a uniform streak of length L along unit vector e adds L^2/12 e e^T to the covariance
    L = np.hypot(*v) * o.blur_px_per_unit
    e = np.array(v) / np.hypot(*v)
    added = np.array([[b_yy - a_yy, b_xy - a_xy], [b_xy - a_xy, b_xx - a_xx]])
    np.testing.assert_allclose(added, L ** 2 / 12 * np.outer(e, e), atol=0.05 * L ** 2 / 12 + 0.02)
    assert abs(cy) < 0.05 and abs(cx) < 0.05          # centred on the mid-exposure position
    # the streak's sign is invisible: +v and -v give point-reflected PSFs
    np.testing.assert_allclose(motion_psf((-v[0], -v[1], 0, 0)), h[::-1, ::-1], atol=1e-9)


def test_axial_motion_widens_the_psf():
    widths = []
    for v3 in (0.0, 0.5, 1.0):
        _, _, vyy, vxx, _ = _moments(motion_psf((0, 0, v3, 0.2)))
        widths.append(vyy + vxx)
    assert widths[0] < widths[1] < widths[2]
    # starting further from focus widens it too
    _, _, a, b, _ = _moments(motion_psf((0, 0, 0.5, 0.0)))
    _, _, c, d, _ = _moments(motion_psf((0, 0, 0.5, 0.8)))
    assert c + d > a + b


def test_psf_is_fast_once_the_bank_exists():
    import time

    bank = psf_bank()
    t = time.perf_counter()
    for i in range(50):
        motion_psf((0.5, -0.3, 0.6, 0.4), bank=bank)
    assert (time.perf_counter() - t) / 50 < 0.02


def test_form_image_two_regions_and_refusals():
    rng = np.random.default_rng(0)
    obj = rng.random((64, 80))
    labels = np.zeros((64, 80), int)
    labels[:, 40:] = 1
    img = form_image(obj, labels, [BlurParams(), BlurParams(0, 1.0, 0, 0)])
    assert img.shape == obj.shape and np.isfinite(img).all()
    assert img.sum() == pytest.approx(obj.sum(), rel=0.05)      # blur conserves light (up to the borders)
    # the static half stays sharp, the moving half loses its pixel-to-pixel contrast along x
    sharp = np.abs(np.diff(img[:, 5:30], axis=1)).mean()
    smeared = np.abs(np.diff(img[:, 50:75], axis=1)).mean()
    assert smeared < 0.5 * sharp
    with pytest.raises(MicromotionError):
        form_image(obj, labels, [BlurParams()])
    with pytest.raises(MicromotionError):
        motion_psf((float("nan"), 0, 0, 0))
    with pytest.raises(MicromotionError):
        Optics(na=1.2).validate()
