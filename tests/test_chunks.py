"""Missing or damaged store data raises an error naming the store, the array and the trial,
through every reader: the xarray view, ClipDataset/TrialDataset and DataLoader workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import sensorium_data as sd
from sensorium_data.errors import StoreError
from sensorium_data.loaders.reader import ZarrWindows


@pytest.fixture
def store(make_tree, tmp_path) -> Path:
    return sd.convert(make_tree(n_neurons=5, frames=120), tmp_path / "toy.zarr", progress=False)


def train_position(store: Path) -> tuple[int, int]:
    """(store position, trial) of the second train trial."""
    ds = sd.open_mouse(store)
    pos = int(np.flatnonzero(ds.tier.values == "train")[1])
    return pos, int(ds.trial.values[pos])


def test_every_chunk_of_a_labelled_trial_is_written(store):
    ds = sd.open_mouse(store)
    for pos in np.flatnonzero(ds.labelled.values):  # one raw chunk per trial
        assert (store / "responses/c" / str(pos) / "0" / "0").is_file()
    unlabelled = int(np.flatnonzero(~ds.labelled.values)[0])
    assert not (store / "responses/c" / str(unlabelled)).exists()
    assert np.isnan(ds.responses[unlabelled].values).all()  # withheld: NaN, no error


def test_missing_chunk_of_a_labelled_trial_raises(store):
    pos, trial = train_position(store)
    (store / f"responses/c/{pos}/0/0").unlink()
    ds = sd.open_mouse(store)
    match = rf"toy\.zarr: responses of trial {trial} is missing \(chunk file responses/c/{pos}/0/0"
    with pytest.raises(StoreError, match=match):
        ds.responses.values  # noqa: B018
    assert np.isfinite(ds.responses.isel(trial=0, frame=slice(0, 50)).values).all()
    mapped = rf"toy\.zarr/responses/c/{pos}/0/0 is missing"  # the training loaders map the file
    clips = sd.ClipDataset(store, tier="train", frames=100, normalize=None, seed=0)
    j = int(np.flatnonzero(clips._selections[0].positions == pos)[0])
    with pytest.raises(StoreError, match=mapped):
        clips[j]
    trials = sd.TrialDataset(store, tier="train", normalize=None)
    with pytest.raises(StoreError, match=mapped):
        trials[j]


def test_missing_video_chunk_raises(store):
    pos, trial = train_position(store)
    (store / f"videos/c/{pos}/0/0/0").unlink()
    with pytest.raises(StoreError, match=rf"videos of trial {trial} is missing"):
        sd.open_mouse(store).videos.values  # noqa: B018


def test_missing_behavior_chunk_raises_on_opening_a_loader(store):
    (store / "behavior/c/0/0/0").unlink()
    with pytest.raises(StoreError, match=r"behavior of trial 0 is missing"):
        sd.ClipDataset(store, frames=20)
    with pytest.raises(StoreError, match=r"behavior of trial 0 is missing"):
        sd.open_mouse(store).behavior.values  # noqa: B018


def test_store_deleted_while_open(store):
    ds = sd.open_mouse(store)
    clips = sd.ClipDataset(store, tier="train", frames=20, normalize=None, seed=0)
    shutil.rmtree(store)
    with pytest.raises(StoreError, match=r"the store .*toy\.zarr no longer exists"):
        ds.responses.values  # noqa: B018
    with pytest.raises(StoreError, match=r"the store .*toy\.zarr was deleted or moved while"):
        clips[0]


def test_store_deleted_during_a_dataloader_pass_with_workers(store):
    clips = sd.ClipDataset(store, tier=None, frames=20, normalize=None, seed=0)
    loader = torch.utils.data.DataLoader(clips, batch_size=1, num_workers=2, prefetch_factor=1,
                                         collate_fn=sd.collate)
    batches = iter(loader)
    next(batches)
    shutil.rmtree(store)
    with pytest.raises(StoreError, match=r"toy\.zarr was deleted or moved while this dataset"):
        for _ in batches:
            pass


def test_truncated_chunk_names_store_array_and_trial(store):
    pos, trial = train_position(store)
    chunk = store / f"responses/c/{pos}/0/0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    match = (rf"toy\.zarr: responses of trial {trial} cannot be read \(chunk file "
             rf"responses/c/{pos}/0/0: .*truncated or damaged")
    with pytest.raises(StoreError, match=match):
        sd.open_mouse(store).responses.values  # noqa: B018
    clips = sd.ClipDataset(store, tier="train", frames=100, normalize=None, seed=0)
    j = int(np.flatnonzero(clips._selections[0].positions == pos)[0])
    with pytest.raises(StoreError, match=rf"toy\.zarr/responses/c/{pos}/0/0 holds 20 bytes, "
                       r"but a trial of responses is \d+ bytes: the file is truncated"):
        clips[j]
    windows = ZarrWindows(store / "responses", 2)
    with pytest.raises(StoreError, match=match):
        list(windows.parts(pos, 0, 100))


def test_truncated_behavior_chunk_is_not_decoded_into_wrong_values(store):
    # behaviour stays compressed (responses and videos are raw, checked by their size); a
    # chunk cut short by three bytes is an error, never fewer or other values
    chunk = store / "behavior/c/0/0/0"
    chunk.write_bytes(chunk.read_bytes()[:-3])
    with pytest.raises(StoreError, match=r"toy\.zarr: behavior of trial 0 cannot be read "
                                         r"\(chunk file behavior/c/0/0/0: .*truncated or damaged"):
        sd.open_mouse(store).behavior.values  # noqa: B018


def test_damaged_coordinates_and_statistics(store):
    (store / "labelled/c/0").unlink()
    with pytest.raises(StoreError, match=r"the chunk file labelled/c/0 of labelled is missing"):
        sd.open_mouse(store)


def test_truncated_statistics_raise(store):
    ds = sd.open_mouse(store)
    chunk = store / "statistics/videos/c/0/0/0/0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(StoreError, match=r"statistics: videos cannot be read \(chunk file "):
        ds.sensorium.statistics.videos.values  # noqa: B018
