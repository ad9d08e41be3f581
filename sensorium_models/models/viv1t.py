"""ViV1T, the 3rd-place model of SENSORIUM 2023: a factorised video vision transformer.

A clip (B, C, T, H, W) with behaviour and pupil position as channels is cut into overlapping
tubelets of 25 frames x 7 x 7 pixels (temporal stride 1, spatial stride 2), each embedded by
LayerNorm -> Linear -> LayerNorm. Learned spatial positions and temporal positions are added,
then a spatial transformer attends across the 15 x 29 positions of each time step and a temporal
transformer across the T - 24 time steps of each position. Every block is a *parallel* block:
one fused projection of the normalised tokens gives the attention's q, k, v and the MLP's
input, and both branches are added to the residual. The output (B, 112, T - 24, 15, 29) feeds
a Gaussian readout with a state encoder (:mod:`.viv1t_readout`).

The original (bryanlimy/ViV1T) slices a learned temporal table of 276 rows (300 - 24); clips of
140 frames train only its first 116 rows, yet whole-trial inference reads all of them.
``temporal_positions="learned"`` keeps that (faithful); the default ``"sinusoidal"`` uses a
fixed encoding defined for any length (clean). See docs/models.md, "ViV1T".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model

TEMPORAL_POSITIONS = ("sinusoidal", "learned")


@dataclass(frozen=True, kw_only=True)
class ViV1TConfig(ModelConfig):
    """Options of the ViV1T core (plus the readout's, see :class:`ModelConfig`).

    Attributes
    ----------
    height, width
        Frame size the core is built for (the spatial position table has one row per
        tubelet position).
    tubelet_frames, tubelet_size, spatial_stride
        Tubelets of ``tubelet_frames`` frames x ``tubelet_size``^2 pixels, every frame and
        every ``spatial_stride`` pixels; the first ``tubelet_frames - 1`` frames are burn-in.
    embed_dim, heads, head_dim, mlp_dim
        Token width, attention heads and their width, hidden units of each block's MLP.
    spatial_depth, temporal_depth
        Blocks of the spatial, then the temporal transformer.
    patch_dropout, attention_dropout, mlp_dropout, drop_path
        Dropout of the embedded tubelets, of the attention output, of the MLP's hidden units,
        and the rate at which a block's branches are dropped per sample (stochastic depth).
    temporal_positions
        ``"sinusoidal"`` (clean, default): a fixed encoding for any clip length.
        ``"learned"`` (faithful): a learned table of ``max_frames - tubelet_frames + 1`` rows,
        sliced to the clip; rows past the training clips' length never train.
    max_frames
        Longest input of the learned temporal table (300: a whole trial).
    state_dropout
        Dropout inside the readout's state encoder (``readout="gaussian_state"``).
    """

    readout: str = "gaussian_state"
    output: str = "exp"
    height: int = 36
    width: int = 64
    tubelet_frames: int = 25
    tubelet_size: int = 7
    spatial_stride: int = 2
    embed_dim: int = 112
    heads: int = 11
    head_dim: int = 48
    mlp_dim: int = 136
    spatial_depth: int = 3
    temporal_depth: int = 5
    patch_dropout: float = 0.1338
    attention_dropout: float = 0.358
    mlp_dropout: float = 0.0592
    drop_path: float = 0.0505
    temporal_positions: str = "sinusoidal"
    max_frames: int = 300
    state_dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temporal_positions not in TEMPORAL_POSITIONS:
            msg = (
                f"temporal_positions={self.temporal_positions!r}; choose 'sinusoidal' (clean: "
                "a fixed encoding for any length) or 'learned' (faithful to ViV1T: a learned "
                "table whose rows past the training clips never train)."
            )
            raise ValueError(msg)
        for name in ("height", "width", "tubelet_frames", "tubelet_size", "spatial_stride",
                     "embed_dim", "heads", "head_dim", "mlp_dim", "spatial_depth",
                     "temporal_depth"):
            if getattr(self, name) < 1:
                msg = f"{name}={getattr(self, name)}; it must be a positive integer."
                raise ValueError(msg)
        for name in ("patch_dropout", "attention_dropout", "mlp_dropout", "drop_path",
                     "state_dropout"):
            if not getattr(self, name) < 1:
                msg = f"{name}={getattr(self, name)}; a dropout rate must lie in [0, 1)."
                raise ValueError(msg)
        if self.tubelet_size > min(self.height, self.width):
            msg = (f"tubelet_size={self.tubelet_size} is larger than the {self.height} x "
                   f"{self.width} frames; choose at most {min(self.height, self.width)}.")
            raise ValueError(msg)
        if self.max_frames < self.tubelet_frames:
            msg = (f"max_frames={self.max_frames} is shorter than one tubelet "
                   f"(tubelet_frames={self.tubelet_frames}).")
            raise ValueError(msg)

    def build_core(self, in_channels: int) -> ViV1TCore:
        return ViV1TCore(in_channels, self)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Zero whole samples of a residual branch with probability ``rate``, rescaling the rest.

    Examples
    --------
    >>> import torch
    >>> drop_path(torch.ones(2, 3), 0.5, training=False).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> sorted(set(drop_path(torch.ones(1000, 1), 0.5, training=True).flatten().tolist()))
    [0.0, 2.0]
    """
    if rate == 0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - rate)
    return x * keep / (1 - rate)


