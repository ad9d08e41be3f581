"""``sensorium submit RUN --track sensorium|sensorium+``: a 2022 run's CSV submission files.

The run's model (or the mean of several runs', an ensemble) predicts the live and final test
tiers of the run's competition recordings (those with a ``final_test`` tier) and
:func:`sensorium_models.submission2022.write_submission_2022` writes the starter kit's files
(``submission_file_live_test.csv``, ``submission_file_final_test.csv``) on the official
scale. One recording: the files go into ``out``; several: into ``out/<mouse>/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from sensorium_data.errors import Fix, Message


def submit_2022(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                track: str, device: str = "auto", batch_size: int = 128,
                data_dir: str | os.PathLike[str] | None = None,
                overwrite: bool = False) -> list[Path]:
    """Write the 2022 submission files of ``runs`` (one run, or several averaged).

    Parameters
    ----------
    runs
        Run directories of 2022 recordings trained on ``track`` (the same mice).
    out
        The folder of the files.
    track
        ``"sensorium"`` or ``"sensorium+"``: it must be the runs' own (a model's input
        channels and shifter depend on it).
    device, batch_size, data_dir, overwrite
        Where to predict, trials per batch, the data cache holding the recordings, and
        whether files of an earlier submission may be replaced (else they are an error).

    Returns
    -------
    list of Path
        The files written.
    """
    import xarray as xr

    from sensorium_models.submission2022 import write_submission_2022
    from sensorium_models.training import images
    from sensorium_models.training.checkpoint import load_run, read_config
    from sensorium_models.training.data import open_run_mice
    from sensorium_models.training.predict import no_autocast, resolve_device

    if not runs:
        msg = "no run given; pass the run directory (or several, for an ensemble)."
        raise ValueError(msg)
    configs = [read_config(run) for run in runs]
    datasets = open_run_mice(runs[0], data_dir)
    if not images.is_static(datasets):
        msg = Message(f"{runs[0]} was trained on 2023 (video) recordings; ",
                      Fix(f"track={track!r}", f"--track {track}"), " is for 2022 runs. Pass ",
                      Fix("track='main' or 'bonus'", "--track main or bonus"),
                      " for a 2023 run.")
        raise ValueError(msg)
    for run, config in zip(runs, configs, strict=True):
        if config.track != track:
            msg = Message(f"{run} was trained for track {config.track!r}, not {track!r}: its "
                          "inputs and shifter are that track's. Pass ",
                          Fix(f"track={config.track!r}", f"--track {config.track}"),
                          ", or a run of that track.")
            raise ValueError(msg)
        if sorted(config.mice) != sorted(configs[0].mice):
            msg = (f"{run} was trained on mice {list(config.mice)} and {runs[0]} on "
                   f"{list(configs[0].mice)}; an ensemble needs runs of the same mice.")
            raise ValueError(msg)
    competition = {m: ds for m, ds in datasets.items()
                   if "final_test" in set(ds["tier"].values.astype(str))}
    if not competition:
        msg = (f"none of the run's recordings ({', '.join(datasets)}) has a final_test tier: "
               "only the competition mice (26872-17-20 for SENSORIUM, 27204-5-13 for "
               "SENSORIUM+) are submitted. Train on one of them.")
        raise ValueError(msg)
    where = resolve_device(device)
    models = [load_run(run, device=where) for run in runs]
    written: list[Path] = []
    for mouse, ds in competition.items():
        dataset = images.image_set(configs[0], {mouse: ds}, ["test", "final_test"])
        predicted = [images.predict_items(model, dataset, batch_size=batch_size, device=where,
                                          autocast=no_autocast)[mouse] for model in models]
        mean = np.mean([p["predictions"] for p in predicted], axis=0)  # (trial, neuron)
        values = xr.DataArray(mean, dims=("trial", "neuron"),
                              coords={"trial": predicted[0]["trial"]})
        folder = Path(out) if len(competition) == 1 else Path(out) / mouse
        units: Literal["official", "raw"] = (
            "official" if configs[0].normalize == "official" else "raw")
        written += write_submission_2022(values, ds, folder, units=units, overwrite=overwrite)
    return written
