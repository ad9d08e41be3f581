"""Folds by video: deterministic, no video in two folds (across mice too), --fold in a run,
a DwiseNeuro run trains on the simulator; and the teacher checks of distillation."""

from __future__ import annotations

import csv
import doctest
from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.training import distill, folds
from sensorium_models.training.config import ConfigError
from sensorium_models.training.folds import split_by_fold, video_folds

CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "sensorium2023"
TINY_DWISENEURO = {"stem_channels": 4, "channels": [4, 8], "strides": [2, 2], "expansion": 2,
                   "se_reduction": 2, "cortex": [8, 16], "window": 4, "window_batch": 1024}


def dwiseneuro_config(stores: list[Path], out: Path, **extra) -> sm.TrainConfig:
    values = {"model": "dwiseneuro", "mice": tuple(str(s) for s in stores),
              "model_config": TINY_DWISENEURO, "frames": 4, "frame_step": 2,
              "normalize": "none", "relu_responses": True, "pupil_channels": True,
              "batch_size": 2, "drop_last": False, "max_epochs": 1, "device": "cpu",
              "progress": False,
              "score": False, "out": str(out), **extra}
    return sm.TrainConfig(**values)


def test_the_ten_mice_share_no_video_between_folds():
    fold_of: dict[str, set[int]] = {}
    n_trials = np.zeros(7, dtype=int)
    for path in sorted(CATALOG.glob("*.trials.csv")):
        with path.open() as f:
            ids = [row["video_id"] for row in csv.DictReader(f)]
        for video, fold in zip(ids, video_folds(ids), strict=True):
            fold_of.setdefault(video, set()).add(int(fold))
            n_trials[fold] += 1
    assert len(fold_of) > 1000
    assert all(len(f) == 1 for f in fold_of.values())
    # a hash spreads the videos: every fold holds 10-20 % of the trials
    assert (n_trials / n_trials.sum()).min() > 0.10 and (n_trials / n_trials.sum()).max() < 0.20


def test_folds_are_deterministic_and_split_the_pooled_tiers(simulated_stores: list[Path]):
    datasets = {ds.attrs["mouse"]: ds for ds in map(sd.open_mouse, simulated_stores)}
    tiers = ["train", "oracle"]
    seen: dict[str, int] = {}
    for k in range(3):
        train, val = split_by_fold(datasets, tiers, k, folds=3)
        for mouse, ds in datasets.items():
            chosen = np.isin(ds.tier.values, tiers) & (ds.n_frames.values > 0)
            held = val[mouse].trial.values if mouse in val else []
            assert sorted([*train[mouse].trial.values, *held]) == sorted(
                ds.trial.values[chosen])
            assert not set(train[mouse].video_id.values) & set(
                val[mouse].video_id.values if mouse in val else [])
            for video in (val[mouse].video_id.values if mouse in val else []):
                assert seen.setdefault(str(video), k) == k  # one fold, in every mouse
    np.testing.assert_array_equal(video_folds(["x", "y"]), video_folds(["x", "y"]))


def test_an_unknown_fold_is_refused():
    with pytest.raises(ConfigError, match=r"unknown fold 7; with folds=7 the folds are 0 to 6\. "
                                          r"Pass fold=K"):
        sm.TrainConfig(fold=7)
    with pytest.raises(ConfigError, match=r"folds=1; cross-validation needs at least 2"):
        sm.TrainConfig(folds=1)
    with pytest.raises(ValueError, match=r"unknown fold -1"):
        folds.check_fold(-1, 7)


def test_the_cli_takes_fold():
    from sensorium_models.cli import build_parser, train_config

    args = build_parser().parse_args(["train", "--model", "dwiseneuro", "--fold", "3"])
    assert train_config(args).fold == 3


@pytest.fixture(scope="module")
def dwiseneuro_run(simulated_stores: list[Path], tmp_path_factory) -> Path:
    """A tiny DwiseNeuro trained one epoch on fold 0 of 2 of the simulator's mice."""
    out = tmp_path_factory.mktemp("dwise") / "fold0"
    return sm.train(dwiseneuro_config(simulated_stores, out, fold=0, folds=2))


def test_a_fold_run_validates_on_its_fold(dwiseneuro_run: Path):
    config = sm.read_config(dwiseneuro_run)
    assert config.fold == 0 and config.frame_step == 2
    with (dwiseneuro_run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["validation_correlation"]))


def test_a_fold_run_scores_only_the_tiers_it_did_not_train_on(simulated_stores, tmp_path):
    # train and oracle were pooled and trained on (but for the fold): scores.csv leaves them out
    run = sm.train(dwiseneuro_config(simulated_stores, tmp_path / "r", fold=1, folds=2,
                                     score=True))
    with (run / "scores.csv").open() as f:
        tiers = {row["tier"] for row in csv.DictReader(f)}
    assert tiers and not tiers & {"train", "oracle"}


def test_the_model_window_must_match_the_clips(simulated_stores, tmp_path):
    with pytest.raises(ConfigError, match=r"frames=8 at frame_step=2: dwiseneuro takes clips "
                                          r"of at most window=4 frames at frame_step=2; pass "
                                          r"frames=4, frame_step=2\."):
        sm.train(dwiseneuro_config(simulated_stores, tmp_path / "r", frames=8))


def test_a_teacher_of_another_model_is_refused(simulated_stores, trained_run, tmp_path):
    config = dwiseneuro_config(simulated_stores, tmp_path / "r", teacher=str(trained_run),
                               mixed_mice=True)
    with pytest.raises(ConfigError, match=r"is a factorized_baseline run; a teacher of "
                                          r"dwiseneuro must be a run of the same model family"):
        sm.train(config)


