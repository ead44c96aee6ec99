
import re

import numpy as np
import pytest
import tifffile

from napari_micromotion.errors import MicromotionError
from napari_micromotion.io import file_checksum, natural_key, read_image, read_recording, read_stack


def _stack(t=20, y=6, x=7, seed=0):
    return np.random.default_rng(seed).integers(100, 4000, size=(t, y, x), dtype=np.uint16)


def test_imagej_single_channel_fps_pixel_size_and_memmap(tmp_path):
    data = _stack()
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX", "finterval": 0.02, "unit": "um"},
                     resolution=(1 / 0.3, 1 / 0.3))
    rec = read_recording(path)
    assert rec.fps == pytest.approx(50.0) and rec.pixel_size_um == pytest.approx(0.3)
    assert isinstance(rec.transmission, np.memmap)  # uncompressed: memory-mapped, not loaded
    np.testing.assert_array_equal(rec.transmission, data)
    assert rec.fluorescence is None


def test_two_channel_hyperstack(tmp_path):
    trans, fluo = _stack(seed=1), _stack(seed=2)
    path = tmp_path / "both.tif"
    tifffile.imwrite(path, np.stack([trans, fluo], axis=1), imagej=True,
                     metadata={"axes": "TCYX", "finterval": 0.04})
    rec = read_recording(path)
    assert rec.fps == pytest.approx(25.0)
    np.testing.assert_array_equal(rec.transmission, trans)
    np.testing.assert_array_equal(rec.fluorescence, fluo)
    swapped = read_recording(path, channel=1)
    np.testing.assert_array_equal(swapped.transmission, fluo)
    np.testing.assert_array_equal(swapped.fluorescence, trans)


def test_ome_tiff_time_increment_and_channel_names(tmp_path):
    trans, fluo = _stack(seed=3), _stack(seed=4)
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, np.stack([trans, fluo], axis=1), ome=True,
                     metadata={"axes": "TCYX", "TimeIncrement": 20.0, "TimeIncrementUnit": "ms",
                               "PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm",
                               "Channel": {"Name": ["Brightfield", "Cal520"]}})
    rec = read_recording(path, channel="brightfield", fluorescence_channel="Cal520")
    assert rec.fps == pytest.approx(50.0) and rec.pixel_size_um == pytest.approx(0.25)
    np.testing.assert_array_equal(rec.transmission, trans)
    np.testing.assert_array_equal(rec.fluorescence, fluo)
    with pytest.raises(MicromotionError, match="no channel named"):
        read_recording(path, channel="DAPI")


def test_separate_fluorescence_file_and_csv_trace(tmp_path):
    t, f = _stack(seed=5), _stack(seed=6)
    tifffile.imwrite(tmp_path / "t.tif", t, imagej=True, metadata={"axes": "TYX", "finterval": 0.02})
    tifffile.imwrite(tmp_path / "f.tif", f, imagej=True, metadata={"axes": "TYX", "finterval": 0.02})
    rec = read_recording(tmp_path / "t.tif", tmp_path / "f.tif")
    np.testing.assert_array_equal(rec.fluorescence, f)
    (tmp_path / "trace.csv").write_text("frame,fluorescence\n" + "".join(f"{i},{v}\n" for i, v in enumerate(range(20))))
    rec2 = read_recording(tmp_path / "t.tif", tmp_path / "trace.csv")
    assert rec2.fluorescence.shape == (20,) and rec2.fluorescence[5] == 5


def test_folder_of_frames_natural_order_and_sidecar(tmp_path):
    data = _stack(t=18)
    folder = tmp_path / "series"
    folder.mkdir()
    for i, frame in enumerate(data):  # frame2 must come before frame10
        tifffile.imwrite(folder / f"frame{i}.tif", frame)
    (folder / "videoinfos.txt").write_text("{'fps': 18.5, 'microns_per_pixel': 0.65}")
    rec = read_recording(folder)
    np.testing.assert_array_equal(rec.transmission, data)
    assert rec.fps == pytest.approx(18.5) and rec.pixel_size_um == pytest.approx(0.65)
    assert sorted(["f10", "f2", "f1"], key=natural_key) == ["f1", "f2", "f10"]


