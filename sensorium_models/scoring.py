"""The leaderboard tables of many runs, one task per run on a dask cluster."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd


def evaluate_runs(runs: Sequence[str | os.PathLike[str]], *, tiers: Sequence[str] | None = None,
                  scale: Literal["official", "raw"] = "official", client: Any = None,
                  scheduler: str | None = None, data_dir: str | os.PathLike[str] | None = None,
                  batch_size: int = 8, device: str = "cpu") -> dict[str, pd.DataFrame]:
    """Each run's leaderboard table (``evaluate(predict(run, its recordings), ...)``), by run.

    With a dask ``client`` (or a ``scheduler`` address) every run is a task: a worker opens
    the run's recordings, predicts ``tiers`` (default: every labelled tier but train) and
    scores them; the tables are the ones one process computes, to the last digit. (A task per
    tier would predict other batches of trials, which changes the predictions' rounding.)

    Examples
    --------
    Without a client the runs are scored here, one after another (``run``: a run trained on
    the simulated tiny mice):

    >>> import sensorium_models as sm
    >>> tables = sm.evaluate_runs([run], tiers=["oracle"])
    >>> list(tables) == [str(run)]
    True

    On a cluster:

    >>> from distributed import Client  # doctest: +SKIP
    >>> tables = sm.evaluate_runs(["runs/a", "runs/b"], client=Client("tcp://host:8786"))
    ... # doctest: +SKIP
    """
    from sensorium_data.cluster import get_client, run_tasks

    if client is not None and scheduler is not None:
        get_client(client, scheduler)  # the error naming both
    made = get_client(None, scheduler) if client is None else None
    data = None if data_dir is None else str(data_dir)
    chosen = None if tiers is None else list(tiers)
    items = [(str(run), chosen, scale, data, batch_size, device) for run in runs]
    try:
        tables = run_tasks(_score, items, client=client or made,
                           names=[f"scoring {r}" for r in runs])
    finally:
        if made is not None:
            made.close()
    return dict(zip(map(str, runs), tables, strict=True))


def _score(run: str, tiers: list[str] | None, scale: Literal["official", "raw"],
           data_dir: str | None, batch_size: int, device: str) -> pd.DataFrame:
    from sensorium_models.leaderboard import evaluate
    from sensorium_models.scoring_inputs import scored_tiers
    from sensorium_models.training import predict
    from sensorium_models.training.data import open_run_mice

    datasets = open_run_mice(run, data_dir)
    chosen = tiers if tiers is not None else scored_tiers(datasets)
    predictions = predict(run, datasets, tiers=chosen, batch_size=batch_size, device=device)
    return evaluate(predictions, datasets, scale=scale)
