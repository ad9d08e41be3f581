"""train(): the run directory, resume, early stopping, the loss, config files and bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

import sensorium_models as sm
from sensorium_data import UnknownMouseError
from sensorium_models.training.loop import poisson_loss
from sensorium_models.training.options import parse_assignment
from sensorium_models.training.stopping import EarlyStopping
from tests.conftest import TINY_FACTORIZED


def test_the_run_directory_holds_config_metrics_checkpoints_and_scores(trained_run):
    assert {p.name for p in trained_run.iterdir()} == {
        "config.json", "metrics.csv", "best.pt", "last.pt", "scores.csv", ".lock",
        "predictions"}  # the cache of the best model's predictions (tests/test_predictions.py)
    metrics = pd.read_csv(trained_run / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "lr", "train_loss", "validation_correlation",
                                     "seconds"]
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics["lr"].tolist() == [0.005, 0.005]
    assert metrics["validation_correlation"].between(-1, 1).all()
    scores = pd.read_csv(trained_run / "scores.csv")
    assert {"oracle", "live_test_main", "final_test_main", "live_test_bonus",
            "final_test_bonus"} <= set(scores["tier"])
    assert "train" not in set(scores["tier"])
    assert {"single_trial_correlation_ceiling", "correlation_to_average_fraction"} <= set(
        scores.columns)


def test_config_json_is_the_resolved_config(trained_run):
    config = sm.read_config(trained_run)
    assert config.model == "factorized_baseline" and config.out == str(trained_run)
    defaults = dataclasses.asdict(sm.model_config("factorized_baseline"))
    assert set(config.model_config) == set(defaults)
    assert config.model_config["hidden_channels"] == TINY_FACTORIZED["hidden_channels"]
    assert config.model_config["spatial_kernels"] == list(defaults["spatial_kernels"])
    assert json.loads((trained_run / "config.json").read_text())["max_epochs"] == 2


def test_load_run_gives_the_best_model(trained_run):
    model = sm.load_run(trained_run)
    assert not model.training and model.burn_in == 18
    assert model.config.hidden_channels == (4, 8, 8)
    best = torch.load(trained_run / "best.pt", weights_only=True)
    metrics = pd.read_csv(trained_run / "metrics.csv")
    assert best["epoch"] == metrics["validation_correlation"].idxmax() + 1
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, best["state_dict"][key])


def test_load_run_last_gives_the_last_epoch(trained_run):
    model = sm.load_run(trained_run, checkpoint="last")
    last = torch.load(trained_run / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, last["model"]["state_dict"][key])
    with pytest.raises(ValueError, match="choose 'best' or 'last'"):
        sm.load_run(trained_run, checkpoint="final")


def test_resume_continues_the_epoch_count(trained_run, tmp_path):
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    config = dataclasses.replace(sm.read_config(run), max_epochs=3, score=False,
                                 in_memory=True)  # may change: the same items, from RAM
    assert sm.train(config, resume=run) == run
    before = pd.read_csv(trained_run / "metrics.csv")
    after = pd.read_csv(run / "metrics.csv")
    assert after["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(after.iloc[:2].drop(columns="seconds"),
                                  before.drop(columns="seconds"))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]) == 3
    assert sm.read_config(run).max_epochs == 3
    # the third epoch read from the stores is the one read from RAM
    plain = Path(shutil.copytree(trained_run, tmp_path / "plain"))
    sm.train(dataclasses.replace(config, in_memory=False, out=str(plain)), resume=plain)
    pd.testing.assert_frame_equal(pd.read_csv(plain / "metrics.csv").drop(columns="seconds"),
                                  after.drop(columns="seconds"))


def test_resume_with_another_config_names_the_differing_keys(trained_run):
    config = sm.read_config(trained_run).with_overrides(
        {"lr": 0.1, "model_config.hidden_channels": [8, 8, 8]})
    with pytest.raises(sm.ConfigError, match=r"cannot resume .* differing keys: lr: run 0.005, "
                       r"now 0.1; model_config.hidden_channels: run \[4, 8, 8\], now \[8, 8, 8\]"):
        sm.train(config, resume=trained_run)


def test_a_new_run_never_overwrites_one(trained_run):
    with pytest.raises(FileExistsError, match=r"already holds a run; continue it with "
                       r"train\(read_config\('.*'\), resume='.*'\), or pass another out folder"):
        sm.train(sm.read_config(trained_run))


def test_unknown_model_lists_the_registered_ones(simulated_stores):
    config = sm.TrainConfig(model="resnet", mice=(str(simulated_stores[0]),))
    with pytest.raises(sm.ConfigError, match="unknown model 'resnet'; known models: "
                       f"{', '.join(sm.list_models())}"):
        sm.train(config)


def test_unknown_config_key_names_the_valid_ones(tmp_path):
    match = r"unknown config key 'lrr'; valid keys: model, mice, model_config, .*, lr,"
    with pytest.raises(sm.ConfigError, match=match):
        sm.TrainConfig.from_dict({"model": "ln", "lrr": 0.1})
    with pytest.raises(sm.ConfigError, match=match):
        sm.TrainConfig().with_overrides({"lrr": 0.1})
    (tmp_path / "c.toml").write_text('model = "ln"\nlrr = 0.1\n')
    with pytest.raises(sm.ConfigError, match=match):
        sm.TrainConfig.from_file(tmp_path / "c.toml")


def test_unknown_model_option_names_the_models_options(simulated_stores):
    config = sm.TrainConfig(mice=(str(simulated_stores[0]),), model_config={"channels": 4})
    with pytest.raises(sm.ConfigError, match=r"unknown option model_config.channels for model "
                       r"'factorized_baseline'; its options: .*hidden_channels"):
        sm.train(config)


def test_wrong_types_are_named():
    with pytest.raises(sm.ConfigError, match="config key 'lr' must be float; got 'fast'"):
        sm.TrainConfig(lr="fast")  # type: ignore[arg-type]
    with pytest.raises(sm.ConfigError, match="normalize='zscore'; choose one of"):
        sm.TrainConfig(normalize="zscore")
    with pytest.raises(sm.ConfigError, match="patience=0; it must be a positive integer"):
        sm.TrainConfig(patience=0)
    with pytest.raises(sm.ConfigError, match=r"lr_decay_steps=0; it must be a positive integer "
                       r"\(1: stop at the first round's end"):
        sm.TrainConfig(lr_decay_steps=0)
    with pytest.raises(sm.ConfigError, match=r"min_lr=0.001 is above lr=0.0005: the schedule "
                       "could never decay; lower min_lr"):
        sm.TrainConfig(lr=5e-4, min_lr=1e-3)


@pytest.mark.parametrize(("assignment", "match"), [
    ("lr=inf", r"lr=inf; it must be a finite number \(default 0.005, e.g. lr=0.005\)"),
    ("threshold=nan", r"threshold=nan; it must be a finite number \(default 1e-06"),
    ("min_lr=-inf", r"min_lr=-inf; it must be a finite number \(default 0.0001"),
    ("factor=nan", r"factor=nan; it must be a finite number \(default 0.3"),
    ("weight_decay=inf", r"weight_decay=inf; it must be a finite number \(default 0.01"),
    ("weight_decay=-0.1", r"weight_decay=-0.1; it must be a finite number >= 0"),
    ("threshold=-1e-3", r"threshold=-0.001; the improvement an epoch must make to count must "
                        r"be 0 or more"),
])
def test_numbers_not_finite_or_out_of_range_are_named_before_anything_is_written(
        assignment, match, tmp_path):
    # as `sensorium train --set lr=inf` parses it; the run folder is never made
    config = sm.TrainConfig(mice=("F",), download=False, out=str(tmp_path / "run"))
    with pytest.raises(sm.ConfigError, match=match):
        config.with_overrides(dict([parse_assignment(assignment)]))
    key, value = parse_assignment(assignment)
    with pytest.raises(sm.ConfigError, match=match):
        sm.TrainConfig.from_dict({**config.to_dict(), key: value})  # a config file: the same
    assert not (tmp_path / "run").exists()


def test_model_options_that_are_not_finite_are_named(tmp_path):
    for value in (float("nan"), float("inf")):
        config = sm.TrainConfig(mice=("F",), download=False, model_config={"momentum": value},
                                out=str(tmp_path / "run"))
        with pytest.raises(sm.ConfigError, match=rf"model_config.momentum={value}; a model "
                           r"option must be a finite number \(default 0.7\)"):
            sm.train(config)
    assert not (tmp_path / "run").exists()


def test_bad_model_options_are_named_before_the_data_opens(tmp_path):
    # mouse F is not in the test cache: opening the data first would fail differently
    for options, match in (
            ({"hidden_channels": 16}, r"model_config: option 'hidden_channels' of model "
                                      r"'factorized_baseline' must be a list of ints; got 16"),
            ({"hidden_channels": [8, 16]}, r"model_config: hidden_channels \(8, 16\), "
                                           r"spatial_kernels \(11, 5, 5\) .* one entry per"),
            ({"momentum": -0.1}, r"model_config: momentum=-0.1 is negative")):
        config = sm.TrainConfig(mice=("F",), download=False, model_config=options,
                                out=str(tmp_path / "run"))
        with pytest.raises(sm.ConfigError, match=match):
            sm.train(config)
    assert not (tmp_path / "run").exists()


def test_clips_no_longer_than_the_burn_in_are_named_before_anything_is_written(
        simulated_stores, tmp_path):
    config = sm.TrainConfig(mice=(str(simulated_stores[0]),), frames=18,
                            model_config=TINY_FACTORIZED, device="cpu", progress=False,
                            out=str(tmp_path / "run"))
    with pytest.raises(sm.ConfigError, match=r"frames=18: factorized_baseline's first 18 frames "
                       r"of a clip are burn-in .* pass frames of at least 19"):
        sm.train(config)
    assert not (tmp_path / "run").exists()


def test_a_run_stopped_in_its_first_epoch_resumes(simulated_stores, tmp_path, monkeypatch):
    from sensorium_models.training import run as run_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    config = sm.TrainConfig(mice=(str(simulated_stores[0]),), max_epochs=1, score=False,
                            batch_size=4, model_config=TINY_FACTORIZED, device="cpu",
                            progress=False,
                            out=str(tmp_path / "run"))
    with monkeypatch.context() as m:
        m.setattr(run_module, "train_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            sm.train(config)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 0
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*best.pt; .* best.pt after "
                       r"its first epoch \(continue an interrupted run with "
                       r"train\(config, resume=RUN\)\)"):
        sm.load_run(tmp_path / "run")
    assert sm.train(config, resume=tmp_path / "run") == tmp_path / "run"
    assert pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"].tolist() == [1]


def test_batches_larger_than_a_mouses_train_tier_are_named(simulated_stores, tmp_path):
    config = sm.TrainConfig(mice=(str(simulated_stores[0]),), batch_size=64,
                            model_config=TINY_FACTORIZED, device="cpu", progress=False,
                            out=str(tmp_path / "run"))
    with pytest.raises(sm.ConfigError, match=r"would get no batch: \d+ items .* fewer than "
                       r"batch_size=64 .*lower batch_size or pass drop_last=False.*"
                       r"\(in the config: batch_size, drop_last\)"):
        sm.train(config)
    assert not (tmp_path / "run").exists()


def test_unknown_mouse_is_named(tmp_path):
    config = sm.TrainConfig(mice=("K",), out=str(tmp_path / "run"))
    with pytest.raises(UnknownMouseError, match=r"unknown mouse 'K'; known: letters A\.\.J"):
        sm.train(config)
    assert not (tmp_path / "run").exists()  # nothing is written before the data opens


def test_mouse_not_in_the_cache_is_named(data_dir, tmp_path):
    config = sm.TrainConfig(mice=("F",), download=False, out=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match=r"\(F\) is not in the cache .* download=False"):
        sm.train(config)


def test_config_file_then_overrides(tmp_path):
    (tmp_path / "c.toml").write_text(
        'model = "ln"\nmice = ["F", "G"]\nlr = 1\n\n[model_config]\nchannels = 4\n')
    config = sm.TrainConfig.from_file(tmp_path / "c.toml")
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.mice == ("F", "G") and config.model_config == {"channels": 4}
    config = config.with_overrides(dict(map(parse_assignment, [
        "max_epochs=3", "model_config.temporal_kernel=5", "device=cuda:1", "mice=[\"H\"]"])))
    assert (config.max_epochs, config.device, config.mice) == (3, "cuda:1", ("H",))
    assert config.model_config == {"channels": 4, "temporal_kernel": 5}
    assert sm.TrainConfig.from_dict(config.to_dict()) == config  # config.json round trip


def test_early_stopping_runs_in_rounds_as_the_starter_kit():
    # neuralpredictors' early_stopping(interval=1, patience=2, lr_decay_steps=3): a round
    # ends after 2 epochs in a row without improvement and puts the best weights back; the
    # scheduler (never reset) decays on its own count, more than 2 bad epochs
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=2, threshold=1e-6, threshold_mode="abs")
    stopping = EarlyStopping(patience=2, lr_decay_steps=3, threshold=1e-6)
    objectives = [0.1, 0.2, 0.1, 0.1, 0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.5]
    decisions, lrs = [], []
    for epoch, value in enumerate(objectives, 1):
        if stopping.stopped:
            break
        decisions.append(stopping.step(value, epoch, scheduler))
        lrs.append(optimizer.param_groups[0]["lr"])
    assert decisions == ["improved", "improved", "worse", "restored", "worse", "improved",
                         "worse", "restored", "worse", "stop"]
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert (stopping.best, stopping.best_epoch, stopping.rounds) == (0.3, 6, 3)
    restored = EarlyStopping(patience=2, lr_decay_steps=3, threshold=1e-6)
    restored.load_state_dict(stopping.state_dict())
    assert restored == stopping


def test_early_stopping_refuses_a_state_it_did_not_write():
    # the pre-release rule's state (one round per LR decay, key "decays") is not translated:
    # resuming from it would silently restart the rounds
    stopping = EarlyStopping(patience=5, lr_decay_steps=4, threshold=1e-6)
    with pytest.raises(ValueError, match=r"has keys \['decays'\] it does not know .* train "
                       r"the run anew"):
        stopping.load_state_dict({"lr_decay_steps": 4, "threshold": 1e-6, "best": 0.2,
                                  "best_epoch": 7, "decays": 2, "stopped": False})
    assert stopping == EarlyStopping(patience=5, lr_decay_steps=4, threshold=1e-6)  # untouched


def test_early_stopping_stops_on_a_non_finite_correlation():
    weight = torch.nn.Parameter(torch.zeros(1))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.SGD([weight], lr=1.0))
    stopping = EarlyStopping(patience=5, lr_decay_steps=4, threshold=1e-6)
    assert stopping.step(float("nan"), 1, scheduler) == "stop" and stopping.stopped


def test_poisson_loss_is_the_baselines():
    predictions = torch.rand(2, 5, 7) + 0.1
    targets = torch.rand(2, 5, 7) * 3
    expected = torch.nn.PoissonNLLLoss(log_input=False, eps=1e-8, reduction="sum")
    torch.testing.assert_close(poisson_loss(predictions, targets), expected(predictions, targets))
    targets[0, 0, 0] = float("nan")  # left out, not propagated
    assert torch.isfinite(poisson_loss(predictions, targets))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_and_compile_on_a_gpu(trained_run, tmp_path):
    config = sm.read_config(trained_run).with_overrides(
        {"device": "cuda", "amp": True, "compile": True, "max_epochs": 1,
         "out": str(tmp_path / "gpu")})
    run = sm.train(config)
    assert pd.read_csv(run / "metrics.csv")["validation_correlation"].notna().all()


def test_the_loss_scale_counts_every_trial_of_the_mouse(simulated_stores, tmp_path):
    import math

    import sensorium_data as sd
    from sensorium_models.training.options import resolve_model_config
    from sensorium_models.training.run import Trainer

    config = sm.TrainConfig(mice=(str(simulated_stores[0]),), batch_size=4, device="cpu",
                            model_config=TINY_FACTORIZED, progress=False)
    options = resolve_model_config(config.model, config.model_config)
    trainer = Trainer(config, options, tmp_path / "run", None)
    ds = sd.open_mouse(simulated_stores[0])
    with_files = int((ds["tier"] != "none").sum())
    assert with_files > int((ds["tier"] == "train").sum())  # the test tiers count too
    assert trainer.loss_scale == {ds.attrs["mouse"]: pytest.approx(math.sqrt(with_files / 4))}


def _copy(run: Path, folder: Path) -> Path:
    return Path(shutil.copytree(run, folder))


def test_damaged_checkpoints_are_named_with_the_fix(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path / "run")
    fix = r"copy it again from where the run was trained, or train a new run"
    best, last = run / "best.pt", run / "last.pt"
    data = best.read_bytes()
    best.write_bytes(data[: len(data) // 2])
    with pytest.raises(sm.CheckpointError, match=rf"{best} cannot be read as a checkpoint, "
                       rf"it is truncated or damaged \(.*\): {fix}"):
        sm.load_run(run)
    torch.save(torch.zeros(3), best)
    with pytest.raises(sm.CheckpointError, match=rf"{best} holds a Tensor, not a sensorium "
                       rf"checkpoint \(a dict of format 1 .*\): {fix}"):
        sm.load_run(run)
    payload = torch.load(trained_run / "best.pt", weights_only=True)
    del payload["state_dict"]["readouts.tiny-A.bias"]  # a file of another version, say
    torch.save(payload, best)
    with pytest.raises(sm.CheckpointError, match=rf"the weights in {best} do not fit the model "
                       r"that its run's config builds \(Error\(s\) in loading state_dict .*Missing "
                       r"key\(s\).*readouts.tiny-A.bias"):
        sm.load_run(run)
    shutil.copy(trained_run / "best.pt", last)
    with pytest.raises(sm.CheckpointError, match=rf"{last} lacks \['optimizer', 'scheduler', "
                       r"'stopping', 'history', 'rng'\], which a last.pt holds"):
        sm.load_run(run, checkpoint="last")
    last.write_bytes((trained_run / "last.pt").read_bytes()[:1000])
    config = dataclasses.replace(sm.read_config(run), score=False)
    with pytest.raises(sm.CheckpointError, match=rf"{last} cannot be read as a checkpoint"):
        sm.train(config, resume=run)


def test_an_empty_best_checkpoint_stops_a_resume_before_anything_changes(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path / "run")
    (run / "best.pt").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    config = dataclasses.replace(sm.read_config(run), max_epochs=3, score=False)
    with pytest.raises(sm.CheckpointError, match=rf"{run / 'best.pt'} is empty \(0 bytes\): copy "
                       "it again from where the run was trained, or train a new run"):
        sm.train(config, resume=run)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def _moved(trained_run: Path, stores: list[Path], folder: Path) -> tuple[Path, list[Path]]:
    """A copy of the run and of its recordings, its config.json pointing at the copies."""
    run = _copy(trained_run, folder / "run")
    copies = [Path(shutil.copytree(s, folder / "stores" / s.name)) for s in stores]
    config = json.loads((run / "config.json").read_text())
    config.update(mice=[str(c) for c in copies], out=str(run))
    (run / "config.json").write_text(json.dumps(config))
    return run, copies


def test_a_store_replaced_under_a_run_is_named_on_resume(trained_run, simulated_stores,
                                                         make_tree, tmp_path):
    from sensorium_data import convert

    run, stores = _moved(trained_run, simulated_stores, tmp_path)
    config = dataclasses.replace(sm.read_config(run), score=False)  # 2 epochs done: no training
    assert sm.train(config, resume=run) == run  # the copies are the run's recordings
    name = sm.read_config(trained_run).mice[0].rsplit("/", 1)[-1].removesuffix(".zarr")
    last = run / "last.pt"
    for tree, match in (
            (make_tree("dynamic9-9-9-Video-x", frames=200),
             rf"{last} was trained on \['tiny-A', 'tiny-B', 'tiny-C'\]; the run's mice now open "
             rf"as other recordings: dynamic9-9-9-Video-x \(opened from {stores[0]}\) instead of "
             r"tiny-A: put the run's recordings back where its config.json points \(mice\), or "
             r"train a new run on these"),
            (make_tree(name, n_neurons=5, frames=200),
             rf"{last} was trained with 24 neurons of mouse tiny-A \(opened from {stores[0]}\); "
             r"its recording now has 5: put the run's recordings back"),
            (make_tree(name, n_neurons=24, frames=200),  # the same count, other neurons
             rf"{last} was trained on other neurons of mouse tiny-A \(opened from {stores[0]}\): "
             r"the 24 neurons' coordinates differ from the recording's now")):
        shutil.rmtree(stores[0])
        convert(tree, stores[0], progress=False)
        with pytest.raises(sm.CheckpointError, match=match):  # a finished run opens nothing
            sm.train(dataclasses.replace(config, max_epochs=3), resume=run)


def _hold(lock: Path):
    """Another process holding a run directory's lock, as a training one does."""
    import subprocess
    import sys

    code = ("import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
            "print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_run_directory_another_process_trains_into_is_refused(trained_run, simulated_stores,
                                                                tmp_path):
    run = _copy(trained_run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    holder = _hold(run / ".lock")
    try:
        config = dataclasses.replace(sm.read_config(run), max_epochs=3, score=False)
        with pytest.raises(FileExistsError, match=rf"another process is training into {run} \(it "
                           rf"holds {run / '.lock'}\); wait for it to end \(then "
                           rf"train\(read_config\('{run}'\), resume='{run}'\) continues from "
                           r"its last epoch\), or pass another out folder"):
            sm.train(config, resume=run)
        new = tmp_path / "new"
        new.mkdir()
        holder2 = _hold(new / ".lock")  # a new run started a moment earlier into the same --out
        try:
            config = sm.TrainConfig(mice=(str(simulated_stores[0]),), out=str(new),
                                    model_config=TINY_FACTORIZED, device="cpu", progress=False)
            with pytest.raises(FileExistsError, match=rf"another process is training into {new} "
                               r"\(it holds .*\); wait for it to end, or pass another out folder"):
                sm.train(config)
            assert [p.name for p in new.iterdir()] == [".lock"]  # nothing written
        finally:
            holder2.communicate("")
    finally:
        holder.communicate("")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_default_run_names_are_unique_within_one_second(tmp_path, monkeypatch):
    from datetime import datetime

    from sensorium_models.training import run as run_module
    from sensorium_models.training.lock import claim

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 22, 10, 15, 0)

    from sensorium_models.training import lock as lock_module

    monkeypatch.setattr(lock_module, "datetime", Frozen)  # where new_run_dir names the run
    monkeypatch.chdir(tmp_path)
    config = sm.TrainConfig(model="ln")
    first, second = run_module.new_run_dir(config), run_module.new_run_dir(config)
    assert first == second == Path("runs/ln-20261122-101500")  # started in the same second
    with claim(first, new=True, numbered=True) as a, claim(second, new=True, numbered=True) as b:
        assert (a, b) == (first, Path("runs/ln-20261122-101500-1"))
        with claim(first, new=True, numbered=True) as c:
            assert c == Path("runs/ln-20261122-101500-2")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "ln-20261122-101500", "ln-20261122-101500-1", "ln-20261122-101500-2"]


