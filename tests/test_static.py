"""SENSORIUM 2022 (static images): tree -> convert -> open, value for value, and its errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import sensorium_data as sd
from sensorium_data import catalog, fetch
from sensorium_data.dataset import open_store
from sensorium_data.errors import RecordingFormatError
from sensorium_data.store import convert
from sensorium_data.store.static import BEHAVIOR_VARIABLES
from sensorium_data.tree import open_tree
from tests.conftest import STATIC_TEST_TIERS, write_tiny_static_tree
from tests.test_tree import zip_folder

VARIABLES = {
    "images": ("trial", "height", "width"),
    "responses": ("trial", "neuron"),
    "behavior": ("trial", "behavior_variable"),
}
COORDS = {
    "trial": ("trial",), "tier": ("trial",), "image_id": ("trial",), "trial_idx": ("trial",),
    "labelled": ("trial",), "neuron": ("neuron",), "x": ("neuron",), "y": ("neuron",),
    "z": ("neuron",),
}


def assert_round_trip(tree_path: Path, store: Path) -> None:
    """Every value of the Dataset equals the .npy files (float32); withheld responses NaN."""
    ds = open_store(store)
    trials = open_tree(tree_path).trials
    assert ds.trial.values.tolist() == trials.tolist()
    tiers = np.load(tree_path / "meta/trials/tiers.npy")
    assert ds.tier.values.tolist() == tiers[trials].tolist()
    for i, trial in enumerate(trials):
        image = np.load(tree_path / f"data/images/{trial}.npy")
        np.testing.assert_array_equal(ds.images[i].values, image[0].astype("f4"))
        responses = np.load(tree_path / f"data/responses/{trial}.npy")
        if bool(ds.labelled[i]):
            np.testing.assert_array_equal(ds.responses[i].values, responses.astype("f4"))
        else:
            assert np.isnan(ds.responses[i].values).all()
        behavior = np.concatenate([np.load(tree_path / f"data/behavior/{trial}.npy"),
                                   np.load(tree_path / f"data/pupil_center/{trial}.npy")])
        np.testing.assert_array_equal(ds.behavior[i].values, behavior.astype("f4"))
    unit_ids = np.load(tree_path / "meta/neurons/unit_ids.npy")
    np.testing.assert_array_equal(ds.neuron.values, unit_ids)
    xyz = np.load(tree_path / "meta/neurons/cell_motor_coordinates.npy")
    np.testing.assert_array_equal(np.stack([ds.x, ds.y, ds.z], axis=1), xyz)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_value_for_value(make_static_tree, tmp_path, dtype):
    path = make_static_tree(dtype=dtype)
    store = convert(path, tmp_path / "out.zarr", progress=False)
    assert_round_trip(path, store)
    group = zarr.open_group(store, mode="r")
    assert group["images"].dtype == np.uint8
    assert group["responses"].dtype == np.float32
    assert group.attrs["source_dtypes"]["images"] == np.dtype(dtype).name
    assert group.attrs["competition"] == "2022" and group.attrs["images_dtype"] == "uint8"


def test_round_trip_from_zip(make_static_tree, tmp_path):
    path = make_static_tree("rec", height=18, width=32)
    store = convert(zip_folder(path, tmp_path / "rec.zip"), tmp_path / "out.zarr", progress=False)
    assert_round_trip(path, store)


def test_non_integer_images_are_stored_as_float32(make_static_tree, tmp_path):
    path = make_static_tree(integer_images=False)
    store = convert(path, tmp_path / "out.zarr", progress=False)
    assert zarr.open_group(store, mode="r")["images"].dtype == np.float32
    assert_round_trip(path, store)


def test_uint8_image_files_are_read(make_static_tree, tmp_path):
    path = make_static_tree(height=18, width=32)
    for f in (path / "data/images").glob("*.npy"):
        np.save(f, np.load(f).astype(np.uint8))
    store = convert(path, tmp_path / "out.zarr", progress=False)
    assert zarr.open_group(store, mode="r").attrs["source_dtypes"]["images"] == "uint8"
    assert_round_trip(path, store)


def test_dataset_is_lazy_and_shaped_as_the_design(make_static_tree, data_dir):
    ds = sd.open_mouse(make_static_tree(), progress=False)
    for name, dims in VARIABLES.items():
        assert ds[name].dims == dims
        assert ds[name].chunks is not None, f"{name} is not lazy"
        assert ds[name].dtype == np.float32
    for name, dims in COORDS.items():
        assert ds[name].dims == dims, name
    assert ds.behavior_variable.values.tolist() == list(BEHAVIOR_VARIABLES)
    assert ds.sizes["height"] == 144 and ds.sizes["width"] == 256
    assert "frame" not in ds.dims and "n_frames" not in ds.coords
    assert ds.attrs["competition"] == "2022" and ds.attrs["mouse"] == "toy2022"
    ds.where(ds.tier == "train", drop=True).responses.load()  # selections work as for 2023


def test_withheld_test_responses_are_nan_and_unlabelled(make_static_tree, tmp_path):
    ds = open_store(convert(make_static_tree(withheld=True), tmp_path / "a.zarr", progress=False))
    is_test = np.isin(ds.tier.values, list(STATIC_TEST_TIERS))
    assert is_test.any() and set(ds.tier.values) == {"train", "validation", "test", "final_test"}
    assert (~ds.labelled.values[is_test]).all() and ds.labelled.values[~is_test].all()
    assert np.isnan(ds.responses.values[is_test]).all()
    ds = open_store(convert(make_static_tree(withheld=False), tmp_path / "b.zarr", progress=False))
    assert ds.labelled.values.all()


def test_zero_train_responses_stay_labelled(make_static_tree, tmp_path):
    path = make_static_tree()
    np.save(path / "data/responses/0.npy", np.zeros(6, np.float32))
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    assert bool(ds.labelled.sel(trial=0)) and (ds.responses.sel(trial=0).values == 0).all()


def test_image_id_from_frame_image_id(make_static_tree, tmp_path):
    path = make_static_tree()
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    expected = np.load(path / "meta/trials/frame_image_id.npy").astype(str)
    assert ds.image_id.values.tolist() == expected.tolist()
    assert ds.attrs["labels_source"] == "tree"
    # ids stored as floats are the same ids
    np.save(path / "meta/trials/frame_image_id.npy", expected.astype(float))
    again = open_store(convert(path, tmp_path / "float.zarr", progress=False))
    assert again.image_id.values.tolist() == expected.tolist()


def test_image_id_derived_from_the_images(make_static_tree, tmp_path):
    ds = open_store(convert(make_static_tree(image_ids=False), tmp_path / "out.zarr",
                            progress=False))
    assert ds.attrs["labels_source"] == "derived"
    for tier in ("test", "final_test"):  # two images each, repeated
        assert len(set(ds.image_id.where(ds.tier == tier, drop=True).values)) == 2
    train = ds.image_id.where(ds.tier == "train", drop=True).values
    assert len(set(train)) == len(train)
    repeats = ds.responses.groupby("image_id").mean()
    assert repeats.sizes["image_id"] == len(set(ds.image_id.values))


@pytest.mark.parametrize("hashed", [True, False])
def test_trial_idx_as_strings(make_static_tree, tmp_path, hashed):
    path = make_static_tree(hashed_trial_idx=hashed)
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    expected = np.load(path / "meta/trials/trial_idx.npy").astype(str)
    assert ds.trial_idx.values.tolist() == expected.tolist()
    if hashed:
        assert all(len(t) == 32 and int(t, 16) >= 0 for t in ds.trial_idx.values)


def test_trial_idx_is_optional(make_static_tree, tmp_path):
    path = make_static_tree()
    (path / "meta/trials/trial_idx.npy").unlink()
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    assert "trial_idx" not in ds.coords


@pytest.mark.parametrize("scalar", [True, False])
def test_statistics_are_reachable(make_static_tree, tmp_path, scalar):
    path = make_static_tree(scalar_image_statistics=scalar)
    stats = open_store(convert(path, tmp_path / "out.zarr", progress=False)).sensorium.statistics
    shipped = "meta/statistics/{}/all/{}.npy"
    assert np.load(path / shipped.format("responses", "std")).shape == (6,)
    assert np.load(path / shipped.format("behavior", "mean")).shape == (3,)
    image_shape = () if scalar else (1, 144, 256)
    assert np.load(path / shipped.format("images", "mean")).shape == image_shape
    np.testing.assert_allclose(stats.responses.sel(statistic="std").values,
                               np.load(path / shipped.format("responses", "std")), rtol=1e-6)
    mean = np.load(path / shipped.format("images", "mean"))
    np.testing.assert_allclose(stats.images.sel(statistic="mean").values,
                               np.broadcast_to(mean.reshape(mean.shape[-2:]), (144, 256)),
                               rtol=1e-6)
    behavior = np.concatenate([np.load(path / shipped.format("behavior", "max")),
                               np.load(path / shipped.format("pupil_center", "max"))])
    np.testing.assert_allclose(stats.behavior.sel(statistic="max").values, behavior, rtol=1e-6)
    assert stats.images.dims == ("statistic", "height", "width")
    assert stats.behavior.sizes == {"statistic": 4, "behavior_variable": 5}


def catalog_named_static_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              short: str = "26872-17-20") -> Path:
    """A tiny tree named like a catalogued 2022 recording; the catalog's neuron count is made
    the tiny tree's for the test, so that the identity check passes."""
    rec = catalog.lookup(short)
    path = write_tiny_static_tree(tmp_path / rec.name, height=18, width=32, junk=False)
    small = dataclasses.replace(rec, n_neurons=len(np.load(path / "meta/neurons/unit_ids.npy")))
    real_find = catalog.find
    monkeypatch.setattr(catalog, "find",
                        lambda name: small if name == rec.name else real_find(name))
    return path


