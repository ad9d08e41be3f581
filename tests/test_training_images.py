"""The trainer's 2022 path: image items as one-frame clips, validation over trials, the mean
responses, the track options, and a mix of 2022 and 2023 recordings refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import sensorium_models as sm
from sensorium_models.training import data, images
from sensorium_models.training.loop import train_epoch
from sensorium_models.training.predict import no_autocast


class FakeImages(torch.utils.data.Dataset):
    """The ImageDataset interface the trainer uses, on arrays: items of two mice."""

    def __init__(self, n_neurons=(5, 3), trials=6, channels=1, seed=0):
        g = np.random.default_rng(seed)
        self.image_shape = (36, 64)
        self.in_channels = channels
        self.items = []
        for m, n in zip("AB", n_neurons, strict=True):
            for t in range(trials):
                self.items.append({
                    "images": torch.from_numpy(g.normal(size=(channels, 36, 64)).astype("f4")),
                    "behavior": torch.tensor([1.0 + t, 2.0, 3.0 + t]),
                    "pupil_center": torch.tensor([0.1 * t, -0.1 * t]),
                    "responses": torch.from_numpy(g.gamma(2.0, size=n).astype("f4")),
                    "mouse": m, "trial": t, "image_id": str(t % 3)})

    @property
    def mice(self):
        return ["A", "B"]

    def indices_by_mouse(self):
        half = len(self.items) // 2
        return {"A": np.arange(half), "B": np.arange(half, len(self.items))}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def model_for(dataset, **options):
    torch.manual_seed(0)
    mice = {m: sm.MouseSpec(n_neurons=len(dataset[int(idx[0])]["responses"]),
                            coords=np.random.default_rng(1).normal(size=(
                                len(dataset[int(idx[0])]["responses"]), 2)))
            for m, idx in dataset.indices_by_mouse().items()}
    return sm.create_model("sota_2022", mice=mice, in_channels=dataset.in_channels,
                           hidden_channels=4, **options)


def test_image_items_become_one_frame_clips_with_the_2023_behaviour_rows():
    dataset = FakeImages(channels=4)
    batch = images.collate_as_clips([dataset[0], dataset[1]])
    assert batch["videos"].shape == (2, 4, 1, 36, 64)
    torch.testing.assert_close(batch["videos"][1, :, 0], dataset[1]["images"])
    # pupil dilation, running speed, pupil x, pupil y: the shifter reads rows 2:4
    assert batch["behavior"][1, :, 0].tolist() == pytest.approx([2.0, 4.0, 0.1, -0.1])
    assert batch["responses"].shape == (2, 5, 1) and batch["mouse"] == "A"
    mixed = images.collate_as_clips([dataset[0], dataset[6]])
    assert mixed["mouse"] == ["A", "B"] and [r.shape for r in mixed["responses"]] == [
        (5, 1), (3, 1)]
    with pytest.raises(ValueError, match="no items"):
        images.collate_as_clips([])


def test_the_trainer_loader_picks_the_image_collate():
    dataset = FakeImages()
    batch = next(iter(data.loader(dataset, [[0, 1, 2]], num_workers=0)))
    assert batch["videos"].shape == (3, 1, 1, 36, 64) and batch["length"].tolist() == [1, 1, 1]


def test_one_epoch_trains_the_image_model_through_the_shared_loop():
    dataset = FakeImages(channels=4)
    model = model_for(dataset, shifter=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.009)
    batches = data.loader(dataset, [[0, 1, 2], [6, 7, 8], [3, 4, 5], [9, 10, 11]], 0)
    loss = train_epoch(model, model, batches, optimizer, loss_scale={"A": 1.0, "B": 1.0},
                       batches_per_step=2, device=torch.device("cpu"), autocast=no_autocast)
    assert np.isfinite(loss)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("shifters.A") for k in changed)
    assert any(k.startswith("core.convs.0") for k in changed)


def test_validation_is_the_per_neuron_correlation_over_trials():
    dataset = FakeImages()
    model = model_for(dataset)
    value = images.validate(model, dataset, batch_size=4, device=torch.device("cpu"),
                            autocast=no_autocast)
    predicted = images.predict_items(model, dataset, batch_size=4, device=torch.device("cpu"),
                                     autocast=no_autocast)
    expected = []
    for p in predicted.values():  # the starter kit's corr, written out
        r, q = p["responses"], p["predictions"]
        for n in range(r.shape[1]):
            zr = (r[:, n] - r[:, n].mean()) / (r[:, n].std() + 1e-8)
            zq = (q[:, n] - q[:, n].mean()) / (q[:, n].std() + 1e-8)
            expected.append(np.mean(zr * zq))
    assert value == pytest.approx(np.mean(expected), abs=1e-6)
    assert len(expected) == 8 and model.training  # back in training mode


def test_correlation_leaves_out_withheld_trials():
    r = np.array([[1.0, 2.0], [2.0, 1.0], [np.nan, np.nan], [3.0, 0.0]])
    p = np.array([[1.0, 1.0], [2.0, 2.0], [9.0, 9.0], [3.0, 3.0]])
    assert images.correlation(r, p) == pytest.approx([1.0, -1.0], abs=1e-6)


def test_mean_responses_per_mouse():
    dataset = FakeImages()
    means = images.mean_responses(dataset, batch_size=4)
    for m, idx in dataset.indices_by_mouse().items():
        expected = torch.stack([dataset[int(i)]["responses"] for i in idx]).mean(0).numpy()
        np.testing.assert_allclose(means[m], expected, rtol=1e-6)


def test_a_mix_of_2022_and_2023_recordings_is_refused():
    static = xr.Dataset({"images": (("trial", "height", "width"), np.zeros((1, 2, 2)))})
    video = xr.Dataset({"videos": (("trial", "frame", "height", "width"),
                                   np.zeros((1, 1, 2, 2)))})
    assert images.is_static({"s": static}) and not images.is_static({"v": video})
    with pytest.raises(sm.ConfigError, match=r"mice \['s'\] are 2022 .* \['v'\] 2023"):
        images.is_static({"s": static, "v": video})


@pytest.mark.parametrize(("key", "value"), [("track", "sensorium++"), ("image_scale", 0.0)])
def test_bad_track_options_are_named(key, value):
    with pytest.raises(sm.ConfigError, match="'sensorium' or 'sensorium\\+'"):
        sm.TrainConfig(model="sota_2022", **{key: value})


@pytest.mark.parametrize("recipe", ["sota_2022", "ln_2022", "generalization_2022"])
def test_the_2022_recipes_are_the_starter_kits_trainer(recipe):

    path = Path(__file__).parents[1] / "docs" / "recipes" / f"{recipe}.toml"
    config = sm.TrainConfig.from_file(path)
    assert (config.optimizer, config.lr, config.weight_decay, config.loss) == (
        "adam", 0.009, 0.0, "poisson")
    assert (config.schedule, config.factor, config.patience, config.lr_decay_steps,
            config.threshold, config.min_lr) == ("plateau", 0.3, 5, 4, 1e-6, 1e-4)
    assert (config.batch_size, config.accumulate, config.mixed_mice) == (128, 1, False)
    assert (config.val_tier, config.image_scale, config.track) == (
        "validation", 0.25, "sensorium")
    assert len(config.mice) == (7 if recipe.startswith("generalization") else 1)


@pytest.mark.parametrize(("track", "shifter"), [("sensorium", False), ("sensorium+", True)])
def test_the_track_flag_sets_the_shifter(track, shifter):
    from sensorium_models.cli import build_parser, train_config

    recipe = str(Path(__file__).parents[1] / "docs" / "recipes" / "sota_2022.toml")
    args = build_parser().parse_args(["train", "--config", recipe,
                                     "--track", track])
    config = train_config(args)
    assert config.track == track and config.model_config["shifter"] is shifter


@pytest.mark.parametrize("track", ["sensorium", "sensorium+"])
def test_a_2022_store_trains_and_scores_end_to_end(make_static_tree, tmp_path, track):
    import pandas as pd

    from sensorium_data.store import convert
    from tests.conftest import STATIC_TIERS

    # six validation trials: a correlation over two is +-1 per neuron and can average to
    # exactly 0, which the trainer's guard reads as a collapsed model
    tiers = [*STATIC_TIERS, "validation", "validation", "validation", "validation", "train"]
    store = convert(make_static_tree(tiers=tiers), tmp_path / "toy.zarr", progress=False)
    config = sm.TrainConfig(
        model="sota_2022", mice=(str(store),), track=track, val_tier="validation",
        model_config={"hidden_channels": 4, "shifter": track == "sensorium+"},
        batch_size=4, max_epochs=2, device="cpu", progress=False, out=str(tmp_path / "run"),
        optimizer="adam", lr=0.009, weight_decay=0.0)
    run = sm.train(config)
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and metrics["validation_correlation"].notna().all()
    scores = pd.read_csv(run / "scores.csv").set_index("tier")
    # the tiny tree withholds the test tiers' responses, as the competition mice's files do
    assert scores.loc["validation", "n_trials"] == 6
    assert np.isfinite(scores.loc["validation", "single_trial_correlation"])
    assert scores.loc["test", "n_trials"] == 0 and scores.loc["test", "n_unlabelled"] == 4
    model = sm.load_run(run)
    assert model.in_channels == (4 if track == "sensorium+" else 1)
    assert (model.shifters is not None) == (track == "sensorium+")