def test_a_run_that_fails_before_training_leaves_no_folder(simulated_stores, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownMouseError):
        sm.train(sm.TrainConfig(mice=("K",)))  # the default folder runs/<model>-<time>
    assert list(tmp_path.iterdir()) == []
    empty = tmp_path / "mine"
    empty.mkdir()  # a user's empty folder stays, empty
    with pytest.raises(UnknownMouseError):
        sm.train(sm.TrainConfig(mice=("K",), out=str(empty)))
    assert list(tmp_path.iterdir()) == [empty] and list(empty.iterdir()) == []


def test_eval_mode_predictions_are_on_the_scale_of_the_responses(trained_run):
    # batch norm evaluates with statistics recomputed for the final weights (docs/models.md,
    # "Batch norm"): on training clips, eval mode predicts what train mode does, and the
    # validation tier's predicted mean is within 2x of the recorded one (pooled; per mouse
    # 0.50-0.92 here, with normalize="official" on 5 train trials per mouse)
    from sensorium_models.training import data

    config = sm.read_config(trained_run)
    datasets = data.open_run_mice(trained_run)
    model = sm.load_run(trained_run).eval()
    ratios, sums = [], torch.zeros(2)
    with torch.no_grad():
        for batch in data.iterate(data.clips(config, datasets), config.batch_size):
            inputs = {"mouse": batch["mouse"], "behavior": batch["behavior"]}
            evaluated = model(batch["videos"], **inputs)  # (B, N, T_out)
            model.core.train()  # the batch's own statistics, as in training
            trained = model(batch["videos"], **inputs)
            model.core.eval()
            ratios.append(float(evaluated.mean() / trained.mean()))
            sums += torch.stack([evaluated.sum(), trained.sum()])
    # over all clips within 25 %; per batch of 4 clips within 2x (train mode normalises each
    # batch by its own statistics, which vary from batch to batch)
    assert 0.8 < float(sums[0] / sums[1]) < 1.25, ratios
    assert 0.5 < min(ratios) and max(ratios) < 2.0, ratios
    scores = pd.read_csv(trained_run / "scores.csv")
    oracle = scores[(scores["tier"] == "oracle") & (scores["mouse"] == "all")]
    assert 0.5 < float(oracle["calibration"].iloc[0]) < 2.0  # all mice's neurons pooled
    # nothing flagged on the validation tier nor pooled; a recording's out-of-domain rows may
    # be (tiny-C's at 0.09x): those stimuli drive the simulated neurons 3-4x harder than the
    # natural videos trained on, and a model that has learned little beyond the mean predicts
    # about its training mean there (docs/training.md, "When training goes wrong")
    shown = scores[(scores["tier"] == "oracle") | (scores["mouse"] == "all")]
    assert shown["warning"].isna().all(), shown[["mouse", "tier", "calibration", "warning"]]


