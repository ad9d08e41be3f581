"""The cores' own properties: rotation equivariance, causality, burn-in, smoothness penalties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sensorium_models as sm
from sensorium_models.models.ln import fft_conv3d
from sensorium_models.models.regularizers import laplace_l2, temporal_laplace_l2
from sensorium_models.models.rotation_gru import RotationConv2d, rotation_matrices

MICE = {"A": sm.MouseSpec(n_neurons=3, coords=np.eye(3, 2))}


@pytest.mark.parametrize("kernel", [3, 5, 9])
def test_a_quarter_turn_of_a_kernel_is_rot90(kernel):
    turns = rotation_matrices(kernel, 8)  # (8, k*k, k*k)
    w = turns[0] @ torch.randn(kernel * kernel)  # a kernel inside the disk
    torch.testing.assert_close(turns[0] @ w, w)  # angle 0 keeps it
    for steps in (2, 4, 6):
        rotated = (turns[steps] @ w).view(kernel, kernel)
        torch.testing.assert_close(rotated, torch.rot90(w.view(kernel, kernel), steps // 2))


def test_rotating_the_input_permutes_the_rotation_groups():
    torch.manual_seed(0)
    rotations, features = 8, 2
    model = sm.create_model("gru_baseline", mice=MICE, channels=features, rotations=rotations,
                            layers=3, input_kernel=5, hidden_kernel=3, gru_channels=2,
                            gru_input_kernel=3, gru_rec_kernel=3).eval()
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        out = model.core.spatial(x)  # (2, R*F, 16, 16)
        turned = model.core.spatial(torch.rot90(x, 1, dims=(-2, -1)))
    groups = out.view(2, rotations, features, 16, 16)
    for steps, close in ((rotations // 4, True), (1, False), (0, False)):
        expected = torch.rot90(groups.roll(steps, dims=1).view_as(out), 1, dims=(-2, -1))
        assert torch.allclose(turned, expected, atol=1e-4) is close


def test_hidden_layers_cycle_their_input_groups():
    conv = RotationConv2d(2 * 4, 3, 3, rotations=4, padding=1, cycle_inputs=True)
    kernels = conv.kernels().view(4, 3, 4, 2, 3, 3)  # (rotation, out, group, feature, k, k)
    torch.testing.assert_close(kernels[1, :, 1], torch.rot90(kernels[0, :, 0], 1, dims=(-2, -1)))
    torch.testing.assert_close(kernels[2, :, 3], torch.rot90(kernels[0, :, 1], 2, dims=(-2, -1)))


def test_the_gru_core_is_causal():
    torch.manual_seed(0)
    model = sm.create_model("gru_baseline", mice=MICE, channels=2, rotations=4, layers=2,
                            input_kernel=5, hidden_kernel=3, gru_channels=4,
                            gru_input_kernel=3, gru_rec_kernel=3).eval()
    x = torch.randn(1, 3, 8, 36, 64)
    later = x.clone()
    later[:, :, 5] += 3.0
    with torch.no_grad():
        changed = (model(x, mouse="A") - model(later, mouse="A")).abs().amax((0, 1)) > 0
    assert changed.tolist() == [False] * 5 + [True] * 3


def test_factorized_core_shapes():
    model = sm.create_model("factorized_baseline", mice=MICE, hidden_channels=(2, 3, 4),
                            temporal_kernels=(3, 2, 1))
    assert model.burn_in == 3
    features = model.core(torch.randn(2, 3, 10, 36, 64))
    assert features.shape == (2, 4, 7, 36 - 18, 64 - 18)


def test_laplace_penalties_prefer_smooth_kernels():
    y, x = torch.meshgrid(torch.linspace(-1, 1, 9), torch.linspace(-1, 1, 9), indexing="ij")
    smooth = torch.exp(-(x**2 + y**2) / 0.3)
    rough = torch.randn(9, 9)
    assert float(laplace_l2(smooth)) < 0.3 < float(laplace_l2(rough))
    assert float(laplace_l2(3 * rough)) == pytest.approx(float(laplace_l2(rough)), rel=1e-5)
    bump = torch.sin(torch.linspace(0, 3.14, 11))
    rough = torch.tensor([1.0, -1.0] * 5 + [1.0])
    assert float(temporal_laplace_l2(bump)) < 5 < 30 < float(temporal_laplace_l2(rough))


def test_the_temporal_penalty_is_neuralpredictors_depth_laplace():
    # DepthLaplaceL21d: conv1d with [-1, 4, -1], zero padding 1, sum of squares over the sum of
    # squares of the kernels (C_out, C_in, t); written out here by hand
    w = torch.randn(3, 2, 7)
    padded = torch.nn.functional.pad(w, (1, 1))
    lap = 4 * padded[..., 1:-1] - padded[..., :-2] - padded[..., 2:]
    expected = lap.pow(2).sum() / w.pow(2).sum()
    torch.testing.assert_close(temporal_laplace_l2(w), expected)


def test_group_sparsity_penalises_the_hidden_kernels_by_channel_pair():
    torch.manual_seed(0)
    options = dict(channels=2, rotations=4, layers=3, input_kernel=5, hidden_kernel=3,
                   gru_channels=2, gru_input_kernel=3, gru_rec_kernel=3)
    core = sm.create_model("gru_baseline", mice=MICE, gamma_hidden=0.0, **options).core
    sparse = sm.create_model("gru_baseline", mice=MICE, **options).core
    sparse.load_state_dict(core.state_dict())
    assert sm.model_config("gru_baseline").gamma_hidden == 500_000
    hidden = [m for m in sparse.spatial if isinstance(m, RotationConv2d)][1:]
    # by hand: per layer, the mean over (output, input) pairs of the kernel's L2 norm
    by_hand = sum(float(torch.linalg.vector_norm(m.kernels().detach(), dim=(2, 3)).mean())
                  for m in hidden) / len(hidden)
    difference = float((sparse.regularizer() - core.regularizer()).detach())
    assert difference == pytest.approx(500_000 * by_hand, rel=1e-5)
    assert by_hand > 0
    # zeroing one input channel of every hidden filter lowers it: the penalty is a group lasso
    for m in hidden:
        with torch.no_grad():
            m.weight[:, 0] = 0
    assert float((sparse.regularizer() - core.regularizer()).detach()) < difference
    sparse.regularizer().backward()
    for m in hidden:  # finite at the zeroed kernels too
        assert m.weight.grad is not None and torch.isfinite(m.weight.grad).all()
        assert m.weight.grad[:, 1:].abs().sum() > 0


def test_the_ln_core_is_its_3d_convolution_forward_and_backward():
    torch.manual_seed(0)
    core = sm.create_model("ln", mice=MICE, channels=3, spatial_kernel=5, temporal_kernel=4).core
    x = torch.randn(2, 3, 12, 10, 14, requires_grad=True)
    out = core(x)  # on the CPU: through the FFT
    expected = torch.nn.functional.conv3d(x, core.conv.weight, core.conv.bias, padding=(0, 2, 2))
    assert out.shape == (2, 3, 12 - core.burn_in, 10, 14)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, core.conv.weight, core.conv.bias), upstream)
    wanted = torch.autograd.grad(expected, (x, core.conv.weight, core.conv.bias), upstream)
    for got, want in zip(grads, wanted, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kernel", "padding", "size"), [((1, 1, 1), 0, (5, 6, 7)),
                                                          ((3, 5, 3), 1, (7, 9, 4))])
def test_fft_conv3d_matches_conv3d_for_any_kernel_and_padding(kernel, padding, size):
    torch.manual_seed(1)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    weight = torch.randn(3, 2, *kernel, dtype=torch.float64)
    expected = torch.nn.functional.conv3d(x, weight, None, padding=(0, padding, padding))
    torch.testing.assert_close(fft_conv3d(x, weight, None, padding), expected)
