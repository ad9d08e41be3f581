"""The static2022 preset: 2022-format trees with known ground truth, and its bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.simulate.static2022 import (
    EVENT_M2,
    FLOOR_VAR,
    explainable_variance,
    read_explainable_variance,
)
from sensorium_models.cli import main


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("static2022")
    return {gain: sd.simulate(root / gain, preset="static2022", scale=0.25, image_scale=0.25,
                              behavior_gain=gain == "on", progress=False)
            for gain in ("on", "off")}


def trials(tree: Path, stream: str) -> np.ndarray:
    n = len(np.load(tree / "meta/trials/tiers.npy"))
    return np.stack([np.load(tree / f"data/{stream}/{t}.npy") for t in range(n)])


def test_trees_in_the_2022_format(twins):
    a, b, c = twins["on"]
    assert [p.name for p in (a, b, c)] == ["static2022-A", "static2022-B", "static2022-C"]
    assert np.load(a / "data/images/0.npy").shape == (1, 36, 64)
    assert np.load(a / "data/behavior/0.npy").shape == (3,)
    assert np.load(a / "data/pupil_center/0.npy").shape == (2,)
    tiers = {p.name: set(np.load(p / "meta/trials/tiers.npy").tolist()) for p in (a, b)}
    assert tiers == {"static2022-A": {"train", "validation", "test", "final_test"},
                     "static2022-B": {"train", "validation", "test"}}
    # the competition-like mouse has hashed trial ids, the others the presentation order
    assert all(re.fullmatch("[0-9a-f]{32}", t) for t in np.load(a / "meta/trials/trial_idx.npy"))
    order = np.load(b / "meta/trials/trial_idx.npy")
    assert sorted(order.tolist()) == list(range(len(order)))
    images = trials(a, "images")
    assert images.min() >= 0 and images.max() <= 255 and (images % 1 == 0).all()


def test_test_images_are_repeated_and_shared_across_mice(twins):
    a, b, _ = twins["on"]

    def repeats(tree: Path) -> dict[int, int]:
        tiers = np.load(tree / "meta/trials/tiers.npy")
        ids, counts = np.unique(np.load(tree / "meta/trials/frame_image_id.npy")[tiers == "test"],
                                return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist(), strict=True))

    ra, rb = repeats(a), repeats(b)
    assert ra.keys() == rb.keys() and len(ra) == 5 and min(ra.values()) >= 2
    ids = np.load(a / "meta/trials/frame_image_id.npy")
    first = {i: t for t, i in enumerate(ids.tolist())}
    image = next(iter(ra))
    ids_b = np.load(b / "meta/trials/frame_image_id.npy").tolist()
    np.testing.assert_array_equal(np.load(a / f"data/images/{first[image]}.npy"),
                                  np.load(b / f"data/images/{ids_b.index(image)}.npy"))


def test_behaviour_gain_switch(twins):
    """Off: repeats of an image have one rate; on: behaviour changes it from trial to trial."""
    for gain, tree in (("on", twins["on"][0]), ("off", twins["off"][0])):
        rates = trials(tree, "rates")
        ids = np.load(tree / "meta/trials/frame_image_id.npy")
        repeated = [i for i in np.unique(ids) if (ids == i).sum() > 1]
        spread = max(float(np.ptp(rates[ids == i], axis=0).max()) for i in repeated)
        assert (spread == 0) == (gain == "off")
        assert json.loads((tree / "meta/simulation.json").read_text())["behavior_gain"] == (
            gain == "on")


def test_responses_scatter_around_the_rates_as_documented(twins):
    tree = twins["on"][2]
    rates, responses = trials(tree, "rates"), trials(tree, "responses")
    assert responses.min() >= 0 and (responses > 0).all()  # never all zero: not "withheld"
    residual = responses - rates
    assert abs(residual.mean()) < 4 * residual.std() / np.sqrt(residual.size)
    expected = (rates.mean() - 0.02 * np.sqrt(2 / np.pi)) * EVENT_M2 + FLOOR_VAR
    assert residual.var() == pytest.approx(expected, rel=0.1)


def test_image_rates_are_the_rates_without_behaviour(twins):
    """Without the gain every trial's rate is its image's; with it they scatter around it."""
    for gain in ("off", "on"):
        tree = twins[gain][0]
        ids = np.load(tree / "meta/simulation_image_ids.npy")
        per_image = np.load(tree / "meta/simulation_image_rates.npy")
        image_id = np.load(tree / "meta/trials/frame_image_id.npy")
        assert sorted(ids.tolist()) == sorted(set(image_id.tolist()))
        expected = per_image[np.searchsorted(ids, image_id)]
        rates = trials(tree, "rates")
        if gain == "off":
            np.testing.assert_allclose(rates, expected, rtol=1e-4, atol=1e-5)  # float32 path
        else:
            assert not np.allclose(rates, expected)
            assert np.corrcoef(rates.ravel(), expected.ravel())[0, 1] > 0.5


def test_ground_truth_files(twins):
    tree = twins["on"][0]
    units = np.load(tree / "meta/neurons/unit_ids.npy")
    table = json.loads((tree / "meta/simulation_neurons.json").read_text())
    assert table["unit_id"] == units.tolist() and len(table["rf_row"]) == len(units)
    rfs = np.load(tree / "meta/simulation_receptive_fields.npy")
    assert rfs.shape == (len(units), 36, 64)
    peak = np.unravel_index(np.abs(rfs).reshape(len(units), -1).argmax(axis=1), (36, 64))
    assert np.abs(peak[0] - np.array(table["rf_row"])).max() < 4  # the RF is where it says
    saved = read_explainable_variance(tree)
    tiers = np.load(tree / "meta/trials/tiers.npy")
    again = explainable_variance(trials(tree, "rates"), tiers,
                                 np.load(tree / "meta/trials/frame_image_id.npy"))
    for tier in ("test", "final_test"):
        np.testing.assert_allclose(saved[tier]["explainable_fraction"],
                                   again[tier]["explainable_fraction"], rtol=1e-5, atol=1e-9)
        assert (saved[tier]["stimulus_variance"] <= saved[tier]["signal_variance"]).all()


def test_explainable_fraction_is_what_the_fev_formula_estimates(twins):
    from sensorium_models.metrics import RunningFEVE

    tree = twins["off"][0]
    known, estimated = [], []
    for tier in ("test", "final_test"):
        ds = sd.open_store(sd.convert(tree, tree.parent / f"{tier}.zarr", progress=False))
        part = ds.isel(trial=np.flatnonzero(ds.tier.values == tier))
        fev = RunningFEVE().update(part.responses.values, part.responses.values,
                                   part.image_id.values).fev()
        estimated.append(fev)
        known.append(read_explainable_variance(tree)[tier]["explainable_fraction"])
    assert np.mean(estimated) == pytest.approx(np.mean(known), abs=0.05)
    assert np.corrcoef(np.concatenate(known), np.concatenate(estimated))[0, 1] > 0.5


def test_opens_as_images(twins):
    tree = twins["on"][1]
    images = sd.ImageDataset(sd.convert(tree, tree.parent / "b.zarr", progress=False),
                             scale=1.0, track="sensorium+")
    item = images[0]
    assert item["images"].shape == (4, 36, 64) and item["pupil_center"].any()


def test_same_seed_same_bytes(tmp_path):
    first = sd.simulate(tmp_path / "a", preset="static2022", scale=0.05, image_scale=0.125,
                        progress=False)
    second = sd.simulate(tmp_path / "b", preset="static2022", scale=0.05, image_scale=0.125,
                         progress=False)
    for x, y in zip(first, second, strict=True):
        for stream in ("images", "responses", "behavior"):
            np.testing.assert_array_equal(trials(x, stream), trials(y, stream))


def test_cli_simulates_static2022(tmp_path):
    assert main(["simulate", str(tmp_path), "--preset", "static2022", "--scale", "0.05",
                 "--image-scale", "0.125", "--no-behavior-gain"]) == 0
    meta = json.loads((tmp_path / "static2022-C/meta/simulation.json").read_text())
    assert meta["behavior_gain"] is False and meta["image_shape"] == [18, 32]


@pytest.mark.parametrize(("options", "match"), [
    ({"preset": "static2022", "image_scale": 0}, r"image_scale=0 must be in \(0, 1\]"),
    ({"preset": "static2022", "image_scale": 2.0}, r"image_scale=2.0 must be in \(0, 1\]"),
    ({"preset": "tiny", "image_scale": 0.5}, r"apply to the static2022 preset only; preset "
     "'tiny'"),
    ({"preset": "tiny", "behavior_gain": False}, r"apply to the static2022 preset only"),
])
def test_bad_options(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        sd.simulate(tmp_path, progress=False, **options)
    assert not any(tmp_path.iterdir())


def test_missing_ground_truth_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a recording of the static2022 preset"):
        read_explainable_variance(tmp_path)
