"""Conversion to zarr: round trips value for value, compact dtypes, atomicity and locking."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from sensorium_data import catalog
from sensorium_data.dataset import open_store
from sensorium_data.errors import RecordingFormatError, StoreError
from sensorium_data.store import convert, is_complete
from sensorium_data.tree import open_tree
from tests.conftest import TEST_TIERS, write_tiny_tree
from tests.test_tree import zip_folder

REPO = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def assert_round_trip(tree_path: Path, store: Path) -> None:
    """Every value of the Dataset equals the .npy files (float32), NaN where padded."""
    ds = open_store(store)
    trials = open_tree(tree_path).trials
    assert ds.trial.values.tolist() == trials.tolist()
    root = open_tree(tree_path).files.root  # type: ignore[attr-defined]
    for i, trial in enumerate(trials):
        video = np.load(root / f"data/videos/{trial}.npy")
        np.testing.assert_array_equal(ds.videos[i].values, np.moveaxis(video, -1, 0).astype("f4"))
        responses = np.load(root / f"data/responses/{trial}.npy")
        if bool(ds.labelled[i]):
            np.testing.assert_array_equal(ds.responses[i].values, responses.astype("f4"))
        else:
            assert np.isnan(ds.responses[i].values).all()
        behavior = np.concatenate(
            [np.load(root / f"data/behavior/{trial}.npy"),
             np.load(root / f"data/pupil_center/{trial}.npy")]
        )
        np.testing.assert_array_equal(ds.behavior[i].values, behavior.astype("f4"))
        first_nan = np.flatnonzero(np.isnan(video).all(axis=(0, 1)))
        assert int(ds.n_frames[i]) == (first_nan[0] if len(first_nan) else video.shape[-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_value_for_value(make_tree, tmp_path, dtype):
    path = make_tree(dtype=dtype)
    store = convert(path, tmp_path / "out.zarr", progress=False)
    assert_round_trip(path, store)
    group = zarr.open_group(store, mode="r")
    assert group["videos"].dtype == np.uint8
    assert group["responses"].dtype == np.float32
    assert group.attrs["source_dtypes"]["responses"] == np.dtype(dtype).name


def test_round_trip_from_zip(make_tree, tmp_path):
    path = make_tree("rec")
    archive = zip_folder(path, tmp_path / "rec.zip")
    store = convert(archive, tmp_path / "out.zarr", progress=False)
    assert_round_trip(path, store)


def test_non_integer_videos_are_stored_as_float32(make_tree, tmp_path):
    path = make_tree(integer_videos=False)
    store = convert(path, tmp_path / "out.zarr", progress=False)
    assert zarr.open_group(store, mode="r")["videos"].dtype == np.float32
    assert_round_trip(path, store)


def test_withheld_test_responses_are_nan_and_unlabelled(make_tree, tmp_path):
    ds = open_store(convert(make_tree(withheld=True), tmp_path / "a.zarr", progress=False))
    is_test = np.isin(ds.tier.values, list(TEST_TIERS))
    assert (~ds.labelled.values[is_test]).all() and ds.labelled.values[~is_test].all()
    assert np.isnan(ds.responses.values[is_test]).all()
    ds = open_store(convert(make_tree(withheld=False), tmp_path / "b.zarr", progress=False))
    assert ds.labelled.values.all()


def test_zero_train_responses_stay_labelled(tmp_path):
    path = write_tiny_tree(tmp_path / "rec")
    np.save(path / "data/responses/0.npy", np.zeros((7, 40), np.float32))
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    assert bool(ds.labelled.sel(trial=0))
    assert (ds.responses.sel(trial=0).values == 0).all()


def test_derived_labels_group_repeated_videos(make_tree, tmp_path):
    ds = open_store(convert(make_tree(), tmp_path / "out.zarr", progress=False))
    assert set(ds.stimulus_type.values) == {"unknown"}
    assert ds.attrs["labels_source"] == "derived"
    repeats = ds.video_id.where(ds.tier != "train", drop=True).values
    assert len(set(repeats)) == 2  # oracle and test trials show one of two videos
    train = ds.video_id.where(ds.tier == "train", drop=True).values
    assert len(set(train)) == len(train)


def test_labels_from_the_tree_files(make_tree, tmp_path):
    path = make_tree()
    n = len(np.load(path / "meta/trials/tiers.npy"))
    np.save(path / "meta/trials/stimulus_type.npy", np.array(["Gabor"] * n))
    np.save(path / "meta/trials/video_id.npy", np.array([f"v{i % 3}" for i in range(n)]))
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    assert set(ds.stimulus_type.values) == {"Gabor"}
    assert ds.video_id.values.tolist() == [f"v{t % 3}" for t in ds.trial.values]
    assert ds.attrs["labels_source"] == "tree"


def catalog_named_tree(tmp_path: Path, letter: str, count: int = 12,
                       monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[Path, object]:
    """A tiny tree named like a catalogued recording, with the catalog's first ``count`` trials;
    with ``monkeypatch``, the catalog's counts are made the tiny tree's (7 neurons, ``count``
    trials) for the test, so that the identity check passes."""
    rec = catalog.lookup(letter)
    table = rec.trials()
    assert table is not None
    rows = table.iloc[:count]
    tiers = ["none"] * (int(rows.index.max()) + 1)
    for trial, tier in zip(rows.index, rows["tier"], strict=True):
        tiers[int(trial)] = str(tier)
    if monkeypatch is not None:
        small = dataclasses.replace(rec, n_neurons=7, n_trials=count)
        real_find = catalog.find
        monkeypatch.setattr(catalog, "find",
                            lambda name: small if name == rec.name else real_find(name))
    return write_tiny_tree(tmp_path / rec.name, tiers=tiers, junk=False), rows


def test_labels_from_the_catalog_for_known_recordings(tmp_path, monkeypatch):
    path, rows = catalog_named_tree(tmp_path, "F", monkeypatch=monkeypatch)
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    assert ds.attrs["labels_source"] == "catalog"
    assert ds.stimulus_type.values.tolist() == rows["stimulus_type"].tolist()  # type: ignore[attr-defined]
    assert ds.video_id.values.tolist() == rows["video_id"].tolist()  # type: ignore[attr-defined]
    assert ds.attrs["letter"] == "F" and ds.attrs["animal_id"] == 29515


def test_tree_named_like_a_recording_but_different(tmp_path, monkeypatch):
    path, rows = catalog_named_tree(tmp_path, "F", monkeypatch=monkeypatch)
    tiers = np.load(path / "meta/trials/tiers.npy")
    first = int(rows.index[0])  # type: ignore[attr-defined]
    tiers[first] = "oracle" if tiers[first] != "oracle" else "train"
    np.save(path / "meta/trials/tiers.npy", tiers)
    with pytest.raises(RecordingFormatError, match=rf"trial {first} has tier .* in the catalog"):
        convert(path, tmp_path / "out.zarr", progress=False)


def test_nothing_is_written_into_the_source(make_tree, tmp_path, data_dir):
    path = make_tree()
    archive = zip_folder(path, tmp_path / "rec.zip")
    before, zip_before = snapshot(path.parent), snapshot(tmp_path / "rec.zip")
    convert(path, progress=False)
    convert(archive, progress=False)
    assert snapshot(path.parent) == before
    assert snapshot(tmp_path / "rec.zip") == zip_before
    assert len(list((data_dir / "stores").glob("*.zarr"))) == 1  # zip and folder: one store


def test_statistics_are_reachable(make_tree, tmp_path):
    path = make_tree()
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    stats = ds.sensorium.statistics
    np.testing.assert_allclose(
        stats.responses.sel(statistic="std").values,
        np.load(path / "meta/statistics/responses/all/std.npy"), rtol=1e-6,
    )
    np.testing.assert_allclose(
        stats.videos.sel(statistic="mean").values,
        np.moveaxis(np.load(path / "meta/statistics/videos/all/mean.npy"), -1, 0), rtol=1e-6,
    )
    assert stats.behavior.sizes == {"statistic": 4, "behavior_variable": 4, "frame": 40}


def test_complete_store_is_reused_and_overwrite_converts_again(make_tree, tmp_path):
    path = make_tree()
    store = convert(path, tmp_path / "out.zarr", progress=False)
    stamp = (store / "zarr.json").stat().st_mtime_ns
    assert convert(path, store, progress=False) == store
    assert (store / "zarr.json").stat().st_mtime_ns == stamp
    convert(path, store, overwrite=True, progress=False)
    assert (store / "zarr.json").stat().st_mtime_ns != stamp
    assert_round_trip(path, store)


def test_unknown_schema_is_refused_then_converted_again(make_tree, tmp_path):
    path = make_tree()
    store = convert(path, tmp_path / "out.zarr", progress=False)
    group = zarr.open_group(store, mode="r+")
    group.attrs["schema_version"] = 0  # 1 (the earlier layout) is still read: test_layout.py
    zarr.consolidate_metadata(store)
    with pytest.raises(StoreError, match=r"schema version 0.*overwrite=True"):
        open_store(store)
    assert not is_complete(store)
    convert(path, store, progress=False)
    assert_round_trip(path, store)


def test_store_path_that_is_not_a_store(make_tree, tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.txt").write_text("do not delete")
    with pytest.raises(StoreError, match="not a store that sensorium_data completed; it will not"):
        convert(make_tree(), target, progress=False)
    assert (target / "thesis.txt").read_text() == "do not delete"
    with pytest.raises(StoreError, match="not a readable sensorium store"):
        open_store(target)


SLOW_CONVERT = """
import sys, time
import sensorium_data.store as store
from sensorium_data.store.video import VideoWriter
original = VideoWriter._behavior
def slow(self):
    open(sys.argv[3], "w").close()
    time.sleep(float(sys.argv[4]))
    original(self)
