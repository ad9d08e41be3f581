"""A linear-nonlinear floor: one linear spatio-temporal filter bank, the same readout.

The video goes through a single 3D convolution (``channels`` filters of ``temporal_kernel``
frames by ``spatial_kernel`` pixels, zero-padded in space, unpadded in time) with nothing
nonlinear before the readout. The readout weights the filter outputs at the neuron's position,
so each neuron's filter is a mix of the shared bank, read where its receptive field is; ELU + 1
is the output nonlinearity. The shifter and the behaviour channels act as in the other models.
What the deep cores gain over this model is what nonlinear processing is worth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model
from sensorium_models.models.regularizers import laplace_l2, temporal_laplace_l2


@dataclass(frozen=True, kw_only=True)
class LNConfig(ModelConfig):
    """Options of the linear filter bank (plus the readout's, see :class:`ModelConfig`).

    Attributes
    ----------
    channels
        Filters in the bank.
    spatial_kernel, temporal_kernel
        Filter size in pixels (odd: padded to keep the frame size) and in frames
        (burn_in = temporal_kernel - 1).
    gamma_spatial, gamma_temporal
        Weights of the Laplace smoothness penalties in space (every frame of every filter)
        and in time (every pixel).
    """

    channels: int
    spatial_kernel: int
    temporal_kernel: int
    gamma_spatial: float
    gamma_temporal: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.channels, self.temporal_kernel) < 1 or self.spatial_kernel % 2 == 0:
            msg = (
                f"channels={self.channels}, spatial_kernel={self.spatial_kernel}, "
                f"temporal_kernel={self.temporal_kernel}: sizes must be >= 1 and the spatial "
                "kernel odd (it is padded to keep the frame size)."
            )
            raise ValueError(msg)

    def build_core(self, in_channels: int) -> LinearCore:
        return LinearCore(in_channels, self)


class LinearCore(Core):
    """One 3D convolution, no nonlinearity; burn_in = temporal_kernel - 1."""

    def __init__(self, in_channels: int, config: LNConfig) -> None:
        super().__init__()
        self.config = config
        s, t = config.spatial_kernel, config.temporal_kernel
        self.conv = nn.Conv3d(in_channels, config.channels, (t, s, s), padding=(0, s // 2, s // 2))
        nn.init.xavier_normal_(self.conv.weight)
        self.out_channels = config.channels
        self.burn_in = t - 1

    def forward(self, x: Tensor) -> Tensor:
        """``self.conv(x)``, computed as a 2D convolution of stacked frames.

        Each output frame's ``t`` input frames are stacked as channels and convolved in 2D with
        the same weights: the same numbers as the 3D convolution, on the CPU about 1.2x faster
        forward and backward, 1.4x forward only (``benchmarks/cores.py``, ``docs/benchmarks.md``).
        """
        b, c, t, h, w = x.shape
        k = self.config.temporal_kernel
        windows = x.unfold(2, k, 1)  # (B, C_in, T - k + 1, H, W, k)
        stacked = windows.permute(0, 2, 1, 5, 3, 4).reshape(-1, c * k, h, w)  # (B*T', C_in*k, H, W)
        weight = self.conv.weight.flatten(1, 2)  # (channels, C_in*k, s, s), channels (C_in, k)
        out = F.conv2d(stacked, weight, self.conv.bias, padding=self.conv.padding[1:])
        return out.view(b, t - k + 1, -1, h, w).transpose(1, 2)  # (B, channels, T', H, W)

    def regularizer(self) -> Tensor:
        w = self.conv.weight  # (channels, C_in, t, k, k)
        spatial = laplace_l2(w)  # every (k, k) frame of every filter
        temporal = temporal_laplace_l2(w.permute(0, 1, 3, 4, 2))  # every pixel's (t,) course
        return self.config.gamma_spatial * spatial + self.config.gamma_temporal * temporal


@register_model
def ln() -> LNConfig:
    """Linear-nonlinear floor: 8 filters of 11 frames x 11 x 11 pixels, burn-in 10 frames."""
    return LNConfig(
        channels=8,
        spatial_kernel=11,
        temporal_kernel=11,
        gamma_spatial=10.0,
        gamma_temporal=0.01,
    )
