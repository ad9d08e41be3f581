"""The mapped store layout: bytes on disk, mapped reads, batches written in place, upgrades of
schema 1 stores, and the faults (missing, truncated, foreign, deleted)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from filelock import FileLock

import sensorium_data as sd
from sensorium_data.cli import command_words
from sensorium_data.errors import StoreError
from sensorium_data.loaders.mapped import MappedTrials
from sensorium_data.loaders.reader import ChunkFiles
from sensorium_data.store import SCHEMA_VERSION
from sensorium_data.store.layout import chunk_file, mapped_reason
from sensorium_data.store.upgrade import needs_upgrade
from tests.old_stores import schema_1_copy


@pytest.fixture
def store(make_tree, tmp_path: Path) -> Path:
    return sd.convert(make_tree(n_neurons=9, frames=40), tmp_path / "toy.zarr", progress=False)


def clip_items(store: Path, **options: object) -> list[dict]:
    clips = sd.ClipDataset(store, frames=20, seed=3, **options)  # type: ignore[arg-type]
    return [clips[i] for i in range(len(clips))]


def assert_same_items(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x["trial"], x["start"]) == (y["trial"], y["start"])
        for key in ("videos", "responses", "behavior"):
            torch.testing.assert_close(x[key], y[key], equal_nan=True)


# -- the layout on disk ---------------------------------------------------------------------------


def test_trials_are_raw_time_major_files_and_the_view_is_unchanged(store):
    ds = sd.open_mouse(store)
    assert ds.responses.dims == ("trial", "neuron", "frame")
    assert ds.videos.dims == ("trial", "frame", "height", "width")
    n_neurons, frames = ds.sizes["neuron"], ds.sizes["frame"]
    for pos in range(ds.sizes["trial"]):
        responses = chunk_file(store / "responses", pos, 3)
        if not ds.labelled.values[pos]:
            assert not responses.exists()  # withheld: never written, reads as NaN
            assert ds.responses.isel(trial=pos).isnull().all()
            continue
        on_disk = np.fromfile(responses, "<f4").reshape(frames, n_neurons)  # (frame, neuron)
        np.testing.assert_array_equal(on_disk.T, ds.responses.isel(trial=pos).values)
        videos = np.fromfile(chunk_file(store / "videos", pos, 4), np.uint8)
        raw = zarr.open_array(store / "videos")[pos]  # uint8 (frame, height, width)
        np.testing.assert_array_equal(videos.reshape(raw.shape), raw)
    for name, axis in (("responses", 2), ("videos", 1)):
        assert mapped_reason(json.loads((store / name / "zarr.json").read_text()), axis) is None


def test_mapped_reason_names_what_is_wrong(store):
    meta = json.loads((store / "responses" / "zarr.json").read_text())
    compressed = dict(meta, codecs=[*meta["codecs"], {"name": "zstd", "configuration": {}}])
    assert "codecs ['transpose', 'bytes', 'zstd']" in str(mapped_reason(compressed, 2))
    neuron_major = dict(meta, codecs=meta["codecs"][1:])
    assert "frames first on disk" in str(mapped_reason(neuron_major, 2))
    split = dict(meta, chunk_grid={"name": "regular", "configuration": {"chunk_shape": [1, 9, 20]}})
    assert "not one whole trial each" in str(mapped_reason(split, 2))


# -- reading by mapping ---------------------------------------------------------------------------


def test_clips_are_mapped_and_equal_the_decoded_ones(store, tmp_path):
    clips = sd.ClipDataset(store, frames=20, seed=3)
    clips[0]
    assert all(isinstance(r, MappedTrials) for r in clips._readers(0))
    old = schema_1_copy(store, tmp_path / "old.zarr")
    slow = sd.ClipDataset(old, frames=20, seed=3)
    slow[0]
    assert all(isinstance(r, ChunkFiles) for r in slow._readers(0))
    assert_same_items(clip_items(store), clip_items(old))
    trials = sd.TrialDataset(store, tier=["train", "oracle"])
    old_trials = sd.TrialDataset(old, tier=["train", "oracle"])
    assert_same_items([trials[i] for i in range(len(trials))],
                      [old_trials[i] for i in range(len(old_trials))])


def test_a_batch_is_written_in_place_and_collated_without_a_copy(store):
    clips = sd.ClipDataset(store, frames=20, seed=3)
    items = clips.__getitems__([0, 1, 2])
    batch = sd.collate(items)
    for key in ("videos", "responses", "behavior"):
        assert batch[key].data_ptr() == items[0][key].data_ptr()  # the items are its rows
        torch.testing.assert_close(batch[key], sd.collate([clips[i] for i in (0, 1, 2)])[key])
    # rows of a batch in another order are copied, not handed on
    shuffled = sd.collate([items[1], items[0], items[2]])
    assert shuffled["responses"].data_ptr() != items[0]["responses"].data_ptr()
    torch.testing.assert_close(shuffled["responses"][0], items[1]["responses"])


def test_dataloader_workers_serve_the_mapped_items(store):
    clips = sd.ClipDataset(store, frames=20, seed=3)
    loader = torch.utils.data.DataLoader(clips, batch_size=2, collate_fn=sd.collate,
                                         num_workers=2, timeout=60)
    batches = list(loader)
    want = [sd.collate([clips[i] for i in range(b, min(b + 2, len(clips)))])
            for b in range(0, len(clips), 2)]
    for got, ref in zip(batches, want, strict=True):
        for key in ("videos", "responses", "behavior"):
            torch.testing.assert_close(got[key], ref[key], equal_nan=True)


# -- faults ---------------------------------------------------------------------------------------


def labelled_train_file(store: Path) -> Path:
    ds = sd.open_mouse(store)
    pos = int(np.flatnonzero(ds.tier.values == "train")[0])
    return chunk_file(store / "responses", pos, 3)


def test_a_missing_chunk_file_is_an_error_naming_it(store):
    clips = sd.ClipDataset(store, frames=20, seed=3, tier="train")
    file = labelled_train_file(store)
    file.unlink()
    with pytest.raises(StoreError, match=rf"{file} is missing: trial position \d+ of responses "
                                         r"has data.*convert the recording again"):
        clips[0]


def test_a_truncated_chunk_file_is_an_error_naming_it(store):
    clips = sd.ClipDataset(store, frames=20, seed=3, tier="train")
    file = labelled_train_file(store)
    size = file.stat().st_size
    with open(file, "r+b") as f:
        f.truncate(size - 4)
    with pytest.raises(StoreError, match=rf"{file} holds {size - 4} bytes, but a trial of "
                                         rf"responses is {size} bytes: the file is truncated"):
        clips[0]


def test_a_missing_or_truncated_video_file_is_an_error_naming_it(store):
    ds = sd.open_mouse(store)
    pos = int(np.flatnonzero(ds.tier.values == "train")[0])
    clips = sd.ClipDataset(store, frames=20, seed=3, tier="train")
    j = int(np.flatnonzero(clips._selections[0].positions == pos)[0])
    file = chunk_file(store / "videos", pos, 4)
    data = file.read_bytes()
    file.write_bytes(data[:-1])
    with pytest.raises(StoreError, match=rf"{file} holds {len(data) - 1} bytes, but a trial of "
                                         rf"videos is {len(data)} bytes: the file is truncated"):
        clips[j]
    file.unlink()
    with pytest.raises(StoreError, match=rf"{file} is missing: trial position {pos} of videos "
                                         r"has data"):
        clips[j]


def test_a_schema_1_store_with_a_missing_or_damaged_chunk_names_it(store, tmp_path):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    clips = sd.ClipDataset(old, frames=20, seed=3, tier="train")
    pos, trial = int(clips._selections[0].positions[0]), int(clips._selections[0].trials[0])
    chunk = old / f"responses/c/{pos}/0/0"  # the first 50 frames: every clip of 20 starts there
    chunk.write_bytes(chunk.read_bytes()[:20])
    with pytest.raises(StoreError, match=rf"old\.zarr: responses of trial {trial} cannot be "
                                         rf"read \(chunk file responses/c/{pos}/0/0: "):
        clips[0]
    chunk.unlink()
    with pytest.raises(StoreError, match=rf"old\.zarr: responses of trial {trial} is missing "
                                         rf"\(chunk file responses/c/{pos}/0/0"):
        clips[0]


def test_a_store_deleted_while_open(store):
    clips = sd.ClipDataset(store, frames=20, seed=3)
    clips[0]
    shutil.rmtree(store)
    with pytest.raises(StoreError, match=rf"the store {store} was deleted or moved while this "
                                         r"dataset reads it"):
        clips[1]
    fresh = sd.ClipDataset.__new__(sd.ClipDataset)
    fresh.__dict__.update(clips.__getstate__())  # a worker opening its readers afterwards
    with pytest.raises(StoreError, match=r"was deleted or moved while this dataset reads it"):
        fresh[1]


def test_a_layout_that_cannot_be_mapped_falls_back_logged(store, tmp_path, caplog):
    want = clip_items(store)
    foreign = shutil.copytree(store, tmp_path / "foreign.zarr")
    group = zarr.open_group(foreign, mode="r+")
    values = group["responses"][:]
    del group["responses"]
    arr = group.create_array("responses", shape=values.shape, chunks=(1, 3, 40),
                             dtype="float32", dimension_names=("trial", "neuron", "frame"),
                             fill_value=float("nan"))
    arr[:] = values
    zarr.consolidate_metadata(foreign)
    with caplog.at_level(logging.WARNING, logger="sensorium_data"):
        got = clip_items(foreign)
    assert "is not in the mapped layout (chunks [1, 3, 40]" in caplog.text
    assert "read through the slower decoding path" in caplog.text
    assert_same_items(got, want)


# -- schema 1 stores and upgrades -----------------------------------------------------------------


def test_a_schema_1_store_is_read_and_says_how_to_upgrade(store, tmp_path, caplog):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    xr.testing.assert_identical(sd.open_mouse(old).drop_attrs(), sd.open_mouse(store).drop_attrs())
    with caplog.at_level(logging.WARNING, logger="sensorium_data"):
        sd.ClipDataset(old, frames=20)
    assert f"upgrade it in place, from the store itself: sensorium_data.upgrade('{old}')" in (
        caplog.text)
    record = next(r for r in caplog.records if "schema version 1" in r.getMessage())
    assert command_words(record)  # as the command line logs it
    assert record.getMessage().endswith(f"sensorium convert --upgrade {old}; clips are read "
                                        "through the slower decoding path")


def test_upgrade_rewrites_the_store_from_itself(store, tmp_path):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    assert needs_upgrade(old) and not needs_upgrade(store)
    assert sd.upgrade(old, progress=False) == old
    assert not needs_upgrade(old)
    upgraded, fresh = sd.open_mouse(old), sd.open_mouse(store)
    assert upgraded.attrs["schema_version"] == SCHEMA_VERSION
    xr.testing.assert_identical(upgraded.drop_attrs(), fresh.drop_attrs())
    assert {k: v for k, v in upgraded.attrs.items() if k != "store"} == \
        {k: v for k, v in fresh.attrs.items() if k != "store"}
    for meta in sorted(store.rglob("zarr.json")):  # the same arrays, chunks and codecs
        twin = json.loads((old / meta.relative_to(store)).read_text())
        here = json.loads(meta.read_text())
        for key in ("shape", "chunk_grid", "codecs", "data_type", "fill_value"):
            assert twin.get(key) == here.get(key), (meta, key)
    for name in ("responses", "videos"):  # the same files, byte for byte
        for file in sorted((store / name / "c").rglob("*")):
            twin = old / file.relative_to(store)
            assert twin.exists() == file.exists()
            if file.is_file():
                assert twin.read_bytes() == file.read_bytes()
    assert not list(tmp_path.glob("old.zarr.*-*"))  # no temporary or old copy left
    assert sd.upgrade(old, progress=False) == old  # already current: nothing to do


def test_an_interrupted_upgrade_keeps_the_old_store(store, tmp_path, monkeypatch):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    before = sd.open_mouse(old).load()
    upgrade_module = sys.modules["sensorium_data.store.upgrade"]  # sd.upgrade is the verb

    def killed(*args: object) -> None:
        msg = "killed"
        raise KeyboardInterrupt(msg)

    monkeypatch.setattr(upgrade_module, "_copy_group", killed)
    with pytest.raises(KeyboardInterrupt):
        sd.upgrade(old, progress=False)
    assert needs_upgrade(old) and not list(tmp_path.glob("old.zarr.tmp-*"))
    xr.testing.assert_identical(sd.open_mouse(old).load(), before)


def test_upgrade_waits_for_the_lock_that_convert_takes(store, tmp_path):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    upgrading = threading.Thread(target=sd.upgrade, args=(old,), kwargs={"progress": False})
    with FileLock(str(old) + ".lock"):  # what a conversion of the same store holds
        upgrading.start()
        upgrading.join(1.0)
        assert upgrading.is_alive()  # waiting, the store untouched
        assert needs_upgrade(old) and not list(tmp_path.glob("old.zarr.tmp-*"))
    upgrading.join(120)
    assert not upgrading.is_alive() and not needs_upgrade(old)


def test_upgrade_refuses_what_it_cannot_upgrade(store, tmp_path):
    group = zarr.open_group(store, mode="r+")
    group.attrs["schema_version"] = 0
    with pytest.raises(StoreError, match=r"schema version 0 \(complete: True\); upgrade rewrites "
                                         r"complete stores of versions \[1\]\. Convert the "
                                         r"recording again"):
        sd.upgrade(store, progress=False)
    with pytest.raises(StoreError, match=r"is not a zarr store"):
        sd.upgrade(tmp_path / "nothing.zarr", progress=False)


def test_convert_upgrade_on_the_command_line(store, tmp_path):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    out = subprocess.run([sys.executable, "-m", "sensorium_models.cli", "convert", "--upgrade",
                          str(old)], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(str(old))
    assert not needs_upgrade(old) and sd.open_mouse(old).attrs["schema_version"] == SCHEMA_VERSION
    out = subprocess.run([sys.executable, "-m", "sensorium_models.cli", "convert", "--upgrade",
                          str(old), "--store", str(tmp_path / "x.zarr")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2
    assert "--upgrade rewrites the store given in place; it takes no --store" in out.stderr


def test_upgrade_of_a_2022_store_keeps_its_per_trial_responses(make_static_tree, tmp_path):
    from sensorium_data.store import quiet_zarr

    store = sd.convert(make_static_tree(), tmp_path / "s.zarr", progress=False)
    before = sd.open_mouse(store).responses.values
    with quiet_zarr():  # 2022 stores converted before the mapped layout say schema 1
        zarr.open_group(store, mode="r+").attrs["schema_version"] = 1
        zarr.consolidate_metadata(store)
    assert needs_upgrade(store)
    sd.upgrade(store, progress=False)
    np.testing.assert_array_equal(sd.open_mouse(store).responses.values, before)


def test_upgrade_refuses_a_damaged_store_instead_of_copying_nan(store, tmp_path):
    old = schema_1_copy(store, tmp_path / "old.zarr")
    ds = sd.open_mouse(store)
    pos = int(np.flatnonzero(ds.labelled.values)[0])
    (old / "responses" / "c" / str(pos) / "0" / "0").unlink()
    with pytest.raises(StoreError, match=rf"old\.zarr: responses of trial {ds.trial.values[pos]} "
                       r"is missing \(chunk file responses/c/"):
        sd.upgrade(old, progress=False)
    assert needs_upgrade(old)  # the old store is left as it was, nothing half-written beside it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("old.zarr")) == [
        "old.zarr", "old.zarr.lock"]


def test_upgrade_writes_every_chunk_as_convert_does(make_tree, tmp_path):
    tree = make_tree(n_neurons=9, frames=40)
    np.save(tree / "meta/neurons/cell_motor_coordinates.npy", np.zeros((9, 3)))  # all fill
    store = sd.convert(tree, tmp_path / "toy.zarr", progress=False)
    old = schema_1_copy(store, tmp_path / "old.zarr")
    sd.upgrade(old, progress=False)
    assert (old / "z" / "c" / "0").is_file()
    np.testing.assert_array_equal(sd.open_mouse(old).z.values, np.zeros(9))