def test_a_folder_whose_frames_are_one_level_down_names_the_subfolder(tmp_path):
    # the OpenHeartWare sample comes as a folder with its frame folder inside (given the outer one by hand)
    outer = tmp_path / "download"
    (outer / "series").mkdir(parents=True)
    for i, frame in enumerate(_stack(t=18)):
        tifffile.imwrite(outer / "series" / f"frame{i}.tif", frame)
    (outer / "SOURCE.md").write_text("notes")
    with pytest.raises(MicromotionError, match=rf"^folder {re.escape(str(outer))} holds no \.tif/\.tiff files; its "
                                               rf"subfolder series does: give {re.escape(str(outer / 'series'))}\.$"):
        read_recording(outer, fps=10.0)
    (outer / "more").mkdir()
    tifffile.imwrite(outer / "more" / "frame0.tif", _stack(t=1)[0])
    with pytest.raises(MicromotionError, match=r"its subfolders more, series do: give one of them\.$"):
        read_recording(outer, fps=10.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MicromotionError, match=r"^folder .*empty holds no \.tif/\.tiff files\.$"):
        read_recording(tmp_path / "empty", fps=10.0)


def test_shared_ohw_folder(shared_ohw):
    rec = read_recording(shared_ohw)
    assert rec.transmission.shape == (32, 1024, 1024) and rec.transmission.dtype == np.uint16
    assert rec.fps == pytest.approx(18.168453228691558)
    assert rec.pixel_size_um == pytest.approx(0.65046995603, rel=1e-6)
    assert rec.provenance["transmission"]["files"] == 32
    assert rec.provenance["transmission"]["first"] == "sampletifseries0000.tif"


def test_video_with_lossy_warning(shared_mp4):
    with pytest.warns(UserWarning, match="lossy"):
        rec = read_recording(shared_mp4)
    assert rec.transmission.shape == (48, 256, 256)
    assert rec.fps == pytest.approx(5.0)
    assert any("lossy" in w for w in rec.provenance["warnings"])


def test_fps_override_and_missing_fps(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _stack())
    with pytest.raises(MicromotionError, match="frame rate"):
        read_recording(path)
    assert read_recording(path, fps=100).fps == 100


@pytest.mark.parametrize("case", ["missing", "truncated", "garbage", "unsupported", "rgb", "single", "absurd"])
def test_bad_files_give_one_sentence(tmp_path, case):
    path = tmp_path / "bad.tif"
    if case == "missing":
        path = tmp_path / "nope.tif"
    elif case == "truncated":
        tifffile.imwrite(path, _stack(t=40, y=64, x=64), imagej=True, metadata={"axes": "TYX", "finterval": 0.02})
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif case == "garbage":
        path.write_bytes(b"II*\x00" + b"\x13" * 500)
    elif case == "unsupported":
        path = tmp_path / "x.xyz"
        path.write_text("hello")
    elif case == "rgb":
        # two samples per pixel: neither grey nor RGB (an RGB stack is read as grey, see below)
        tifffile.imwrite(path, np.zeros((20, 8, 8, 2), np.uint8), photometric="minisblack", planarconfig="contig")
    elif case == "single":
        tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    elif case == "absurd":
        # a header that claims 2**20 x 2**20 pixels per page, compressed so it cannot be memory-mapped
        tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint16), compression="zlib")
        raw = bytearray(path.read_bytes())
        with tifffile.TiffFile(path) as tf:
            for page in tf.pages:
                for name in ("ImageWidth", "ImageLength"):
                    tag = page.tags[name]
                    fmt = "<I" if tag.dtype == 4 else "<H"
                    import struct
                    struct.pack_into(fmt, raw, tag.valueoffset, 60000)
        path.write_bytes(bytes(raw))
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(MicromotionError) as info:
        read_recording(path, fps=50)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300
    if before is not None:
        assert path.read_bytes() == before  # never modified


def test_checksum_of_file_and_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a1.tif").write_bytes(b"x")
    (tmp_path / "d" / "a2.tif").write_bytes(b"y")
    c1 = file_checksum(tmp_path / "d")
    (tmp_path / "d" / "a2.tif").write_bytes(b"z")
    assert c1 != file_checksum(tmp_path / "d")
    assert file_checksum(tmp_path / "d" / "a1.tif").startswith("sha256:")


def test_a_folder_checksum_covers_what_is_read_not_notes_beside_the_frames(tmp_path):
    # a run record's checksum of a frame folder must not change when a README, a licence or a macOS companion file
    # is added beside the frames, but must when a frame or the videoinfos.txt sidecar changes
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(_stack(t=3)):
        tifffile.imwrite(folder / f"f{i}.tif", frame)
    (folder / "videoinfos.txt").write_text("{'fps': 18.0}")
    before = file_checksum(folder)
    (folder / "SOURCE.md").write_text("where the frames came from")
    (folder / "._f0.tif").write_bytes(b"\x00\x05\x16\x07")
    assert file_checksum(folder) == before
    (folder / "videoinfos.txt").write_text("{'fps': 20.0}")
    after_sidecar = file_checksum(folder)
    assert after_sidecar != before
    tifffile.imwrite(folder / "f1.tif", _stack(t=1, seed=9)[0])
    assert file_checksum(folder) != after_sidecar


