"""Scoring a submission against recordings whose test responses are known."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_models.leaderboard import table
from sensorium_models.scoring_inputs import Scale, scoring_inputs
from sensorium_models.submission.format import MAX_FRAMES, SKIP
from sensorium_models.submission.read import validate

if TYPE_CHECKING:
    import pandas as pd


class _SubmittedSource:
    """Predictions read from a submission: frames 50.. of each trial, NaN before."""

    def __init__(self, rows: dict[int, np.ndarray]):
        self.rows = rows
        self.trials = np.array(sorted(rows))

    def read(self, trials: np.ndarray) -> np.ndarray:
        values = [self.rows[int(t)] for t in trials]
        frames = SKIP + max(v.shape[1] for v in values)
        out = np.full((len(values), values[0].shape[0], frames), np.nan, dtype=np.float32)
        for j, v in enumerate(values):
            out[j, :, SKIP : SKIP + v.shape[1]] = v
        return out


def score_submission(
    path: str | os.PathLike[str],
    datasets: Any,
    *,
    scale: Scale = "raw",
    precision: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Score a submission against recordings with the responses of its tiers.

    The submission is validated first (a ValueError lists every problem). Frames 50 to
    299 are scored, as the competition did.

    Parameters
    ----------
    path
        A submission file, or a folder or zip of them.
    datasets
        Recordings whose test-tier responses are known (the simulator's, or the released
        test responses of mice A-E).
    scale
        ``"raw"``: the submitted values are compared with the Dataset's raw responses.
        ``"official"``: with the responses times the official precision, the competition's
        ground truth (write the submission with ``scale="official"`` too).
    precision
        Mouse -> precision (neuron, frame) for ``scale="official"``.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~sensorium_models.leaderboard.evaluate` for the submitted tiers.

    Examples
    --------
    >>> import tempfile, sensorium_data as sd
    >>> folder = tempfile.mkdtemp()  # a tenth of the tiny simulated preset: seconds
    >>> tree = sd.simulate(folder, preset="tiny", scale=0.1, progress=False)[0]
    >>> ds = sd.open_mouse(sd.convert(tree, f"{folder}/tiny-A.zarr", progress=False))
    >>> import sensorium_models as sm
    >>> _ = sm.write_submission({"tiny-A": ds.rates}, ds, f"{folder}/submission")
    >>> table = score_submission(f"{folder}/submission", ds)  # the rates: the ceiling
    >>> table[["mouse", "tier", "single_trial_correlation_fraction"]]
        mouse             tier  single_trial_correlation_fraction
    0  tiny-A   live_test_main                                1.0
    1  tiny-A  final_test_main                                1.0
    2     all   live_test_main                                1.0
    3     all  final_test_main                                1.0
    """
    inputs = scoring_inputs(None, datasets, scale=scale, precision=precision)
    problems, kept = validate(path, inputs.datasets, keep=True)
    if problems:
        raise ValueError("invalid submission:\n  " + "\n  ".join(problems))
    inputs.sources = {name: _SubmittedSource(r) for name, r in kept.items() if r}
    return table(inputs, skip=SKIP, max_frames=MAX_FRAMES, scale_predictions=False)
