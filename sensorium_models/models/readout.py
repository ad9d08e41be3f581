"""The full Gaussian readout: each neuron reads the core's features at one learned position.

A neuron's position is a 2D Gaussian in the feature map's normalised coordinates
([-1, 1]^2, x along the width, y along the height). Its mean is predicted from the neuron's
cortical position by a small network shared by the mouse's neurons (retinotopy is smooth, so
neighbours get neighbouring positions); its full 2x2 covariance is learned per neuron. Training
samples a position (the reparameterisation trick), evaluation uses the mean. The feature
vector at the position, weighted per neuron, plus a bias is the neuron's drive.

Registered as the readout ``"gaussian"``, the default of every model config.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import ModelConfig, Readout, initial_bias
from sensorium_models.models.registry import register_readout
from sensorium_models.models.specs import MouseSpec


def standardise(coords: np.ndarray) -> Tensor:
    """Cortical positions centred and scaled into [-1, 1] (largest absolute value 1)."""
    centred = np.asarray(coords, dtype=np.float64) - np.mean(coords, axis=0, keepdims=True)
    scale = np.abs(centred).max()
    return torch.as_tensor(centred / (scale if scale > 0 else 1.0), dtype=torch.float32)


class GaussianReadout(Readout):
    """Full-covariance Gaussian readout of one mouse, for (B, C, T, H, W) features.

    Parameters
    ----------
    in_channels
        Feature channels of the core.
    coords
        (N, 2) cortical x, y of the neurons: the input of the grid mean predictor.
    bias
        (N,) initial bias, or None for zeros.
    init_sigma
        The covariance's square root starts uniform in [-init_sigma, init_sigma] per entry.
    grid_mean_hidden
        Hidden units of the grid mean predictor (2 -> hidden -> 2, ELU, tanh output).
    feature_reg
        Weight of the L1 penalty on the feature weights.

    Examples
    --------
    >>> import numpy as np, torch
    >>> readout = GaussianReadout(16, np.random.default_rng(0).normal(size=(5, 2)))
    >>> readout(torch.randn(2, 16, 7, 9, 11)).shape
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
    ) -> None:
        super().__init__()
        n = len(coords)
        self.feature_reg = feature_reg
        self.register_buffer("source_grid", standardise(coords))  # (N, 2)
        self.grid_mean = nn.Sequential(
            nn.Linear(2, grid_mean_hidden), nn.ELU(), nn.Linear(grid_mean_hidden, 2), nn.Tanh()
        )
        self.sigma = nn.Parameter(torch.empty(n, 2, 2).uniform_(-init_sigma, init_sigma))
        # (C, N), the layout of the sampled features: the weighting runs on contiguous memory.
        self.features = nn.Parameter(torch.full((in_channels, n), 1.0 / in_channels))
        start = torch.zeros(n) if bias is None else torch.as_tensor(bias, dtype=torch.float32)
        self.bias = nn.Parameter(start.clone())

    @property
    def mu(self) -> Tensor:
        """(N, 2) mean positions, in [-1, 1]."""
        return self.grid_mean(self.source_grid)

    def positions(self, samples: int) -> Tensor:
        """(samples, N, 2) read-out positions: Gaussian draws in training, the means in eval."""
        mu = self.mu  # (N, 2)
        if not self.training:
            return mu.expand(samples, -1, -1)
        noise = torch.randn(samples, *mu.shape, device=mu.device, dtype=mu.dtype)  # (S, N, 2)
        return (mu + torch.einsum("nij,snj->sni", self.sigma, noise)).clamp(-1, 1)

    def forward(self, x: Tensor, shift: Tensor | None = None,
                behavior: Tensor | None = None) -> Tensor:
        """Read every neuron out of every frame.

        Parameters
        ----------
        x
            (B, C, T, H, W) core features.
        shift
            Optional (B, T, 2) offset of all positions per frame (from the shifter).
        behavior
            Not used: this readout sees behaviour only through the shift.

        Returns
        -------
        Tensor
            (B, N, T) drive, before the output nonlinearity.
        """
        b, t = x.shape[0], x.shape[2]
        frames, grid = self.frames_and_grid(x, shift)
        drive = (self.sample(frames, grid) * self.features).sum(1) + self.bias  # (B*T, N)
        return drive.view(b, t, -1).transpose(1, 2)  # (B, N, T)

    def frames_and_grid(self, x: Tensor, shift: Tensor | None) -> tuple[Tensor, Tensor]:
        """(B, C, T, H, W) features and an optional (B, T, 2) shift -> the frames as a batch,
        (B*T, C, H, W), and every neuron's position in each, (B*T, N, 2)."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        grid = self.positions(b * t)  # (B*T, N, 2)
        if shift is not None:
            grid = grid + shift.reshape(b * t, 1, 2)  # (B*T, N, 2)
        return frames, grid

    @staticmethod
    def sample(frames: Tensor, grid: Tensor) -> Tensor:
        """(B*T, C, H, W) frames read at (B*T, M, 2) positions -> (B*T, C, M) features."""
        # A position shifted past the edge reads the edge, not zeros: zeros would silence the
        # neuron and leave its position no gradient to come back with.
        return F.grid_sample(frames, grid.unsqueeze(2), align_corners=True,
                             padding_mode="border").squeeze(-1)  # (B*T, C, M)

    def regularizer(self) -> Tensor:
        """``feature_reg`` times the L1 norm of the feature weights."""
        return self.feature_reg * self.features.abs().sum()


@register_readout("gaussian")
def gaussian(in_channels: int, spec: MouseSpec, config: ModelConfig) -> GaussianReadout:
    """The full Gaussian readout of one mouse, from the config's shared readout options."""
    return GaussianReadout(
        in_channels, spec.placed_coords("gaussian"),
        bias=initial_bias(spec.mean_response, config.output),
        init_sigma=config.init_sigma, grid_mean_hidden=config.grid_mean_hidden,
        feature_reg=config.feature_reg,
    )
