"""Batches that mix mice: one core pass, each readout on its own mouse's clips, and a loss
that counts each clip for its own mouse only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sensorium_models as sm
from sensorium_models.training.loop import batch_loss, poisson_loss
from sensorium_models.training.mixed import mixed_forward, rows_by_mouse
from sensorium_models.training.predict import no_autocast

RNG = np.random.default_rng(0)
MICE = {m: sm.MouseSpec(n_neurons=n, coords=RNG.normal(size=(n, 2)) * 100)
        for m, n in (("A", 5), ("B", 3), ("C", 4))}


def mixed_batch(mice: list[str], frames: int = 22, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "mouse": mice,
        "videos": torch.randn(len(mice), 3, frames, 36, 64, generator=g),
        "behavior": torch.randn(len(mice), 4, frames, generator=g),
        "responses": [torch.rand(MICE[m].n_neurons, frames, generator=g) * 2 for m in mice],
    }


@pytest.fixture
def model() -> sm.models.VideoEncoder:
    torch.manual_seed(0)
    # eval mode: batch norm uses its running statistics, so a clip's output does not depend
    # on the other clips of its batch and the mixed pass can be compared clip by clip
    return sm.create_model("factorized_baseline", mice=MICE, hidden_channels=(4, 4, 4),
                           feature_reg=0.1).eval()


def test_each_readout_reads_only_its_mouses_clips(model):
    batch = mixed_batch(["B", "A", "B", "A", "A"])
    outs = mixed_forward(model, batch["videos"], batch["behavior"], batch["mouse"])
    assert list(outs) == ["B", "A"]  # C has no clip: its readout is not run
    for mouse, rows in rows_by_mouse(batch["mouse"]).items():
        alone = model(batch["videos"][rows], mouse=mouse, behavior=batch["behavior"][rows])
        assert outs[mouse].shape == (len(rows), MICE[mouse].n_neurons, 22 - 18)
        torch.testing.assert_close(outs[mouse], alone)


def test_the_loss_counts_each_clip_for_its_own_mouse_only(model):
    batch = mixed_batch(["B", "A", "B", "A", "A"])
    scale = {"A": 2.0, "B": 0.5, "C": 7.0}
    loss = batch_loss(model, model, batch, loss_scale=scale, device=torch.device("cpu"),
                      autocast=no_autocast)
    expected = model.core.regularizer()
    for mouse, rows in rows_by_mouse(batch["mouse"]).items():
        out = model(batch["videos"][rows], mouse=mouse, behavior=batch["behavior"][rows])
        targets = torch.stack([batch["responses"][r][:, -out.shape[-1]:] for r in rows])
        expected = expected + scale[mouse] * poisson_loss(out, targets)
        expected = expected + model.readouts[mouse].regularizer()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # the mask: no gradient reaches the readout of a mouse without clips in the batch
    assert all(p.grad is None for p in model.readouts["C"].parameters())
    assert all(p.grad is None for p in model.shifters["C"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.readouts["A"].parameters())


def test_changing_one_mouses_targets_leaves_the_other_mouses_gradients(model):
    def readout_gradients(batch: dict, mouse: str) -> list[torch.Tensor]:
        model.zero_grad()
        batch_loss(model, model, batch, loss_scale={"A": 1.0, "B": 1.0},
                   device=torch.device("cpu"), autocast=no_autocast).backward()
        return [p.grad.clone() for p in model.readouts[mouse].parameters()
                if p.grad is not None]

    batch = mixed_batch(["A", "B", "A"])
    before = readout_gradients(batch, "A")
    batch["responses"][1] = batch["responses"][1] * 5  # B's targets only
    after = readout_gradients(batch, "A")
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)


def test_a_mixed_batch_with_an_unknown_mouse_is_named(model):
    batch = mixed_batch(["A", "B"])
    with pytest.raises(ValueError, match=r"unknown mouse 'Z'; this model has readouts for "
                       r"\['A', 'B', 'C'\]"):
        mixed_forward(model, batch["videos"], batch["behavior"], ["A", "Z"])
