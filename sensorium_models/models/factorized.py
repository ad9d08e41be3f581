"""The 3D factorised convolutional core of the SENSORIUM 2023 starter kit.

Each layer is a spatial convolution (1 x k x k) followed by a temporal one (t x 1 x 1), batch
norm and ELU, all unpadded: space shrinks by k - 1 and time by t - 1 per layer, so the output
covers the last T - burn_in frames and never looks ahead.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model
from sensorium_models.models.regularizers import laplace_l2, temporal_laplace_l2


@dataclass(frozen=True, kw_only=True)
class FactorizedConfig(ModelConfig):
    """Options of the factorised 3D core (plus the readout's, see :class:`ModelConfig`).

    Attributes
    ----------
    hidden_channels, spatial_kernels, temporal_kernels
        Per layer: output channels, spatial kernel size, temporal kernel size.
    momentum
        Batch norm momentum (PyTorch's convention: weight of the new batch). ``train``
        replaces the running statistics after every epoch by those of the final weights
        (docs/models.md, "Batch norm"), so this shapes only the statistics within an epoch.
    gamma_spatial, gamma_temporal
        Weights of the Laplace smoothness penalties on the first layer's spatial and
        temporal kernels.
    """

    hidden_channels: tuple[int, ...]
    spatial_kernels: tuple[int, ...]
    temporal_kernels: tuple[int, ...]
    momentum: float
    gamma_spatial: float
    gamma_temporal: float

    def __post_init__(self) -> None:
        super().__post_init__()
        per_layer = (self.hidden_channels, self.spatial_kernels, self.temporal_kernels)
        if len({len(v) for v in per_layer}) != 1 or not self.hidden_channels:
            msg = (
                f"hidden_channels {self.hidden_channels}, spatial_kernels {self.spatial_kernels} "
                f"and temporal_kernels {self.temporal_kernels} need one entry per layer, the "
                "same number of layers (at least one) in each."
            )
            raise ValueError(msg)
        if min(min(v) for v in per_layer) < 1:
            msg = f"channels and kernel sizes must be >= 1; got {per_layer}."
            raise ValueError(msg)

    def build_core(self, in_channels: int) -> FactorizedCore:
        return FactorizedCore(in_channels, self)


class FactorizedBlock(nn.Module):
    """Spatial conv -> temporal conv -> batch norm -> ELU, unpadded."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int, temporal: int,
                 momentum: float) -> None:
        super().__init__()
        # No conv biases: the batch norm's shift takes their place.
        self.spatial = nn.Conv3d(in_channels, out_channels, (1, spatial, spatial), bias=False)
        self.temporal = nn.Conv3d(out_channels, out_channels, (temporal, 1, 1), bias=False)
        self.norm = nn.BatchNorm3d(out_channels, momentum=momentum)
        for conv in (self.spatial, self.temporal):
            nn.init.xavier_normal_(conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.spatial(x)  # (B, C_out, T, H - k + 1, W - k + 1)
        x = self.temporal(x)  # (B, C_out, T - t + 1, H', W')
        return nn.functional.elu(self.norm(x))


class FactorizedCore(Core):
    """Stacked :class:`FactorizedBlock` s; burn_in is the sum of (temporal kernel - 1)."""

    def __init__(self, in_channels: int, config: FactorizedConfig) -> None:
        super().__init__()
        self.config = config
        widths = (in_channels, *config.hidden_channels)
        self.blocks = nn.Sequential(*(
            FactorizedBlock(c_in, c_out, s, t, config.momentum)
            for c_in, c_out, s, t in zip(widths[:-1], widths[1:], config.spatial_kernels,
                                         config.temporal_kernels, strict=True)
        ))
        self.out_channels = config.hidden_channels[-1]
        self.burn_in = sum(t - 1 for t in config.temporal_kernels)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)  # (B, C_in, T, H, W) -> (B, C_out, T - burn_in, H', W')

    def regularizer(self) -> Tensor:
        first = typing.cast(FactorizedBlock, self.blocks[0])
        spatial = laplace_l2(first.spatial.weight)  # kernels (C, C_in, 1, k, k)
        temporal = temporal_laplace_l2(first.temporal.weight[..., 0, 0])  # kernels (C, C, t)
        return self.config.gamma_spatial * spatial + self.config.gamma_temporal * temporal


@register_model
def factorized_baseline() -> FactorizedConfig:
    """The starter kit's factorised 3D baseline: 32/64/128 channels, burn-in 18 frames."""
    return FactorizedConfig(
        hidden_channels=(32, 64, 128),
        spatial_kernels=(11, 5, 5),
        temporal_kernels=(11, 5, 5),
        momentum=0.7,
        gamma_spatial=10.0,
        gamma_temporal=0.01,
    )