def test_read_stack_reports_axes(tmp_path):
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, np.zeros((20, 2, 4, 4), np.uint16), imagej=True, metadata={"axes": "TCYX"})
    info = read_stack(path)
    assert info.axes == "TCYX" and info.n_channels == 2


def test_read_image_takes_colour_tiffs_as_it_takes_colour_pngs(tmp_path):
    """A single image in colour (blur-flow's input) is averaged over its channels, whatever the format."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    iio.imwrite(tmp_path / "rgba.png", np.dstack([rgb, np.full((40, 50), 255, np.uint8)]))
    grey = rgb.mean(axis=-1)
    np.testing.assert_allclose(read_image(tmp_path / "rgb.tif"), grey, atol=1e-4)
    np.testing.assert_allclose(read_image(tmp_path / "rgba.png"), grey, atol=1e-4)
    frames = (rng.random((3, 40, 50, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb_stack.tif", frames, photometric="rgb")
    np.testing.assert_allclose(read_image(tmp_path / "rgb_stack.tif", frame=2), frames[2].mean(axis=-1), atol=1e-4)
    with pytest.raises(MicromotionError, match=r"frame 3 does not exist; rgb_stack.tif has 3 frames"):
        read_image(tmp_path / "rgb_stack.tif", frame=3)
    with pytest.raises(MicromotionError, match="single image; there is no frame 1"):
        read_image(tmp_path / "rgb.tif", frame=1)
    with pytest.raises(MicromotionError, match="whole number, got 1.5"):
        read_image(tmp_path / "rgb_stack.tif", frame=1.5)


def test_malformed_sidecars_traces_and_rates_are_one_sentence(tmp_path):
    import json

    tifffile.imwrite(tmp_path / "p.tif", np.zeros((32, 16, 16), np.uint16))
    for side, message in (({"fps": "fast"}, "fps = 'fast'; it must be a positive number"),
                          ({"fps": 30, "pixel_size_um": [1, 2]}, "pixel_size_um = \\[1, 2\\]")):
        (tmp_path / "p.tif.json").write_text(json.dumps(side))
        with pytest.raises(MicromotionError, match=message):
            read_recording(tmp_path / "p.tif")
    (tmp_path / "p.tif.json").write_text(json.dumps({"fps": None, "pixel_size_um": 0.5}))   # null: not recorded
    rec = read_recording(tmp_path / "p.tif", fps=20)
    assert rec.fps == 20 and rec.pixel_size_um == 0.5
    with pytest.raises(MicromotionError, match="fps must be a positive number, got 'abc'"):
        read_recording(tmp_path / "p.tif", fps="abc")
    with pytest.raises(MicromotionError, match="takes a file or folder path"):
        read_recording(np.zeros((20, 8, 8)))
    (tmp_path / "trace.csv").write_bytes(b"\xff\xfe1\n2\n")
    with pytest.raises(MicromotionError, match="is not text"):
        read_recording(tmp_path / "p.tif", tmp_path / "trace.csv", fps=20)


def test_a_macos_copy_of_a_frame_folder_and_bad_scratch_settings(tmp_path, monkeypatch):
    """Hidden AppleDouble '._frame_1.tif' files made a frame folder unreadable; MICROMOTION_SCRATCH naming a missing
    folder or a file, and a negative memory budget, gave tracebacks or were accepted."""
    from napari_micromotion.io import default_memory_budget, scratch_dir

    frames = tmp_path / "frames"
    frames.mkdir()
    video = np.random.default_rng(0).integers(0, 4000, (20, 8, 8)).astype(np.uint16)
    for i, f in enumerate(video):
        tifffile.imwrite(frames / f"frame_{i + 1}.tif", f)
    (frames / "._frame_1.tif").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    rec = read_recording(frames, fps=10)
    assert np.array_equal(np.asarray(rec.transmission), video)
    monkeypatch.setenv("MICROMOTION_SCRATCH", str(tmp_path / "none"))
    with pytest.raises(MicromotionError, match="MICROMOTION_SCRATCH .* does not exist"):
        scratch_dir()
    monkeypatch.setenv("MICROMOTION_MEMORY_BUDGET", "-5")
    with pytest.raises(MicromotionError, match="must be a positive number of bytes"):
        default_memory_budget()


def test_a_two_channel_file_takes_the_brightfield_channel_by_its_name(tmp_path):
    """Channel 0 was always the transmission: a file whose channels are GCaMP and Brightfield scored calcium
    against calcium."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (20, 2, 8, 8)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "two.ome.tif", data, ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["GCaMP", "Brightfield"]}, "TimeIncrement": 0.02})
    rec = read_recording(tmp_path / "two.ome.tif", fps=50)
    assert np.array_equal(np.asarray(rec.transmission), data[:, 1])
    assert np.array_equal(np.asarray(rec.fluorescence), data[:, 0])
    assert any("'Brightfield'" in w and "by its name" in w for w in rec.provenance["warnings"])
    forced = read_recording(tmp_path / "two.ome.tif", fps=50, channel=0)          # the user's choice wins
    assert np.array_equal(np.asarray(forced.transmission), data[:, 0])


