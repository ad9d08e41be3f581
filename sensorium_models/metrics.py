"""The SENSORIUM benchmarks' metrics as functions: arrays in, the benchmark's number out.

Inputs are numpy arrays, torch tensors or xarray DataArrays (lazy ones are read a block of
trials at a time). 2023 data is (trial, neuron, frame), NaN past each trial's valid frames;
2022 data is (trial, neuron). See ``docs/metrics.md`` for the formulas and the choices made
where the official scoring code is not public.

Every function here is its running accumulator (:mod:`sensorium_models.accumulators`) fed
once, so the one-shot and the batched numbers agree.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np

from sensorium_models.accumulators import RunningSingleTrialCorrelation
from sensorium_models.repeat_accumulators import (
    RunningCorrelationToAverage,
    RunningFEVE,
    RunningOracleCorrelation,
)

__all__ = [
    "RunningCorrelationToAverage",
    "RunningFEVE",
    "RunningOracleCorrelation",
    "RunningSingleTrialCorrelation",
    "correlation_to_average",
    "feve",
    "oracle_correlation",
    "single_trial_correlation",
]


@overload
def single_trial_correlation(
    responses: Any,
    predictions: Any,
    *,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    per_neuron: Literal[False] = ...,
) -> float: ...
@overload
def single_trial_correlation(
    responses: Any,
    predictions: Any,
    *,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    per_neuron: Literal[True],
) -> np.ndarray: ...
def single_trial_correlation(
    responses: Any,
    predictions: Any,
    *,
    skip: int = 50,
    max_frames: int | None = 300,
    n_frames: Any = None,
    per_neuron: bool = False,
) -> float | np.ndarray:
    """Correlation of predictions with single-trial responses: the 2023 leaderboard's metric.

    For each trial keep frames ``[skip, min(valid frames, max_frames))``, concatenate the kept
    frames of all trials in time, and take each neuron's Pearson correlation (standard
    deviations with ddof=0 plus 1e-8; a neuron without variance scores 0).

    Parameters
    ----------
    responses, predictions
        (trial, neuron, frame) arrays, NaN past each trial's valid frames; or (trial, neuron)
        for 2022, where the frame window does not apply. Predictions may have more or fewer
        frames than the responses, as long as they cover every scored frame.
    skip
        Frames dropped at the start of every trial (the benchmark drops 50).
    max_frames
        Frames past this are not scored (the benchmark scores at most the first 300);
        None keeps all valid frames.
    n_frames
        Valid frames per trial; by default a trial's valid frames end at its first all-NaN
        frame of ``responses``.
    per_neuron
        Return one correlation per neuron instead of the mean over neurons.

    Returns
    -------
    float or numpy.ndarray
        The mean correlation, or the (neuron,) correlations.

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.array([[[1.0, 2, 3, 4, np.nan]]])   # 1 trial, 1 neuron, 4 valid frames
    >>> predictions = np.array([[[9.0, 1, 2, 4, 7]]])
    >>> round(single_trial_correlation(responses, predictions, skip=1), 4)
    0.982
    """
    acc = RunningSingleTrialCorrelation(skip=skip, max_frames=max_frames)
    return acc.update(responses, predictions, n_frames=n_frames).compute(per_neuron=per_neuron)


@overload
def correlation_to_average(
    responses: Any,
    predictions: Any,
    video_ids: Any,
    *,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    min_repeats: int = ...,
    per_neuron: Literal[False] = ...,
) -> float: ...
@overload
def correlation_to_average(
    responses: Any,
    predictions: Any,
    video_ids: Any,
    *,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    min_repeats: int = ...,
    per_neuron: Literal[True],
) -> np.ndarray: ...
def correlation_to_average(
    responses: Any,
    predictions: Any,
    video_ids: Any,
    *,
    skip: int = 50,
    max_frames: int | None = 300,
    n_frames: Any = None,
    min_repeats: int = 2,
    per_neuron: bool = False,
) -> float | np.ndarray:
    """Correlation of repeat-averaged predictions with repeat-averaged responses.

    Within each group of trials that share a video id, average responses and predictions
    over the repeats frame by frame (same frame window as
    :func:`single_trial_correlation`; frames every repeat covers), concatenate the averaged
    traces of all groups in time, then take each neuron's correlation as there.

    Parameters
    ----------
    responses, predictions
        As for :func:`single_trial_correlation`.
    video_ids
        One repeat-group id per trial: ``video_id`` (2023) or ``image_id`` (2022).
    min_repeats
        Ids with fewer scored trials than this are left out; an error is raised if no id
        has that many.
    skip, max_frames, n_frames, per_neuron
        As for :func:`single_trial_correlation`.

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.array([[1.0], [3.0], [5.0], [6.0]])     # 2022: 4 trials, 1 neuron
    >>> predictions = np.array([[1.0], [1.0], [2.0], [3.0]])
    >>> # averages: responses (2, 5.5), predictions (1, 2.5): two points on a line
    >>> round(correlation_to_average(responses, predictions, ["a", "a", "b", "b"]), 4)
    1.0
    """
    acc = RunningCorrelationToAverage(skip=skip, max_frames=max_frames, min_repeats=min_repeats)
    averaged = acc._score_once(responses, predictions, video_ids, n_frames=n_frames)
    return averaged.compute(per_neuron=per_neuron)


@overload
def feve(
    responses: Any,
    predictions: Any,
    image_ids: Any,
    *,
    fev_threshold: float = ...,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    min_repeats: int = ...,
    per_neuron: Literal[False] = ...,
) -> float: ...
@overload
def feve(
    responses: Any,
    predictions: Any,
    image_ids: Any,
    *,
    fev_threshold: float = ...,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    min_repeats: int = ...,
    per_neuron: Literal[True],
) -> np.ndarray: ...
def feve(
    responses: Any,
    predictions: Any,
    image_ids: Any,
    *,
    fev_threshold: float = 0.15,
    skip: int = 50,
    max_frames: int | None = 300,
    n_frames: Any = None,
    min_repeats: int = 2,
    per_neuron: bool = False,
) -> float | np.ndarray:
    """Fraction of explainable variance explained (FEVE), the 2022 benchmark's third metric.

    Per neuron, with ``total_var`` the variance of all responses (ddof=1), ``noise_var`` the
    mean over images of the variance across repeats (ddof=1), and ``mse`` the mean squared
    prediction error::

        fev  = (total_var - noise_var) / total_var
        feve = 1 - (mse - noise_var) / (total_var - noise_var)

    averaged over the neurons whose ``fev`` reaches ``fev_threshold``. Unlike the
    correlations, FEVE depends on the scale: predictions must be in the responses' units.
    For 3-D inputs every (video, frame) pair of the window is one condition.

    Parameters
    ----------
    responses, predictions
        (trial, neuron) arrays (2022), or (trial, neuron, frame).
    image_ids
        One repeat-group id per trial (``image_id``).
    fev_threshold
        Neurons whose fraction of explainable variance is below this are left out.
    per_neuron
        Return FEVE per neuron, NaN for neurons below the threshold.
    skip, max_frames, n_frames, min_repeats
        As for :func:`correlation_to_average` (the window applies to 3-D inputs only).

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.array([[1.0], [3.0], [5.0], [7.0]])
    >>> means = np.array([[2.0], [2.0], [6.0], [6.0]])  # predict each image's mean response
    >>> # total_var 20/3, noise_var 2, mse 1: feve = 1 - (1 - 2) / (20/3 - 2)
    >>> round(feve(responses, means, [0, 0, 1, 1]), 4)
    1.2143
    """
    acc = RunningFEVE(
        skip=skip, max_frames=max_frames, min_repeats=min_repeats, fev_threshold=fev_threshold
    )
    acc.update(responses, predictions, image_ids, n_frames=n_frames)
    return acc.compute(per_neuron=per_neuron)


@overload
def oracle_correlation(
    responses: Any,
    video_ids: Any,
    *,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    min_repeats: int = ...,
    per_neuron: Literal[False] = ...,
) -> float: ...
@overload
def oracle_correlation(
    responses: Any,
    video_ids: Any,
    *,
    skip: int = ...,
    max_frames: int | None = ...,
    n_frames: Any = ...,
    min_repeats: int = ...,
    per_neuron: Literal[True],
) -> np.ndarray: ...
def oracle_correlation(
    responses: Any,
    video_ids: Any,
    *,
    skip: int = 50,
    max_frames: int | None = 300,
    n_frames: Any = None,
    min_repeats: int = 2,
    per_neuron: bool = False,
) -> float | np.ndarray:
    """Leave-one-out oracle: each repeat's correlation with the mean of the other repeats.

    Every scored trial of an id with at least ``min_repeats`` trials is paired, frame by
    frame, with the mean of the other trials of its id; the pairs of all trials are
    concatenated and correlated per neuron as in :func:`single_trial_correlation`. This is a
    ceiling the data offers: a model that predicted the stimulus-driven mean exactly would
    score about this single-trial correlation.

    Parameters
    ----------
    responses
        (trial, neuron, frame) or (trial, neuron) responses.
    video_ids
        One repeat-group id per trial.
    skip, max_frames, n_frames, min_repeats, per_neuron
        As for :func:`correlation_to_average`.

    Examples
    --------
    >>> import numpy as np
    >>> responses = np.array([[1.0], [2.0], [5.0], [6.0]])
    >>> # pairs (trial, mean of the others): (1, 2), (2, 1), (5, 6), (6, 5): r = 15/17
    >>> round(oracle_correlation(responses, ["a", "a", "b", "b"]), 4)
    0.8824
    """
    acc = RunningOracleCorrelation(skip=skip, max_frames=max_frames, min_repeats=min_repeats)
    acc.update(responses, video_ids, n_frames=n_frames)
    return acc.compute(per_neuron=per_neuron)
