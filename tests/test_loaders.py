"""ClipDataset / TrialDataset: item values against xarray and the formulas, windows, errors,
in-memory mode and DataLoader workers."""

from __future__ import annotations

import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import sensorium_data as sd
import sensorium_models as sm
from sensorium_data.errors import StoreError
from sensorium_data.loaders import mapped as mapped_module
from sensorium_data.loaders.reader import ChunkFiles, ZarrWindows, direct_layout, open_windows
from sensorium_data.store import SCHEMA_VERSION
from tests.old_stores import schema_1_copy


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Stores of two simulated recordings (24 neurons, 150-180 frames, every tier)."""
    root = tmp_path_factory.mktemp("sim")
    trees = sd.simulate(root / "trees", preset="tiny", scale=0.3, seed=1, progress=False)
    return [sd.convert(tree, root / f"{tree.name}.zarr", progress=False) for tree in trees[:2]]


@pytest.fixture(scope="module")
def old_store(stores: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``stores[0]`` as schema 1 wrote it (compressed chunks of 50 frames)."""
    return schema_1_copy(stores[0], tmp_path_factory.mktemp("old") / "tiny-A.zarr")


@pytest.fixture(scope="module")
def opened(stores: list[Path]) -> dict[str, xr.Dataset]:
    return {ds.attrs["mouse"]: ds for ds in map(sd.open_mouse, stores)}


def expected(ds: xr.Dataset, trial: int, start: int, frames: int,
             normalize: str | None = "official") -> dict[str, np.ndarray]:
    """An item's arrays computed by hand: xarray values and the starter kit's formulas."""
    x = ds.sel(trial=trial)
    window = slice(start, start + frames)
    videos = x.videos.values[window].astype(np.float64)
    responses = x.responses.values[:, window].astype(np.float64)
    behavior = x.behavior.values[:, window].astype(np.float64)
    if normalize is None:
        return {"videos": videos, "responses": responses, "behavior": behavior}
    stats = ds.sensorium.statistics.load()

    def stat(var: str, name: str) -> np.ndarray:
        return stats[var].sel(statistic=name).values.astype(np.float64)

    v_mean, v_std = stat("videos", "mean"), stat("videos", "std")  # (T, H, W)
    b_mean, b_std = stat("behavior", "mean"), stat("behavior", "std")  # (4, T)
    r_std = stat("responses", "std")  # (N, T)
    if normalize == "official":
        precision = sm.official_precision(r_std)[:, window]
        v_mean, v_std = v_mean[window], v_std[window]
        b_mean, b_std = b_mean[:, window], b_std[:, window]
    else:  # per_neuron: everything averaged over frames first
        precision = sm.official_precision(np.nanmean(r_std, axis=1))[:, None]
        v_mean, v_std = np.nanmean(v_mean, axis=0), np.nanmean(v_std, axis=0)
        b_mean, b_std = np.nanmean(b_mean, axis=1)[:, None], np.nanmean(b_std, axis=1)[:, None]
    behavior[:2] = behavior[:2] / b_std[:2]
    behavior[2:] = (behavior[2:] - b_mean[2:]) / b_std[2:]
    return {"videos": (videos - v_mean) / v_std, "responses": responses * precision,
            "behavior": behavior}


def assert_item(item: dict, ds: xr.Dataset, normalize: str | None = "official",
                pupil: bool = False) -> None:
    frames = item["responses"].shape[-1]
    want = expected(ds, item["trial"], item["start"], frames, normalize)
    for key in ("responses", "behavior"):
        assert item[key].dtype == torch.float32
        np.testing.assert_allclose(item[key].numpy(), want[key], rtol=1e-5, atol=1e-5,
                                   err_msg=key)
    videos = item["videos"].numpy()
    channels = [want["videos"], *(np.broadcast_to(want["behavior"][k][:, None, None],
                                                  videos.shape[1:]) for k in (0, 1))]
    if pupil:
        channels += [np.broadcast_to(want["behavior"][k][:, None, None], videos.shape[1:])
                     for k in (2, 3)]
    np.testing.assert_allclose(videos, np.stack(channels), rtol=1e-5, atol=1e-5)


# -- values ---------------------------------------------------------------------------------------


def test_items_equal_the_dataset_normalized_by_hand(stores, opened):
    clips = sd.ClipDataset(stores, frames=80, seed=0)
    assert clips.mice == list(opened) and len(clips.datasets) == 2
    assert clips.in_channels == 3
    assert clips.n_neurons == {m: ds.sizes["neuron"] for m, ds in opened.items()}
    for i in range(len(clips)):
        item = clips[i]
        ds = opened[item["mouse"]]
        assert item["videos"].shape == (3, 80, 36, 64)
        assert item["responses"].shape == (ds.sizes["neuron"], 80)
        assert item["behavior"].shape == (4, 80)
        n_frames = int(ds.n_frames.sel(trial=item["trial"]))
        assert 0 <= item["start"] <= n_frames - 80  # inside the valid frames
        assert str(ds.tier.sel(trial=item["trial"]).values) == "train"
        assert_item(item, ds)


