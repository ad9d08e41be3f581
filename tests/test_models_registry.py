"""The registries: readouts are chosen by name, output nonlinearities by name, modules found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import sensorium_models as sm
from sensorium_models.models import Readout, register_readout
from sensorium_models.models.encoder import OUTPUTS, initial_bias

MICE = {"a": sm.MouseSpec(n_neurons=3, coords=np.random.default_rng(0).normal(size=(3, 2)),
                          mean_response=np.array([0.5, 2.0, 4.0]))}


class _MeanPool(Readout):
    """Each neuron: a weighted mean of the features over space, for the registry test."""

    def __init__(self, in_channels: int, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n, in_channels))
        self.seen_behavior: Tensor | None = None

    def forward(self, x: Tensor, shift: Tensor | None = None,
                behavior: Tensor | None = None) -> Tensor:
        self.seen_behavior = behavior
        return torch.einsum("bcthw,nc->bnt", x, self.weight) / (x.shape[3] * x.shape[4])

    def regularizer(self) -> Tensor:
        return self.weight.abs().sum()


@register_readout("test_mean_pool")
def _mean_pool(in_channels: int, spec: sm.MouseSpec, config: sm.models.ModelConfig) -> _MeanPool:
    return _MeanPool(in_channels, spec.n_neurons)


def test_readout_is_chosen_by_name_and_sees_the_behaviour_of_its_frames() -> None:
    model = sm.create_model("ln", mice=MICE, channels=2, readout="test_mean_pool")
    readout = model.readouts["a"]
    assert isinstance(readout, _MeanPool)
    behavior = torch.arange(1 * 4 * 12, dtype=torch.float32).reshape(1, 4, 12)
    out = model(torch.randn(1, 3, 12, 36, 64), mouse="a", behavior=behavior)
    assert out.shape == (1, 3, 12 - model.burn_in)
    # zero weights: the drive is 0 and ELU + 1 of 0 is 1
    torch.testing.assert_close(out, torch.ones_like(out))
    assert readout.seen_behavior is not None
    torch.testing.assert_close(readout.seen_behavior, behavior[:, :, model.burn_in:])
    assert "test_mean_pool" in sm.list_readouts()


def test_unknown_readout_names_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"readout='gausian' .*registered readouts: .*gaussian"):
        sm.create_model("ln", mice=MICE, readout="gausian")


def test_registering_a_readout_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'gaussian' is already registered"):
        register_readout("gaussian")(_mean_pool)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_the_initial_bias_is_the_inverse_of_the_output(output: str) -> None:
    model = sm.create_model("ln", mice=MICE, channels=2, output=output)
    bias = model.readouts["a"].bias.detach()
    torch.testing.assert_close(model.output(bias), torch.tensor([0.5, 2.0, 4.0]), rtol=1e-5,
                               atol=1e-5)
    assert initial_bias(None, output) is None


def test_unknown_output_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"output='relu'; choose one of elu1, exp, softplus"):
        sm.create_model("ln", mice=MICE, output="relu")


def test_a_string_option_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="option 'readout' of model 'ln' must be a string"):
        sm.create_model("ln", mice=MICE, readout=3)


def test_every_module_of_the_models_package_registers_on_import() -> None:
    import pkgutil
    import sys

    import sensorium_models.models as package

    for module in pkgutil.iter_modules(package.__path__):
        assert f"sensorium_models.models.{module.name}" in sys.modules
