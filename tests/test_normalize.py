"""Normalization guards: a pixel with zero std, a NaN pixel in a train video (issue 15, 12)."""

from __future__ import annotations

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.loaders.normalize import floor_scale


def test_floor_scale_floors_zero_and_nan_std():
    assert floor_scale(np.array([2.0, 0.0, np.nan])).tolist() == [0.5, 100.0, 100.0]
    assert floor_scale(np.zeros(3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("normalize", ["official", "per_neuron"])
def test_constant_pixel_and_nan_pixel_give_finite_clips(make_tree, tmp_path, caplog, normalize):
    path = make_tree(n_neurons=4, frames=30)
    tiers = np.load(path / "meta/trials/tiers.npy")
    train = [t for t in range(len(tiers)) if tiers[t] == "train"]
    for t in range(len(tiers)):
        if tiers[t] == "none":
            continue
        video = np.load(path / f"data/videos/{t}.npy")
        video[0, 0] = np.where(np.isnan(video[0, 0]), np.nan, 128.0)  # constant pixel
        if t == train[1]:
            video[5, 5, 3] = np.nan  # a hole inside the trial's frames
        np.save(path / f"data/videos/{t}.npy", video)
    std = np.load(path / "meta/statistics/videos/all/std.npy")
    std[0, 0] = 0.0  # as the statistics of a constant pixel are
    np.save(path / "meta/statistics/videos/all/std.npy", std)
    with caplog.at_level("WARNING"):
        store = sd.convert(path, tmp_path / "out.zarr", progress=False)
    assert "1 pixel(s) have a video std of 0" in caplog.text
    assert "have NaN pixels within their frames; the store keeps them" in caplog.text
    clips = sd.ClipDataset(store, tier="train", frames=20, normalize=normalize, seed=0)
    for i in range(len(clips)):
        assert np.isfinite(clips[i]["videos"].numpy()).all()
    memory = sd.ClipDataset(store, tier="train", frames=20, normalize=normalize, seed=0,
                            in_memory=True)
    assert np.isfinite(memory[1]["videos"].numpy()).all()
