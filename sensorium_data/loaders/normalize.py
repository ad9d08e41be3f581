"""Normalization constants of one recording, computed once from its shipped statistics.

Everything is ``(x - mean) * scale`` in float32, frame by frame:

- ``"official"``: the starter kit's ``NeuroNormalizer`` with the competition's per-frame
  statistics: videos ``(x - mean[t]) / std[t]`` per pixel; pupil dilation and running speed
  ``x / std[t]``; pupil position ``(x - mean[t]) / std[t]``; responses
  ``x * official_precision(std)[:, t]`` per (neuron, frame), the leaderboard's own scale.
- ``"per_neuron"``: the same formulas with every mean and std averaged over frames (NaN
  ignored), so nothing changes from frame to frame: one value per pixel, per behaviour
  variable, and one response precision per neuron (the same 1 % floor rule).
- ``"official_viv1t"``: ``"official"``, but videos ``(x - mean[t]) / (std[t] - mean[t])`` per
  pixel, as ViV1T's loader computes them (its variables are named min and max but hold the
  mean and std: most likely a bug, kept for a faithful reproduction).
- ``None``: raw values.

The 2023 statistics are computed over the train trials frame by frame, so frames that no train
trial reaches have NaN statistics (and frames that one train trial reaches a std of 0). There,
videos and behaviour use the statistics of the last frame that has them ("per_neuron" averages
over the frames that have them); responses keep the leaderboard's precision (``1 / (1 % of the
mean std)`` where the std is NaN), so that predictions divided by the precision are in raw
units for :func:`sensorium_models.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr

from sensorium_data.scale import official_precision

Normalize = Literal["official", "per_neuron", "official_viv1t"] | None
NORMALIZE_CHOICES: tuple[Normalize, ...] = ("official", "per_neuron", "official_viv1t", None)


def check_normalize(normalize: object) -> None:
    """Raise ValueError naming the choices if ``normalize`` is not one of them."""
    if normalize not in NORMALIZE_CHOICES:
        msg = (
            f"unknown normalize={normalize!r}; choose 'official' (the competition's per-frame "
            "statistics, as the starter kit applies them), 'per_neuron' (statistics averaged "
            "over frames: one response scale per neuron), 'official_viv1t' (ViV1T's video "
            "formula (x - mean) / (std - mean), faithful to its likely bug) or None (raw "
            "values)."
        )
        raise ValueError(msg)


def floor_precision(std: np.ndarray) -> np.ndarray:
    """The starter kit's response precision: ``1 / std``, floored at 1 % of the mean std.

    The leaderboard's own definition, :func:`sensorium_data.scale.official_precision`.
    """
    return official_precision(std)


@dataclass(frozen=True)
class Scaling:
    """The constants applied to one recording; arrays are float32, frames along ``T``.

    Attributes
    ----------
    video_mean, video_scale
        (T, height, width): videos become ``(x - video_mean) * video_scale``.
    behavior_mean, behavior_scale
        (4, T): behaviour becomes ``(x - behavior_mean) * behavior_scale``.
    precision
        (neuron, T): responses become ``x * precision``.
    """

    video_mean: np.ndarray
    video_scale: np.ndarray
    behavior_mean: np.ndarray
    behavior_scale: np.ndarray
    precision: np.ndarray

    def videos(self, frames: np.ndarray, start: int, out: np.ndarray) -> None:
        """Normalize ``frames`` (F, height, width) starting at frame ``start`` into ``out``."""
        stop = start + len(frames)
        np.subtract(frames, self.video_mean[start:stop], out=out)
        out *= self.video_scale[start:stop]
        # a NaN pixel within a trial's frames (warned about at conversion) becomes the mean
        np.nan_to_num(out, copy=False, nan=0.0)


def identity(n_neurons: int, frames: int, height: int, width: int) -> Scaling:
    """Constants that change nothing (``normalize=None``); broadcast views, no memory."""
    def const(value: float, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.float32(value), shape)

    return Scaling(const(0, (frames, height, width)), const(1, (frames, height, width)),
                   const(0, (4, frames)), const(1, (4, frames)), const(1, (n_neurons, frames)))


def scaling(stats: xr.Dataset, normalize: Normalize, *, n_neurons: int, frames: int,
            height: int, width: int, name: str) -> Scaling:
    """The constants of one recording from its statistics (``ds.sensorium.statistics``).

    ``frames`` is the store's padded trial length; statistics of fewer frames are extended
    with their last frame.
    """
    if normalize is None:
        return identity(n_neurons, frames, height, width)
    v_mean, v_std = _values(stats, "videos", name)  # (T, H, W)
    b_mean, b_std = (a.T for a in _values(stats, "behavior", name))  # (T, 4)
    r_std = _values(stats, "responses", name)[1].T  # (T, N)
    kv, kb = _covered(v_std), _covered(b_std)
    v_mean, v_std, b_mean, b_std = v_mean[:kv], v_std[:kv], b_mean[:kb], b_std[:kb]
    if normalize in ("official", "official_viv1t"):
        if normalize == "official_viv1t":
            v_std = v_std - v_mean  # ViV1T divides by (std - mean)
        v_mean, v_std, b_mean, b_std = (_pad(a, frames) for a in (v_mean, v_std, b_mean, b_std))
        precision = _pad(floor_precision(r_std), frames)  # (T, N)
    else:
        def flat(a: np.ndarray) -> np.ndarray:
            return np.broadcast_to(np.nanmean(a, axis=0), (frames, *a.shape[1:]))

        v_mean, v_std, b_mean, b_std = flat(v_mean), flat(v_std), flat(b_mean), flat(b_std)
        per_neuron = floor_precision(np.nanmean(r_std, axis=0))  # (N,)
        precision = np.broadcast_to(per_neuron, (frames, n_neurons))
    b_mean = np.array(b_mean)
    b_mean[:, :2] = 0  # the starter kit divides pupil dilation and running speed, no centring

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    # ViV1T's divisor, std - mean, is mostly negative: floored by its size, its sign kept
    v_sign = np.where(np.asarray(v_std) < 0, -1.0, 1.0)
    return Scaling(f32(np.nan_to_num(v_mean)), f32(v_sign * floor_scale(np.abs(v_std))),
                   f32(b_mean.T), f32(floor_scale(b_std).T), f32(precision.T))


def floor_scale(std: np.ndarray) -> np.ndarray:
    """``1 / std``, with the std floored at 1 % of its mean as the responses' is: a pixel (or
    behaviour variable) whose std is 0 or NaN (constant, or never recorded, in the train
    trials) is scaled by ``1 / (1 % of the mean std)`` instead of giving inf or NaN.

    Examples
    --------
    >>> floor_scale(np.array([2.0, 0.0, np.nan])).tolist()
    [0.5, 100.0, 100.0]
    """
    std = np.asarray(std, np.float64)
    finite = std[np.isfinite(std)]
    floor = 0.01 * finite.mean() if finite.size and finite.mean() > 0 else 1.0
    with np.errstate(invalid="ignore"):
        return np.where(std > floor, 1 / np.where(std > floor, std, 1.0), 1 / floor)


def _values(stats: xr.Dataset, var: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std of ``var`` (float64), read once."""
    values = stats[var].values  # (statistic, ...)
    names = stats["statistic"].values.tolist()
    out = []
    for statistic in ("mean", "std"):
        v = values[names.index(statistic)].astype(np.float64)
        if np.isnan(v).all():
            msg = (
                f"{name} has no {var} {statistic} in its statistics (meta/statistics/{var} "
                "was missing when it was converted), so it cannot be normalized. Pass "
                "normalize=None, or convert a recording that has meta/statistics."
            )
            raise ValueError(msg)
        out.append(v)
    return out[0], out[1]


def _covered(std: np.ndarray) -> int:
    """Frames (from the first) that have statistics: all up to the last frame whose std is not
    NaN or 0 everywhere (no train trial, or a single one, reaches the frames after it)."""
    has = (np.nan_to_num(std.reshape(len(std), -1), nan=0.0) > 0).any(axis=1)
    return int(np.flatnonzero(has)[-1]) + 1 if has.any() else len(std)


def _pad(a: np.ndarray, frames: int) -> np.ndarray:
    """``a`` (T_a, ...) cut or extended to ``frames`` frames, repeating its last frame."""
    out = np.empty((frames, *a.shape[1:]), a.dtype)
    n = min(len(a), frames)
    out[:n] = a[:n]
    out[n:] = a[n - 1]
    return out
