"""The recipe keys of the trainer (optimizer, readout groups, schedule, mixed batches, CutMix,
moving average, precision, accumulation): validation, wiring, and resume mid-schedule."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sensorium_models as sm
from sensorium_models.training.loop import train_epoch
from sensorium_models.training.optim import build_optimizer
from sensorium_models.training.options import resolve_model_config
from sensorium_models.training.precision import resolve_precision
from sensorium_models.training.predict import no_autocast
from tests.conftest import TINY_FACTORIZED

RNG = np.random.default_rng(0)
MICE = {"A": sm.MouseSpec(n_neurons=5, coords=RNG.normal(size=(5, 2)) * 100)}
CPU = torch.device("cpu")


def tiny_ln() -> sm.models.VideoEncoder:
    torch.manual_seed(0)
    return sm.create_model("ln", mice=MICE, channels=2, spatial_kernel=3, temporal_kernel=3)


def clips(n: int, frames: int = 8, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"mouse": "A", "videos": torch.randn(n, 3, frames, 36, 64, generator=g),
            "behavior": torch.randn(n, 4, frames, generator=g),
            "responses": torch.rand(n, 5, frames, generator=g) * 2}


def rows(batch: dict, index: slice) -> dict:
    return {k: v if k == "mouse" else v[index] for k, v in batch.items()}


@pytest.mark.parametrize(("key", "value", "match"), [
    ("optimizer", "sgd", r"optimizer='sgd'; choose one of \['adam', 'adamw'\]"),
    ("schedule", "cosine", r"schedule='cosine'; choose one of \['plateau', 'warmup_cosine'\]"),
    ("precision", "fp8", r"precision='fp8'; choose one of \['auto', 'fp32', 'bf16', 'fp16'\]"),
    ("weight_decay", -0.1, r"weight_decay=-0.1; it must be a finite number >= 0"),
    ("readout_weight_decay", float("inf"), r"readout_weight_decay=inf; it must be a finite"),
    ("readout_lr", 0.0, r"readout_lr=0.0; a learning rate must be positive \(or leave it "
                        r"unset: the readouts then train at lr\)"),
    ("cutmix", 1.5, r"cutmix=1.5; it is a probability per clip, in \[0, 1\] \(0: off\)"),
    ("ema", 1.0, r"ema=1.0; the decay of the weights' moving average must lie in \[0, 1\) "
                 r"\(0: off; the 2023 winner used 0.999\)"),
    ("accumulate", 0, r"accumulate=0; it must be a positive integer \(rounds of batches per "
                      r"optimizer step; 1: one round\)"),
    ("mixed_mice", "yes", r"config key 'mixed_mice' must be bool; got 'yes'"),
    ("warmup_epochs", 2, r"warmup_epochs=2.0, constant_epochs=0.0 with schedule='plateau': "
                         r"they shape schedule='warmup_cosine' only; set schedule="),
])
def test_bad_recipe_values_are_named(key, value, match):
    with pytest.raises(sm.ConfigError, match=match):
        sm.TrainConfig(**{key: value})


def test_a_warmup_longer_than_the_run_is_named():
    with pytest.raises(sm.ConfigError, match=r"warmup_epochs=3.0 \+ constant_epochs=8.0 exceed "
                       r"max_epochs=10: the cosine would never start; raise max_epochs"):
        sm.TrainConfig(schedule="warmup_cosine", warmup_epochs=3, constant_epochs=8,
                       max_epochs=10)


def test_the_recipe_keys_read_from_a_file(tmp_path):
    (tmp_path / "r.toml").write_text(
        'optimizer = "adamw"\nlr = 1e-3\nweight_decay = 0.05\nschedule = "warmup_cosine"\n'
        "warmup_epochs = 3\nconstant_epochs = 0\nmax_epochs = 21\nmin_lr = 1e-5\n"
        "mixed_mice = true\ncutmix = 0.5\nema = 0.999\nprecision = \"fp16\"\naccumulate = 2\n"
        "readout_lr = 4e-3\n")
    config = sm.TrainConfig.from_file(tmp_path / "r.toml")
    assert (config.warmup_epochs, config.readout_lr, config.readout_weight_decay) == (
        3.0, 4e-3, None)
    assert sm.TrainConfig.from_dict(config.to_dict()) == config


def test_readouts_get_their_own_group_only_when_asked():
    model = tiny_ln()
    one = build_optimizer(model, sm.TrainConfig(lr=1e-3, weight_decay=0.05))
    assert isinstance(one, torch.optim.AdamW) and len(one.param_groups) == 1
    two = build_optimizer(model, sm.TrainConfig(optimizer="adam", lr=4.8e-3,
                                                weight_decay=0.18, readout_lr=3.6e-3,
                                                readout_weight_decay=0.39))
    assert type(two) is torch.optim.Adam
    core, readout = two.param_groups
    assert (core["lr"], core["weight_decay"]) == (4.8e-3, 0.18)
    assert (readout["lr"], readout["weight_decay"]) == (3.6e-3, 0.39)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in core["params"]} == {"core"}
    assert {names[id(p)].split(".")[0] for p in readout["params"]} == {"readouts", "shifters"}
    assert len(core["params"]) + len(readout["params"]) == len(list(model.parameters()))
    only_wd = build_optimizer(model, sm.TrainConfig(lr=1e-3, readout_weight_decay=0.0))
    assert [g["lr"] for g in only_wd.param_groups] == [1e-3, 1e-3]


def test_accumulating_two_half_batches_equals_one_big_batch():
    batch = clips(8)
    params = []
    for batches, per_step in (([batch], 1), ([rows(batch, slice(0, 4)),
                                              rows(batch, slice(4, 8))], 2)):
        model = tiny_ln()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        steps = []
        # the same RNG stream: the readout's position samples of the 8 clips are the same
        train_epoch(model, model, batches, optimizer, loss_scale={"A": 0.5},
                    batches_per_step=per_step, device=CPU, autocast=no_autocast,
                    on_step=lambda steps=steps: steps.append(1), regularizer_scale=1 / per_step)
        assert len(steps) == 1
        params.append([p.detach().clone() for p in model.parameters()])
    assert any(not torch.equal(p, q) for p, q in zip(params[0], tiny_ln().parameters(),
                                                      strict=True))  # it trained
    for big, accumulated in zip(*params, strict=True):
        torch.testing.assert_close(accumulated, big, rtol=1e-5, atol=1e-6)


def test_fp16_scales_the_loss_and_steps_through_the_scaler():
    config = sm.TrainConfig(precision="fp16")
    autocast, scaler = resolve_precision(config, CPU)
    assert scaler is not None and scaler.get_scale() == 65536.0
    model = tiny_ln()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    # the summed loss times 2**16 overflows fp16's gradients: the scaler skips those steps and
    # halves its scale until they fit, then steps
    train_epoch(model, model, [clips(2, seed=s) for s in range(12)], optimizer,
                loss_scale={"A": 1.0}, batches_per_step=1, device=CPU, autocast=autocast,
                scaler=scaler)
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert scaler.get_scale() < 65536.0
    bf16, none = resolve_precision(sm.TrainConfig(precision="bf16"), CPU)
    with bf16():
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    assert none is None
    assert resolve_precision(sm.TrainConfig(), CPU)[0] is no_autocast  # auto: fp32 on a CPU


def test_the_trainer_wires_accumulation_groups_and_mixed_batches(simulated_stores, tmp_path):
    import math

    from sensorium_models.training.run import Trainer

    config = sm.TrainConfig(mice=tuple(str(s) for s in simulated_stores), batch_size=2,
                            accumulate=2, device="cpu", model_config=TINY_FACTORIZED,
                            readout_lr=1e-3, progress=False)
    options = resolve_model_config(config.model, config.model_config)
    trainer = Trainer(config, options, tmp_path / "run", None)
    assert trainer.batches_per_step == 3 * 2  # one batch of each of 3 mice, twice
    n = {m: int((ds["tier"] != "none").sum()) for m, ds in trainer.datasets.items()}
    assert trainer.loss_scale == {m: pytest.approx(math.sqrt(k / 4)) for m, k in n.items()}
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [5e-3, 1e-3]
    mixed = Trainer(dataclasses.replace(config, mixed_mice=True, accumulate=1), options,
                    tmp_path / "mixed", None)
    assert mixed.sampler.mode == "mixed" and mixed.batches_per_step == 1


def recipe_config(stores: list[Path], out: Path) -> sm.TrainConfig:
    return sm.TrainConfig(
        mice=tuple(str(s) for s in stores[:2]), model_config=TINY_FACTORIZED, frames=30,
        batch_size=4, max_epochs=2, schedule="warmup_cosine", warmup_epochs=1,
        constant_epochs=0, min_lr=1e-4, optimizer="adamw", weight_decay=0.05,
        mixed_mice=True, cutmix=0.5, ema=0.9, device="cpu", progress=False, score=False,
        out=str(out))


def test_resume_mid_schedule_gives_the_lr_and_average_of_a_straight_run(
        simulated_stores, tmp_path, monkeypatch):
    from sensorium_models.training import run as run_module

    straight = sm.train(recipe_config(simulated_stores, tmp_path / "straight"))
    config = recipe_config(simulated_stores, tmp_path / "resumed")
    real, calls = run_module.train_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(run_module, "train_epoch", interrupted_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            sm.train(config)
    resumed = sm.train(config, resume=tmp_path / "resumed")
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] > 0
    assert a["scheduler"]["_last_lr"] == b["scheduler"]["_last_lr"] == pytest.approx([1e-4])
    assert a["ema"]["updates"] == b["ema"]["updates"] == a["scheduler"]["last_epoch"]
    for key, value in a["ema"]["state_dict"].items():
        torch.testing.assert_close(b["ema"]["state_dict"][key], value)
    metrics = [pd.read_csv(r / "metrics.csv").drop(columns="seconds") for r in (straight,
                                                                                 resumed)]
    pd.testing.assert_frame_equal(*metrics)
    lrs = metrics[0]["lr"].tolist()  # each epoch's first step: warm-up, then the cosine's
    assert lrs[0] < lrs[1] == pytest.approx(5e-3)
    best = torch.load(straight / "best.pt", weights_only=True)  # the average's weights
    assert best["epoch"] == metrics[0]["validation_correlation"].idxmax() + 1
    with pytest.raises(sm.ConfigError, match=r"max_epochs=5: this run's warmup_cosine"):
        sm.train(dataclasses.replace(config, max_epochs=5), resume=resumed)


def test_a_run_from_before_the_recipe_keys_still_resumes(trained_run, tmp_path):
    run = Path(shutil.copytree(trained_run, tmp_path / "old"))
    values = json.loads((run / "config.json").read_text())
    new = ("optimizer", "readout_lr", "readout_weight_decay", "schedule", "warmup_epochs",
           "constant_epochs", "mixed_mice", "cutmix", "ema", "accumulate", "precision")
    (run / "config.json").write_text(json.dumps({k: v for k, v in values.items()
                                                 if k not in new}))
    state = torch.load(run / "last.pt", weights_only=True)
    assert "ema" not in state and "scaler" not in state
    config = dataclasses.replace(sm.read_config(run), max_epochs=3, score=False)
    assert (config.optimizer, config.schedule, config.weight_decay) == ("adamw", "plateau", 0.01)
    sm.train(config, resume=run)
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2, 3]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_recipe_on_a_gpu_with_compile(simulated_stores, tmp_path, precision):
    config = dataclasses.replace(recipe_config(simulated_stores, tmp_path / precision),
                                 device="cuda", precision=precision, compile=True, accumulate=2)
    run = sm.train(config)
    assert pd.read_csv(run / "metrics.csv")["validation_correlation"].notna().all()
    state = torch.load(run / "last.pt", weights_only=True)
    assert ("scaler" in state) == (precision == "fp16")
    assert state["ema"]["updates"] == state["scheduler"]["last_epoch"]


def test_the_winners_recipes_in_the_docs_are_valid_configs():
    import re
    import tomllib

    text = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    blocks = re.findall(r"```toml\n(# (?:DwiseNeuro|Dynamic-V1FM|ViV1T).*?)```", text, re.S)
    configs = [sm.TrainConfig.from_dict(tomllib.loads(b)) for b in blocks]
    assert [(c.schedule, c.mixed_mice, c.ema) for c in configs] == [
        ("warmup_cosine", True, 0.999), ("warmup_cosine", False, 0.0), ("plateau", False, 0.0)]
