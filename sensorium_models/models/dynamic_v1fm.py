"""Dynamic-V1FM, the 2nd-place model of SENSORIUM 2023 (Yu Zhu): a 3D shifted-window core.

A clip's video channel is cut into 2 x 2 x 2 patches (224 channels, LayerNorm), then four
blocks each add a behaviour code to every token, attend within 8 x 7 x 7 windows of tokens
cyclically shifted by 4 x 3 x 3 (every block shifts; a learned relative-position bias per
head), and apply a SwiGLU MLP with a depth-wise 3 x 3 x 3 convolution. There is no norm
inside the blocks. The behaviour code of a block is an MLP of the clip's behaviour channels
(pupil dilation, running speed, pupil x, y) per frame, two frames' codes side by side per
token. Each mouse reads the features out with the hierarchical Gaussian readout
(:mod:`.hierarchical_gaussian`), shifted by its pupil, through ELU + 1.

The model is trained on clips of 30 frames: the 15 tokens along time give the predictions of
the last 15 frames, the first 15 are context (burn-in). A longer clip runs as 30-frame windows
every 15 frames, batched, and is stitched (:mod:`.windows`), so whole trials predict as with any
core. Facts and sources: ``notes/winning_models.md`` section 2 (zhuyu-cs/Dynamic-VFM).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.hierarchical_gaussian import check_fusion, parse_levels
from sensorium_models.models.registry import register_model
from sensorium_models.models.windows import merge_windows, split_windows

#: The published recipe (notes/winning_models.md 2.1, 2.3) in the trainer's key names, for
#: ``sensorium train --model dynamic_v1fm``. Keys past ``lr`` need the general trainer options
#: (AdamW weight decay, warm-up/constant/cosine schedule, precision), a training option each.
RECIPE: dict[str, object] = {
    "model": "dynamic_v1fm",
    "frames": 30,  # scored on the last 15: the model's burn-in is 15
    "normalize": "official",  # video (x - mean) / std; behaviour / std; pupil z-scored
    "behavior_channels": True,
    "pupil_channels": True,  # the behaviour MLPs take all four variables: in_channels = 5
    "batch_size": 32,  # one mouse per batch, mice in turn
    "train_tier": "train",
    "val_tier": "oracle",
    "lr": 1e-3,
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "warmup_cosine",
    "warmup_epochs": 1.0,  # the original: 600 iterations from lr / 3
    "constant_epochs": 80.0,
    "max_epochs": 180,  # cosine from lr to min_lr over the last 100
    "min_lr": 1e-6,
    "mixed_mice": False,
    "cutmix": 0.0,
    "ema": 0.0,
    "precision": "fp32",
    "accumulate": 1,
}


@dataclass(frozen=True, kw_only=True)
class DynamicV1FMConfig(ModelConfig):
    """Options of the Dynamic-V1FM core and its hierarchical readout (plus
    :class:`ModelConfig`'s, whose defaults here are the original's).

    Attributes
    ----------
    emb_dim
        Channels of the tokens.
    patch_size
        Frames, rows and columns of a patch; the frames of a window must divide by the first.
    window_size, shift_size
        Attention window and cyclic shift, in tokens (time, height, width).
    num_heads
        Attention heads; ``emb_dim`` must divide by it.
    mlp_dim
        Hidden channels of the SwiGLU MLP (and of its depth-wise convolution).
    num_blocks
        Attention blocks.
    window
        Frames of one clip the core sees at once; the last ``window / patch_size[0]`` of them
        get predictions, the rest are burn-in. Longer clips run as windows.
    levels
        The readout's levels besides level 1, as the original's ``infer_mode``: ``"0"`` (level
        1 only), or levels from 2, 4, 8, 16 joined by ``_`` in increasing order
        (``"2_4_8_16"``, ``"2_8"``, ``"16"``).
    fusion
        How the readout combines its levels: ``"mean"`` or ``"adaptive"`` (weights from a
        small network of each level's mean).
    """

    init_sigma: float = 0.2
    grid_mean_hidden: int = 32
    shifter_hidden: int = 16
    readout: str = "hierarchical_gaussian"
    emb_dim: int = 224
    patch_size: tuple[int, ...] = (2, 2, 2)
    window_size: tuple[int, ...] = (8, 7, 7)
    shift_size: tuple[int, ...] = (4, 3, 3)
    num_heads: int = 4
    mlp_dim: int = 488
    num_blocks: int = 4
    window: int = 30
    levels: str = "2_4_8_16"
    fusion: str = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("patch_size", "window_size", "shift_size"):
            value = getattr(self, name)
            if len(value) != 3 or (name != "shift_size" and min(value) < 1):
                msg = f"{name}={value}; give three sizes (time, height, width), each >= 1."
                raise ValueError(msg)
        if any(s >= w for s, w in zip(self.shift_size, self.window_size, strict=True)):
            msg = (f"shift_size={self.shift_size} with window_size={self.window_size}; each "
                   "shift must be smaller than its window (the original: half of it).")
            raise ValueError(msg)
        if min(self.emb_dim, self.num_heads, self.mlp_dim, self.num_blocks) < 1 or (
                self.emb_dim % self.num_heads or self.emb_dim % self.patch_size[0]):
            msg = (f"emb_dim={self.emb_dim} must divide by num_heads={self.num_heads} and by "
                   f"patch_size[0]={self.patch_size[0]}; emb_dim, num_heads, mlp_dim and "
                   "num_blocks must be >= 1.")
            raise ValueError(msg)
        if self.window % self.patch_size[0] or self.window <= self.patch_size[0]:
            msg = (f"window={self.window} frames; it must be a multiple of patch_size[0]="
                   f"{self.patch_size[0]} and longer than one patch (the original: 30).")
            raise ValueError(msg)
        parse_levels(self.levels)
        check_fusion(self.fusion)

    def build_core(self, in_channels: int) -> DynamicV1FMCore:
        return DynamicV1FMCore(in_channels, self)


class PatchEmbed(nn.Module):
    """Video channel -> non-overlapping patches -> LayerNorm, tokens channels-last."""

    def __init__(self, patch_size: tuple[int, ...], emb_dim: int) -> None:
        super().__init__()
        t, h, w = patch_size
        self.patch_size = (t, h, w)
        self.proj = nn.Conv3d(1, emb_dim, kernel_size=(t, h, w), stride=(t, h, w))
        self.norm = nn.LayerNorm(emb_dim)

    def forward(self, x: Tensor) -> Tensor:
        pads = [(-size) % p for size, p in zip(x.shape[2:], self.patch_size, strict=True)]
        x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))  # (B, 1, T, H, W) padded to patches
        x = self.proj(x)  # (B, C, T', H', W')
        return self.norm(x.permute(0, 2, 3, 4, 1))  # (B, T', H', W', C)


class BehaviorMLP(nn.Module):
    """Behaviour per frame -> a code per token: Linear, tanh, Linear, tanh; the codes of the
    frames of one patch side by side."""

    def __init__(self, in_features: int, emb_dim: int, patch_frames: int) -> None:
        super().__init__()
        self.patch_frames = patch_frames
        code = emb_dim // patch_frames
        self.mlp = nn.Sequential(nn.Linear(in_features, emb_dim // 2), nn.Tanh(),
                                 nn.Linear(emb_dim // 2, code), nn.Tanh())

    def forward(self, behavior: Tensor) -> Tensor:
        b, t, _ = behavior.shape
        code = self.mlp(behavior)  # (B, T, C / patch_frames)
        return code.reshape(b, t // self.patch_frames, 1, 1, -1)  # (B, T', 1, 1, C)


def relative_position_index(window: tuple[int, ...], table: tuple[int, ...]) -> Tensor:
    """(L, L) row of the bias table for each pair of a ``window``'s L tokens, in a table laid
    out for windows of size ``table`` (the two differ where the input is smaller than a
    window)."""
    grid = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij"))
    coords = grid.flatten(1)  # (3, L)
    relative = coords[:, :, None] - coords[:, None, :]  # (3, L, L), each in (-w, w)
    strides = (((2 * table[1] - 1) * (2 * table[2] - 1)), 2 * table[2] - 1, 1)
    return sum((relative[i] + table[i] - 1) * strides[i] for i in range(3))  # type: ignore[return-value]


def shift_mask(size: tuple[int, ...], window: tuple[int, ...], shift: tuple[int, ...],
               device: torch.device) -> Tensor:
    """(windows, L, L) additive mask of the cyclically shifted windows: -100 between tokens
    that came from different regions of the unshifted grid (they are not neighbours), else 0.
    """
    region = torch.zeros(size, device=device)
    cuts = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(window, shift, strict=True)]
    for label, (t, h, w) in enumerate(itertools.product(*cuts)):
        region[t[0]:t[1], h[0]:h[1], w[0]:w[1]] = label
    n = [s // w for s, w in zip(size, window, strict=True)]
    region = region.view(n[0], window[0], n[1], window[1], n[2], window[2])
    region = region.permute(0, 2, 4, 1, 3, 5).reshape(n[0] * n[1] * n[2], -1)  # (nW, L)
    different = region[:, None, :] != region[:, :, None]  # (nW, L, L)
    return different.float() * -100.0


class WindowAttention(nn.Module):
    """Multi-head self-attention within cyclically shifted 3D windows of tokens, with a
    learned relative-position bias; through ``scaled_dot_product_attention`` with the bias and
    the shift mask as its ``attn_mask``."""

    def __init__(self, dim: int, window: tuple[int, ...], shift: tuple[int, ...],
                 heads: int) -> None:
        super().__init__()
        self.window, self.shift, self.heads = window, shift, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1), heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.position_index: Tensor
        self.register_buffer("position_index", relative_position_index(window, window),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, h, w, c = x.shape
        # A grid no larger than the window is one window, unshifted (as torchvision's Swin3D).
        window = tuple(min(wi, s) for wi, s in zip(self.window, (t, h, w), strict=True))
        shift = tuple(0 if s <= wi else si
                      for wi, si, s in zip(self.window, self.shift, (t, h, w), strict=True))
        pads = [(-s) % wi for s, wi in zip((t, h, w), window, strict=True)]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))  # (B, T_p, H_p, W_p, C)
        size = tuple(x.shape[1:4])
        if any(shift):
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        n = [s // wi for s, wi in zip(size, window, strict=True)]
        length = window[0] * window[1] * window[2]
        x = x.view(b, n[0], window[0], n[1], window[1], n[2], window[2], c)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, length, c)  # (B * nW, L, C)
        qkv = self.qkv(x).view(x.shape[0], length, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B * nW, heads, L, C / heads)
        index = self.position_index if window == self.window else relative_position_index(
            window, self.window).to(x.device)
        bias = self.bias_table[index.flatten()].view(length, length, -1)  # (L, L, heads)
        mask = bias.permute(2, 0, 1).unsqueeze(0)  # (1, heads, L, L)
        if any(shift):
            with torch.no_grad():
                regions = shift_mask(size, window, shift, x.device)  # (nW, L, L)
            mask = (mask + regions.unsqueeze(1)).repeat(b, 1, 1, 1)  # (B * nW, heads, L, L)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))  # (B*nW, h, L, d)
        x = self.proj(x.transpose(1, 2).reshape(-1, length, c))  # (B * nW, L, C)
        x = x.view(b, n[0], n[1], n[2], window[0], window[1], window[2], c)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, *size, c)  # (B, T_p, H_p, W_p, C)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :t, :h, :w]  # (B, T, H, W, C)


class SwiGLUMLP(nn.Module):
    """Linear to 2 x hidden -> SwiGLU -> depth-wise 3x3x3 conv -> GELU -> Linear back."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.expand = nn.Linear(dim, 2 * hidden)
        self.depthwise = nn.Conv3d(hidden, hidden, 3, padding=1, groups=hidden)
        self.project = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.expand(x).chunk(2, dim=-1)  # 2 x (B, T, H, W, hidden)
        x = F.silu(gate) * value
        x = self.depthwise(x.permute(0, 4, 1, 2, 3))  # (B, hidden, T, H, W)
        x = F.gelu(x).permute(0, 2, 3, 4, 1)  # (B, T, H, W, hidden)
        return self.project(x)  # (B, T, H, W, C)


class Block(nn.Module):
    """tokens + behaviour code, + window attention, + MLP (no norms, as the original)."""

    def __init__(self, config: DynamicV1FMConfig, behavior_features: int) -> None:
        super().__init__()
        self.behavior = (BehaviorMLP(behavior_features, config.emb_dim, config.patch_size[0])
                         if behavior_features else None)
        self.attention = WindowAttention(config.emb_dim, config.window_size, config.shift_size,
                                         config.num_heads)
        self.mlp = SwiGLUMLP(config.emb_dim, config.mlp_dim)

    def forward(self, x: Tensor, behavior: Tensor) -> Tensor:
        if self.behavior is not None:
            x = x + self.behavior(behavior)  # (B, T', H', W', C)
        x = x + self.attention(x)
        return x + self.mlp(x)


class DynamicV1FMCore(Core):
    """Patch embedding and shifted-window attention blocks over windows of ``config.window``
    frames; channel 0 of a clip is the video, channels 1: its behaviour variables (constant
    over the frame), which feed each block's behaviour MLP.

    Examples
    --------
    >>> import torch
    >>> config = DynamicV1FMConfig(emb_dim=8, num_heads=2, mlp_dim=8, num_blocks=1)
    >>> core = DynamicV1FMCore(5, config)
    >>> core.burn_in, core(torch.randn(1, 5, 40, 36, 64)).shape
    (15, torch.Size([1, 8, 25, 18, 32]))
    """

    supports_checkpointing = True

    def __init__(self, in_channels: int, config: DynamicV1FMConfig) -> None:
        super().__init__()
        self.config = config
        self.patch = PatchEmbed(config.patch_size, config.emb_dim)
        self.blocks = nn.ModuleList(Block(config, in_channels - 1)
                                    for _ in range(config.num_blocks))
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):  # the original's init of the blocks
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.out_channels = config.emb_dim
        self.window = config.window
        self.burn_in = config.window - config.window // config.patch_size[0]

    def forward(self, x: Tensor) -> Tensor:
        frames = x.shape[2]
        x = split_windows(x, self.window, self.burn_in)  # (K * B, C_in, window, H, W)
        behavior = x[:, 1:].mean((3, 4)).transpose(1, 2)  # (K * B, window, C_in - 1)
        tokens = self.patch(x[:, :1])  # (K * B, T', H', W', C), T' = window - burn_in
        for block in self.blocks:
            tokens = self.through(block, tokens, behavior)
        features = tokens.permute(0, 4, 1, 2, 3)  # (K * B, C, T', H', W')
        # (B, C, T - burn_in, H', W')
        return merge_windows(features, frames, self.window, self.burn_in)

    def regularizer(self) -> Tensor:
        """Zero: the recipe trains the core without a penalty."""
        return self.patch.proj.weight.new_zeros(())


@register_model
def dynamic_v1fm() -> DynamicV1FMConfig:
    """Dynamic-V1FM as published: 224 channels, 4 blocks of 4 heads, window 8x7x7 shifted
    by 4x3x3, levels 2, 4, 8, 16 averaged with level 1 (one of the 31 ensemble members)."""
    return DynamicV1FMConfig()
