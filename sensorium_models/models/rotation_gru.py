"""A rotation-equivariant 2D core per frame, then a convolutional GRU over time.

The 2D core learns one set of kernels per layer and uses it at ``rotations`` angles
(k * 360 / rotations degrees): the kernels are rotated by a fixed bilinear interpolation
matrix inside a disk (so every angle sees the same support), and the output channels are
grouped by angle, ``(rotation, channel)``. A hidden layer also cycles its input groups with
the angle, which makes the whole stack equivariant: rotating the input by one step rotates
the feature maps and moves group r to group r + 1 (exactly for multiples of 90 degrees,
where the interpolation is a permutation). Batch norm shares its statistics across angles.
The ConvGRU integrates the per-frame features over time; it adds no burn-in.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model
from sensorium_models.models.regularizers import laplace_l2


@dataclass(frozen=True, kw_only=True)
class RotationGRUConfig(ModelConfig):
    """Options of the rotation-equivariant core and ConvGRU (plus the readout's).

    Attributes
    ----------
    channels, rotations
        Feature channels per angle and number of angles: each layer has
        ``channels * rotations`` output channels.
    layers, input_kernel, hidden_kernel
        Layers of the 2D core; kernel of the first (unpadded) and of the others (padded to
        keep the size). Kernels are odd so that they rotate about their centre pixel.
    momentum
        Batch norm momentum (PyTorch's convention).
    gamma_input
        Weight of the Laplace smoothness penalty on the first layer's kernels, all angles.
    gamma_hidden
        Weight of the group-sparsity penalty on the hidden layers' kernels: the mean, over
        every (output, input) channel pair of every angle, of the pair's kernel L2 norm,
        averaged over the hidden layers. It drives whole input channels of a hidden filter
        to zero (neuralpredictors' ``group_sparsity``, starter kit weight 500,000).
    gru_channels, gru_input_kernel, gru_rec_kernel
        ConvGRU state channels and its input-to-state and state-to-state kernels.
    """

    channels: int
    rotations: int
    layers: int
    input_kernel: int
    hidden_kernel: int
    momentum: float
    gamma_input: float
    gamma_hidden: float
    gru_channels: int
    gru_input_kernel: int
    gru_rec_kernel: int

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = {"channels": self.channels, "rotations": self.rotations, "layers": self.layers,
                 "gru_channels": self.gru_channels}
        kernels = {"input_kernel": self.input_kernel, "hidden_kernel": self.hidden_kernel,
                   "gru_input_kernel": self.gru_input_kernel,
                   "gru_rec_kernel": self.gru_rec_kernel}
        bad = {k: v for k, v in sizes.items() if v < 1}
        bad |= {k: v for k, v in kernels.items() if v < 1 or v % 2 == 0}
        if bad:
            msg = f"{bad}: sizes must be >= 1 and kernels odd (they rotate about the centre)."
            raise ValueError(msg)

    def build_core(self, in_channels: int) -> RotationGRUCore:
        return RotationGRUCore(in_channels, self)


def rotation_matrices(kernel: int, rotations: int) -> Tensor:
    """(rotations, k*k, k*k) matrices that rotate a flattened k x k kernel by r steps.

    Entry ``[r, p, q]`` is the bilinear weight of source pixel q in rotated pixel p. Pixels
    outside the disk of radius k/2 are zero, so every angle keeps the same support. The
    rotation turns like ``torch.rot90(..., dims=(-2, -1))``: one quarter turn equals that.
    """
    c = (kernel - 1) / 2
    rows, cols = np.meshgrid(np.arange(kernel), np.arange(kernel), indexing="ij")
    y, x = rows.ravel() - c, cols.ravel() - c
    inside = np.hypot(x, y) <= kernel / 2
    out = np.zeros((rotations, kernel * kernel, kernel * kernel))
    for r in range(rotations):
        angle = 2 * math.pi * r / rotations
        # Rotated pixel (y, x) takes the value of the source at the inverse rotation.
        src_y = np.round(math.cos(angle) * y + math.sin(angle) * x, 9) + c
        src_x = np.round(-math.sin(angle) * y + math.cos(angle) * x, 9) + c
        y0, x0 = np.floor(src_y).astype(int), np.floor(src_x).astype(int)
        for dy in (0, 1):
            for dx in (0, 1):
                yy, xx = y0 + dy, x0 + dx
                weight = (1 - np.abs(src_y - yy)) * (1 - np.abs(src_x - xx))
                ok = inside & (yy >= 0) & (yy < kernel) & (xx >= 0) & (xx < kernel) & (weight > 0)
                ok[ok] &= inside[(yy * kernel + xx)[ok]]
                np.add.at(out[r], (np.flatnonzero(ok), (yy * kernel + xx)[ok]), weight[ok])
    return torch.as_tensor(out, dtype=torch.float32)


class RotationConv2d(nn.Module):
    """A 2D convolution whose kernels are one learned set used at every angle.

    Parameters
    ----------
    in_channels
        Input channels; for a hidden layer (``cycle_inputs``) ``rotations * features``.
    features
        Output channels per angle.
    kernel, rotations, padding
        Odd kernel size, number of angles, zero padding.
    cycle_inputs
        Shift the input's angle groups with the output's angle (all layers but the first).
    """

    rotate: Tensor
    source: Tensor

    def __init__(self, in_channels: int, features: int, kernel: int, rotations: int,
                 padding: int, cycle_inputs: bool) -> None:
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(features, in_channels, kernel, kernel))
        nn.init.xavier_normal_(self.weight)
        self.register_buffer("rotate", rotation_matrices(kernel, rotations), persistent=False)
        # source[r, i]: the learned input channel that rotation r applies to input channel i.
        groups = rotations if cycle_inputs else 1
        per_group = in_channels // groups
        r, i = np.meshgrid(np.arange(rotations), np.arange(in_channels), indexing="ij")
        source = ((i // per_group - r) % groups) * per_group + i % per_group
        self.register_buffer("source", torch.as_tensor(source), persistent=False)

    def kernels(self) -> Tensor:
        """(rotations * features, in_channels, k, k): the kernels of every angle."""
        _, i, k, _ = self.weight.shape
        w = self.weight.flatten(2)[:, self.source]  # (O, R, I, k*k)
        rotated = torch.einsum("rpq,oriq->roip", self.rotate, w)  # (R, O, I, k*k)
        return rotated.reshape(-1, i, k, k)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernels(), padding=self.padding)  # (N, R*O, H', W')


class RotationBatchNorm(nn.Module):
    """Batch norm of (N, rotations * features, H, W) with statistics shared by the angles."""

    def __init__(self, features: int, rotations: int, momentum: float) -> None:
        super().__init__()
        self.rotations = rotations
        self.norm = nn.BatchNorm3d(features, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        grouped = x.view(n, self.rotations, c // self.rotations, h, w).transpose(1, 2)
        return self.norm(grouped).transpose(1, 2).reshape(n, c, h, w)  # (N, R*F, H, W)


class ConvGRU(nn.Module):
    """A convolutional GRU over the frames of (B, C, T, H, W); the state starts at zero.

    The input-to-state convolutions do not depend on the state, so they run on all frames at
    once; only the state-to-state convolutions run frame by frame.
    """

    def __init__(self, in_channels: int, channels: int, input_kernel: int,
                 rec_kernel: int) -> None:
        super().__init__()
        self.channels = channels
        self.inputs = nn.Conv2d(in_channels, 3 * channels, input_kernel,
                                padding=input_kernel // 2)
        self.gates = nn.Conv2d(channels, 2 * channels, rec_kernel, padding=rec_kernel // 2,
                               bias=False)
        self.candidate = nn.Conv2d(channels, channels, rec_kernel, padding=rec_kernel // 2,
                                   bias=False)
        for conv in (self.inputs, self.gates, self.candidate):
            nn.init.xavier_normal_(conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        drive = self.inputs(frames).view(b, t, 3 * self.channels, h, w)  # (B, T, 3G, H, W)
        state = x.new_zeros(b, self.channels, h, w)  # (B, G, H, W)
        states = []
        # unbind, not drive[:, i]: the backward of T indexings would fill T full-size tensors.
        for step in drive.unbind(1):  # (B, 3G, H, W) each
            update_in, reset_in, candidate_in = step.chunk(3, dim=1)  # 3 x (B, G, H, W)
            update_rec, reset_rec = self.gates(state).chunk(2, dim=1)  # 2 x (B, G, H, W)
            update = torch.sigmoid(update_in + update_rec)
            reset = torch.sigmoid(reset_in + reset_rec)
            candidate = torch.tanh(candidate_in + self.candidate(state * reset))
            state = state + update * (candidate - state)
            states.append(state)
        return torch.stack(states, dim=2)  # (B, G, T, H, W)


class RotationGRUCore(Core):
    """Rotation-equivariant 2D layers on every frame, then a :class:`ConvGRU`; burn_in 0."""

    def __init__(self, in_channels: int, config: RotationGRUConfig) -> None:
        super().__init__()
        self.config = config
        rot, feat = config.rotations, config.channels
        layers: list[nn.Module] = []
        for i in range(config.layers):
            kernel = config.input_kernel if i == 0 else config.hidden_kernel
            layers += [
                RotationConv2d(in_channels if i == 0 else rot * feat, feat, kernel, rot,
                               padding=0 if i == 0 else kernel // 2, cycle_inputs=i > 0),
                RotationBatchNorm(feat, rot, config.momentum),
            ]
            if i < config.layers - 1:  # the last layer stays linear, as in the baseline
                layers.append(nn.ELU())
        self.spatial = nn.Sequential(*layers)
        self.gru = ConvGRU(rot * feat, config.gru_channels, config.gru_input_kernel,
                           config.gru_rec_kernel)
        self.out_channels = config.gru_channels
        self.burn_in = 0

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        features = self.spatial(frames)  # (B*T, R*F, H - k + 1, W - k + 1)
        features = features.view(b, t, *features.shape[1:]).transpose(1, 2)  # (B, R*F, T, H', W')
        return self.gru(features)  # (B, G, T, H', W')

    def regularizer(self) -> Tensor:
        convs = [m for m in self.spatial if isinstance(m, RotationConv2d)]
        penalty = self.config.gamma_input * laplace_l2(convs[0].kernels())
        if len(convs) > 1 and self.config.gamma_hidden:
            penalty = penalty + self.config.gamma_hidden * group_sparsity(convs[1:])
        return penalty


def group_sparsity(convs: typing.Sequence[RotationConv2d]) -> Tensor:
    """Mean L2 norm of the (output, input) kernels of each layer, averaged over layers.

    The 1e-12 under the root keeps the gradient finite at a kernel that is exactly zero.
    """
    norms = [(conv.kernels().pow(2).sum((2, 3)) + 1e-12).sqrt().mean() for conv in convs]
    return torch.stack(norms).mean()


@register_model
def gru_baseline() -> RotationGRUConfig:
    """The starter kit's GRU baseline: 8 x 8 rotation-equivariant channels, ConvGRU 64."""
    return RotationGRUConfig(
        channels=8,
        rotations=8,
        layers=4,
        input_kernel=9,
        hidden_kernel=7,
        momentum=0.9,
        gamma_input=500.0,
        gamma_hidden=500_000.0,
        gru_channels=64,
        gru_input_kernel=9,
        gru_rec_kernel=9,
    )