def sinusoidal(length: int, dim: int, device: torch.device) -> Tensor:
    """(length, dim) fixed positions: sine on even, cosine on odd channels, geometric
    frequencies from 1 down to 1 / 10000.

    Examples
    --------
    >>> import torch
    >>> sinusoidal(3, 4, torch.device("cpu"))[0].tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (L, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                          * (-math.log(10000.0) / dim))  # (ceil(D / 2),)
    angles = position * frequency  # (L, ceil(D / 2))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(angles)
    out[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return out


class Tubelets(nn.Module):
    """Tubelet embedding: LayerNorm over each tubelet's values, Linear, LayerNorm.

    Computed as one strided 3D convolution with the LayerNorm folded in: the first norm's
    statistics are pooled moments of the clip, so the (B, T', P, C * 25 * 7 * 7) tubelets (1.2 GB
    for one 140-frame clip) are never materialised. The parameters are those of the
    LayerNorm(C * 25 * 7 * 7) -> Linear -> LayerNorm(D) they implement.

    Examples
    --------
    >>> import torch
    >>> Tubelets(5, ViV1TConfig())(torch.randn(1, 5, 26, 36, 64)).shape
    torch.Size([1, 2, 15, 29, 112])
    """

    def __init__(self, in_channels: int, config: ViV1TConfig) -> None:
        super().__init__()
        self.kernel = (config.tubelet_frames, config.tubelet_size, config.tubelet_size)
        self.stride = (1, config.spatial_stride, config.spatial_stride)
        values = in_channels * math.prod(self.kernel)
        self.input_norm = nn.LayerNorm(values)
        self.project = nn.Linear(values, config.embed_dim)
        self.output_norm = nn.LayerNorm(config.embed_dim)
        self.dropout = nn.Dropout(config.patch_dropout)
        nn.init.trunc_normal_(self.project.weight, std=0.02)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, T', H', W', D) embedded tubelets."""
        c = x.shape[1]
        weight = self.project.weight * self.input_norm.weight  # (D, C * t * k * k)
        kernel = weight.view(-1, c, *self.kernel)  # (D, C, t, k, k)
        dot = F.conv3d(x, kernel.to(x.dtype), stride=self.stride)  # (B, D, T', H', W')
        # the first LayerNorm's mean and variance over each tubelet, in float32
        x32 = x.float()
        mean = F.avg_pool3d(x32, self.kernel, self.stride).mean(1, True)  # (B, 1, T', H', W')
        square = F.avg_pool3d(x32 * x32, self.kernel, self.stride).mean(1, True)
        inv_std = torch.rsqrt((square - mean * mean).clamp_min(0) + self.input_norm.eps)
        shift = self.project.weight @ self.input_norm.bias + self.project.bias  # (D,)
        total = weight.sum(1)  # (D,)
        tokens = (dot - mean * total[:, None, None, None]) * inv_std  # (B, D, T', H', W')
        tokens = tokens + shift[:, None, None, None]
        tokens = tokens.permute(0, 2, 3, 4, 1)  # (B, T', H', W', D)
        return self.dropout(self.output_norm(tokens))