def test_a_trace_file_with_several_columns_says_which_it_took(tmp_path):
    from napari_micromotion.io import read_trace

    (tmp_path / "t.csv").write_text("frame;speed_px_s;dff\n" + "".join(f"{i};{i * 2};{i * 0.5}\n" for i in range(20)))
    with pytest.warns(UserWarning, match="3 columns; the last, 'dff' is taken"):
        values = read_trace(tmp_path / "t.csv")
    np.testing.assert_allclose(values, np.arange(20) * 0.5)
    (tmp_path / "named.csv").write_text("frame,fluorescence,x\n" + "".join(f"{i},{i},{-i}\n" for i in range(20)))
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("error")                 # a column named fluorescence: chosen, nothing to say
        np.testing.assert_allclose(read_trace(tmp_path / "named.csv"), np.arange(20))


@pytest.mark.parametrize("tunit, finterval", [("ms", 20.0), ("msec", 20.0), ("sec", 0.02), ("min", 0.02 / 60)])
def test_imagej_frame_interval_is_read_in_its_time_unit(tmp_path, tunit, finterval):
    # ImageJ stores finterval in the stack's time unit (tunit); 20 ms per frame is 50 fps, not 0.05 fps
    data = _stack()
    meta = {"axes": "TYX", "finterval": finterval, "tunit": tunit}
    tifffile.imwrite(tmp_path / "stack.tif", data, imagej=True, metadata=meta)
    assert read_recording(tmp_path / "stack.tif").fps == pytest.approx(50.0)
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(data):
        tifffile.imwrite(tmp_path / "frames" / f"f{i}.tif", frame, imagej=True, metadata={**meta, "axes": "YX"})
    assert read_recording(tmp_path / "frames").fps == pytest.approx(50.0)


def test_imagej_frame_interval_in_an_unknown_time_unit_asks_for_the_rate(tmp_path):
    tifffile.imwrite(tmp_path / "odd.tif", _stack(), imagej=True,
                     metadata={"axes": "TYX", "finterval": 3.0, "tunit": "fortnight"})
    with pytest.warns(UserWarning, match="fortnight"):
        with pytest.raises(MicromotionError, match="does not record its frame rate"):
            read_recording(tmp_path / "odd.tif")
    with pytest.warns(UserWarning, match="fortnight"):
        rec = read_recording(tmp_path / "odd.tif", fps=40.0)
    assert rec.fps == 40.0 and any("fortnight" in w for w in rec.provenance["warnings"])


