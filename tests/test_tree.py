"""The file-tree reader and writer: trial discovery, junk, zips, and clear errors."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sensorium_data.errors import RecordingFormatError
from sensorium_data.tree import TreeWriter, open_tree, valid_frames
from tests.conftest import TIERS


def zip_folder(folder: Path, target: Path, *, junk: bool = True) -> Path:
    """Zip a recording as published: one top-level folder, plus macOS junk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        if junk:
            zf.writestr(f"__MACOSX/{folder.name}/data/._0.npy", b"junk")
    return target


def test_trials_are_file_indices_with_gaps(make_tree):
    tree = open_tree(make_tree())
    expected = [i for i, t in enumerate(TIERS) if t != "none"]
    assert tree.trials.tolist() == expected
    assert tree.tiers.tolist() == [TIERS[i] for i in expected]
    assert "none" not in tree.tiers


def test_junk_and_stray_files_are_ignored(make_tree):
    path = make_tree(junk=True)
    assert (path / "__MACOSX").exists() and (path / "data/responses/._1.npy").exists()
    tree = open_tree(path)
    assert len(tree.trials) == sum(t != "none" for t in TIERS)


def test_parent_folder_with_one_recording_is_accepted(make_tree):
    path = make_tree("rec")
    assert open_tree(path.parent).name == "rec"


def test_zip_is_read_in_place(make_tree, tmp_path):
    path = make_tree("rec")
    archive = zip_folder(path, tmp_path / "rec.zip")
    before = archive.stat().st_mtime_ns
    tree = open_tree(archive)
    assert tree.name == "rec"
    assert tree.trials.tolist() == open_tree(path).trials.tolist()
    trial = int(tree.trials[0])
    np.testing.assert_array_equal(
        tree.read("responses", trial), np.load(path / f"data/responses/{trial}.npy")
    )
    assert archive.stat().st_mtime_ns == before
    assert tree.fingerprint == open_tree(path).fingerprint


def test_valid_frames_is_first_all_nan_frame():
    video = np.ones((2, 3, 10))
    video[..., 7:] = np.nan
    video[0, 0, 3] = np.nan  # a single NaN pixel does not end the trial
    assert valid_frames(video) == 7
    assert valid_frames(np.ones((2, 3, 10))) == 10


def test_trial_missing_from_one_stream(make_tree):
    path = make_tree()
    (path / "data/behavior/5.npy").unlink()
    with pytest.raises(RecordingFormatError, match=r"trial 5 has data/\w+/5.npy but no "
                       r"data/behavior/5.npy"):
        open_tree(path)


def test_shapes_that_differ_between_trials(make_tree):
    path = make_tree()
    np.save(path / "data/responses/6.npy", np.zeros((7, 39)))
    tree = open_tree(path)
    with pytest.raises(RecordingFormatError, match=r"data/responses/6.npy has shape \(7, 39\)"):
        tree.check_shapes()


def test_not_a_recording(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingFormatError, match="has no data/ and meta/ folders"):
        open_tree(tmp_path / "empty")
    with pytest.raises(RecordingFormatError, match="does not exist"):
        open_tree(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(RecordingFormatError, match="neither a folder nor a zip"):
        open_tree(tmp_path / "file.txt")


def test_missing_stream_folder_and_meta(make_tree):
    path = make_tree()
    shutil.rmtree(path / "data/pupil_center")
    with pytest.raises(RecordingFormatError, match=r"data/pupil_center/ holds no <trial>.npy"):
        open_tree(path)
    path = make_tree()
    (path / "meta/trials/tiers.npy").unlink()
    with pytest.raises(RecordingFormatError, match=r"meta/trials/tiers.npy is missing"):
        open_tree(path)


def test_truncated_zip(make_tree, tmp_path):
    archive = zip_folder(make_tree("rec"), tmp_path / "rec.zip")
    data = archive.read_bytes()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingFormatError, match=r"neither a folder nor a zip|truncated"):
        open_tree(bad)


def test_writer_refuses_to_overwrite(make_tree):
    path = make_tree()
    with pytest.raises(FileExistsError, match="never overwrites"):
        TreeWriter(path, tiers=["train"], unit_ids=[1], coordinates=np.zeros((1, 3)))


def test_writer_refuses_unknown_stream_names(tmp_path):
    writer = TreeWriter(tmp_path / "rec", tiers=["train"], unit_ids=[1],
                        coordinates=np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"write_trial got unknown stream 'video' \(did you mean "
                                         r"'videos'\?\); the streams of a recording are videos, "):
        writer.write_trial(0, video=np.zeros((36, 64, 4)), responses=np.zeros((1, 4)))
    assert not (tmp_path / "rec" / "data").exists()  # nothing written, not even the good stream
    with pytest.raises(ValueError, match=r"close\(statistics=\.\.\.\) got unknown stream 'spikes'"):
        writer.close(statistics={"spikes": {"mean": np.zeros(1)}})