def test_catalog_recording_gets_the_catalog_attrs(tmp_path, monkeypatch):
    path = catalog_named_static_tree(tmp_path, monkeypatch)
    ds = open_store(convert(path, tmp_path / "out.zarr", progress=False))
    assert ds.attrs["role"] == "SENSORIUM" and ds.attrs["data_key"] == "26872-17-20"
    assert ds.attrs["animal_id"] == 26872 and ds.attrs["session"] == 17
    assert ds.attrs["scan_idx"] == 20 and ds.attrs["source_url"].endswith(f"{path.name}.zip")


def test_open_mouse_by_2022_short_name(server, tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 0)
    tree = catalog_named_static_tree(tmp_path, monkeypatch, "27204-5-13")
    zip_folder(tree, server.root / "mirror2022" / f"{tree.name}.zip")
    monkeypatch.setenv("SENSORIUM_MIRROR", server.base_url + "mirror2022/")
    ds = sd.open_mouse("27204-5-13", progress=False)
    assert ds.attrs["role"] == "SENSORIUM+" and ds.attrs["competition"] == "2022"
    again = sd.open_mouse(tree.name, download=False)
    xr.testing.assert_identical(again.responses, ds.responses)


def test_2023_stores_record_their_competition(make_tree, tmp_path):
    assert open_store(convert(make_tree(), tmp_path / "out.zarr", progress=False)).attrs[
        "competition"] == "2023"