def test_an_rgb_tiff_of_a_grey_video_is_read_as_grey(tmp_path):
    # a grey recording saved as RGB (ImageJ 'RGB Color', a converted video): the same frames, still memory-mapped
    grey = _stack().astype(np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.repeat(grey[..., None], 3, axis=-1), photometric="rgb")
    rec = read_recording(path, fps=30.0)
    assert rec.transmission.shape == grey.shape and rec.transmission.dtype == np.uint8
    np.testing.assert_array_equal(rec.transmission, grey)
    assert isinstance(rec.transmission, np.memmap) and rec.provenance["warnings"] == []
    # a colour stack is averaged over its colours, with a warning naming the file
    colour = np.random.default_rng(1).integers(0, 255, size=(20, 6, 7, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "colour.tif", colour, imagej=True, photometric="rgb",
                     metadata={"axes": "TYXS", "finterval": 0.05})
    with pytest.warns(UserWarning, match="colour.tif holds colour"):
        rec = read_recording(tmp_path / "colour.tif")
    assert rec.fps == pytest.approx(20.0)
    np.testing.assert_allclose(rec.transmission, colour.mean(axis=-1), atol=1e-4)
    assert any("colour.tif holds colour" in w for w in rec.provenance["warnings"])


def test_a_video_with_repeated_frames_says_which(tmp_path):
    # a re-timed clip (25 fps source written at 29 fps) repeats frames exactly; its clock is not the camera's
    import imageio.v3 as iio

    frames = np.random.default_rng(2).integers(0, 255, size=(20, 32, 32), dtype=np.uint8)
    iio.imwrite(tmp_path / "clean.avi", frames, extension=".avi", fps=29, codec="mjpeg")
    frames[6], frames[13] = frames[5], frames[12]
    iio.imwrite(tmp_path / "retimed.avi", frames, extension=".avi", fps=29, codec="mjpeg")
    rec = read_recording(tmp_path / "retimed.avi")
    said = [w for w in rec.provenance["warnings"] if "repeats" in w]
    assert len(said) == 1 and "retimed.avi repeats 2 of its 20 frames" in said[0] and "frames 6, 13" in said[0]
    assert rec.provenance["transmission"]["repeated_frames"] == [6, 13]
    clean = read_recording(tmp_path / "clean.avi")
    assert not any("repeats" in w for w in clean.provenance["warnings"])


def test_the_recording_says_where_its_frame_rate_and_pixel_size_came_from(tmp_path):
    data = _stack()
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TYX", "finterval": 40.0, "tunit": "ms", "unit": "um"})
    prov = read_recording(tmp_path / "ij.tif").provenance
    assert prov["fps_from"] == "ImageJ frame interval (40 ms)" and prov["pixel_size_from"] == "TIFF resolution tags"
    prov = read_recording(tmp_path / "ij.tif", fps=30.0, pixel_size_um=0.2).provenance
    assert prov["fps_from"] == "user" and prov["pixel_size_from"] == "user"
    tifffile.imwrite(tmp_path / "x.ome.tif", data, ome=True,
                     metadata={"axes": "TYX", "TimeIncrement": 0.05, "PhysicalSizeX": 0.25})
    prov = read_recording(tmp_path / "x.ome.tif").provenance
    assert prov["fps_from"] == "OME TimeIncrement" and prov["pixel_size_from"] == "OME PhysicalSizeX"
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(data):
        tifffile.imwrite(tmp_path / "frames" / f"f{i}.tif", frame)
    (tmp_path / "frames" / "videoinfos.txt").write_text("{'fps': 18.2, 'microns_per_pixel': 0.65}")
    rec = read_recording(tmp_path / "frames")
    assert rec.fps == pytest.approx(18.2) and rec.pixel_size_um == pytest.approx(0.65)
    assert rec.provenance["fps_from"] == rec.provenance["pixel_size_from"] == "sidecar videoinfos.txt"
    tifffile.imwrite(tmp_path / "bare.tif", data)
    prov = read_recording(tmp_path / "bare.tif", fps=10.0).provenance
    assert prov["fps_from"] == "user" and prov["pixel_size_from"] is None


def test_one_frame_of_a_frame_folder_points_to_the_folder(tmp_path):
    # a new user opens the first file of a one-file-per-frame series (OpenHeartWare, MicroBundleCompute)
    folder = tmp_path / "series"
    folder.mkdir()
    for i, frame in enumerate(_stack(t=3)):
        tifffile.imwrite(folder / f"series{i:04d}.tif", frame)
    with pytest.raises(MicromotionError) as info:
        read_recording(folder / "series0000.tif", fps=10.0)
    msg = str(info.value)
    assert "single image" in msg and "one of 3 TIFF files in series, so open that folder" in msg and "\n" not in msg
    # a lone image says only that it is a single image
    tifffile.imwrite(tmp_path / "lone.tif", _stack(t=1)[0])
    with pytest.raises(MicromotionError, match=r"single image of shape \(6, 7\); a time series of frames is needed\.$"):
        read_recording(tmp_path / "lone.tif", fps=10.0)
    np.testing.assert_array_equal(read_image(folder / "series0001.tif"), _stack(t=3)[1].astype(np.float32))


def test_ome_tiff_frame_rate_from_plane_times(tmp_path):
    # Bio-Formats / Micro-Manager exports give each plane's DeltaT instead of a TimeIncrement
    data = _stack()
    tifffile.imwrite(tmp_path / "dt.ome.tif", data, ome=True,
                     metadata={"axes": "TYX", "Plane": {"DeltaT": [i * 0.04 for i in range(20)]}})
    rec = read_recording(tmp_path / "dt.ome.tif")
    assert rec.fps == pytest.approx(25.0) and rec.provenance["fps_from"] == "OME plane times (DeltaT)"
    assert rec.provenance["warnings"] == []
    times = [i * 0.04 for i in range(20)]
    times[10:] = [t + 0.04 for t in times[10:]]      # one frame dropped
    tifffile.imwrite(tmp_path / "gap.ome.tif", data, ome=True, metadata={"axes": "TYX", "Plane": {"DeltaT": times}})
    with pytest.warns(UserWarning, match="gap.ome.tif: the frame times"):
        rec = read_recording(tmp_path / "gap.ome.tif")
    assert rec.fps == pytest.approx(25.0)
    assert any("irregular, 40 to 80 ms apart" in w for w in rec.provenance["warnings"])
    # a unit the reader does not know is refused with a warning, not read as seconds
    tifffile.imwrite(tmp_path / "odd.ome.tif", data, ome=True,
                     metadata={"axes": "TYX", "Plane": {"DeltaT": [i * 40 for i in range(20)],
                                                        "DeltaTUnit": ["Ms"] * 20}})
    with pytest.raises(MicromotionError, match="frame rate"):
        read_recording(tmp_path / "odd.ome.tif")
    with pytest.warns(UserWarning, match=r"plane times \(DeltaT\) are in 'Ms', a unit this reader does not know; they are not used\.$"):
        rec = read_recording(tmp_path / "odd.ome.tif", fps=10.0)
    assert rec.fps == 10.0 and any("'Ms', a unit this reader does not know" in w for w in rec.provenance["warnings"])


def test_a_video_that_fades_in_says_from_which_frame_to_analyse(tmp_path):
    # edited demo clips (the cm-disp-angle movies) fade in from black over their first frames
    import imageio.v3 as iio

    rng = np.random.default_rng(3)
    frames = rng.integers(90, 110, size=(30, 32, 32)).astype(np.float32)
    iio.imwrite(tmp_path / "steady.avi", frames.astype(np.uint8), extension=".avi", fps=20, codec="mjpeg")
    frames[:6] *= np.linspace(0.05, 0.85, 6)[:, None, None]
    iio.imwrite(tmp_path / "faded.avi", frames.astype(np.uint8), extension=".avi", fps=20, codec="mjpeg")
    rec = read_recording(tmp_path / "faded.avi")
    said = [w for w in rec.provenance["warnings"] if "fades in" in w]
    assert len(said) == 1 and "first 6 frames are darker" in said[0] and "--frames 6:30" in said[0]
    assert rec.provenance["transmission"]["fade_in_frames"] == 6
    assert not any("fades in" in w for w in read_recording(tmp_path / "steady.avi").provenance["warnings"])


@pytest.mark.parametrize("codec, lossy", [("rawvideo", False), ("ffv1", False), ("mjpeg", True)])
def test_only_a_lossy_video_is_called_lossy(tmp_path, codec, lossy):
    # an uncompressed AVI (ImageJ's and many cameras' format) keeps every grey level; telling its user that a lossy
    # codec smeared the data, and to record TIFF instead, is untrue
    import imageio.v3 as iio

    frames = np.random.default_rng(4).integers(0, 255, size=(20, 32, 32), dtype=np.uint8)
    iio.imwrite(tmp_path / "v.avi", frames, extension=".avi", fps=25, codec=codec, pixelformat="gray" if not lossy
                else "yuvj420p")
    rec = read_recording(tmp_path / "v.avi")
    assert any("lossy codecs" in w for w in rec.provenance["warnings"]) == lossy
    assert rec.provenance["transmission"]["lossless"] == (not lossy)
    if not lossy:
        np.testing.assert_array_equal(rec.transmission, frames)


def test_imagej_animation_speed_alone_is_used_with_a_warning(tmp_path):
    # ImageJ's 'fps' is the speed a stack plays at; with no frame interval it is only a guess at the camera's rate
    tifffile.imwrite(tmp_path / "anim.tif", _stack(), imagej=True, metadata={"axes": "TYX", "fps": 7.0})
    with pytest.warns(UserWarning, match="anim.tif gives no frame interval"):
        rec = read_recording(tmp_path / "anim.tif")
    assert rec.fps == pytest.approx(7.0) and rec.provenance["fps_from"] == "ImageJ fps (its animation speed)"
    assert any("animation speed (7 fps)" in w for w in rec.provenance["warnings"])
    tifffile.imwrite(tmp_path / "both.tif", _stack(), imagej=True,
                     metadata={"axes": "TYX", "fps": 7.0, "finterval": 0.02})
    rec = read_recording(tmp_path / "both.tif")
    assert rec.fps == pytest.approx(50.0) and rec.provenance["warnings"] == []


def test_ome_sizes_in_units_the_reader_does_not_know_are_not_taken_as_micrometres(tmp_path):
    # 'pixel' is an OME length unit too; 3 'pixel' per pixel is no pixel size, and must not become 3 um
    tifffile.imwrite(tmp_path / "px.ome.tif", _stack(), ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 3.0, "PhysicalSizeXUnit": "pixel",
                               "TimeIncrement": 0.05})
    with pytest.warns(UserWarning, match="PhysicalSizeX = '3.0' pixel is not used"):
        rec = read_recording(tmp_path / "px.ome.tif")
    assert rec.pixel_size_um is None and rec.fps == pytest.approx(20.0)
    assert any("px.ome.tif: its OME PhysicalSizeX" in w for w in rec.provenance["warnings"])
    tifffile.imwrite(tmp_path / "nm.ome.tif", _stack(), ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 650.0, "PhysicalSizeXUnit": "nm", "TimeIncrement": 0.05})
    assert read_recording(tmp_path / "nm.ome.tif").pixel_size_um == pytest.approx(0.65)


