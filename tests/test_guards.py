"""sensorium_models.training.guards and batchnorm: a failed run stops with its cause; batch
norm evaluates with the statistics of the weights it has."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from sensorium_models.training.batchnorm import recompute_batch_norm
from sensorium_models.training.guards import failure

HEALTHY = [{"train_loss": 9.0 - e, "validation_correlation": 0.02 * e} for e in range(1, 6)]


def rows(losses, correlations):
    return [{"train_loss": loss, "validation_correlation": r}
            for loss, r in zip(losses, correlations, strict=True)]


def test_a_learning_run_passes():
    for epoch in range(1, len(HEALTHY) + 1):
        assert failure(HEALTHY[:epoch], lr=5e-3, val_tier="oracle") is None


def test_a_correlation_stuck_at_zero_names_the_learning_rate():
    history = rows([3.8e5, 7.3e5], [0.0, 0.0])
    message = failure(history, lr=5e-3, val_tier="oracle")
    assert message is not None
    assert "the oracle correlation has been 0.0000 for 2 epochs" in message
    assert "learning rate too high" in message and "e.g. lr=0.0005 (in the TrainConfig" in message
    assert "--set lr=0.0005" in message.cli  # what `sensorium train` prints
    assert failure(rows([3.8e5, 3.0e5], [0.0, 0.01]), lr=5e-3, val_tier="oracle") is None


def test_a_loss_growing_for_three_epochs_names_the_learning_rate():
    message = failure(rows([10, 12, 15, 20], [0.05] * 4), lr=1e-2, val_tier="oracle")
    assert message is not None and "grew in each of the last 3 epochs, from 10 to 20" in message
    assert "lr=0.001" in message and "--set lr=0.001" in message.cli
    # growing a little, or not every epoch: not stopped
    assert failure(rows([10, 10.1, 10.2, 10.3], [0.05] * 4), lr=1e-2, val_tier="oracle") is None
    assert failure(rows([10, 15, 14, 20], [0.05] * 4), lr=1e-2, val_tier="oracle") is None
    # a negative loss (Poisson without its constant) worsening a little: not stopped; by more
    # than half its size: stopped
    assert failure(rows([-100, -90, -80, -70], [0.05] * 4), lr=1e-2, val_tier="oracle") is None
    assert failure(rows([-100, -80, -60, -40], [0.05] * 4), lr=1e-2, val_tier="oracle")


def test_recomputed_statistics_are_those_of_the_current_weights():
    torch.manual_seed(0)
    core = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 1, bias=False), torch.nn.BatchNorm3d(3))
    batches = [{"videos": torch.randn(4, 2, 3, 5, 5) + i} for i in range(4)]
    for batch in batches:  # the moving averages of training
        core(batch["videos"])
    with torch.no_grad():
        core[0].weight.mul_(5)  # as an optimizer step after the last batch
    used = recompute_batch_norm(core, batches, device=torch.device("cpu"), autocast=nullcontext)
    assert used == 4
    features = torch.cat([core[0](b["videos"]) for b in batches]).detach()  # (B, C, T, H, W)
    norm = core[1]
    assert torch.allclose(norm.running_mean, features.mean((0, 2, 3, 4)), atol=1e-5)
    assert torch.allclose(norm.running_var, features.var((0, 2, 3, 4)), rtol=1e-4)
    assert core.training  # left as it was


def test_a_core_without_batch_norm_reads_no_batch():
    core = torch.nn.Conv3d(1, 1, 1)

    def no_batches():
        raise AssertionError("read")
        yield

    assert recompute_batch_norm(core, no_batches(), device=torch.device("cpu"),
                                autocast=nullcontext) == 0


def test_a_published_size_on_the_cpu_is_warned_with_the_measured_speed(caplog):
    from types import SimpleNamespace

    from sensorium_models.training.run import Trainer

    trainer = SimpleNamespace(device=torch.device("cpu"), published_size=True,
                              config=SimpleNamespace(model="factorized_baseline"))
    with caplog.at_level("INFO", logger="sensorium_models.training.run"):
        Trainer._report_speed(trainer, 19.3, 6)  # type: ignore[arg-type]
    assert "training on cpu: 19.3 s per batch, about 116 s per epoch of 6 batches" in caplog.text
    assert ("factorized_baseline at its published size trains on the CPU at 19.3 s per batch "
            "(measured), about 1.9 min per epoch of 6 batches. Train on a GPU "
            "(device='cuda')") in caplog.text
    caplog.clear()
    trainer.published_size = False  # narrowed: no warning
    with caplog.at_level("WARNING", logger="sensorium_models.training.run"):
        Trainer._report_speed(trainer, 19.3, 6)  # type: ignore[arg-type]
    assert not caplog.text
