"""The hierarchical Gaussian readout of Dynamic-V1FM: the full Gaussian readout (level 1) plus
coarser levels over blocks of neuron indices, fused.

Level k (2, 4, 8 or 16) reads the features at the positions of every k-th neuron (in file
order: the shifted, sampled positions of neurons 0, k, 2k, ...) with its own feature weights,
gives the value of pseudo-neuron j to neurons jk .. jk + k - 1, and refines it with a small
network applied to each value alone (1 -> 16k hidden units -> 1, ELU; the original's 1x1
convolutions). The hierarchy is over blocks of neuron indices, not spatial scales. The levels
are fused with level 1 by their mean, or by weights a small network gives from each level's
mean over the frames and neurons of a 15-frame window (the original pools the 15 outputs of
one clip; a longer clip pools window by window, as the windowed core produced them). The bias
comes after the fusion. Facts: ``notes/winning_models.md`` 2.2 (zhuyu-cs/Dynamic-VFM
``models/readouts_{mean,adaptive}.py``).

Registered as the readout ``"hierarchical_gaussian"``; its options ``levels`` and ``fusion``
live in the model config (:class:`~.dynamic_v1fm.DynamicV1FMConfig`).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor, nn

from sensorium_models.models.encoder import ModelConfig, initial_bias
from sensorium_models.models.readout import GaussianReadout
from sensorium_models.models.registry import register_readout
from sensorium_models.models.specs import MouseSpec
from sensorium_models.models.windows import merge_windows, split_windows

LEVELS = (2, 4, 8, 16)
#: Every level choice, named as the original's ``infer_mode``: "0" is level 1 alone.
COMBINATIONS: tuple[str, ...] = ("0", *(
    "_".join(str(k) for k in combo)
    for size in range(len(LEVELS), 0, -1) for combo in itertools.combinations(LEVELS, size)
))
FUSIONS = ("mean", "adaptive")


def parse_levels(levels: str) -> tuple[int, ...]:
    """The coarse levels of an ``infer_mode`` name, or ValueError naming the choices.

    Examples
    --------
    >>> parse_levels("2_8"), parse_levels("0")
    ((2, 8), ())
    """
    if levels not in COMBINATIONS:
        msg = (
            f"levels={levels!r} is not a level combination; choose one of "
            f"{', '.join(COMBINATIONS)} (levels 2, 4, 8, 16 joined by '_' in increasing "
            "order, or '0' for level 1 alone)."
        )
        raise ValueError(msg)
    return () if levels == "0" else tuple(int(k) for k in levels.split("_"))


def check_fusion(fusion: str) -> None:
    """ValueError naming the choices unless ``fusion`` is one of :data:`FUSIONS`."""
    if fusion not in FUSIONS:
        msg = f"fusion={fusion!r}; choose one of {', '.join(FUSIONS)}."
        raise ValueError(msg)


def adaptive_fusion(stacked: Tensor, weigh: nn.Module, window: int) -> Tensor:
    """(B, T, S, N) levels -> (B, T, N): their sum weighted by ``weigh`` of each level's mean
    over the frames and neurons of each ``window`` frames (all frames if fewer)."""
    t = stacked.shape[1]
    window = min(t, window)
    parts = split_windows(stacked, window, 0, dim=1)  # (K*B, window, S, N)
    weights = weigh(parts.mean((1, 3)))  # (K*B, S)
    fused = (parts * weights[:, None, :, None]).sum(2)  # (K*B, window, N)
    return merge_windows(fused, t, window, 0, dim=1)  # (B, T, N)


class HierarchicalGaussianReadout(GaussianReadout):
    """Level 1 (the full Gaussian readout) plus levels over blocks of neuron indices, fused.

    Parameters
    ----------
    in_channels, coords, bias, init_sigma, grid_mean_hidden, feature_reg
        As :class:`~.readout.GaussianReadout` (the penalty is on level 1's features, as the
        original's).
    levels
        Coarse levels, each a divisor from 2, 4, 8, 16; level k has ``max(1, N // k)``
        pseudo-neurons.
    fusion
        ``"mean"`` or ``"adaptive"``.
    fusion_window
        Frames over which the adaptive fusion pools a level (the clip's 15 outputs).

    Examples
    --------
    >>> import numpy as np, torch
    >>> readout = HierarchicalGaussianReadout(16, np.random.default_rng(0).normal(size=(40, 2)),
    ...                                       levels=(2, 16), fusion="adaptive")
    >>> readout(torch.randn(2, 16, 15, 9, 11)).shape
    torch.Size([2, 40, 15])
    """

    def __init__(
        self,
        in_channels: int,
        coords: np.ndarray,
        *,
        levels: tuple[int, ...] = LEVELS,
        fusion: str = "mean",
        fusion_window: int = 15,
        bias: np.ndarray | None = None,
        init_sigma: float = 0.2,
        grid_mean_hidden: int = 32,
        feature_reg: float = 0.0,
    ) -> None:
        super().__init__(in_channels, coords, bias=bias, init_sigma=init_sigma,
                         grid_mean_hidden=grid_mean_hidden, feature_reg=feature_reg)
        parse_levels("_".join(map(str, levels)) or "0")
        check_fusion(fusion)
        n = len(coords)
        self.levels, self.fusion, self.fusion_window = levels, fusion, fusion_window
        self.level_features = nn.ParameterList()
        self.refine = nn.ModuleList()
        for k in levels:
            m = max(1, n // k)
            self.level_features.append(nn.Parameter(torch.full((in_channels, m), 1 / in_channels)))
            self.refine.append(nn.Sequential(nn.Linear(1, 16 * k), nn.ELU(),
                                             nn.Linear(16 * k, 1, bias=False)))
            # nearest interpolation along the neuron axis, down (N -> m) and back up
            self.register_buffer(f"pick{k}", torch.arange(m) * n // m, persistent=False)
            self.register_buffer(f"spread{k}", torch.arange(n) * m // n, persistent=False)
        s = 1 + len(levels)
        self.fuse = (nn.Sequential(nn.Linear(s, s), nn.ReLU(), nn.Linear(s, s), nn.Sigmoid())
                     if fusion == "adaptive" and levels else None)

    def forward(self, x: Tensor, shift: Tensor | None = None,
                behavior: Tensor | None = None) -> Tensor:
        """Read every neuron out of every frame at every level, and fuse.

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
        frames, grid = self.frames_and_grid(x, shift)  # (B*T, C, H, W), (B*T, N, 2)
        picks = [getattr(self, f"pick{k}") for k in self.levels]
        grids = torch.cat([grid, *(grid[:, p] for p in picks)], dim=1)  # (B*T, N + sum m, 2)
        # indexed, not unpacked: dynamo cannot unpack a ParameterList (torch.compile failed so)
        level_features = [self.level_features[i] for i in range(len(self.levels))]
        features = torch.cat([self.features, *level_features], dim=1)  # (C, N + sum m)
        sampled = self.sample(frames, grids)  # one sampling for all levels: (B*T, C, N + sum m)
        drives = (sampled * features).sum(1)  # (B*T, N + sum m)
        sizes = [grid.shape[1], *(len(p) for p in picks)]
        first, *coarse = drives.split(sizes, dim=1)  # (B*T, N), (B*T, m_k) ...
        levels = [first]
        for k, y, refine in zip(self.levels, coarse, self.refine, strict=True):
            # The refinement acts on each value alone, so refining before spreading the
            # pseudo-neurons over their k neurons is the same and k times cheaper.
            refined = refine(y.unsqueeze(-1)).squeeze(-1)  # (B*T, m_k)
            levels.append(refined[:, getattr(self, f"spread{k}")])  # (B*T, N)
        stacked = torch.stack(levels, dim=1).view(b, t, len(levels), -1)  # (B, T, S, N)
        if self.fuse is None:
            drive = stacked.mean(2)  # (B, T, N)
        else:
            drive = adaptive_fusion(stacked, self.fuse, self.fusion_window)  # (B, T, N)
        return (drive + self.bias).transpose(1, 2)  # (B, N, T)

    def regularizer(self) -> Tensor:
        """``feature_reg`` times the L1 norm of level 1's feature weights (as the original)."""
        return self.feature_reg * self.features.abs().sum()


@register_readout("hierarchical_gaussian")
def hierarchical_gaussian(in_channels: int, spec: MouseSpec,
                          config: ModelConfig) -> HierarchicalGaussianReadout:
    """The hierarchical Gaussian readout of one mouse, levels and fusion from the config."""
    levels, fusion = getattr(config, "levels", None), getattr(config, "fusion", None)
    if not isinstance(levels, str) or not isinstance(fusion, str):
        msg = (
            f"readout='hierarchical_gaussian' needs the options levels and fusion, which "
            f"{type(config).__name__} does not have; use it with dynamic_v1fm (or a config "
            "that defines them)."
        )
        raise ValueError(msg)
    coords = spec.placed_coords("hierarchical_gaussian")
    return HierarchicalGaussianReadout(
        in_channels, coords, levels=parse_levels(levels), fusion=fusion,
        bias=initial_bias(spec.mean_response, config.output), init_sigma=config.init_sigma,
        grid_mean_hidden=config.grid_mean_hidden, feature_reg=config.feature_reg,
    )
