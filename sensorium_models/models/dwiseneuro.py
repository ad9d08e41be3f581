"""DwiseNeuro, the 2023 winner: a (2+1)D inverted-residual core, a shared "cortex", pooled
readouts.

A clip of ``window`` frames taken every ``frame_step`` frames (16 at step 2: one second at
15 fps ending at the predicted frame) on a 64 x 64 canvas goes through a 1x1x1 stem and nine
inverted-residual blocks. Each block expands the channels, convolves depth-wise in space
(3 x 3, stride 1 or 2) and then in time (5 frames, padded: no burn-in, and the window looks
both ways), gates the channels by squeeze-excite and projects back; its shortcut has no
weights (nearest downsampling, channels tiled) but a batch norm, and the residual branch is
dropped per sample (drop-path). A fixed 3D sinusoidal encoding is added before every block,
because the core ends by averaging space away: a neuron's receptive field position survives
only through those encodings. The "cortex", three grouped 1x1 convolutions with channel
shuffles (256 -> 1024 -> 2048 -> 4096), is shared by all mice and so belongs to the core: it
is the core's last stage, 4096 features per frame and no space. Each mouse's readout (the
``"pooled"`` readout, :mod:`.pooled_readout`) is dropout, a grouped 1x1 convolution to its
neurons and softplus with beta 0.07.

Whole trials (what ``predict`` and validation pass, at the recording's frame rate) are
predicted as the authors do: every frame ``e`` from ``span - 1`` on ends one window (frames
``e - (window - 1) * frame_step, ..., e``), the windows run in batches of ``window_batch``,
and each frame's prediction is the mean over the windows that contain it (up to
``window``, all of its parity). The core returns the features of every (frame, window slot)
pair; the readout takes its softplus per pair and averages the valid ones, so the mean is
over predictions, as in the original, not over features.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.encoder import Core, ModelConfig
from sensorium_models.models.registry import register_model


@dataclass(frozen=True, kw_only=True)
class DwiseNeuroConfig(ModelConfig):
    """Options of the DwiseNeuro core and its pooled readout (see the module docstring).

    Attributes
    ----------
    stem_channels
        Channels of the 1x1x1 stem.
    channels, strides
        Output channels and spatial stride of each inverted-residual block.
    expansion
        Expanded channels of a block = its input channels x expansion (7; 6 in stage 2).
    se_reduction
        Squeeze-excite width = expanded channels // se_reduction.
    spatial_kernel, temporal_kernel
        Depth-wise kernel sizes (odd, padded to keep the size).
    drop_path
        Drop-path rate of block i is drop_path * i / blocks.
    cortex
        Output channels of the shared grouped 1x1 layers after pooling.
    cortex_groups, cortex_drop_path
        Groups of every cortex and readout convolution; drop-path rate of each cortex layer.
    readout_dropout
        Channel dropout before each readout.
    softplus_beta
        The readout's softplus sharpness (0.07: the authors' tuned value).
    window, frame_step
        Frames per clip and the step between them: the loader's ``frames`` and
        ``frame_step``; a whole trial is cut into such windows.
    window_batch
        Windows per forward pass when predicting whole trials (memory, not results).
    window_stride
        1: every frame ends a window (published). k > 1: a group of ``frame_step`` windows
        every k frames (:func:`window_ends`), about k / frame_step times fewer windows per
        trial, fewer per frame; at most ``span - 1`` so that every frame is in one.
    """

    stem_channels: int
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    expansion: int
    se_reduction: int
    spatial_kernel: int
    temporal_kernel: int
    drop_path: float
    cortex: tuple[int, ...]
    cortex_groups: int
    cortex_drop_path: float
    readout_dropout: float
    softplus_beta: float
    window: int
    frame_step: int
    window_batch: int
    window_stride: int = 1
    shifter: bool = False
    readout: str = "pooled"
    output: str = "identity"

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.channels) != len(self.strides) or not self.channels:
            msg = (f"channels {self.channels} and strides {self.strides} need one entry per "
                   "block, the same number (at least one) in each.")
            raise ValueError(msg)
        sizes = {"stem_channels": self.stem_channels, "expansion": self.expansion,
                 "se_reduction": self.se_reduction, "window": self.window,
                 "frame_step": self.frame_step, "window_batch": self.window_batch,
                 "cortex_groups": self.cortex_groups, "window_stride": self.window_stride}
        small = {k: v for k, v in sizes.items() if v < 1}
        if small or min(self.channels + self.strides) < 1:
            msg = f"sizes must be >= 1; got {small or (self.channels, self.strides)}."
            raise ValueError(msg)
        if self.spatial_kernel % 2 == 0 or self.temporal_kernel % 2 == 0:
            msg = (f"spatial_kernel={self.spatial_kernel}, temporal_kernel="
                   f"{self.temporal_kernel}: kernels must be odd (they are padded to keep "
                   "the size).")
            raise ValueError(msg)
        if self.window_stride > max(self.span - 1, 1):
            msg = (f"window_stride={self.window_stride}; at most span - 1 = {self.span - 1} "
                   "(window - 1) * frame_step, or some frames of a trial are in no window.")
            raise ValueError(msg)
        widths = (self.channels[-1], *self.cortex)
        if any(c % self.cortex_groups for c in widths):
            msg = (f"the cortex widths {widths} must be multiples of cortex_groups="
                   f"{self.cortex_groups} (grouped convolutions and channel shuffle).")
            raise ValueError(msg)
        for name, rate in (("drop_path", self.drop_path),
                           ("cortex_drop_path", self.cortex_drop_path),
                           ("readout_dropout", self.readout_dropout)):
            if rate >= 1:
                msg = f"{name}={rate}; a drop rate must lie in [0, 1)."
                raise ValueError(msg)
        fixed = {"shifter": (self.shifter, False), "readout": (self.readout, "pooled"),
                 "output": (self.output, "identity")}
        for name, (value, wanted) in fixed.items():
            if value != wanted:
                msg = (
                    f"{name}={value!r}; DwiseNeuro needs {name}={wanted!r}: its core pools "
                    "space away (nothing to shift; pupil position enters as channels) and its "
                    "'pooled' readout applies softplus itself, before averaging the windows "
                    "of a whole trial."
                )
                raise ValueError(msg)

    @property
    def span(self) -> int:
        """Frames of the recording one window covers: (window - 1) * frame_step + 1."""
        return (self.window - 1) * self.frame_step + 1

    def build_core(self, in_channels: int) -> DwiseNeuroCore:
        return DwiseNeuroCore(in_channels, self)


def init_weights(module: nn.Module) -> None:
    """The authors' init: conv weights normal with std sqrt(2 / fan_out), fan_out = kernel
    volume x out channels / groups; biases 0; batch norms weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv3d):
            fan_out = math.prod(m.kernel_size) * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Zero whole samples of a residual branch with probability ``rate``, rescale the rest."""
    if rate == 0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, ...)
    return x * mask / keep


def tile_channels(x: Tensor, channels: int) -> Tensor:
    """``x`` with its channels (axis 1) repeated and cut to ``channels``: a shortcut that
    changes width without weights."""
    if x.shape[1] == channels:
        return x
    repeats = [1] * x.ndim
    repeats[1] = -(-channels // x.shape[1])
    return x.tile(repeats)[:, :channels]  # (B, channels, ...)


@lru_cache(maxsize=64)
def _encoding(channels: int, frames: int, height: int, width: int, device: torch.device,
              dtype: torch.dtype) -> Tensor:
    per_axis = math.ceil(channels / 6) * 2
    inv_freq = 1.0 / 10000 ** (torch.arange(0, per_axis, 2, dtype=torch.float32) / per_axis)
    axes = []
    for size in (frames, height, width):
        angles = torch.arange(size, dtype=torch.float32)[:, None] * inv_freq  # (size, ch / 2)
        axes.append(torch.stack([angles.sin(), angles.cos()], -1).flatten(-2))  # (size, ch)
    t, h, w = axes
    grid = torch.cat([
        t[:, None, None].expand(frames, height, width, per_axis),
        h[None, :, None].expand(frames, height, width, per_axis),
        w[None, None, :].expand(frames, height, width, per_axis),
    ], -1)  # (T, H, W, 3 ch)
    out = grid[..., :channels].permute(3, 0, 1, 2)  # (C, T, H, W)
    return out.to(device=device, dtype=dtype).contiguous()


def positional_encoding(x: Tensor) -> Tensor:
    """The fixed 3D sinusoidal encoding of a (B, C, T, H, W) input, shaped (C, T, H, W).

    Each axis (frames, rows, columns) gets ``ceil(C / 6) * 2`` channels of interleaved sines
    and cosines at geometric frequencies; the three are concatenated and cut to C.
    """
    c, t, h, w = x.shape[1:]
    return _encoding(c, t, h, w, x.device, x.dtype)  # cached per shape, device and dtype


class SqueezeExcite(nn.Module):
    """Channel gates from the clip's mean: 1x1 reduce, SiLU, 1x1 expand, sigmoid."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv3d(channels, reduced, 1)
        self.expand = nn.Conv3d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate = x.mean((2, 3, 4), keepdim=True)  # (B, C, 1, 1, 1)
        gate = self.expand(F.silu(self.reduce(gate)))  # (B, C, 1, 1, 1)
        return x * gate.sigmoid()


