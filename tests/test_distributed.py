"""Training on two CPU processes (gloo, loopback): the gradients of the whole batch, a rank
that dies, resume on another number of processes, torchrun through ``sensorium train --nproc``,
and the options that cannot train distributed."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import sensorium_models as sm
from sensorium_models import cli
from sensorium_models.training import distributed
from sensorium_models.training.config import ConfigError, TrainConfig
from sensorium_models.training.options import resolve_model_config

LIMIT = 180  # seconds a two-process test may take before it is killed and fails


def _config(stores: list[Path], **overrides: object) -> TrainConfig:
    # ln has no batch norm: two ranks with half the batch each compute exactly what one
    # process computes with the whole batch (batch norm would see half-batch statistics)
    values = dict(model="ln", mice=tuple(str(s) for s in stores[:2]), batch_size=4,
                  device="cpu", progress=False, score=False, normalize="per_neuron")
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join(rank: int, size: int, port: int) -> None:
    """Make this process rank ``rank`` of ``size``, as torchrun would."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def first_step_gradients(config: TrainConfig, folder: Path) -> dict[str, torch.Tensor]:
    """The gradients of the first optimizer step of epoch 1, as the trainer computes them."""
    from sensorium_models.training.loop import batch_loss
    from sensorium_models.training.losses import get_loss
    from sensorium_models.training.run import Trainer

    trainer = Trainer(config, resolve_model_config(config.model, config.model_config),
                      folder, None)
    trainer.clips.set_epoch(1)
    trainer.sampler.set_epoch(1)
    # the readouts at their mean positions: in training each process draws its own positions
    trainer.model.eval()
    batches = iter(trainer.loader)
    for _ in range(trainer.batches_per_step):
        loss = batch_loss(trainer.model, trainer.forward, next(batches),
                          loss_scale=trainer.loss_scale, device=trainer.device,
                          autocast=trainer.autocast, criterion=get_loss(config.loss))
        loss.backward()
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def _gradients_rank(rank: int, size: int, port: int, values: str, out: str) -> None:
    _join(rank, size, port)
    config = TrainConfig.from_dict(json.loads(values))
    with distributed.session(config) as world:
        grads = first_step_gradients(config, Path(out).parent)
        if world.main:
            torch.save(grads, out)


def _train_rank(rank: int, size: int, port: int, values: str, die_in_epoch: int,
                report: str) -> None:
    """Train as rank ``rank``; rank 1 dies (no exception, no goodbye) when epoch
    ``die_in_epoch`` starts; rank 0 writes what stopped it to ``report``."""
    from sensorium_models.training import run as run_module

    _join(rank, size, port)
    epoch_of = run_module.train_epoch

    def dying(*args, **kwargs):
        if rank == 1 and dying.calls == die_in_epoch - 1:
            os._exit(3)
        dying.calls += 1
        return epoch_of(*args, **kwargs)

    dying.calls = 0  # type: ignore[attr-defined]
    run_module.train_epoch = dying  # type: ignore[assignment]
    try:
        sm.train(TrainConfig.from_dict(json.loads(values)))
    except Exception as e:
        if rank == 0:
            Path(report).write_text(f"{type(e).__name__}: {e}")
        raise


def _start(target, size: int, *args: object) -> list[multiprocessing.Process]:
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    processes = [context.Process(target=target, args=(rank, size, port, *args))
                 for rank in range(size)]
    for p in processes:
        p.start()
    return processes


def _wait(processes: list[multiprocessing.Process]) -> list[int | None]:
    for p in processes:
        p.join(LIMIT)
    alive = [p for p in processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} rank(s) still running after {LIMIT} s"
    return [p.exitcode for p in processes]


