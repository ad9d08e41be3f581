"""The LR schedules: warm-up, constant and cosine per optimizer step; the best epoch without
early stopping."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import sensorium_models as sm
from sensorium_models.training.schedule import (
    KeepBest,
    build_scheduler,
    build_stopping,
    check_resume,
    warmup_cosine_factor,
)
from sensorium_models.training.stopping import EarlyStopping


def two_groups(lr: float, readout_lr: float) -> torch.optim.Optimizer:
    core, readout = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.AdamW([{"params": [core], "lr": lr},
                              {"params": [readout], "lr": readout_lr}])


def test_warmup_constant_cosine_per_step_in_every_group():
    # 10 steps per epoch: warm-up steps 0-14, constant 15-29, cosine 30-59 down to min_lr
    config = sm.TrainConfig(lr=2e-3, readout_lr=4e-3, min_lr=2e-5, schedule="warmup_cosine",
                            warmup_epochs=1.5, constant_epochs=1.5, max_epochs=6)
    optimizer = two_groups(2e-3, 4e-3)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch=10)
    lrs = []
    for _ in range(60):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    core = [lr for lr, _ in lrs]
    assert core[0] == pytest.approx(2e-3 / 15)  # linear from 0: step s at (s + 1) / 15
    assert core[7] == pytest.approx(2e-3 * 8 / 15)
    assert core[14] == core[15] == core[29] == pytest.approx(2e-3)
    # halfway through the cosine (steps 30..59, 29 intervals), the mean of lr and min_lr
    halfway = 2e-5 + (2e-3 - 2e-5) * (1 + math.cos(math.pi * 14 / 29)) / 2
    assert core[44] == pytest.approx(halfway)
    assert core[59] == pytest.approx(2e-5)  # the last step of max_epochs trains at min_lr
    assert all(a > b for a, b in itertools.pairwise(core[30:]))
    # the readouts' group follows the same factors from its own LR: twice the core's
    assert all(r == pytest.approx(2 * c) for c, r in lrs)


def test_the_factor_after_the_planned_steps_stays_at_the_end():
    f = {"warmup": 0, "constant": 0, "total": 10, "final": 0.1}
    assert warmup_cosine_factor(0, **f) == 1.0
    assert warmup_cosine_factor(9, **f) == pytest.approx(0.1)
    assert warmup_cosine_factor(25, **f) == pytest.approx(0.1)


def test_plateau_is_the_default_with_early_stopping():
    config = sm.TrainConfig()
    optimizer = two_groups(5e-3, 5e-3)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch=10)
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert isinstance(build_stopping(config), EarlyStopping)
    assert isinstance(build_stopping(sm.TrainConfig(schedule="warmup_cosine")), KeepBest)


def test_keep_best_never_stops_on_a_worse_epoch():
    keep = KeepBest(threshold=1e-6)
    decisions = [keep.step(v, e) for e, v in enumerate([0.1, 0.05, 0.2, 0.1, 0.1, 0.1,
                                                         0.1, 0.1], 1)]
    assert decisions == ["improved", "worse", "improved"] + ["worse"] * 5
    assert (keep.best, keep.best_epoch, keep.stopped) == (0.2, 3, False)
    restored = KeepBest(threshold=1e-6)
    restored.load_state_dict(keep.state_dict())
    assert restored == keep
    assert keep.step(float("nan"), 9) == "stop" and keep.stopped


def test_a_cosine_run_cannot_change_max_epochs_on_resume():
    saved = sm.TrainConfig(schedule="warmup_cosine", warmup_epochs=1, max_epochs=10)
    check_resume(saved, saved)
    check_resume(sm.TrainConfig(max_epochs=10), sm.TrainConfig(max_epochs=20))  # plateau may
    with pytest.raises(sm.ConfigError, match=r"max_epochs=20: this run's warmup_cosine schedule "
                       r"spans its max_epochs=10 .* resume with max_epochs=10, or start a new "
                       "run"):
        check_resume(saved, sm.TrainConfig(schedule="warmup_cosine", warmup_epochs=1,
                                           max_epochs=20))