class InvertedResidual(nn.Module):
    """Expand, depth-wise space then time, squeeze-excite, project; parameter-free shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, config: DwiseNeuroConfig,
                 rate: float) -> None:
        super().__init__()
        mid = c_in * config.expansion
        s, k = config.spatial_kernel, config.temporal_kernel
        self.stride, self.c_out, self.rate = stride, c_out, rate
        self.expand = nn.Sequential(nn.Conv3d(c_in, mid, 1, bias=False), nn.BatchNorm3d(mid),
                                    nn.SiLU())
        self.spatial = nn.Sequential(
            nn.Conv3d(mid, mid, (1, s, s), stride=(1, stride, stride), padding=(0, s // 2, s // 2),
                      groups=mid, bias=False),
            nn.BatchNorm3d(mid), nn.SiLU())
        self.temporal = nn.Sequential(
            nn.Conv3d(mid, mid, (k, 1, 1), padding=(k // 2, 0, 0), groups=mid, bias=False),
            nn.BatchNorm3d(mid), nn.SiLU())
        self.se = SqueezeExcite(mid, max(mid // config.se_reduction, 1))
        self.project = nn.Sequential(nn.Conv3d(mid, c_out, 1, bias=False), nn.BatchNorm3d(c_out))
        self.shortcut_norm = nn.BatchNorm3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x)  # (B, C_in * expansion, T, H, W)
        y = self.spatial(y)  # (B, C_mid, T, H / s, W / s)
        y = self.project(self.se(self.temporal(y)))  # (B, C_out, T, H / s, W / s)
        shortcut = x
        if self.stride > 1:
            size = (x.shape[2], -(-x.shape[3] // self.stride), -(-x.shape[4] // self.stride))
            shortcut = F.interpolate(shortcut, size=size, mode="nearest")  # (B, C_in, T, H/s, W/s)
        shortcut = tile_channels(shortcut, self.c_out)  # (B, C_out, T, H / s, W / s)
        return drop_path(y, self.rate, self.training) + self.shortcut_norm(shortcut)


class ShuffleLayer(nn.Module):
    """Grouped 1x1 conv, batch norm, SiLU, channel shuffle; drop-path + tiled shortcut."""

    def __init__(self, c_in: int, c_out: int, groups: int, rate: float) -> None:
        super().__init__()
        self.groups, self.c_out, self.rate = groups, c_out, rate
        self.conv = nn.Sequential(nn.Conv1d(c_in, c_out, 1, groups=groups, bias=False),
                                  nn.BatchNorm1d(c_out), nn.SiLU())
        self.shortcut_norm = nn.BatchNorm1d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)  # (B, C_out, T)
        b, c, t = y.shape
        # the shuffle lets the next grouped layer mix what both groups of this one computed
        y = y.view(b, self.groups, c // self.groups, t).transpose(1, 2).reshape(b, c, t)
        shortcut = self.shortcut_norm(tile_channels(x, self.c_out))  # (B, C_out, T)
        return drop_path(y, self.rate, self.training) + shortcut


def window_ends(frames: int, window: int, step: int, stride: int = 1,
                device: torch.device | None = None) -> Tensor:
    """The last frame of each window over a whole trial of ``frames`` frames.

    With ``stride`` 1 every frame from ``span - 1`` on ends a window (the published
    inference). A larger stride starts a group of ``step`` windows every ``stride`` frames,
    one ending on each residue modulo ``step`` (so both parities at step 2), plus the group
    ending at the last frame: every frame stays in a window while ``stride <= span - 1``.

    Examples
    --------
    >>> window_ends(9, 3, 2).tolist()  # span 5
    [4, 5, 6, 7, 8]
    >>> window_ends(12, 3, 2, stride=4).tolist()
    [4, 5, 8, 9, 10, 11]
    """
    span = (window - 1) * step + 1
    if stride == 1:
        return torch.arange(span - 1, frames, device=device)
    starts = [*range(span - 1, frames - step + 1, stride), frames - step]
    ends = sorted({s + r for s in starts for r in range(step) if span - 1 <= s + r < frames})
    return torch.tensor(ends, dtype=torch.long, device=device)


def window_slots(frames: int, window: int, step: int, stride: int = 1,
                 device: torch.device | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Where each frame of a whole trial sits in the windows of :func:`window_ends`.

    Window ``w`` ends at frame ``ends[w]`` and holds frame ``ends[w] - (window - 1 - s) *
    step`` at slot ``s``: frame ``t`` is at slot ``s`` of the window ending at ``t + (window -
    1 - s) * step``, when that window exists.

    Returns
    -------
    index, slot, valid
        (frames, window) long window index (0 where none), long slot, bool: the window exists.

    Examples
    --------
    >>> index, slot, valid = window_slots(5, 2, 2)  # windows {0, 2}, {1, 3}, {2, 4}
    >>> valid.sum(1).tolist()  # frame 2 is in two windows, the others in one
    [1, 1, 2, 1, 1]
    >>> index[2].tolist(), slot[2].tolist()
    ([2, 0], [0, 1])
    """
    ends = window_ends(frames, window, step, stride, device)  # (n_windows,)
    position = torch.full((frames,), -1, dtype=torch.long, device=device)
    position[ends] = torch.arange(len(ends), device=device)  # frame -> window ending there
    t = torch.arange(frames, device=device)[:, None]  # (T, 1)
    slot = torch.arange(window, device=device)[None, :].expand(frames, window)  # (T, S)
    end = t + (window - 1 - slot) * step  # (T, S)
    index = position[end.clamp(max=frames - 1)]  # (T, S)
    valid = (end < frames) & (index >= 0)
    return index.clamp(min=0), slot, valid


