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

import torch
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
        self.padding = s // 2

    def forward(self, x: Tensor) -> Tensor:
        """``self.conv(x)``: on the CPU through the FFT (:func:`fft_conv3d`: the same numbers;
        at the demo's size 3-4x faster forward and backward than the stacked-frames conv2d it
        replaced and 4-6x than conv3d, 5x and 9.5x forward only; ``benchmarks/cores.py``),
        elsewhere as cuDNN's 3D convolution (bf16 under autocast)."""
        if x.device.type != "cpu":
            return self.conv(x)
        return fft_conv3d(x, self.conv.weight, self.conv.bias, self.padding)

    def regularizer(self) -> Tensor:
        w = self.conv.weight  # (channels, C_in, t, k, k)
        spatial = laplace_l2(w)  # every (k, k) frame of every filter
        temporal = temporal_laplace_l2(w.permute(0, 1, 3, 4, 2))  # every pixel's (t,) course
        return self.config.gamma_spatial * spatial + self.config.gamma_temporal * temporal


def fft_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int) -> Tensor:
    """``F.conv3d(x, weight, bias, padding=(0, padding, padding))`` through the FFT.

    A cross-correlation is a product of spectra. With the frames zero-padded in space and the
    kernel flipped, the circular convolution over the padded clip's own size wraps around only
    into the first ``k - 1`` frames and ``s - 1`` rows and columns, which are cut: what is left
    is exactly the unpadded-in-time, padded-in-space correlation. The cost does not grow with
    the kernel, where the direct convolution's grows with its volume (7 x 9 x 9 = 567 taps per
    input channel in the demo's LN).

    Parameters
    ----------
    x
        (B, C_in, T, H, W).
    weight, bias
        (C_out, C_in, k, s, s) and (C_out,) or None, as ``nn.Conv3d``'s.
    padding
        Zero padding in space, on each side.

    Returns
    -------
    Tensor
        (B, C_out, T - k + 1, H + 2 * padding - s + 1, W + 2 * padding - s + 1).
    """
    k, kh, kw = weight.shape[-3:]
    padded = F.pad(x, (padding, padding, padding, padding))
    size = padded.shape[-3:]
    dims = (-3, -2, -1)
    spectrum = torch.fft.rfftn(padded, s=size, dim=dims)  # (B, C_in, T, H', W'/2 + 1)
    kernel = torch.fft.rfftn(weight.flip(dims), s=size, dim=dims)  # (C_out, C_in, ...)
    product = torch.einsum("bcthw,octhw->bothw", spectrum, kernel)
    out = torch.fft.irfftn(product, s=size, dim=dims)[..., k - 1:, kh - 1:, kw - 1:]
    return out if bias is None else out + bias.view(1, -1, 1, 1, 1)


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