@pytest.mark.parametrize("normalize", ["per_neuron", None])
def test_other_normalizations(stores, opened, normalize):
    clips = sd.ClipDataset(stores[0], frames=60, seed=3, normalize=normalize,
                           pupil_channels=True)
    assert clips.in_channels == 5
    for i in range(0, len(clips), 2):
        assert_item(clips[i], opened[clips.mice[0]], normalize, pupil=True)
    precision = clips.precision(clips.mice[0])
    assert precision.shape == (clips.n_neurons[clips.mice[0]], opened[clips.mice[0]].sizes["frame"])
    if normalize is None:
        assert (precision == 1).all()
    else:
        assert (precision == precision[:, :1]).all()  # one scale per neuron


def test_precision_is_the_leaderboard_scale(stores, opened):
    clips = sd.ClipDataset(stores[0])
    ds = opened[clips.mice[0]]
    std = ds.sensorium.statistics.responses.sel(statistic="std").values
    np.testing.assert_allclose(clips.precision(clips.mice[0]), sm.official_precision(std),
                               rtol=1e-6)
    with pytest.raises(KeyError, match=r"unknown mouse 'nobody'; this dataset has \['tiny-A'\]"):
        clips.precision("nobody")


def test_only_grayscale_channel(stores, opened):
    clips = sd.ClipDataset(stores[0], frames=50, seed=0, behavior_channels=False)
    item = clips[0]
    assert clips.in_channels == 1 and item["videos"].shape == (1, 50, 36, 64)
    want = expected(opened[item["mouse"]], item["trial"], item["start"], 50)
    np.testing.assert_allclose(item["videos"][0].numpy(), want["videos"], rtol=2e-6, atol=2e-6)


def test_whole_trials_with_lengths_and_padding(stores, opened):
    trials = sd.TrialDataset(stores, tier=["oracle", "live_test_bonus"])
    lengths = []
    for i in range(len(trials)):
        item = trials[i]
        ds = opened[item["mouse"]]
        assert item["start"] == 0
        assert item["length"] == int(ds.n_frames.sel(trial=item["trial"]))
        assert torch.isfinite(item["videos"]).all() and torch.isfinite(item["behavior"]).all()
        lengths.append(item["length"])
        if item["length"] <= 150:  # frames the train trials (the statistics) cover
            assert_item(item, ds)
    assert len(set(lengths)) > 1
    mouse = trials.mice[0]
    items = [trials[int(i)] for i in trials.indices_by_mouse()[mouse]]
    batch = sd.collate(items)
    longest = max(it["length"] for it in items)
    assert batch["videos"].shape[:3] == (len(items), 3, longest)
    assert batch["mouse"] == mouse
    for b, it in enumerate(items):
        n = it["length"]
        assert torch.equal(batch["responses"][b, :, :n], it["responses"])
        assert torch.isnan(batch["responses"][b, :, n:]).all()
        assert (batch["videos"][b, :, n:] == 0).all() and (batch["behavior"][b, :, n:] == 0).all()
    assert batch["length"].tolist() == [it["length"] for it in items]


def test_frames_past_the_statistics_use_the_last_frame(stores, opened):
    trials = sd.TrialDataset(stores[0], tier="live_test_bonus", normalize="official")
    ds = opened[trials.mice[0]]
    stats = ds.sensorium.statistics.videos
    last = int(np.flatnonzero(~np.isnan(stats.sel(statistic="std").values).all(axis=(1, 2)))[-1])
    item = max((trials[i] for i in range(len(trials))), key=lambda it: it["length"])
    assert item["length"] > last + 1
    t = item["length"] - 1
    raw = ds.videos.sel(trial=item["trial"]).values[t]
    mean, std = (stats.sel(statistic=s).values[last] for s in ("mean", "std"))
    np.testing.assert_allclose(item["videos"][0, t].numpy(), (raw - mean) / std, rtol=2e-6,
                               atol=2e-6)


def test_in_memory_items_equal_store_items(stores):
    on_disk = sd.ClipDataset(stores, frames=70, seed=5, pupil_channels=True)
    in_ram = sd.ClipDataset(stores, frames=70, seed=5, pupil_channels=True, in_memory=True)
    assert len(on_disk) == len(in_ram)
    for i in range(len(on_disk)):
        a, b = on_disk[i], in_ram[i]
        assert (a["mouse"], a["trial"], a["start"]) == (b["mouse"], b["trial"], b["start"])
        for key in ("videos", "responses", "behavior"):
            torch.testing.assert_close(a[key], b[key], equal_nan=True)