class DwiseNeuroCore(Core):
    """Stem, inverted-residual blocks with positional encodings, spatial mean, cortex.

    A clip of at most ``window`` frames (already at the loader's ``frame_step``) gives
    (B, cortex[-1], T, 1, 1); a whole trial at the recording's rate, of at least ``span +
    frame_step - 1`` frames (so that every frame is in a window), gives (B, cortex[-1], T,
    window, 1): per frame, the features of each window slot it fills (zero where no window
    has it; :func:`window_slots`). ``burn_in`` is 0: every frame gets a prediction.
    """

    supports_checkpointing = True

    def __init__(self, in_channels: int, config: DwiseNeuroConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(nn.Conv3d(in_channels, config.stem_channels, 1, bias=False),
                                  nn.BatchNorm3d(config.stem_channels))
        widths = (config.stem_channels, *config.channels)
        n = len(config.channels)
        self.blocks = nn.ModuleList(
            InvertedResidual(c_in, c_out, stride, config, config.drop_path * i / n)
            for i, (c_in, c_out, stride) in enumerate(
                zip(widths[:-1], widths[1:], config.strides, strict=True)))
        cortex = (config.channels[-1], *config.cortex)
        self.cortex = nn.Sequential(*(
            ShuffleLayer(c_in, c_out, config.cortex_groups, config.cortex_drop_path)
            for c_in, c_out in itertools.pairwise(cortex)))
        self.out_channels = cortex[-1]
        self.burn_in = 0
        init_weights(self)

    def clip_features(self, x: Tensor) -> Tensor:
        """(B, C_in, T, H, W) clips -> (B, out_channels, T) features per frame."""
        x = self.stem(x)  # (B, stem, T, H, W)
        for block in self.blocks:
            x = self.through(block, x + positional_encoding(x))  # (B, C_out, T, H / s, W / s)
        x = x.mean((3, 4))  # (B, C_last, T)
        return self.cortex(x)  # (B, out_channels, T)

    def forward(self, x: Tensor) -> Tensor:
        config = self.config
        b, _, t = x.shape[:3]
        if t <= config.window:
            return self.clip_features(x)[..., None, None]  # (B, C, T, 1, 1)
        minimum = config.span + config.frame_step - 1
        if t < minimum:
            msg = (
                f"videos have {t} frames: a clip has at most window={config.window} frames (at "
                f"frame_step={config.frame_step}), a whole trial at least {minimum} (every "
                f"frame in a window of {config.span}). Load clips with frames={config.window}, "
                f"frame_step={config.frame_step}, or pass whole trials."
            )
            raise ValueError(msg)
        ends = window_ends(t, config.window, config.frame_step, config.window_stride,
                           x.device)  # (n_windows,)
        offsets = torch.arange(config.window - 1, -1, -1, device=x.device) * config.frame_step
        per_window = []
        for chunk in ends.split(max(config.window_batch // b, 1)):
            frames = chunk[:, None] - offsets[None, :]  # (n, S)
            clips = x[:, :, frames]  # (B, C_in, n, S, H, W)
            clips = clips.transpose(1, 2).flatten(0, 1)  # (B * n, C_in, S, H, W)
            out = self.clip_features(clips)  # (B * n, C, S)
            per_window.append(out.view(b, len(chunk), *out.shape[1:]))  # (B, n, C, S)
        windows = torch.cat(per_window, 1).transpose(2, 3)  # (B, n_windows, S, C)
        index, slot, valid = window_slots(t, config.window, config.frame_step,
                                          config.window_stride, x.device)
        slots = windows[:, index, slot]  # (B, T, S, C)
        slots = slots * valid[None, :, :, None].to(slots.dtype)  # (B, T, S, C)
        return slots.permute(0, 3, 1, 2)[..., None]  # (B, C, T, S, 1)

    def regularizer(self) -> Tensor:
        """None: DwiseNeuro relies on weight decay, dropout, drop-path and CutMix."""
        return next(self.parameters()).new_zeros(())


@register_model
def dwiseneuro() -> DwiseNeuroConfig:
    """DwiseNeuro stage 1 (expansion 7): 170.7 M parameters at the ten 2023 mice."""
    return DwiseNeuroConfig(
        stem_channels=64,
        channels=(64, 64, 64, 128, 128, 128, 256, 256, 256),
        strides=(2, 1, 1, 1, 2, 1, 1, 2, 1),
        expansion=7,
        se_reduction=32,
        spatial_kernel=3,
        temporal_kernel=5,
        drop_path=0.1,
        cortex=(1024, 2048, 4096),
        cortex_groups=2,
        cortex_drop_path=0.1,
        readout_dropout=0.4,
        softplus_beta=0.07,
        window=16,
        frame_step=2,
        window_batch=64,
    )


@register_model
def dwiseneuro_distilled() -> DwiseNeuroConfig:
    """DwiseNeuro stage 2, trained with a stage-1 teacher: expansion 6, 170.1 M parameters."""
    return replace(dwiseneuro(), expansion=6)