VideoWriter._behavior = slow
store.convert(sys.argv[1], sys.argv[2], progress=False)
"""


def start_convert(tree: Path, store: Path, flag: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_CONVERT, str(tree), str(store), str(flag), str(delay)],
        env=env,
    )


def wait_for(path: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            pytest.fail(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def test_killed_conversion_leaves_no_store_and_the_next_converts(make_tree, tmp_path):
    path = make_tree()
    store = tmp_path / "out.zarr"
    proc = start_convert(path, store, tmp_path / "started", delay=60)
    wait_for(tmp_path / "started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not store.exists() and not is_complete(store)
    assert list(tmp_path.glob("out.zarr.tmp-*"))  # the half-written store, under another name
    convert(path, store, progress=False)
    assert_round_trip(path, store)
    assert not list(tmp_path.glob("out.zarr.tmp-*"))


def test_concurrent_conversions_convert_once(make_tree, tmp_path):
    path = make_tree()
    store = tmp_path / "out.zarr"
    first = start_convert(path, store, tmp_path / "first", delay=2)
    wait_for(tmp_path / "first")
    second = start_convert(path, store, tmp_path / "second", delay=0)
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    assert not (tmp_path / "second").exists()  # the second waited, then found the store done
    assert_round_trip(path, store)


def test_store_of_another_recording_is_refused(make_tree, tmp_path):
    store = convert(make_tree("recA", n_neurons=9), tmp_path / "recA.zarr", progress=False)
    other = make_tree("recB", n_neurons=7)
    with pytest.raises(StoreError, match=r"recA\.zarr is the store of .*/recA \(fingerprint "
                                         r"[0-9a-f]+\), not of .*/recB .*or pass overwrite=True"):
        convert(other, store, progress=False)
    assert open_store(store).sizes["neuron"] == 9
    convert(other, store, overwrite=True, progress=False)
    assert_round_trip(other, store)


def test_a_users_zarr_group_is_never_replaced(make_tree, tmp_path):
    mine = tmp_path / "mine.zarr"
    group = zarr.open_group(mine, mode="w")
    group.create_array("results", shape=(3,), dtype="float64")[:] = [1.0, 2.0, 3.0]
    for overwrite in (False, True):
        with pytest.raises(StoreError, match=r"mine\.zarr exists and is not a store that "
                                             r"sensorium_data completed.*even with overwrite=True"):
            convert(make_tree(), mine, overwrite=overwrite, progress=False)
    assert zarr.open_array(mine / "results", mode="r")[:].tolist() == [1.0, 2.0, 3.0]


def test_incomplete_store_names_the_problem(make_tree, tmp_path):
    store = convert(make_tree(), tmp_path / "out.zarr", progress=False)
    group = zarr.open_group(store, mode="r+")
    group.attrs["complete"] = False
    zarr.consolidate_metadata(store)
    with pytest.raises(StoreError, match="is not a finished sensorium store") as err:
        open_store(store)
    assert "reads version" not in str(err.value)


def test_leftovers_of_a_killed_overwrite_are_removed(make_tree, tmp_path):
    path = make_tree()
    store = convert(path, tmp_path / "out.zarr", progress=False)
    old, tmp = tmp_path / "out.zarr.old-4242", tmp_path / "out.zarr.tmp-4243"
    shutil.copytree(store, old)  # what a kill between the two renames of overwrite leaves
    tmp.mkdir()
    keep = tmp_path / "out.zarr.old-mine"  # not a name convert writes
    keep.mkdir()
    assert convert(path, store, progress=False) == store
    assert not old.exists() and not tmp.exists() and keep.exists()


def test_files_edited_in_place_are_reported(make_tree, tmp_path, caplog):
    path = make_tree()
    store = convert(path, tmp_path / "out.zarr", progress=False)
    edited = path / "data/responses/0.npy"
    values = np.load(edited)
    np.save(edited, values * 2)  # same size, new values
    later = time.time() + 10
    os.utime(edited, (later, later))
    with caplog.at_level("WARNING"):
        assert convert(path, store, progress=False) == store
    assert "modified after" in caplog.text and "overwrite=True" in caplog.text
    convert(path, store, overwrite=True, progress=False)
    assert_round_trip(path, store)


def test_counts_are_checked_against_the_catalog_whatever_the_source(tmp_path):
    rec = catalog.lookup("F")
    path = write_tiny_tree(tmp_path / rec.name, n_neurons=5, junk=False,
                           tiers=list(rec.trials()["tier"].iloc[:16]))  # type: ignore[index]
    n = len(np.load(path / "meta/trials/tiers.npy"))
    for name in ("stimulus_type", "video_id"):  # labels of its own: no catalog lookup needed
        np.save(path / f"meta/trials/{name}.npy", np.array(["x"] * n))
    with pytest.raises(RecordingFormatError, match=rf"named like the published recording "
                                                   rf"{rec.name} \(F\) but has 5 neurons; the "
                                                   r"catalog says 7863"):
        convert(path, tmp_path / "out.zarr", progress=False)