def test_a_non_numeric_ome_time_increment_is_a_warning_not_a_traceback(tmp_path):
    tifffile.imwrite(tmp_path / "bad.ome.tif", _stack(), ome=True,
                     metadata={"axes": "TYX", "TimeIncrement": "fast", "PhysicalSizeX": 0.3})
    with pytest.warns(UserWarning, match="TimeIncrement = 'fast' s is not used"):
        with pytest.raises(MicromotionError, match="does not record its frame rate"):
            read_recording(tmp_path / "bad.ome.tif")
    with pytest.warns(UserWarning, match="TimeIncrement"):
        assert read_recording(tmp_path / "bad.ome.tif", fps=5.0).pixel_size_um == pytest.approx(0.3)


def test_the_recordings_own_warnings_are_said_not_only_recorded(tmp_path):
    # a tool command (motion, denoise...) prints Python warnings; a frame rate that differs from the file's, or a
    # channel chosen by its name, was only put in the provenance, so the command never showed it
    tifffile.imwrite(tmp_path / "ij.tif", _stack(), imagej=True, metadata={"axes": "TYX", "finterval": 0.05})
    with pytest.warns(UserWarning, match=r"frame rate 25 fps given; ij.tif says 20 fps \(ImageJ frame interval"):
        rec = read_recording(tmp_path / "ij.tif", fps=25.0)
    assert any("ij.tif says 20 fps" in w for w in rec.provenance["warnings"])
    data = _stack(t=20)
    tifffile.imwrite(tmp_path / "two.ome.tif", np.stack([data, data + 1], axis=1), ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["GCaMP", "Brightfield"]}, "TimeIncrement": 0.02})
    with pytest.warns(UserWarning, match="taken as the transmission"):
        read_recording(tmp_path / "two.ome.tif")


