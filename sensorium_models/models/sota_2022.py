"""The SENSORIUM 2022 baseline: a stacked 2D convolutional core for static images.

The core of the 2022 starter kit (neuralpredictors' ``Stacked2dCore`` as its SOTA config sets
it): a first unpadded 9 x 9 convolution, then three depth-separable layers (1 x 1 ->
depthwise 7 x 7 -> 1 x 1, padded to keep the size), each followed by batch norm and ELU; only
the last layer's 64 channels leave the core. A 36 x 64 image gives 64 x 28 x 56 features,
read by the full Gaussian readout of :mod:`.readout` whose positions are predicted from the
neurons' cortical coordinates. SENSORIUM+ adds the three behaviour values as constant image
channels (4 input channels) and the pupil-driven shifter (``shifter=True``).

Images are one-frame clips here: the core takes (B, C, T, H, W) like every core of the zoo
and applies the same 2D network to every frame, so burn_in is 0 and an image batch is
(B, C, 1, H, W). ``ln_2022`` (:mod:`.ln_2022`) is this core without its nonlinearities.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model
from sensorium_models.models.regularizers import laplace_l2


@dataclass(frozen=True, kw_only=True)
class Stacked2dConfig(ModelConfig):
    """Options of the stacked 2D core (plus the readout's, see :class:`ModelConfig`).

    Attributes
    ----------
    hidden_channels
        Channels of every layer.
    layers
        Layers: the input convolution, then ``layers - 1`` hidden ones.
    input_kernel
        Size of the first, unpadded convolution (the image shrinks by ``input_kernel - 1``).
    hidden_kernel
        Size of the hidden convolutions (odd: padded to keep the size).
    depth_separable
        Hidden layers as 1 x 1 -> depthwise k x k -> 1 x 1 (with biases, as
        neuralpredictors' ``DepthSeparableConv2d``), else one full k x k convolution.
    linear
        Drop the core's ELUs (the LN baseline); the output nonlinearity stays.
    momentum
        Batch norm momentum (PyTorch's convention: weight of the new batch; the starter
        kit's 0.9).
    gamma_input
        Weight of the normalised Laplace penalty on the first layer's kernels.
    """

    hidden_channels: int
    layers: int
    input_kernel: int
    hidden_kernel: int
    depth_separable: bool
    linear: bool
    momentum: float
    gamma_input: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.hidden_channels, self.layers, self.input_kernel) < 1:
            msg = (
                f"hidden_channels={self.hidden_channels}, layers={self.layers}, "
                f"input_kernel={self.input_kernel}: each must be >= 1."
            )
            raise ValueError(msg)
        if self.hidden_kernel % 2 == 0:
            msg = (
                f"hidden_kernel={self.hidden_kernel} is even; it must be odd, because the "
                "hidden layers are padded by hidden_kernel // 2 to keep the size."
            )
            raise ValueError(msg)

    def build_core(self, in_channels: int) -> Stacked2dCore:
        return Stacked2dCore(in_channels, self)


def depth_separable(channels: int, kernel: int) -> nn.Sequential:
    """1 x 1 -> depthwise ``kernel`` x ``kernel`` (padded) -> 1 x 1, ``channels`` wide."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1),
        nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels),
        nn.Conv2d(channels, channels, 1),
    )


class Stacked2dCore(Core):
    """The 2D network applied to every frame; burn_in 0.

    Examples
    --------
    >>> import torch
    >>> from sensorium_models.models.registry import model_config
    >>> core = model_config("sota_2022").build_core(4)
    >>> core(torch.zeros(2, 4, 1, 36, 64)).shape
    torch.Size([2, 64, 1, 28, 56])
    >>> sum(p.numel() for p in core.parameters())  # the starter kit's count (notes A5)
    55808
    """

    def __init__(self, in_channels: int, config: Stacked2dConfig) -> None:
        super().__init__()
        self.config = config
        c, k = config.hidden_channels, config.hidden_kernel
        # The first convolution has no bias: the batch norm's shift takes its place.
        first = nn.Conv2d(in_channels, c, config.input_kernel, bias=False)
        hidden: list[nn.Module] = [
            depth_separable(c, k) if config.depth_separable
            else nn.Conv2d(c, c, k, padding=k // 2, bias=False)
            for _ in range(config.layers - 1)
        ]
        self.convs = nn.ModuleList([first, *hidden])
        self.norms = nn.ModuleList(
            nn.BatchNorm2d(c, momentum=config.momentum) for _ in range(config.layers)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.out_channels = c
        self.burn_in = 0

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W): frames as a batch
        for conv, norm in zip(self.convs, self.norms, strict=True):
            y = norm(conv(y))  # (B*T, C', H', W')
            if not self.config.linear:
                y = nn.functional.elu(y)
        out = y.view(b, t, *y.shape[1:])  # (B, T, C', H', W')
        return out.transpose(1, 2)  # (B, C', T, H', W')

    def regularizer(self) -> Tensor:
        first = typing.cast(nn.Conv2d, self.convs[0])
        return self.config.gamma_input * laplace_l2(first.weight)  # kernels (C, C_in, k, k)


@register_model
def sota_2022() -> Stacked2dConfig:
    """The 2022 starter kit's SOTA: 4 layers of 64 channels, kernels 9 then 7 (depth-separable),
    full Gaussian readout with cortex-predicted positions. ``shifter=True`` for SENSORIUM+;
    trained on all seven mice it is the "generalization" model (docs/models.md)."""
    return Stacked2dConfig(
        hidden_channels=64,
        layers=4,
        input_kernel=9,
        hidden_kernel=7,
        depth_separable=True,
        linear=False,
        momentum=0.9,
        gamma_input=6.3831,
        init_sigma=0.1,
        feature_reg=0.0076,
        grid_mean_hidden=30,
        shifter=False,
    )
