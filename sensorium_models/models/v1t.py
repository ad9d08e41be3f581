"""V1T (Li et al., TMLR 2023, a SENSORIUM 2022 participant): a vision transformer core for
static images whose every block is told the mouse's behaviour.

The image (its first channel) is cut into overlapping ``patch_size`` x ``patch_size``
patches every ``patch_stride`` pixels; each is flattened and linearly embedded, a learned
class token is prepended and a learned position table added. Before every block a small
behaviour MLP (behaviour -> embed_dim / 2 -> embed_dim, tanh after each layer) maps the
behaviour to one vector added to every token: behaviour changes what the whole image network
computes, not only a gain at the end. Each block is pre-norm multi-head self-attention
(heads ``embed_dim`` wide each) and an MLP (LayerNorm -> Linear -> GELU -> Linear), both
residual with stochastic depth. The patch tokens, back on their grid, go to the full Gaussian
readout like the SOTA core's features.

Behaviour reaches the core as the input's extra channels (the loader's behaviour and pupil
channels, constant over the image): their spatial means are the behaviour MLP's input, and
only the first channel is cut into patches. The original's best variant has one behaviour MLP
per mouse; the core of this zoo does not know the mouse, so the behaviour MLPs are shared by
all mice (the original's shared mode). Images are one-frame clips (burn_in 0), as for
:mod:`.sota_2022`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model


@dataclass(frozen=True, kw_only=True)
class V1TConfig(ModelConfig):
    """Options of the V1T core (plus the readout's, see :class:`ModelConfig`).

    Attributes
    ----------
    height, width
        Image size the core is built for (the position table has one row per patch).
    patch_size, patch_stride
        Patches of ``patch_size``^2 pixels every ``patch_stride`` pixels.
    embed_dim, heads, mlp_dim, depth
        Token width, attention heads (each ``embed_dim`` wide), hidden units of each
        block's MLP, blocks.
    patch_dropout, attention_dropout, drop_path
        Dropout of the embedded patches, of the attention weights and the blocks' outputs,
        and the rate at which a block's branch is dropped per sample (stochastic depth).
    core_l1
        Weight of an L1 penalty on every core parameter.
    """

    height: int = 36
    width: int = 64
    patch_size: int = 8
    patch_stride: int = 1
    embed_dim: int = 155
    heads: int = 4
    mlp_dim: int = 488
    depth: int = 4
    patch_dropout: float = 0.0
    attention_dropout: float = 0.0
    drop_path: float = 0.0
    core_l1: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = (self.height, self.width, self.patch_size, self.patch_stride, self.embed_dim,
                 self.heads, self.mlp_dim, self.depth)
        if min(sizes) < 1:
            msg = f"sizes of the V1T core must be >= 1; got {sizes}."
            raise ValueError(msg)
        if self.patch_stride > self.patch_size or self.patch_size > min(self.height,
                                                                         self.width):
            msg = (
                f"patch_size={self.patch_size}, patch_stride={self.patch_stride} for "
                f"{self.height} x {self.width} images: the stride must be <= the patch size "
                "and a patch must fit in the image."
            )
            raise ValueError(msg)
        if max(self.patch_dropout, self.attention_dropout, self.drop_path) >= 1:
            msg = "patch_dropout, attention_dropout and drop_path are rates; each must be < 1."
            raise ValueError(msg)

    @property
    def grid(self) -> tuple[int, int]:
        """Patch positions down and across: the core's output size."""
        return ((self.height - self.patch_size) // self.patch_stride + 1,
                (self.width - self.patch_size) // self.patch_stride + 1)

    def build_core(self, in_channels: int) -> V1TCore:
        return V1TCore(in_channels, self)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Zero whole samples of a residual branch with probability ``rate`` (scaling the rest)."""
    if not training or rate == 0:
        return x
    keep = torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device) >= rate
    return x * keep.to(x.dtype) / (1 - rate)


class BehaviorMLP(nn.Module):
    """behaviour (B, K) -> (B, D): Linear -> tanh -> Linear -> tanh."""

    def __init__(self, inputs: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(inputs, dim // 2), nn.Tanh(),
                                 nn.Linear(dim // 2, dim), nn.Tanh())

    def forward(self, behavior: Tensor) -> Tensor:
        return self.mlp(behavior)


class Block(nn.Module):
    """Pre-norm attention and MLP, each a residual branch with stochastic depth."""

    def __init__(self, config: V1TConfig, behaviors: int) -> None:
        super().__init__()
        d, self.heads = config.embed_dim, config.heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d * self.heads, bias=False)
        self.project = nn.Sequential(nn.Linear(d * self.heads, d),
                                     nn.Dropout(config.attention_dropout))
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.mlp_dim), nn.GELU(),
                                 nn.Dropout(config.attention_dropout),
                                 nn.Linear(config.mlp_dim, d),
                                 nn.Dropout(config.attention_dropout))
        self.behavior = BehaviorMLP(behaviors, d) if behaviors else None
        self.attention_dropout = config.attention_dropout
        self.drop_path = config.drop_path

    def forward(self, x: Tensor, behavior: Tensor | None) -> Tensor:
        b, n, d = x.shape
        if self.behavior is not None and behavior is not None:
            x = x + self.behavior(behavior)[:, None, :]  # (B, N, D)
        qkv = self.qkv(self.norm(x)).view(b, n, 3, self.heads, d)  # (B, N, 3, heads, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, D)
        attended = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attention_dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(b, n, d * self.heads)  # (B, N, heads*D)
        x = x + drop_path(self.project(attended), self.drop_path, self.training)
        return x + drop_path(self.mlp(x), self.drop_path, self.training)  # (B, N, D)


class V1TCore(Core):
    """Patch embedding, then ``depth`` behaviour-conditioned transformer blocks; burn_in 0.

    Examples
    --------
    >>> import torch
    >>> from sensorium_models.models.registry import resolve_config
    >>> config = resolve_config("v1t", embed_dim=8, heads=2, mlp_dim=8, depth=1,
    ...                         patch_stride=4)
    >>> core = config.build_core(4)  # image + 3 behaviour channels
    >>> core(torch.zeros(2, 4, 1, 36, 64)).shape
    torch.Size([2, 8, 1, 8, 15])
    """

    def __init__(self, in_channels: int, config: V1TConfig) -> None:
        super().__init__()
        self.config = config
        p, d = config.patch_size, config.embed_dim
        rows, cols = config.grid
        self.embed = nn.Linear(p * p, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d))
        self.positions = nn.Parameter(torch.randn(1, rows * cols + 1, d))
        self.dropout = nn.Dropout(config.patch_dropout)
        self.blocks = nn.ModuleList(Block(config, in_channels - 1) for _ in range(config.depth))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.out_channels = d
        self.burn_in = 0

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        if (h, w) != (self.config.height, self.config.width):
            msg = (
                f"images are {h} x {w} but this V1T core was built for "
                f"{self.config.height} x {self.config.width} (its position table); create "
                f"the model with height={h}, width={w}, or load images at that size."
            )
            raise ValueError(msg)
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        behavior = frames[:, 1:].mean((2, 3)) if c > 1 else None  # (B*T, C - 1)
        p, s = self.config.patch_size, self.config.patch_stride
        patches = F.unfold(frames[:, :1], p, stride=s).transpose(1, 2)  # (B*T, N, p*p)
        tokens = torch.cat([self.cls.expand(b * t, -1, -1), self.embed(patches)], 1)
        tokens = self.dropout(tokens + self.positions)  # (B*T, N + 1, D)
        for block in self.blocks:
            tokens = block(tokens, behavior)  # (B*T, N + 1, D)
        rows, cols = self.config.grid
        grid = tokens[:, 1:].transpose(1, 2).reshape(b, t, -1, rows, cols)  # (B, T, D, R, C)
        return grid.transpose(1, 2)  # (B, D, T, rows, cols)

    def regularizer(self) -> Tensor:
        """``core_l1`` times the L1 norm of every core parameter."""
        return self.config.core_l1 * torch.stack([p.abs().sum() for p in self.parameters()]).sum()


@register_model
def v1t() -> V1TConfig:
    """V1T's core (4 blocks, 4 heads, tokens 155 wide, 8 x 8 patches every pixel) with the
    2022 full Gaussian readout; see docs/models.md for which hyperparameters are confirmed."""
    return V1TConfig(init_sigma=0.1, feature_reg=0.0076, shifter=False)