def test_a_selection_of_trials_is_served(opened):
    ds = next(iter(opened.values()))
    train = np.flatnonzero(ds.tier.values == "train")
    subset = ds.isel(trial=train[1:3])
    clips = sd.ClipDataset(subset, frames=40, seed=0)
    assert sorted(clips[i]["trial"] for i in range(len(clips))) == subset.trial.values.tolist()
    assert_item(clips[1], ds)


def test_zarr_fallback_reads_the_same(old_store, opened, monkeypatch):
    direct = open_windows(old_store, "responses", 2)
    fallback = open_windows(old_store, "responses", 2, direct=False)
    assert isinstance(direct, ChunkFiles) and isinstance(fallback, ZarrWindows)
    ds = opened["tiny-A"]
    for start, stop in [(0, 80), (45, 125), (100, 150), (149, 180)]:
        want = ds.responses.isel(trial=3).values[:, start:stop]
        with ThreadPoolExecutor(2) as pool:
            for reader in (direct, fallback):
                got = np.concatenate([p for _, p in reader.parts(3, start, stop)], axis=1)
                np.testing.assert_array_equal(got, want)
                fetched = reader.fetch(3, start, stop, pool)  # read by threads, then decoded
                got = np.concatenate([p for _, p in reader.parts(3, start, stop, fetched)],
                                     axis=1)
                np.testing.assert_array_equal(got, want)

    def zarr_only(store, name, frame_axis):
        return open_windows(store, name, frame_axis, direct=False)

    monkeypatch.setattr(mapped_module, "open_windows", zarr_only)
    clips = sd.ClipDataset(old_store, frames=80, seed=0)
    assert_item(clips[2], ds)


def reading_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sensorium-read")]


def test_a_fork_finds_no_reading_threads(old_store, opened):
    clips = sd.ClipDataset(old_store, frames=80, seed=0)  # decoded on threads (schema 1)
    assert_item(clips[0], opened["tiny-A"])  # reads on the process's threads
    assert reading_threads()
    pid = os.fork()  # as a DataLoader starting workers does
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert not reading_threads()  # stopped before the fork
    assert_item(clips[1], opened["tiny-A"])  # and started again by the next read
    assert reading_threads()


def test_direct_reads_only_for_the_simple_layout(old_store):
    meta = json.loads((old_store / "responses" / "zarr.json").read_text())
    assert direct_layout(meta, 2) is None
    sharded = dict(meta, codecs=[{"name": "sharding_indexed", "configuration": {}}])
    assert "sharding_indexed" in str(direct_layout(sharded, 2))
    split = dict(meta, chunk_grid={"name": "regular",
                                   "configuration": {"chunk_shape": [1, 12, 50]}})
    assert "do not hold one trial" in str(direct_layout(split, 2))


def test_float_videos_and_withheld_responses(make_tree, tmp_path):
    store = sd.convert(make_tree(integer_videos=False), tmp_path / "f.zarr", progress=False)
    ds = sd.open_mouse(store)
    assert ds.attrs["videos_dtype"] == "float32"
    clips = sd.ClipDataset(store, frames=20, seed=0)
    assert_item(clips[0], ds)
    withheld = sd.ClipDataset(store, tier="final_test_main", frames=20, seed=0)  # allowed
    assert torch.isnan(withheld[0]["responses"]).all()
    assert torch.isfinite(withheld[0]["videos"]).all()


# -- windows --------------------------------------------------------------------------------------


def test_windows_are_reproducible_and_change_with_the_epoch(stores):
    a = sd.ClipDataset(stores, frames=80, seed=7)
    b = sd.ClipDataset(stores, frames=80, seed=7)
    starts = [a[i]["start"] for i in range(len(a))]
    assert starts == [b[i]["start"] for i in range(len(b))]
    assert starts == [a[i]["start"] for i in range(len(a))]  # a function of (seed, epoch, i)
    a.set_epoch(1)
    assert starts != [a[i]["start"] for i in range(len(a))]
    a.set_epoch(0)
    assert starts == [a[i]["start"] for i in range(len(a))]
    unseeded = sd.ClipDataset(stores, frames=80)
    draws = {unseeded[0]["start"] for _ in range(20)}
    assert len(draws) > 1  # fresh windows at every read