class ParallelBlock(nn.Module):
    """``x + DropPath(attention(LN(x))) + DropPath(MLP(LN(x)))`` with one fused input projection.

    ``[q, k, v, m] = Linear(LN(x))``; attention over ``heads`` heads of ``head_dim`` through
    :func:`torch.nn.functional.scaled_dot_product_attention` (scale 1 / sqrt(head_dim)), dropout
    on its output, projected back by a Linear; the MLP branch is Linear(dropout(GELU(m))). No
    biases in the projections.

    Examples
    --------
    >>> import torch
    >>> ParallelBlock(ViV1TConfig())(torch.randn(2, 435, 112)).shape
    torch.Size([2, 435, 112])
    """

    def __init__(self, config: ViV1TConfig) -> None:
        super().__init__()
        inner = config.heads * config.head_dim
        self.heads, self.split = config.heads, (inner, inner, inner, config.mlp_dim)
        self.norm = nn.LayerNorm(config.embed_dim)
        self.fused = nn.Linear(config.embed_dim, sum(self.split), bias=False)
        self.attention_out = nn.Linear(inner, config.embed_dim, bias=False)
        self.mlp_out = nn.Linear(config.mlp_dim, config.embed_dim, bias=False)
        self.attention_dropout, self.mlp_dropout = config.attention_dropout, config.mlp_dropout
        self.drop_path_rate = config.drop_path
        for linear in (self.fused, self.attention_out, self.mlp_out):
            nn.init.trunc_normal_(linear.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        # q, k, v: (B, N, heads * head_dim); m: (B, N, mlp_dim)
        q, k, v, m = self.fused(self.norm(x)).split(self.split, dim=-1)
        q, k, v = (a.view(b, n, self.heads, -1).transpose(1, 2) for a in (q, k, v))  # (B, h, N, d)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        attended = F.dropout(attended, self.attention_dropout, self.training)
        attended = attended.transpose(1, 2).reshape(b, n, -1)  # (B, N, inner)
        mlp = F.dropout(F.gelu(m), self.mlp_dropout, self.training)  # (B, N, mlp)
        return (x + drop_path(self.attention_out(attended), self.drop_path_rate, self.training)
                + drop_path(self.mlp_out(mlp), self.drop_path_rate, self.training))  # (B, N, D)


class ViV1TCore(Core):
    """Tubelets -> positions -> spatial transformer -> temporal transformer, (B, D, T', H', W').

    ``burn_in`` is ``tubelet_frames - 1``: output frame ``i`` is the tubelet ending at input
    frame ``burn_in + i``. Attention is not masked, so within a clip a time step also sees later
    ones, as in the original.

    Examples
    --------
    >>> import torch
    >>> core = ViV1TCore(5, ViV1TConfig(embed_dim=8, heads=2, head_dim=4, mlp_dim=8))
    >>> core(torch.randn(1, 5, 30, 36, 64)).shape, core.burn_in
    (torch.Size([1, 8, 6, 15, 29]), 24)
    """

    supports_checkpointing = True

    def __init__(self, in_channels: int, config: ViV1TConfig) -> None:
        super().__init__()
        self.config = config
        self.tubelets = Tubelets(in_channels, config)
        self.grid = tuple((n - config.tubelet_size) // config.spatial_stride + 1
                          for n in (config.height, config.width))
        self.spatial_positions = nn.Parameter(
            torch.randn(self.grid[0] * self.grid[1], config.embed_dim))
        self.temporal_table: nn.Parameter | None = None
        if config.temporal_positions == "learned":
            rows = config.max_frames - config.tubelet_frames + 1
            self.temporal_table = nn.Parameter(torch.randn(rows, config.embed_dim))
        self.spatial = nn.Sequential(*(ParallelBlock(config) for _ in range(config.spatial_depth)))
        self.temporal = nn.Sequential(*(ParallelBlock(config)
                                        for _ in range(config.temporal_depth)))
        self.out_channels = config.embed_dim
        self.burn_in = config.tubelet_frames - 1

    def check(self, x: Tensor) -> None:
        """Raise ValueError naming the fix if the core cannot take clips of this shape."""
        config = self.config
        t, h, w = x.shape[2:]
        if t < config.tubelet_frames:
            msg = (
                f"a clip of {t} frames is shorter than one tubelet (tubelet_frames="
                f"{config.tubelet_frames}); pass at least {config.tubelet_frames} frames."
            )
            raise ValueError(msg)
        if (h, w) != (config.height, config.width):
            msg = (f"frames of {h} x {w} pixels; this core was built for {config.height} x "
                   f"{config.width} (height, width options).")
            raise ValueError(msg)
        if self.temporal_table is not None and t > config.max_frames:
            msg = (
                f"a clip of {t} frames is longer than max_frames={config.max_frames}, the "
                "length of the learned temporal table; build the model with a larger "
                "max_frames or temporal_positions='sinusoidal'."
            )
            raise ValueError(msg)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x)
        tokens = self.tubelets(x)  # (B, T', H', W', D)
        b, t, h, w, d = tokens.shape
        tokens = tokens.reshape(b, t, h * w, d) + self.spatial_positions  # (B, T', P, D)
        if self.temporal_table is None:
            temporal = sinusoidal(t, d, x.device)  # (T', D)
        else:
            temporal = self.temporal_table[:t]  # (T', D)
        tokens = tokens + temporal[:, None]  # (B, T', P, D)
        tokens = tokens.reshape(b * t, h * w, d)  # (B*T', P, D)
        for block in self.spatial:
            tokens = self.through(block, tokens)  # (B*T', P, D)
        tokens = tokens.view(b, t, h * w, d).transpose(1, 2)  # (B, P, T', D)
        tokens = tokens.reshape(b * h * w, t, d)  # (B*P, T', D)
        for block in self.temporal:
            tokens = self.through(block, tokens)  # (B*P, T', D)
        tokens = tokens.view(b, h, w, t, d)  # (B, H', W', T', D)
        return tokens.permute(0, 4, 3, 1, 2)  # (B, D, T', H', W')

    def regularizer(self) -> Tensor:
        """None: the original regularises the core only through AdamW's weight decay."""
        return self.spatial_positions.new_zeros(())