def test_valid_frames_of_responses_and_of_a_video_agree():
    responses = np.ones((3, 6))
    responses[:, 4:] = np.nan
    responses[1:, 2] = np.nan  # NaN in some neurons only: still a valid frame
    responses[0, 1] = np.nan
    assert valid_frames(responses) == 4
    video = np.broadcast_to(responses[:, None, :], (3, 5, 6))
    assert valid_frames(video) == 4


def test_writer_statistics_are_over_train_trials(tmp_path):
    writer = TreeWriter(tmp_path / "rec", tiers=["train", "train", "oracle"], unit_ids=[1, 2],
                        coordinates=np.zeros((2, 3)))
    for trial, value in enumerate([1.0, 3.0, 100.0]):
        writer.write_trial(trial, videos=np.full((36, 64, 4), value),
                           responses=np.full((2, 4), value), behavior=np.full((2, 4), value),
                           pupil_center=np.full((2, 4), value))
    writer.close()
    stats = open_tree(tmp_path / "rec").statistics("responses")
    np.testing.assert_allclose(stats["mean"], 2.0)
    np.testing.assert_allclose(stats["std"], 1.0)
    np.testing.assert_allclose(stats["max"], 3.0)


def test_damaged_member_in_a_zip(make_tree, tmp_path):
    path = make_tree("rec")
    archive = tmp_path / "rec.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(path.rglob("*.npy")):
            zf.write(p, f"rec/{p.relative_to(path).as_posix()}")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("rec/data/responses/0.npy")
    start = info.header_offset + 30 + len(info.filename) + 10
    data[start : start + 8] = b"\xff" * 8  # corrupt the compressed bytes of one member
    archive.write_bytes(bytes(data))
    tree = open_tree(archive)
    with pytest.raises(RecordingFormatError, match=r"could not read .*data/responses/0.npy"):
        tree.read("responses", 0)


def test_misspelled_tier_names_are_refused(make_tree):
    path = make_tree()
    tiers = np.load(path / "meta/trials/tiers.npy")
    tiers[tiers == "train"] = ["trian", "train", "train", "train"][: (tiers == "train").sum()]
    tiers[tiers == "oracle"] = "validation"
    np.save(path / "meta/trials/tiers.npy", tiers)
    with pytest.raises(RecordingFormatError,
                       match=r"unknown tier\(s\) 'trian' \(did you mean 'train'\?\), 'validation'"):
        open_tree(path)


def test_integer_or_0d_tiers_are_refused(make_tree):
    path = make_tree()
    np.save(path / "meta/trials/tiers.npy", np.arange(len(TIERS)))
    with pytest.raises(RecordingFormatError, match=r"1-d int64 array; it must be a 1-d array of "
                                                  r"tier names"):
        open_tree(path)
    np.save(path / "meta/trials/tiers.npy", np.array("train"))
    with pytest.raises(RecordingFormatError, match=r"holds a 0-d <U5 array"):
        open_tree(path)


def test_trial_deleted_from_every_stream_is_refused(make_tree):
    path = make_tree()
    for stream in ("videos", "responses", "behavior", "pupil_center"):
        (path / "data" / stream / "6.npy").unlink()
    with pytest.raises(RecordingFormatError,
                       match=r"trial 6 has tier 'oracle' in meta/trials/tiers.npy but no "):
        open_tree(path)


@pytest.mark.parametrize("name", ["08.npy", "\u0663.npy"])
def test_odd_trial_file_names_are_refused(make_tree, name):
    path = make_tree()
    shutil.copy(path / "data/videos/0.npy", path / "data/videos" / name)
    with pytest.raises(RecordingFormatError, match=r"looks like a trial file but is not named"):
        open_tree(path)


def test_duplicate_unit_ids_are_refused(make_tree, tmp_path):
    from sensorium_data.store import convert

    path = make_tree()
    ids = np.load(path / "meta/neurons/unit_ids.npy")
    ids[1] = ids[0]
    np.save(path / "meta/neurons/unit_ids.npy", ids)
    with pytest.raises(RecordingFormatError, match=rf"repeats unit id\(s\) \[{ids[0]}\]"):
        convert(path, tmp_path / "x.zarr", progress=False)


def test_meta_numbers_that_are_strings_are_refused(make_tree, tmp_path):
    from sensorium_data.store import convert

    path = make_tree()
    np.save(path / "meta/neurons/unit_ids.npy", np.full(7, "x"))
    with pytest.raises(RecordingFormatError, match=r"unit_ids\.npy holds <U1 values; it must "
                                                   r"hold numbers"):
        convert(path, tmp_path / "x.zarr", progress=False)
