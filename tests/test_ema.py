"""The moving average of the weights: its formula after k steps, buffers included."""

from __future__ import annotations

import pytest
import torch

from sensorium_models.training.ema import WeightAverage


def test_the_average_after_k_steps_is_its_formula_for_weights_and_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    decay, k = 0.9, 5
    average = WeightAverage(model, decay)
    states = [{n: v.clone() for n, v in model.state_dict().items()}]  # w_0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(k):
        model(torch.randn(8, 3)).pow(2).sum().backward()  # moves the running statistics too
        optimizer.step()
        optimizer.zero_grad()
        average.update(model)
        states.append({n: v.clone() for n, v in model.state_dict().items()})
    for name, value in average.module.state_dict().items():
        if not value.is_floating_point():  # the step count is copied
            assert value == states[-1][name] == k
            continue
        # e_k = d^k w_0 + sum_i (1 - d) d^(k - i) w_i
        expected = decay ** k * states[0][name] + sum(
            (1 - decay) * decay ** (k - i) * states[i][name] for i in range(1, k + 1))
        torch.testing.assert_close(value, expected)
        assert not torch.equal(value, states[-1][name])  # it lags behind the weights
    assert average.updates == k
    assert not average.module.training
    assert not any(p.requires_grad for p in average.module.parameters())


def test_the_state_round_trips_and_a_reset_starts_again():
    model = torch.nn.Linear(2, 2)
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)
    copy = WeightAverage(torch.nn.Linear(2, 2), 0.5)
    copy.load_state_dict(average.state_dict())
    assert copy.updates == 1
    torch.testing.assert_close(copy.module.weight, average.module.weight)
    copy.reset(model.state_dict())
    torch.testing.assert_close(copy.module.weight, model.weight.detach())


def test_a_decay_outside_zero_to_one_is_named():
    with pytest.raises(ValueError, match=r"decay=1.0; the moving average's decay must lie in "
                       r"\[0, 1\)"):
        WeightAverage(torch.nn.Linear(1, 1), 1.0)