def test_a_teacher_on_other_mice_or_options_is_refused(simulated_stores, dwiseneuro_run,
                                                       tmp_path):
    fold0 = {"fold": 0, "folds": 2, "teacher": str(dwiseneuro_run), "mixed_mice": True}
    other_mice = dwiseneuro_config(simulated_stores[:2], tmp_path / "a", **fold0)
    with pytest.raises(ConfigError, match=r"was trained on mice \[.*\], this run on \[.*\]; "
                                          r"distillation needs a readout of the teacher"):
        sm.train(other_mice)
    other_fold = dwiseneuro_config(simulated_stores, tmp_path / "b", **{**fold0, "fold": 1})
    with pytest.raises(ConfigError, match=r"other options \(fold: teacher 0, this run 1\)"):
        sm.train(other_fold)
    with pytest.raises(ConfigError, match=r"teacher='nowhere' is not a finished run directory"):
        sm.train(dwiseneuro_config(simulated_stores, tmp_path / "c", teacher="nowhere",
                                   mixed_mice=True))


def test_distillation_needs_batches_that_mix_mice_and_the_poisson_loss(simulated_stores,
                                                                       tmp_path):
    for extra in ({"mixed_mice": False}, {"mixed_mice": True, "loss": "poisson_correlation"}):
        with pytest.raises(ConfigError, match=r"distillation fits every mouse's readout on "
                                              r"every clip .* pass mixed_mice=True, "
                                              r"loss='poisson'"):
            dwiseneuro_config(simulated_stores, tmp_path / "r", teacher="runs/t", **extra)


def test_a_distilled_run_trains_from_its_teacher(simulated_stores, dwiseneuro_run, tmp_path,
                                                 monkeypatch):
    calls = []
    teacher_targets = distill.teacher_targets

    def counted(teacher, videos, behavior):
        calls.append(len(videos))
        return teacher_targets(teacher, videos, behavior)

    monkeypatch.setattr(distill, "teacher_targets", counted)
    run = sm.train(dwiseneuro_config(
        simulated_stores, tmp_path / "d", model="dwiseneuro_distilled", fold=0, folds=2,
        teacher=str(dwiseneuro_run), mixed_mice=True, cutmix=0.5))
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert calls and len(rows) == 1
    assert np.isfinite(float(rows[0]["train_loss"]))
    assert np.isfinite(float(rows[0]["validation_correlation"]))


NEURONS = {"A": 3, "B": 4}


def _tiny_pair(mice=("A", "B")):
    import torch

    from sensorium_models.models import create_model
    from sensorium_models.models.specs import MouseSpec

    torch.manual_seed(0)
    specs = {m: MouseSpec(n_neurons=NEURONS[m], coords=np.random.default_rng(k).normal(
        size=(NEURONS[m], 2))) for k, m in enumerate(mice)}
    make = lambda: create_model("dwiseneuro", mice=specs, in_channels=5,  # noqa: E731
                                **TINY_DWISENEURO)
    return make(), make().eval().requires_grad_(False)


def test_the_distilled_loss_without_distilled_pairs_is_the_mixed_loss():
    import torch

    from sensorium_models.training import mixed
    from sensorium_models.training.loop import poisson_loss

    student, teacher = _tiny_pair()
    student.eval()
    videos, behavior = torch.rand(3, 5, 4, 16, 16), torch.rand(3, 4, 4)
    mice = ["A", "B", "A"]
    responses = [torch.rand(NEURONS[m], 4) for m in mice]
    scale = {"A": 2.0, "B": 0.5}
    outs = mixed.mixed_forward(student, videos, behavior, mice)
    targets = mixed.mixed_targets(responses, mice, next(iter(outs.values())).shape[-1])
    expected = mixed.scaled_sum({m: poisson_loss(o, targets[m]) for m, o in outs.items()},
                                scale)
    got = distill.distilled_loss(student, teacher, videos, behavior, responses, mice,
                                 loss_scale=scale, ratio=0.0)
    assert torch.isclose(got, expected, rtol=1e-5)


def test_every_readout_learns_from_every_clip_and_the_teacher_does_not():
    import torch

    student, teacher = _tiny_pair()
    videos, behavior = torch.rand(2, 5, 4, 16, 16), torch.rand(2, 4, 4)
    responses = [torch.rand(3, 4), torch.rand(3, 4)]  # both clips from mouse A
    loss = distill.distilled_loss(student, teacher, videos, behavior, responses, ["A", "A"],
                                  loss_scale={"A": 1.0, "B": 1.0})
    loss.backward()
    grads = [p.grad for p in student.readouts["B"].parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("module", [folds, distill])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def test_a_fold_run_starts_its_readouts_at_the_mean_of_the_trials_it_trains_on(
        simulated_stores, tmp_path):
    # Before, the means came from the whole train tier, held-out fold included.
    from sensorium_models.training.options import resolve_model_config
    from sensorium_models.training.run import Trainer

    config = dwiseneuro_config(simulated_stores, tmp_path / "r", fold=1, folds=2)
    trainer = Trainer(config, resolve_model_config(config.model, config.model_config),
                      tmp_path, None)
    datasets = {ds.attrs["mouse"]: ds for ds in map(sd.open_mouse, simulated_stores)}
    train, _ = split_by_fold(datasets, ["train", "oracle"], 1, folds=2)
    for mouse, ds in train.items():
        responses = np.maximum(ds.responses.values, 0)  # (trial, neuron, frame), relu'd
        valid = np.arange(ds.sizes["frame"]) < ds.n_frames.values[:, None]  # (trial, frame)
        expected = responses.transpose(1, 0, 2)[:, valid].mean(axis=1)
        np.testing.assert_allclose(trainer.means[mouse], expected, rtol=1e-5, atol=1e-6)
