import numpy as np
import pytest

from napari_micromotion.errors import MicromotionError
from napari_micromotion.recording import Recording


def test_valid_recording_properties():
    t = np.zeros((20, 4, 5), np.uint16)
    rec = Recording(t, 50, fluorescence=np.ones((20, 4, 5)), pixel_size_um=0.3)
    assert rec.n_frames == 20 and rec.frame_shape == (4, 5) and rec.duration_s == pytest.approx(0.4)
    assert rec.has_fluorescence and "20 frames" in rec.describe()


@pytest.mark.parametrize("kwargs,msg", [
    ({"transmission": np.zeros((20, 4))}, "2 dimension"),
    ({"transmission": np.zeros((20, 4, 5, 3))}, "RGB"),
    ({"transmission": np.zeros((20, 2, 4, 5))}, "4 dimensions"),
    ({"transmission": np.zeros((5, 4, 5))}, "at least 16"),
    ({"transmission": np.array([[["a"]]])}, "data type"),
    ({"fps": 0}, "positive"),
    ({"fps": -3}, "positive"),
    ({"fps": float("inf")}, "positive"),
    ({"fps": "fast"}, "not a number"),
    ({"pixel_size_um": -1}, "pixel size"),
    ({"fluorescence": np.zeros((19, 4, 5))}, "19 frames"),
    ({"fluorescence": np.zeros((20, 4, 6))}, "same field"),
    ({"fluorescence": np.zeros(21)}, "21 frames"),
])
def test_bad_recordings_get_one_sentence(kwargs, msg):
    args = {"transmission": np.zeros((20, 4, 5)), "fps": 50.0, **kwargs}
    with pytest.raises(MicromotionError, match=msg):
        Recording(**args)


def test_nan_is_located():
    t = np.zeros((20, 4, 5), np.float32)
    t[7, 2, 3] = np.nan
    with pytest.raises(MicromotionError, match=r"frame 7, pixel \(2, 3\)"):
        Recording(t, 50)


def test_a_bool_rate_and_a_damaged_interpolation_marker():
    from napari_micromotion.pipeline import AnalysisParams

    video = np.random.default_rng(0).random((20, 8, 8))
    with pytest.raises(MicromotionError, match="frame rate True is not a number"):
        Recording(video, True)
    for marker, k in ((True, 1), ({"factor": "x"}, 1), ({"factor": 2}, 2)):
        assert Recording(video, 10, provenance={"synthesized_frames": marker}).measured_every == k
    with pytest.raises(MicromotionError, match="unknown parameter 'epochz' for CNN1DParams"):
        AnalysisParams().replace_values({"cnn1d.epochz": 3})


def test_values_whose_squares_overflow_are_refused():
    """Data scaled by 1e30 gave NaN displacement traces and a non-finite denoised movie without a word."""
    video = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    assert Recording(video * 1e10, 10).n_frames == 20
    with pytest.raises(MicromotionError, match="overflow the float32 arithmetic"):
        Recording(video * 1e30, 10)


def test_a_big_endian_video_is_read_in_native_byte_order(tmp_path):
    """A big-endian TIFF crashed the analysis' compiled kernels (numba: unsupported dtype >u2)."""
    import tifffile

    from napari_micromotion.io import read_recording

    video = np.random.default_rng(0).integers(0, 4000, (20, 8, 8)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "be.tif", video, byteorder=">", imagej=True, metadata={"axes": "TYX", "finterval": 0.02})
    rec = read_recording(tmp_path / "be.tif")
    assert rec.transmission.dtype.isnative and np.array_equal(rec.transmission, video)


def test_keeping_frames_cuts_both_channels_and_records_where_in_the_file():
    t = np.arange(40 * 4 * 4, dtype=np.float32).reshape(40, 4, 4)
    fade = "clip.avi fades in: its first 6 frames are darker than the rest; analyse from frame 6 on."
    rec = Recording(transmission=t, fps=20.0, fluorescence=t[:, 0, 0].copy(),
                    provenance={"transmission": {"path": "/data/clip.avi", "fade_in_frames": 6},
                                "warnings": [fade, "clip.avi is a lossy video."]})
    kept = rec.keep_frames(4, 38)
    np.testing.assert_array_equal(kept.transmission, t[4:38])
    np.testing.assert_array_equal(kept.fluorescence, t[4:38, 0, 0])
    assert kept.provenance["frames"] == [4, 38] and fade in kept.provenance["warnings"]   # still within the fade
    again = kept.keep_frames(2, 30)                # a cut of a cut counts in the file's frames
    assert again.provenance["frames"] == [6, 34] and again.provenance["warnings"] == ["clip.avi is a lossy video."]
    assert rec.provenance["warnings"] == [fade, "clip.avi is a lossy video."]        # the original is left alone
    with pytest.raises(MicromotionError, match=r"^frames 30:41 lie outside the recording's 40 frames \(0:40\)\.$"):
        rec.keep_frames(30, 41)
    with pytest.raises(MicromotionError, match=r"^keeping frames 0:12 leaves 12 of the 40 frames of clip\.avi; at "
                                               r"least 16 are needed\.$"):
        rec.keep_frames(0, 12)