def test_tree_writer_statistics_have_one_trials_shape(make_static_tree):
    path = make_static_tree(scalar_image_statistics=False, height=18, width=32)
    for stream, shape in (("images", (1, 18, 32)), ("responses", (6,)), ("behavior", (3,)),
                          ("pupil_center", (2,))):
        for stat in ("mean", "std", "min", "max"):
            assert np.load(path / f"meta/statistics/{stream}/all/{stat}.npy").shape == shape


def test_trial_missing_from_one_stream(make_static_tree, tmp_path):
    path = make_static_tree()
    (path / "data/behavior/3.npy").unlink()
    with pytest.raises(RecordingFormatError,
                       match=r"trial 3 has data/images/3.npy but no data/behavior/3.npy"):
        convert(path, tmp_path / "out.zarr", progress=False)


def test_shapes_that_differ_between_trials(make_static_tree, tmp_path):
    path = make_static_tree(height=18, width=32)
    np.save(path / "data/images/5.npy", np.zeros((1, 18, 31), np.float32))
    with pytest.raises(RecordingFormatError,
                       match=r"images/5.npy has shape \(1, 18, 31\).*must have the same shape"):
        convert(path, tmp_path / "out.zarr", progress=False)


def test_wrong_behavior_shape(make_static_tree, tmp_path):
    path = make_static_tree(height=18, width=32)
    for f in (path / "data/behavior").glob("*.npy"):
        np.save(f, np.zeros(2, np.float32))
    with pytest.raises(RecordingFormatError,
                       match=r"behavior trials have shape \(2,\); a 2022 recording has \(3,\)"):
        convert(path, tmp_path / "out.zarr", progress=False)


def test_per_trial_meta_of_another_length(make_static_tree, tmp_path):
    path = make_static_tree(height=18, width=32)
    np.save(path / "meta/trials/frame_image_id.npy", np.arange(3))
    with pytest.raises(RecordingFormatError,
                       match=r"frame_image_id.npy has shape \(3,\).*tiers.npy has 14 entries"):
        convert(path, tmp_path / "out.zarr", progress=False)


def test_images_and_videos_in_one_tree(make_static_tree):
    path = make_static_tree(height=18, width=32)
    (path / "data/videos").mkdir()
    np.save(path / "data/videos/0.npy", np.zeros((36, 64, 5), np.float32))
    with pytest.raises(RecordingFormatError, match=r"both data/images .* and data/videos"):
        open_tree(path)