def test_short_trials_are_left_out(make_tree, tmp_path):
    store = sd.convert(make_tree(frames=40), tmp_path / "s.zarr", progress=False)
    ds = sd.open_mouse(store)
    n_frames = ds.n_frames.values[ds.tier.values == "train"]
    frames = int(np.sort(n_frames)[len(n_frames) // 2])
    clips = sd.ClipDataset(store, frames=frames, seed=0, normalize=None)
    assert len(clips) == int((n_frames >= frames).sum()) < len(n_frames)
    for i in range(len(clips)):
        item = clips[i]
        assert item["start"] + frames <= int(ds.n_frames.sel(trial=item["trial"]))


# -- errors ---------------------------------------------------------------------------------------


def test_tier_without_trials_lists_the_tiers(stores):
    with pytest.raises(ValueError, match=r"tiny-A has no trials of tier 'validation'; its tiers "
                                         r"with trials \(count\): .*oracle \(\d+\).*train \(\d+\)"):
        sd.ClipDataset(stores[0], tier="validation")


def test_frames_longer_than_every_trial_says_the_longest(stores):
    with pytest.raises(ValueError, match=r"frames=500 is longer than every trial of tier 'train' "
                                         r"of tiny-A \(the longest has 150 valid frames\); "
                                         r"pass frames <= 150"):
        sd.ClipDataset(stores[0], frames=500)


@pytest.mark.parametrize("frames", [0, -5, 2.5, True])
def test_frames_must_be_positive(stores, frames):
    with pytest.raises(ValueError, match=rf"frames={frames!r}; pass a positive number of frames"):
        sd.ClipDataset(stores[0], frames=frames)


def test_unknown_normalize(stores):
    with pytest.raises(ValueError, match=r"unknown normalize='zscore'; choose 'official' .*"
                                         r"'per_neuron' .* or None"):
        sd.ClipDataset(stores[0], normalize="zscore")  # type: ignore[arg-type]


def test_store_of_another_schema(stores, tmp_path):
    old = shutil.copytree(stores[0], tmp_path / "old.zarr")
    meta = json.loads((old / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = SCHEMA_VERSION + 1
    (old / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, but this version "
                                         rf"of sensorium reads versions \[1, {SCHEMA_VERSION}\]\. "
                                         r"Convert the recording again"):
        sd.ClipDataset(old)
    ds = sd.open_mouse(stores[0])
    ds.attrs["schema_version"] = 0
    with pytest.raises(StoreError, match=r"schema version 0, but .* Convert the recording again"):
        sd.ClipDataset(ds)


def test_bad_sources(stores, opened):
    ds = next(iter(opened.values()))
    with pytest.raises(ValueError, match=r"\['tiny-A'\] given more than once"):
        sd.ClipDataset([stores[0], ds])
    with pytest.raises(ValueError, match=r"not opened with sensorium_data.open_mouse"):
        sd.ClipDataset(ds.load().drop_attrs())
    with pytest.raises(ValueError, match=r"select trials only"):
        sd.ClipDataset(ds.isel(neuron=slice(0, 5)))
    with pytest.raises(TypeError, match=r"cannot read a int as a recording"):
        sd.ClipDataset([3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"source is empty"):
        sd.ClipDataset([])
    clips = sd.ClipDataset(stores[0])
    with pytest.raises(IndexError, match=rf"index {len(clips)} is out of range"):
        clips[len(clips)]


# -- DataLoader -----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")
@pytest.mark.parametrize("in_memory", [False, True])
def test_dataloader_with_two_workers(stores, in_memory):
    clips = sd.ClipDataset(stores, frames=64, seed=11, in_memory=in_memory)
    clips[0]  # the main process reads first (its readers must not leak into the workers)
    sampler = sd.MouseBatchSampler(clips, batch_size=2, seed=0)
    loader = torch.utils.data.DataLoader(clips, batch_sampler=sampler, collate_fn=sd.collate,
                                         num_workers=2, persistent_workers=True,
                                         pin_memory=True, timeout=60)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        clips.set_epoch(epoch)  # seen by the persistent workers through shared memory
        batches = list(loader)
        assert len(batches) == len(sampler)
        for indices, batch in zip(sampler, batches, strict=True):
            want = sd.collate([clips[i] for i in indices])
            assert batch["mouse"] == want["mouse"] and isinstance(batch["mouse"], str)
            assert batch["start"].tolist() == want["start"].tolist()
            for key in ("videos", "responses", "behavior"):
                torch.testing.assert_close(batch[key], want[key], equal_nan=True)


def test_readers_open_once_per_process(stores):
    clips = sd.ClipDataset(stores, frames=40, seed=0)
    clips[0]
    local = clips._local
    assert local is not None and local.readers[0] is not None and local.readers[1] is None
    clips[len(clips) - 1]
    assert clips._local is local and local.readers[1] is not None
    state = clips.__getstate__()
    assert state["_local"] is None and state["_datasets"] is None