def test_a_stack_of_two_interleaved_channels_says_its_frames_alternate(tmp_path):
    # a brightfield + calcium recording saved as one plain time series (channels taken in turn, no channel axis):
    # read as one video, every frame "moves" and the analysis is nonsense without a word
    from scipy import ndimage

    rng = np.random.default_rng(5)
    scene = ndimage.gaussian_filter(rng.normal(0, 1, (48, 48)), 2.0)
    bright = np.stack([1000 + 400 * ndimage.shift(scene, (0.3 * np.sin(t / 3), 0), order=1) for t in range(20)])
    dim = np.stack([200 + 50 * np.exp(-((t % 7) / 2.0)) + 0 * scene for t in range(20)])
    interleaved = np.empty((40, 48, 48))
    interleaved[0::2], interleaved[1::2] = bright, dim
    noise = lambda a: (a + rng.normal(0, 5, a.shape)).astype(np.uint16)  # noqa: E731
    tifffile.imwrite(tmp_path / "mixed.tif", noise(interleaved))
    tifffile.imwrite(tmp_path / "bf.tif", noise(bright))
    tifffile.imwrite(tmp_path / "still.tif", noise(np.repeat(bright[:1], 20, axis=0)))
    tifffile.imwrite(tmp_path / "both.tif", noise(np.stack([bright, dim], axis=1)), imagej=True,
                     metadata={"axes": "TCYX"})
    rec = read_recording(tmp_path / "mixed.tif", fps=20.0)
    said = [w for w in rec.provenance["warnings"] if "alternate" in w]
    assert len(said) == 1 and said[0].startswith("mixed.tif: its frames alternate") and "Deinterleave" in said[0]
    assert rec.provenance["transmission"]["alternating_frames"]["ratio"] < 0.05
    for name in ("bf.tif", "still.tif", "both.tif"):      # one scene, moving or still, or channels on their own axis
        rec = read_recording(tmp_path / name, fps=20.0)
        assert not any("alternate" in w for w in rec.provenance["warnings"]), name
        assert "alternating_frames" not in rec.provenance["transmission"]


