"""Training losses by name (sensorium_models/training/losses.py) and the config's ``loss`` key."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import sensorium_models as sm
from sensorium_models.training import losses
from sensorium_models.training.loop import poisson_loss


def test_poisson_correlation_is_poisson_plus_1000_times_one_minus_each_neurons_correlation():
    g = torch.Generator().manual_seed(0)
    predictions = torch.rand(3, 4, 20, generator=g) + 0.1
    targets = torch.rand(3, 4, 20, generator=g)
    # ViV1T's formula by hand: rows are (clip, frame), Pearson per neuron (numpy's corrcoef)
    p = predictions.permute(0, 2, 1).reshape(-1, 4).numpy().astype(np.float64)
    t = targets.permute(0, 2, 1).reshape(-1, 4).numpy().astype(np.float64)
    corr = np.array([np.corrcoef(p[:, n], t[:, n])[0, 1] for n in range(4)])
    expected = float(poisson_loss(predictions, targets)) + 1000 * float(np.sum(1 - corr))
    got = float(losses.poisson_correlation_loss(predictions, targets))
    assert got == pytest.approx(expected, rel=1e-5)
    assert losses.get_loss("poisson") is poisson_loss


def test_the_correlation_term_ignores_scale_and_nan_targets():
    y = torch.rand(2, 3, 10) + 0.5
    assert float(losses.correlation_loss(3 * y + 1, y)) == pytest.approx(0, abs=1e-5)
    with_nan = y.clone()
    with_nan[0, :, 5:] = float("nan")
    kept = torch.cat([y[0, :, :5], y[1]], dim=-1)[None]  # the finite rows only
    prediction = torch.rand(2, 3, 10)
    kept_prediction = torch.cat([prediction[0, :, :5], prediction[1]], dim=-1)[None]
    torch.testing.assert_close(losses.correlation_loss(prediction, with_nan),
                               losses.correlation_loss(kept_prediction, kept))


def test_the_correlation_term_has_gradients():
    predictions = (torch.rand(2, 3, 10) + 0.1).requires_grad_()
    losses.poisson_correlation_loss(predictions, torch.rand(2, 3, 10)).backward()
    assert predictions.grad is not None and bool(torch.isfinite(predictions.grad).all())


def test_unknown_losses_are_named():
    with pytest.raises(ValueError, match=r"unknown loss 'mse'; choose one of poisson, "
                                         r"poisson_correlation"):
        losses.get_loss("mse")
    with pytest.raises(sm.ConfigError, match=r"loss='mse'; choose one of \['poisson', "
                                             r"'poisson_correlation'\]"):
        sm.TrainConfig(loss="mse")
    assert sm.TrainConfig().loss == "poisson"


def test_docstring_examples():
    assert doctest.testmod(losses, optionflags=doctest.ELLIPSIS).failed == 0
