"""The competition's response scale: a fact about the data, used by the loaders' "official"
normalization and by the leaderboard (which scores responses times this precision)."""

from __future__ import annotations

from typing import Any

import numpy as np


def official_precision(std: Any) -> np.ndarray:
    """The official response scale: the starter kit's NeuroNormalizer precision.

    ``1 / std`` wherever ``std`` exceeds 1% of its mean (NaN ignored), and ``1 / (1% of the
    mean)`` elsewhere. The 2023 statistics are per (neuron, frame), so the scale changes from
    frame to frame; the leaderboard's ground truth is the responses times this precision.

    Parameters
    ----------
    std
        ``meta/statistics/responses/all/std``: (neuron, frame) for 2023, (neuron,) for 2022;
        with sensorium_data, ``ds.sensorium.statistics.responses.sel(statistic="std")``.

    Examples
    --------
    >>> official_precision([[2.0, 4.0], [0.0, 0.5]]).round(3).tolist()
    [[0.5, 0.25], [61.538, 2.0]]
    """
    s = np.asarray(std, dtype=np.float64)
    threshold = 0.01 * np.nanmean(s)
    precision = np.full(s.shape, 1.0 / threshold)
    above = s > threshold
    precision[above] = 1.0 / s[above]
    return precision
