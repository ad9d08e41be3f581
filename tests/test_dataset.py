"""open_mouse / load_mouse: the Dataset's shape, name resolution, and the whole fetch path."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import sensorium_data as sd
from sensorium_data import fetch
from tests.test_store import catalog_named_tree
from tests.test_tree import zip_folder

VARIABLES = {
    "videos": ("trial", "frame", "height", "width"),
    "responses": ("trial", "neuron", "frame"),
    "behavior": ("trial", "behavior_variable", "frame"),
}
COORDS = {
    "trial": ("trial",), "tier": ("trial",), "stimulus_type": ("trial",), "video_id": ("trial",),
    "n_frames": ("trial",), "labelled": ("trial",), "neuron": ("neuron",), "x": ("neuron",),
    "y": ("neuron",), "z": ("neuron",), "time": ("frame",),
}
ATTRS = {"mouse", "competition", "fps", "schema_version", "source"}


@pytest.fixture(autouse=True)
def _fast_fetch(monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 0)
    monkeypatch.setattr(fetch, "TIMEOUT", 10.0)


def test_dataset_is_lazy_and_shaped_as_the_design(make_tree, data_dir):
    ds = sd.open_mouse(make_tree(), progress=False)
    for name, dims in VARIABLES.items():
        assert ds[name].dims == dims
        assert ds[name].chunks is not None, f"{name} is not lazy"
    assert ds.videos.dtype == np.float32 and ds.responses.dtype == np.float32
    for name, dims in COORDS.items():
        assert ds[name].dims == dims, name
    assert ds.behavior_variable.values.tolist() == [
        "pupil_dilation", "running_speed", "pupil_x", "pupil_y"]
    assert ATTRS <= set(ds.attrs)
    assert ds.sizes["height"] == 36 and ds.sizes["width"] == 64
    np.testing.assert_allclose(ds.time.values[:3], [0, 1 / 30, 2 / 30])
    # padded video frames are NaN again, although stored as 8-bit zeros
    i = int(np.argmin(ds.n_frames.values))
    assert np.isnan(ds.videos[i, int(ds.n_frames[i]):].values).all()
    assert not np.isnan(ds.videos[i, : int(ds.n_frames[i])].values).any()


def test_selection_by_tier_works_as_documented(make_tree, data_dir):
    ds = sd.open_mouse(make_tree(), progress=False)
    oracle = ds.responses.where(ds.tier == "oracle", drop=True)
    assert oracle.sizes["trial"] == int((ds.tier == "oracle").sum())
    assert set(oracle.tier.values) == {"oracle"}


def test_tiers_with_trials_counts_the_trials_with_frames(make_tree, data_dir):
    ds = sd.open_mouse(make_tree(), progress=False)
    tiers, n_frames = ds.tier.values.astype(str), ds.n_frames.values
    expected = {t: int(((tiers == t) & (n_frames > 0)).sum()) for t in set(tiers)}
    assert ds.sensorium.tiers_with_trials == {t: n for t, n in expected.items() if n}
    assert list(ds.sensorium.tiers_with_trials) == sorted(ds.sensorium.tiers_with_trials)


def test_load_mouse_is_eager(make_tree, data_dir):
    ds = sd.load_mouse(make_tree(), progress=False)
    assert all(ds[name].chunks is None for name in VARIABLES)
    lazy = sd.open_mouse(make_tree(), progress=False)
    xr.testing.assert_identical(ds.responses, lazy.responses.load())


def test_open_a_store_by_path(make_tree, data_dir):
    store = sd.convert(make_tree(), progress=False)
    assert sd.open_mouse(store).attrs["store"] == str(store)


def test_unknown_mouse_lists_the_valid_ones(data_dir):
    with pytest.raises(sd.UnknownMouseError, match=r"unknown mouse 'K'.*A\.\.J.*list_mice"):
        sd.open_mouse("K")


def test_missing_path(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match=r"does not exist; pass an existing recording"):
        sd.open_mouse(tmp_path / "nowhere.zip")


def test_not_in_cache_without_download(data_dir):
    with pytest.raises(FileNotFoundError, match=r"not in the cache .* download=False.*fetch_mouse"):
        sd.open_mouse("F", download=False)


def test_corrupt_zip_by_path_is_reported_and_kept(make_tree, tmp_path, data_dir):
    archive = zip_folder(make_tree("rec"), tmp_path / "rec.zip")
    data = archive.read_bytes()[:-200]
    archive.write_bytes(data)
    with pytest.raises(sd.RecordingFormatError, match=r"truncated or corrupt|neither a folder"):
        sd.open_mouse(archive)
    assert archive.read_bytes() == data  # the user's file is never touched


def test_open_mouse_by_letter_downloads_converts_and_opens(server, tmp_path, data_dir,
                                                            monkeypatch):
    """The whole path for a catalog mouse: loopback download, zip -> store, lazy open."""
    tree, rows = catalog_named_tree(tmp_path, "F", monkeypatch=monkeypatch)
    zip_folder(tree, server.root / "mirror" / f"{tree.name}.zip")
    monkeypatch.setenv("SENSORIUM_MIRROR", server.base_url + "mirror/")
    # the server lives for the session: other tests may have served this name before
    before = server.hits(f"{tree.name}.zip", "mirror/")
    ds = sd.open_mouse("F", progress=False)
    assert server.hits(f"{tree.name}.zip", "mirror/") == before + 1
    assert ds.attrs["letter"] == "F" and ds.attrs["mouse"] == tree.name
    assert ds.stimulus_type.values.tolist() == rows["stimulus_type"].tolist()
    assert ds.sensorium.store == data_dir / "stores" / f"{tree.name}.zarr"
    assert "sha256" not in str(ds.attrs.get("source_url", ""))
    # second time: straight from the store, no request, also by other names
    for name in ("F", "29515-10-12", tree.name):
        again = sd.open_mouse(name, download=False)
        xr.testing.assert_identical(again.responses, ds.responses)
    assert server.hits(f"{tree.name}.zip", "mirror/") == before + 1


def test_fetch_mouse_then_open_without_download(server, tmp_path, data_dir, monkeypatch):
    tree, _ = catalog_named_tree(tmp_path, "G", monkeypatch=monkeypatch)
    zip_folder(tree, server.root / "mirror" / f"{tree.name}.zip")
    monkeypatch.setenv("SENSORIUM_MIRROR", server.base_url + "mirror/")
    extracted = sd.fetch_mouse("G", progress=False)
    assert (extracted / "data" / "responses").is_dir()
    monkeypatch.setenv("SENSORIUM_MIRROR", server.base_url + "nowhere/")
    ds = sd.open_mouse("G", download=False, progress=False)
    assert ds.attrs["letter"] == "G"
    assert ds.attrs["source"] == str(extracted)


def test_the_selections_of_the_docs_run(make_tree, data_dir):
    """The recipes of docs/data.md, on a tiny recording."""
    ds = sd.open_mouse(make_tree(), progress=False)
    oracle = ds.where(ds.tier == "oracle", drop=True)
    assert oracle.sizes["trial"] == 3
    gabor = ds.isel(trial=(ds.stimulus_type == "unknown").values)
    assert gabor.sizes["trial"] == ds.sizes["trial"]
    assert ds.responses.sel(neuron=ds.neuron[0]).dims == ("trial", "frame")
    assert ds.responses.isel(trial=0, frame=slice(5, 25)).values.shape == (7, 20)
    repeats = ds.responses.groupby("video_id").mean()
    assert repeats.sizes["video_id"] == len(set(ds.video_id.values))
    trace = ds.behavior.sel(behavior_variable="running_speed")
    assert trace.dims == ("trial", "frame")


def test_a_folder_named_like_a_mouse_does_not_hide_the_catalog(tmp_path, data_dir, monkeypatch,
                                                                caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "F").mkdir()
    with caplog.at_level("WARNING"), pytest.raises(FileNotFoundError, match="not in the cache"):
        sd.open_mouse("F", download=False)
    assert "using the catalog's mouse (pass './F' for the folder)" in caplog.text
    with pytest.raises(sd.RecordingFormatError, match="F is not a SENSORIUM recording"):
        sd.open_mouse("./F")
