"""Predictions as files and the run directory's prediction cache."""

from __future__ import annotations

import importlib
import logging
import os
import shutil

import numpy as np
import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.cli import main
from sensorium_models.predictions import (
    CACHE,
    cached_tiers,
    predict_cached,
    read_predictions,
    write_predictions,
)
from tests.conftest import shifted_copy

predict_module = importlib.import_module("sensorium_models.training.predict")


@pytest.fixture
def calls(monkeypatch):
    """The number of forward passes over whole trials since the test began."""
    count = {"n": 0}
    original = predict_module.whole_trials

    def counted(*args, **kwargs):
        count["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_module, "whole_trials", counted)
    return count


@pytest.fixture
def run(trained_run, tmp_path):
    """A copy of the trained run (its cache, filled by training, included)."""
    return shutil.copytree(trained_run, tmp_path / "run")


def test_training_fills_the_cache_and_evaluate_reads_it(run, calls, capsys):
    assert cached_tiers(next((run / CACHE).iterdir())) >= {"oracle"}
    assert main(["evaluate", str(run), "--tiers", "oracle"]) == 0
    assert calls["n"] == 0  # training scored oracle: read back
    assert main(["evaluate", str(run), "--tiers", "oracle", "--no-cache"]) == 0
    assert calls["n"] > 0
    first = calls["n"]
    assert main(["evaluate", str(run), "--tiers", "oracle", "train"]) == 0
    assert calls["n"] > first  # training scores every labelled tier but train: predicted
    second = calls["n"]
    for argv in (["evaluate", str(run), "--tiers", "oracle", "train"],
                 ["predict", str(run), "--out", str(run.parent / "p.zarr"), "--tiers",
                  "oracle", "train", "live_test_main"],
                 ["plot", str(run)],
                 ["submit", str(run), "--out", str(run.parent / "submission")]):
        assert main(argv) == 0, argv
    assert calls["n"] == second
    capsys.readouterr()


def test_cached_predictions_equal_fresh_ones(run):
    datasets = sm.training.data.open_run_mice(run, None)
    cached = predict_cached(run, datasets, tiers=["oracle", "live_test_main"])
    fresh = sm.predict(run, datasets, tiers=["oracle", "live_test_main"])
    assert list(cached) == list(fresh)
    for mouse, values in fresh.items():
        got = cached[mouse]
        assert got.dims == values.dims
        np.testing.assert_array_equal(got["trial"].values, values["trial"].values)
        np.testing.assert_array_equal(got["tier"].values, values["tier"].values)
        np.testing.assert_allclose(got.values, values.values, rtol=1e-5, equal_nan=True)


def test_a_new_checkpoint_misses_and_the_old_entry_is_named(trained_run, tmp_path, calls,
                                                           caplog):
    other = shifted_copy(trained_run, tmp_path / "shifted", by=-1.0)  # its cache is stale
    with caplog.at_level(logging.INFO, logger="sensorium_models.predictions"):
        assert main(["evaluate", str(other), "--tiers", "oracle"]) == 0
    assert calls["n"] > 0
    assert "ignoring 1 cached prediction set(s)" in caplog.text
    assert len(list((other / CACHE).iterdir())) == 2  # the old one kept, a new one added


def test_a_changed_store_misses(run, simulated_stores, tmp_path, calls):
    stores = [shutil.copytree(s, tmp_path / s.name) for s in simulated_stores]
    datasets = {str(i): sd.open_mouse(s) for i, s in enumerate(stores)}
    predict_cached(run, datasets, tiers="oracle")
    n = calls["n"]
    assert n > 0  # other store paths: another key
    predict_cached(run, datasets, tiers="oracle")
    assert calls["n"] == n
    metadata = stores[0] / "zarr.json"
    later = metadata.stat().st_mtime_ns + 5_000_000_000
    os.utime(metadata, ns=(later, later))  # the store rewritten
    predict_cached(run, {str(i): sd.open_mouse(s) for i, s in enumerate(stores)},
                   tiers="oracle")
    assert calls["n"] > n


def test_half_written_and_damaged_entries_are_not_read(run, calls, caplog):
    entry = next((run / CACHE).iterdir())
    (entry / ".train.zarr.tmp-1").mkdir()  # an interrupted write
    assert "train" not in cached_tiers(entry)
    shutil.rmtree(entry / "oracle.zarr")
    (entry / "oracle.zarr").mkdir()  # damaged: empty
    datasets = sm.training.data.open_run_mice(run, None)
    with caplog.at_level(logging.WARNING, logger="sensorium_models.predictions"):
        values = predict_cached(run, datasets, tiers="oracle")
    assert calls["n"] > 0 and "cannot be read" in caplog.text
    assert all(np.isfinite(v.values).any() for v in values.values())
    n = calls["n"]
    predict_cached(run, datasets, tiers="oracle")  # the damaged entry was written anew
    assert calls["n"] == n


def test_a_selection_of_a_recording_misses(run, calls):
    datasets = sm.training.data.open_run_mice(run, None)
    predict_cached(run, datasets, tiers="oracle")
    assert calls["n"] == 0  # training cached oracle for the whole recordings
    name = next(iter(datasets))
    ds = datasets[name]
    first = ds["trial"].values[ds["tier"].values.astype(str) == "oracle"][:2]
    subset = {**datasets, name: datasets[name].sel(trial=first)}
    values = predict_cached(run, subset, tiers="oracle")
    assert calls["n"] > 0  # not served the whole recording's entry
    assert sorted(values[name]["trial"].values.tolist()) == sorted(first.tolist())


def test_write_then_read_predictions(run, tmp_path):
    datasets = sm.training.data.open_run_mice(run, None)
    values = sm.predict(run, datasets, tiers="oracle")
    path = write_predictions(values, tmp_path / "p.zarr")
    back = read_predictions(path)
    assert sorted(back) == sorted(values)
    for mouse in values:
        np.testing.assert_array_equal(back[mouse].values, values[mouse].values)
        assert back[mouse]["tier"].dtype.kind == "U"
    with pytest.raises(FileExistsError, match="never written over"):
        write_predictions(values, path)
    with pytest.raises(ValueError, match=r"end the path in \.zarr"):
        write_predictions(values, tmp_path / "p.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_predictions(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match=r"ends in \.zarr or \.nc"):
        read_predictions(tmp_path)