def test_interleaved_channels_read_as_a_two_channel_recording(tmp_path):
    # one camera, brightfield and calcium light in turn, saved as one time series (frame k = channel k mod 2)
    bf, fl = _stack(t=20, seed=1), _stack(t=20, seed=2) + 1000
    mixed = np.empty((41, *bf.shape[1:]), bf.dtype)        # 20 cycles and one frame of an unfinished cycle
    mixed[0:40:2], mixed[1:40:2], mixed[40] = bf, fl, bf[0]
    tifffile.imwrite(tmp_path / "mixed.tif", mixed, imagej=True, metadata={"axes": "TYX", "finterval": 0.01})
    with pytest.warns(UserWarning, match="its last 1 frame .an incomplete cycle. is left out"):
        rec = read_recording(tmp_path / "mixed.tif", interleaved=2)
    np.testing.assert_array_equal(rec.transmission, bf)
    np.testing.assert_array_equal(rec.fluorescence, fl)
    assert isinstance(rec.transmission, np.memmap)             # a view of the file, not a copy
    assert rec.fps == pytest.approx(50.0)                       # the file's 100 frames/s shared by two channels
    assert rec.provenance["fps_from"] == "ImageJ frame interval (0.01 sec), divided by 2 interleaved channels"
    assert rec.provenance["transmission"]["interleaved_channels"] == 2
    assert not any("alternate" in w for w in rec.provenance["warnings"])   # each channel on its own is one scene
    # the channels chosen by index, a given rate is each channel's, three channels need the fluorescence named
    rec = read_recording(tmp_path / "mixed.tif", interleaved=2, channel=1, fps=40.0)
    np.testing.assert_array_equal(rec.transmission, fl)
    np.testing.assert_array_equal(rec.fluorescence, bf)
    assert rec.fps == 40.0 and any("frame rate 40 fps given; mixed.tif says 50 fps" in w
                                   for w in rec.provenance["warnings"])
    tifffile.imwrite(tmp_path / "three.tif", np.concatenate([mixed[:39]] * 2))
    with pytest.raises(MicromotionError, match="three.tif has 3 channels; choose which one is the fluorescence"):
        read_recording(tmp_path / "three.tif", interleaved=3, fps=10.0)
    rec = read_recording(tmp_path / "three.tif", interleaved=3, fluorescence_channel=2, fps=10.0)
    assert rec.n_frames == 26 and rec.fluorescence.shape == (26, *bf.shape[1:])
    for bad in (0, 17, 1.5, True):
        with pytest.raises(MicromotionError, match="interleaved channels must be a whole number from 1"):
            read_recording(tmp_path / "mixed.tif", interleaved=bad)
    tifffile.imwrite(tmp_path / "hyper.tif", np.stack([bf, fl], axis=1), imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(MicromotionError, match="hyper.tif already holds 2 channels on their own axis"):
        read_recording(tmp_path / "hyper.tif", interleaved=2, fps=10.0)
    with pytest.raises(MicromotionError, match=r"bf.tif has 20 frames, too few to hold 16 interleaved channels\.$"):
        tifffile.imwrite(tmp_path / "bf.tif", bf)
        read_recording(tmp_path / "bf.tif", interleaved=16, fps=10.0)


def test_a_fading_video_read_as_interleaved_channels_counts_the_channels_frames(tmp_path):
    # --frames counts each channel's frames once the file is de-interleaved, so the reader's advice must too
    import imageio.v3 as iio

    frames = np.random.default_rng(3).integers(90, 110, size=(40, 32, 32)).astype(np.float32)
    frames[:7] *= np.linspace(0.05, 0.85, 7)[:, None, None]
    iio.imwrite(tmp_path / "faded.avi", frames.astype(np.uint8), extension=".avi", fps=20, codec="mjpeg")
    rec = read_recording(tmp_path / "faded.avi", interleaved=2)
    said = [w for w in rec.provenance["warnings"] if "fades in" in w]
    assert len(said) == 1 and "first 7 frames are darker" in said[0]
    assert "from frame 4 of each of its 2 interleaved channels on (--frames 4:20)" in said[0]
    assert rec.provenance["transmission"]["fade_in_frames"] == 4 and rec.n_frames == 20 and rec.fps == 10.0
