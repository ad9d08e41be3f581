"""ImageDataset: the 2022 items equal the starter kit's transform chain, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sensorium_data as sd
from sensorium_data.rescale import Rescaler, interpolation_matrix
from sensorium_data.scale import official_precision
from sensorium_data.store import convert
from tests.test_static import catalog_named_static_tree

# skimage.transform.rescale(x, s, order=1, mode="reflect", anti_aliasing=False,
# preserve_range=True, clip=True, channel_axis=0), scikit-image 0.26.0, printed to 12 digits
SKIMAGE_INPUT = [[0.294910775467, 0.75022743329, -0.662832323073, 0.876248482669,
                  -0.096438759766, -0.510775919716],
                 [-0.249333873705, 2.314609282784, 0.891047835269, 1.856368606003,
                  -0.745140946378, -2.428507095419],
                 [1.539455538682, -0.534957969275, 1.707477885207, 1.849542923442,
                  -0.112070745614, 1.187164493431],
                 [0.187099671642, 0.709700082957, 0.023648358983, 0.896801329409,
                  0.952869811408, 0.315255569138]]
SKIMAGE_OUTPUT = {
    0.5: [[0.777603404459, 0.740208150217, -0.94521568032],
          [0.475324331002, 1.11936762426, 0.585804782091]],
    0.75: [[0.405891935839, -0.050149787127, 0.728562429702, -0.673937284467],
           [0.706252038555, 1.196903559367, 1.282565362043, -0.572654937244],
           [0.434933505675, 0.353779228578, 0.985538625953, 0.539275222033]],
    1.5: [[0.338662401872, 0.607580537739, 0.775156068502, -0.168050623646, 0.317874769938,
           0.832242231987, 0.002803813703, -0.5174767866, -0.726090783756],
          [0.274393435407, 0.777603404459, 1.296033257714, 0.350492856421, 0.740208150217,
           1.068458811435, -0.12294012017, -0.94521568032, -1.294832898485],
          [0.347278313762, 0.944239551233, 1.704254424577, 1.162546493122, 1.44117525125,
           1.439420952494, -0.223819206502, -1.232762205097, -1.628184177662],
          [1.024431625971, 0.590646938009, 0.211875956759, 1.299500159526, 1.71104337371,
           1.505970040045, 0.127128051416, 0.183485058107, 0.450863394007],
          [0.733959847109, 0.475324331002, 0.217069734383, 0.735864444553, 1.11936762426,
           1.21437669417, 0.579194965152, 0.585804782091, 0.69607494822],
          [0.427453109166, 0.457374695201, 0.469261997436, 0.33728169017, 0.679939104217,
           1.008889615663, 0.82208169799, 0.617976720879, 0.513041389084]],
}


@pytest.fixture
def store(make_static_tree, tmp_path) -> Path:
    return convert(make_static_tree(height=16, width=32), tmp_path / "toy.zarr", progress=False)


def starter_kit_item(tree: Path, trial: int, scale: float) -> dict[str, np.ndarray]:
    """The starter kit's chain on one trial's files: NeuroNormalizer, then ScaleInputs."""
    stats = {k: {s: np.load(tree / f"meta/statistics/{k}/all/{s}.npy") for s in ("mean", "std")}
             for k in ("images", "responses", "behavior", "pupil_center")}
    image = np.load(tree / f"data/images/{trial}.npy").astype(np.float64)
    image = (image - stats["images"]["mean"]) / stats["images"]["std"]
    std = stats["responses"]["std"]
    pupil = np.load(tree / f"data/pupil_center/{trial}.npy")
    return {
        "images": Rescaler(image.shape[1:], scale)(image),
        "responses": np.load(tree / f"data/responses/{trial}.npy") * official_precision(std),
        "behavior": np.load(tree / f"data/behavior/{trial}.npy") / stats["behavior"]["std"],
        "pupil_center": (pupil - stats["pupil_center"]["mean"]) / stats["pupil_center"]["std"],
    }


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.5])
def test_rescale_equals_scikit_image(scale):
    got = Rescaler((4, 6), scale)(np.array([SKIMAGE_INPUT]))[0]
    np.testing.assert_allclose(got, SKIMAGE_OUTPUT[scale], atol=1e-11)


def test_interpolation_rows_sum_to_one():
    for size, out in [(144, 36), (36, 144), (7, 3), (1, 5), (256, 64)]:
        np.testing.assert_allclose(interpolation_matrix(size, out).sum(axis=1), 1.0)


def test_starter_kit_resolution():
    assert Rescaler((144, 256), 0.25).shape == (36, 64)


@pytest.mark.parametrize("track", ["sensorium", "sensorium+"])
def test_items_equal_the_starter_kit_chain(make_static_tree, tmp_path, track):
    tree = make_static_tree(height=16, width=32, withheld=False)
    images = sd.ImageDataset(convert(tree, tmp_path / "s.zarr", progress=False), tier=None,
                             scale=0.25, track=track)
    assert len(images) == 14 and images.image_shape == (4, 8)
    assert images.in_channels == (4 if track == "sensorium+" else 1)
    for i in range(len(images)):
        item = images[i]
        want = starter_kit_item(tree, item["trial"], 0.25)
        assert item["images"].shape == (images.in_channels, 4, 8)
        np.testing.assert_allclose(item["images"][0], want["images"][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(item["responses"], want["responses"], rtol=1e-6)
        np.testing.assert_allclose(item["behavior"], want["behavior"], rtol=1e-6)
        np.testing.assert_allclose(item["pupil_center"], want["pupil_center"], rtol=1e-6,
                                   atol=1e-7)
        if track == "sensorium+":  # behaviour as constant channels, as AddBehaviorAsChannels
            channels = item["images"][1:].numpy()
            np.testing.assert_allclose(channels, np.broadcast_to(
                want["behavior"][:, None, None], channels.shape), rtol=1e-6)
    assert images.precision(images.mice[0]).shape == (6,)


def test_normalize_none_serves_raw_values(make_static_tree, tmp_path):
    tree = make_static_tree(height=16, width=32)
    images = sd.ImageDataset(convert(tree, tmp_path / "s.zarr", progress=False), scale=1,
                             normalize=None)
    item = images[0]
    np.testing.assert_array_equal(item["images"][0],
                                  np.load(tree / f"data/images/{item['trial']}.npy")[0])
    np.testing.assert_allclose(item["responses"],
                               np.load(tree / f"data/responses/{item['trial']}.npy"))
    np.testing.assert_array_equal(images.precision(images.mice[0]), np.ones(6))


def test_tiers_and_withheld_responses(store):
    train = sd.ImageDataset(store)
    assert len(train) == 5
    test = sd.ImageDataset(store, tier=["test", "final_test"])
    assert len(test) == 7
    assert torch.isnan(test[0]["responses"]).all()  # withheld: unknown, not zero
    assert {test[i]["image_id"] for i in range(7)} == {"9001", "9002", "9101", "9102"}
    with pytest.raises(ValueError, match=r"no trials of tier 'oracle'.*train \(5\)"):
        sd.ImageDataset(store, tier="oracle")


def test_tiers_with_trials_of_a_2022_recording_count_every_trial(store):
    ds = sd.open_mouse(store, progress=False)
    tiers, counts = np.unique(ds.tier.values.astype(str), return_counts=True)
    assert ds.sensorium.tiers_with_trials == dict(zip(tiers.tolist(), counts.tolist(),
                                                      strict=True))
    assert ds.sensorium.tiers_with_trials["train"] == 5


def test_a_store_of_an_unknown_schema_is_refused(store):
    ds = sd.open_mouse(store, progress=False)
    ds.attrs["schema_version"] = 99
    with pytest.raises(sd.StoreError, match=r"schema version 99, but this version of sensorium "
                                            r"reads versions \[1, 2\]\. Convert the recording"):
        sd.ImageDataset(ds)


def test_sampler_and_workers_give_the_same_batches(make_static_tree, tmp_path):
    stores = [convert(make_static_tree(f"m{i}", height=16, width=32, seed=i),
                      tmp_path / f"m{i}.zarr", progress=False) for i in range(2)]
    images = sd.ImageDataset(stores, tier=None, track="sensorium+")
    assert images.mice == ["m0", "m1"]

    def batches(workers: int) -> list[dict]:
        sampler = sd.MouseBatchSampler(images, batch_size=4, seed=3)
        loader = torch.utils.data.DataLoader(images, batch_sampler=sampler, num_workers=workers,
                                             collate_fn=sd.collate)
        return list(loader)

    one, two = batches(0), batches(2)
    assert [b["mouse"] for b in one] == ["m0", "m1"] * 4
    for a, b in zip(one, two, strict=True):
        assert a["mouse"] == b["mouse"] and a["image_id"] == b["image_id"]
        torch.testing.assert_close(a["images"], b["images"])
        torch.testing.assert_close(a["responses"], b["responses"], equal_nan=True)
    assert one[0]["images"].shape == (4, 4, 4, 8)


def test_mixed_mice_batch_gives_response_lists(make_static_tree, tmp_path):
    stores = [convert(make_static_tree(f"m{i}", n_neurons=4 + i, height=16, width=32),
                      tmp_path / f"m{i}.zarr", progress=False) for i in range(2)]
    images = sd.ImageDataset(stores)
    batch = sd.collate_images([images[0], images[len(images) - 1]])
    assert batch["mouse"] == ["m0", "m1"]
    assert [r.shape[0] for r in batch["responses"]] == [4, 5]


def zero_behavior(tree: Path, streams: tuple[str, ...] = ("behavior", "pupil_center")) -> Path:
    for stream in streams:
        for f in [*(tree / "data" / stream).glob("[0-9]*.npy"),
                  *(tree / "meta/statistics" / stream / "all").glob("*.npy")]:
            np.save(f, np.zeros_like(np.load(f)))  # an all-zero stream has zero statistics
    return tree


def test_sensorium_plus_on_the_zeroed_mouse_says_so(tmp_path, monkeypatch):
    tree = zero_behavior(catalog_named_static_tree(tmp_path, monkeypatch, "26872-17-20"))
    store = convert(tree, tmp_path / "z.zarr", progress=False)
    with pytest.raises(ValueError, match=r"pupil position of static26872-17-20-\S+ are all zero "
                       r"\(the release ships them as zeros for 26872-17-20.*Use "
                       r"track='sensorium' for this mouse"):
        sd.ImageDataset(store, track="sensorium+")
    item = sd.ImageDataset(store, track="sensorium")[0]  # the SENSORIUM track is fine
    assert item["images"].shape[0] == 1 and not item["pupil_center"].any()


def test_sensorium_plus_without_pupil_position(make_static_tree, tmp_path):
    tree = zero_behavior(make_static_tree(height=16, width=32), ("pupil_center",))
    with pytest.raises(ValueError, match=r"the pupil position of toy2022 are all zero \(the "
                       "recording has none"):
        sd.ImageDataset(convert(tree, tmp_path / "z.zarr", progress=False), track="sensorium+")


def test_a_2023_store_is_refused(make_tree, tmp_path):
    store = convert(make_tree(), tmp_path / "v.zarr", progress=False)
    with pytest.raises(ValueError, match=r"recording of videos; ImageDataset reads 2022.*"
                       "ClipDataset"):
        sd.ImageDataset(store)


def test_a_2022_store_is_refused_by_the_clip_loader(store):
    with pytest.raises(ValueError, match=r"static images; clips need a 2023.*ImageDataset"):
        sd.ClipDataset(store)


@pytest.mark.parametrize(("options", "match"), [
    ({"track": "sensorium++"}, r"unknown track='sensorium\+\+'; choose 'sensorium'"),
    ({"normalize": "per_neuron"}, r"unknown normalize='per_neuron' for 2022 images; choose"),
    ({"scale": 0}, r"scale=0; pass a positive image scale, e.g. 0.25"),
    ({"scale": float("nan")}, r"scale=nan; pass a positive image scale"),
])
def test_bad_options(store, options, match):
    with pytest.raises(ValueError, match=match):
        sd.ImageDataset(store, **options)


def test_same_recording_twice_is_refused(store):
    with pytest.raises(ValueError, match=r"given more than once"):
        sd.ImageDataset([store, store])