@register_model
def viv1t() -> ViV1TConfig:
    """ViV1T as published: 112-wide tokens, 3 spatial + 5 temporal parallel blocks of 11 x 48
    heads, the Gaussian readout with a state encoder, exp output; clean temporal positions."""
    return ViV1TConfig()


#: ViV1T's published training recipe (the defaults of bryanlimy/ViV1T's train.py and its
#: README's command) as training-config keys: written to a TOML file, ``sensorium train
#: --config`` takes it. docs/models.md ("ViV1T") says what each key reproduces.
RECIPE: dict[str, object] = {
    "model": "viv1t",
    "mice": ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"],
    "frames": 140,  # outputs are the last 140 - 24 = 116 frames of each clip
    "batch_size": 6,  # clips per mouse per optimizer step; one batch of every mouse per step
    "accumulate": 1,
    "mixed_mice": False,
    "normalize": "official",  # per-pixel and per-(neuron, frame) statistics; see quirks
    "behavior_channels": True,
    "pupil_channels": True,  # 5 input channels: video, dilation, running, pupil x, pupil y
    "loss": "poisson_correlation",
    "optimizer": "adamw",
    "lr": 4.8e-3,  # core
    "weight_decay": 0.1789,
    "readout_lr": 3.6e-3,  # readouts and shifters
    "readout_weight_decay": 0.3939,
    "schedule": "plateau",
    "patience": 5,
    "factor": 0.3,
    "lr_decay_steps": 3,  # the best weights come back at each cut; stop after the third
    "max_epochs": 400,
    "cutmix": 0.0,
    "ema": 0.0,
    "precision": "bf16",
    "seed": 1234,  # the ensemble: five runs with seeds 1234 ... 1238
}