def test_a_run_whose_correlation_stays_at_zero_stops_naming_the_learning_rate(
        simulated_stores, tmp_path, monkeypatch, caplog):
    from sensorium_models.training import run as run_module
    from sensorium_models.training.guards import TrainingFailedError

    monkeypatch.setattr(run_module, "validate", lambda *args, **kwargs: 0.0)
    config = sm.TrainConfig(model="ln", mice=(str(simulated_stores[0]),), max_epochs=5,
                            batch_size=4, device="cpu", progress=False,
                            out=str(tmp_path / "run"))
    assert config.lr is None  # the model's own
    with caplog.at_level("WARNING", logger="sensorium_models.training"), pytest.raises(
            TrainingFailedError, match=r"training stopped after epoch 2: the oracle correlation "
            r"has been 0.0000 for 2 epochs: .* learning rate too high for this model and data "
            r"\(lr 0.0005\). Start a new run with a lower one, e.g. lr=5e-05 .*metrics.csv"):
        sm.train(config)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 0.0005
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2
    assert re.search(r"few train trials in .*Pass normalize='per_neuron'", caplog.text)


def test_the_default_learning_rate_is_the_models():
    from sensorium_models.training.config import default_lr

    assert default_lr("ln") == 5e-4
    assert default_lr("factorized_baseline") == default_lr("gru_baseline") == 5e-3
    with pytest.raises(sm.ConfigError, match=r"min_lr=0.001 is above lr=0.0005"):
        sm.TrainConfig(model="ln", min_lr=1e-3)


def test_resuming_a_finished_run_says_it_is_finished(trained_run, caplog):
    before = (trained_run / "last.pt").read_bytes()
    with caplog.at_level("WARNING", logger="sensorium_models.training.run"):
        assert sm.train(sm.read_config(trained_run), resume=trained_run) == trained_run
    assert re.search(r"is finished: it has run max_epochs=2 epochs; pass a larger max_epochs "
                     r"to train it longer; nothing to resume", caplog.text)
    assert (trained_run / "last.pt").read_bytes() == before


@pytest.mark.parametrize("module", ["config", "options"])
def test_config_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"sensorium_models.training.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
