"""The Gaussian readout with a state encoder (ViV1T's readout).

The full Gaussian readout of :mod:`.readout` (grid network over cortical coordinates, full
covariance, pupil shift), plus an encoding of the animal's state: behaviour and pupil position
of each frame (4 values) -> Linear -> LayerNorm -> GELU -> Dropout -> Linear -> tanh, as wide
as the core's features, added to every neuron's sampled feature vector before the per-neuron
weighting. Running and pupil dilation so act as a gain and offset shared by all neurons, on top
of the behaviour channels the core sees.

Registered as the readout ``"gaussian_state"``, the default of ``viv1t``.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from sensorium_models.models.encoder import ModelConfig, initial_bias
from sensorium_models.models.readout import GaussianReadout
from sensorium_models.models.registry import register_readout
from sensorium_models.models.specs import MouseSpec


class StateGaussianReadout(GaussianReadout):
    """:class:`GaussianReadout` whose sampled features are shifted by a state encoding.

    Parameters
    ----------
    in_channels, coords, bias, init_sigma, grid_mean_hidden, feature_reg
        As :class:`GaussianReadout`.
    state_dropout
        Dropout between the state encoder's layers.

    Examples
    --------
    >>> import numpy as np, torch
    >>> readout = StateGaussianReadout(16, np.random.default_rng(0).normal(size=(5, 2)))
    >>> readout(torch.randn(2, 16, 7, 9, 11), behavior=torch.randn(2, 4, 7)).shape
    torch.Size([2, 5, 7])
    """

    def __init__(
        self,
        in_channels: int,
        coords: np.ndarray,
        *,
        bias: np.ndarray | None = None,
        init_sigma: float = 1.0,
        grid_mean_hidden: int = 30,
        feature_reg: float = 0.0,
        state_dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels, coords, bias=bias, init_sigma=init_sigma,
                         grid_mean_hidden=grid_mean_hidden, feature_reg=feature_reg)
        self.state_encoder = nn.Sequential(
            nn.Linear(4, in_channels), nn.LayerNorm(in_channels), nn.GELU(),
            nn.Dropout(state_dropout), nn.Linear(in_channels, in_channels), nn.Tanh(),
        )

    def forward(self, x: Tensor, shift: Tensor | None = None,
                behavior: Tensor | None = None) -> Tensor:
        """Read every neuron out of every frame, its features shifted by the frame's state.

        Parameters
        ----------
        x
            (B, C, T, H, W) core features.
        shift
            Optional (B, T, 2) offset of all positions per frame (from the shifter).
        behavior
            (B, 4, T) pupil dilation, running speed, pupil x, pupil y of the same frames.
            Required: the state encoder reads it.

        Returns
        -------
        Tensor
            (B, N, T) drive, before the output nonlinearity.
        """
        b, t = x.shape[0], x.shape[2]
        if behavior is None or tuple(behavior.shape) != (b, 4, t):
            got = None if behavior is None else tuple(behavior.shape)
            msg = (
                f"the state encoder reads behaviour of shape (B, 4, T) = {(b, 4, t)} (pupil "
                f"dilation, running speed, pupil x, pupil y); got {got}. Pass behavior= to the "
                "model (the loaders' batches carry it)."
            )
            raise ValueError(msg)
        frames, grid = self.frames_and_grid(x, shift)  # (B*T, C, H, W), (B*T, N, 2)
        sampled = self.sample(frames, grid)  # (B*T, C, N)
        state = self.state_encoder(behavior.transpose(1, 2).reshape(b * t, 4))  # (B*T, C)
        sampled = sampled + state.unsqueeze(-1).to(sampled.dtype)  # (B*T, C, N)
        drive = (sampled * self.features).sum(1) + self.bias  # (B*T, N)
        return drive.view(b, t, -1).transpose(1, 2)  # (B, N, T)


@register_readout("gaussian_state")
def gaussian_state(in_channels: int, spec: MouseSpec, config: ModelConfig
                   ) -> StateGaussianReadout:
    """The Gaussian readout with a state encoder of one mouse (``state_dropout`` from configs
    that have it, else 0)."""
    return StateGaussianReadout(
        in_channels, spec.placed_coords("gaussian_state"),
        bias=initial_bias(spec.mean_response, config.output),
        init_sigma=config.init_sigma, grid_mean_hidden=config.grid_mean_hidden,
        feature_reg=config.feature_reg, state_dropout=getattr(config, "state_dropout", 0.0),
    )