def test_two_ranks_with_half_the_batch_give_the_gradients_of_the_whole_batch(
        simulated_stores, tmp_path):
    config = _config(simulated_stores)
    out = tmp_path / "two" / "grads.pt"
    out.parent.mkdir()
    processes = _start(_gradients_rank, 2, json.dumps(config.to_dict()), str(out))
    assert _wait(processes) == [0, 0]
    two = torch.load(out, weights_only=True)
    one = first_step_gradients(config, tmp_path)
    assert set(two) == set(one) and len(one) > 2
    for name, grad in one.items():
        torch.testing.assert_close(two[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    assert any(float(g.abs().sum()) > 0 for g in one.values())


def test_a_rank_that_dies_stops_the_other_and_the_run_resumes_on_any_number_of_processes(
        simulated_stores, tmp_path):
    run = tmp_path / "run"
    config = _config(simulated_stores, max_epochs=2, out=str(run))
    report = tmp_path / "report.txt"
    codes = _wait(_start(_train_rank, 2, json.dumps(config.to_dict()), 2, str(report)))
    assert codes[1] == 3 and codes[0] != 0
    message = report.read_text()
    assert message.startswith("DistributedError: rank 0 of 2 stopped in epoch 2: another rank "
                              "failed or stopped answering"), message
    assert f"{run / 'last.pt'} holds epoch 1 intact" in message
    assert f"sensorium train --resume {run}` (any --nproc)" in message
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1]
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in ("last.pt", "best.pt", "config.json", "metrics.csv"):
        (copy / f).write_bytes((run / f).read_bytes())
    # the run resumed on one process here, and on two by torchrun
    sm.train(sm.read_config(copy), resume=copy)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "sensorium_models.cli", "train", "--nproc",
                           "2", "--resume", str(run)], env=env, capture_output=True,
                          text=True, timeout=LIMIT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # rank 0 reports
    one, two = (pd.read_csv(f / "metrics.csv") for f in (copy, run))
    assert two["epoch"].tolist() == one["epoch"].tolist() == [1, 2]
    assert two.iloc[0].drop("seconds").equals(one.iloc[0].drop("seconds"))  # epoch 1 kept
    for folder in (copy, run):
        assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 2
        sm.load_run(folder)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"mixed_mice": True}, r"mixed_mice=true on 2 processes: .* train them on one process"),
    ({"batch_size": 5}, r"batch_size=5 on 2 processes: .* divisible by 2 \(e\.g\. 6\)"),
])
def test_what_cannot_train_distributed_is_refused(simulated_stores, overrides, message):
    with pytest.raises(ConfigError, match=message):
        distributed.check_config(_config(simulated_stores, **overrides), 2)
    distributed.check_config(_config(simulated_stores, **overrides), 1)


def test_an_ensemble_on_several_processes_is_refused(capsys):
    assert cli.main(["train", "--ensemble", "folds7", "--nproc", "2"]) == 2
    assert ("--ensemble folds7 on several processes: an ensemble trains its members one after "
            "another; drop --nproc" in capsys.readouterr().err)


@pytest.mark.parametrize(("variables", "message"), [
    ({"WORLD_SIZE": "two"}, r"torchrun's variables .*'WORLD_SIZE': 'two'.* are not integers"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK=2 with WORLD_SIZE=2; the rank must be in 0\.\.1"),
])
def test_torchrun_variables_that_make_no_sense_are_named(monkeypatch, variables, message):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        distributed.from_environment()


def test_train_arguments_rebuild_the_flags_without_nproc():
    args = cli.build_parser().parse_args(
        ["train", "--mice", "a.zarr", "b.zarr", "--nproc", "2", "--set", "lr=0.001",
         "--max-epochs", "3", "--out", "runs/x"])
    assert distributed.train_arguments(args) == [
        "--out", "runs/x", "--max-epochs", "3", "--mice", "a.zarr", "b.zarr", "--set",
        "lr=0.001"]


def _disagreeing_rank(rank: int, size: int, port: int, values: str, out: str) -> None:
    """Train with a validation that differs between the ranks: rank 0's improves every epoch,
    rank 1's worsens, as if its kernels rounded differently; write each rank's epochs."""
    from sensorium_models.training import run as run_module

    _join(rank, size, port)
    real = run_module.validate

    def differing(*args, **kwargs):
        differing.calls += 1
        real(*args, **kwargs)
        return 0.2 + 0.1 * differing.calls if rank == 0 else 0.4 - 0.1 * differing.calls

    differing.calls = 0  # type: ignore[attr-defined]
    run_module.validate = differing  # type: ignore[assignment]
    config = TrainConfig.from_dict(json.loads(values))
    folder = Path(out).parent / f"run{rank}"
    folder.mkdir()
    with distributed.session(config):
        options = resolve_model_config(config.model, config.model_config)
        trainer = run_module.Trainer(config, options, folder, None)
        trainer.fit()
        state = {f"{n}": t.detach().clone() for n, t in trainer.model.state_dict().items()}
        torch.save({"epochs": trainer.epoch, "state": state}, f"{out}.{rank}")


def test_ranks_decide_on_one_validation_and_keep_one_set_of_weights(simulated_stores, tmp_path):
    # Before, each rank took its own early-stopping decision: rank 1 stopped after its
    # patience while rank 0 trained on and waited for it in the next gradient exchange.
    config = _config(simulated_stores, max_epochs=4, patience=1, lr_decay_steps=1)
    out = tmp_path / "state.pt"
    assert _wait(_start(_disagreeing_rank, 2, json.dumps(config.to_dict()), str(out))) == [0, 0]
    zero, one = (torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1))
    assert zero["epochs"] == one["epochs"]
    assert zero["state"].keys() == one["state"].keys()
    for name, value in zero["state"].items():
        torch.testing.assert_close(one["state"][name], value, rtol=0, atol=0, msg=name)
