"""The Gaussian readout and the shifter: positions, sampling, shapes, initialisation."""

from __future__ import annotations

import numpy as np
import torch

from sensorium_models.models.readout import GaussianReadout, standardise
from sensorium_models.models.shifter import Shifter

COORDS = np.random.default_rng(1).normal(size=(7, 2)) * 300 + 1000


def readout(**options) -> GaussianReadout:
    torch.manual_seed(0)
    return GaussianReadout(3, COORDS, **options)


def test_coordinates_are_centred_into_the_unit_square():
    grid = standardise(COORDS)
    assert grid.shape == (7, 2) and float(grid.abs().max()) == 1.0
    torch.testing.assert_close(grid.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    assert not standardise(np.ones((3, 2))).any()  # one position for all: no division by 0


def test_positions_are_means_in_eval_and_gaussian_draws_in_training():
    r = readout().eval()
    mu = r.mu
    assert mu.shape == (7, 2) and bool((mu.abs() <= 1).all())
    torch.testing.assert_close(r.positions(4), mu.expand(4, -1, -1))
    r.train()
    draws = r.positions(2000)
    assert bool((draws.abs() <= 1).all())
    with torch.no_grad():
        r.sigma.copy_(torch.tensor([[0.05, 0.0], [0.02, 0.03]]).expand(7, 2, 2))
        r.grid_mean[2].bias.zero_()
        r.grid_mean[2].weight.zero_()  # every mean at the centre, away from the clamp
        draws = r.positions(20000)
    cov = torch.cov(draws[:, 0].T)  # the draws of neuron 0
    s = r.sigma[0].detach()
    torch.testing.assert_close(cov, s @ s.T, atol=2e-4, rtol=0.05)


def test_a_constant_feature_map_reads_out_its_value_everywhere():
    r = readout(bias=np.arange(7.0))
    x = torch.ones(2, 3, 5, 9, 11)  # (B, C, T, H, W)
    out = r(x, shift=torch.zeros(2, 5, 2))
    assert out.shape == (2, 7, 5)
    torch.testing.assert_close(out, 1 + torch.arange(7.0)[None, :, None].expand(2, 7, 5))


def test_positions_past_the_edge_read_the_edge():
    r = readout().eval()
    x = torch.zeros(1, 3, 1, 9, 11)
    x[..., :, -1] = 4.0  # the right column
    out = r(x, shift=torch.tensor([[[5.0, 0.0]]]))  # everyone far to the right
    torch.testing.assert_close(out, torch.full((1, 7, 1), 4.0))


def test_reads_the_feature_at_the_position_and_shifts_per_frame():
    r = readout().eval()
    with torch.no_grad():  # all neurons at the top-left corner (-1, -1)
        r.grid_mean[2].weight.zero_()
        r.grid_mean[2].bias.fill_(-50.0)
    x = torch.zeros(1, 3, 2, 9, 11)
    x[:, :, :, 0, 0] = 3.0  # the corner pixel
    x[:, :, :, -1, -1] = 5.0  # the opposite corner
    shift = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])  # frame 1 looks at (1, 1)
    out = r(x, shift=shift)
    torch.testing.assert_close(out[0, :, 0], torch.full((7,), 3.0))
    torch.testing.assert_close(out[0, :, 1], torch.full((7,), 5.0))


def test_feature_weights_start_uniform_and_regularizer_is_their_l1():
    r = readout(feature_reg=2.0)
    assert r.features.shape == (3, 7)
    torch.testing.assert_close(r.features.detach(), torch.full((3, 7), 1 / 3))
    torch.testing.assert_close(r.regularizer(), torch.tensor(2.0 * 7))
    assert float(readout().regularizer().detach()) == 0.0


def test_shifter_maps_each_frame_independently():
    torch.manual_seed(0)
    shifter = Shifter(hidden=5)
    pupil = torch.randn(2, 2, 6)
    assert not shifter(pupil).any()  # it starts without a shift
    with torch.no_grad():
        shifter.mlp[4].weight.normal_()
    out = shifter(pupil)
    assert out.shape == (2, 6, 2) and bool((out.abs() < 1).all())
    torch.testing.assert_close(shifter(pupil[:, :, 3:4])[:, 0], out[:, 3])
    assert sum(p.numel() for p in shifter.parameters()) == 2 * 5 + 5 + 5 * 5 + 5 + 5 * 2 + 2
