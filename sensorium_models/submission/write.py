"""Writing a track's submission files: every trial of its tiers, checked, then the files
replaced together."""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sensorium_data.errors import OVERWRITE, Message
from sensorium_models.scoring_inputs import PredictionSource, Scale, scoring_inputs
from sensorium_models.submission.format import (
    FILES,
    ROWS_PER_GROUP,
    SKIP,
    pyarrow_modules,
    submission_paths,
    zips,
)

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)


def write_submission(
    predictions: Mapping[str, Any],
    datasets: Any,
    path: str | os.PathLike[str],
    *,
    track: Literal["main", "bonus"] = "main",
    scale: Scale = "raw",
    precision: Mapping[str, Any] | None = None,
    archive: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write a track's submission files (live and final test tier) into the folder ``path``.

    Parameters
    ----------
    predictions
        Mouse -> predictions, as for :func:`~sensorium_models.leaderboard.evaluate`; they must
        cover every trial of the track's tiers of every recording in ``datasets``, and be
        finite on frames ``50 .. n_frames - 1`` of each.
    datasets
        The recordings to submit for (the competition scored mice F-J).
    path
        Folder to write into (created if missing).
    track
        ``"main"`` (live_test_main, final_test_main) or ``"bonus"`` (live_test_bonus,
        final_test_bonus).
    scale
        ``"raw"`` writes the predictions as given. ``"official"`` multiplies them by the
        official per-(neuron, frame) precision first, the scale of the competition's ground
        truth: use it for a model trained on raw responses.
    precision
        Mouse -> precision (neuron, frame) for ``scale="official"``; by default computed from
        ``ds.sensorium.statistics``.
    archive
        Also write the zips to upload: ``submission_main.zip`` holding both main-track
        files, or one zip per bonus-track file.
    overwrite
        Replace the files of an earlier submission in ``path``; without it, finding one is
        an error and nothing is written. The files are replaced together, once all are
        written.

    Returns
    -------
    list of pathlib.Path
        The parquet files, then the zips.

    Examples
    --------
    >>> import tempfile, sensorium_data as sd
    >>> folder = tempfile.mkdtemp()  # a tenth of the tiny simulated preset: seconds
    >>> tree = sd.simulate(folder, preset="tiny", scale=0.1, progress=False)[0]
    >>> ds = sd.open_mouse(sd.convert(tree, f"{folder}/tiny-A.zarr", progress=False))
    >>> paths = write_submission({"tiny-A": ds.rates}, ds, f"{folder}/submission")
    >>> [path.name for path in paths]  # doctest: +NORMALIZE_WHITESPACE
    ['predictions_live_main.parquet.brotli', 'predictions_final_main.parquet.brotli',
     'submission_main.zip']
    """
    if track not in FILES:
        msg = f"track must be 'main' or 'bonus'; got {track!r}."
        raise ValueError(msg)
    inputs = scoring_inputs(predictions, datasets, scale=scale, precision=precision)
    recs, sources = inputs.datasets, inputs.sources
    problems = []
    for name, ds in recs.items():
        tiers = ds["tier"].values.astype(str)
        wanted = ds["trial"].values[np.isin(tiers, list(FILES[track]))]
        if name not in sources:
            if len(wanted):
                problems.append(f"{name}: no predictions ({len(wanted)} trials to submit)")
            continue
        missing = np.setdiff1d(wanted, sources[name].trials)
        if len(missing):
            problems.append(
                f"{name}: {len(missing)} trials of the {track} track have no predictions: "
                f"{missing.tolist()}"
            )
    if problems:
        raise ValueError("cannot write the submission:\n  " + "\n  ".join(problems))

    folder = Path(path)
    targets = submission_paths(folder, track, archive=archive)
    check_free(targets, overwrite)
    for tier in FILES[track]:
        if not any((ds["tier"].values.astype(str) == tier).any() for ds in recs.values()):
            msg = f"none of the datasets has trials of tier {tier!r}; nothing to write."
            raise ValueError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    partials = {target: target.with_name(target.name + ".partial") for target in targets}
    try:
        for tier, file_name in FILES[track].items():
            with _Writer(partials[folder / file_name]) as writer:
                for name, ds in recs.items():
                    if name not in sources:  # checked above: it has no trials to submit
                        continue
                    prec = inputs.precision_of(name)
                    _write_recording(writer, name, ds, sources[name], tier, prec, problems)
            if problems:
                raise ValueError(f"cannot write {file_name}:\n  " + "\n  ".join(problems))
        for zip_name, members in zips(track).items() if archive else ():
            with zipfile.ZipFile(partials[folder / zip_name], "w", zipfile.ZIP_STORED) as z:
                for member in members:
                    z.write(partials[folder / member], arcname=member)
    except BaseException:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
        raise
    for target, partial in partials.items():
        partial.replace(target)
        log.info("wrote %s", target)
    return targets


def check_free(targets: list[Path], overwrite: bool) -> None:
    """Refuse, naming them, files of an earlier submission unless ``overwrite``."""
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        msg = Message(f"{', '.join(existing)} already exist (an earlier submission?); pass "
                      "another folder, or ", OVERWRITE, " to replace them.")
        raise FileExistsError(msg)


class _Writer:
    """A brotli parquet file in the competition's schema, written a few rows at a time."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _Writer:
        pa, pq = pyarrow_modules()
        self.pa = pa
        self.schema = pa.schema(
            [
                ("mouse", pa.string()),
                ("trial_indices", pa.int64()),
                ("prediction", pa.list_(pa.list_(pa.float32()))),
                ("neuron_ids", pa.list_(pa.uint32())),
            ]
        )
        self.writer = pq.ParquetWriter(self.path, self.schema, compression="brotli")
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()

    def write(self, mouse: str, trials: list[int], rows: list[np.ndarray], ids: np.ndarray) -> None:
        pa = self.pa
        lengths = np.array([r.shape[1] for r in rows])
        n = len(ids)
        values = pa.array(np.concatenate([r.ravel() for r in rows]), type=pa.float32())
        inner = np.concatenate([[0], np.cumsum(np.repeat(lengths, n))]).astype(np.int32)
        outer = (np.arange(len(rows) + 1) * n).astype(np.int32)
        prediction = pa.ListArray.from_arrays(
            pa.array(outer), pa.ListArray.from_arrays(pa.array(inner), values)
        )
        neuron_ids = pa.ListArray.from_arrays(
            pa.array(outer), pa.array(np.tile(ids.astype(np.uint32), len(rows)))
        )
        table = pa.Table.from_arrays(
            [pa.array([mouse] * len(rows)), pa.array(trials, pa.int64()), prediction, neuron_ids],
            schema=self.schema,
        )
        self.writer.write_table(table)


def _write_recording(
    writer: _Writer,
    name: str,
    ds: xr.Dataset,
    source: PredictionSource,
    tier: str,
    prec: np.ndarray | None,
    problems: list[str],
) -> None:
    positions = np.flatnonzero(ds["tier"].values.astype(str) == tier)
    ids = ds["neuron"].values
    n_frames = ds["n_frames"].values
    for b in range(0, len(positions), ROWS_PER_GROUP):
        block = positions[b : b + ROWS_PER_GROUP]
        trials = ds["trial"].values[block]
        predicted = source.read(trials)
        out = []
        for j, position in enumerate(block):
            stop = int(n_frames[position])
            values = np.asarray(predicted[j][:, SKIP:stop], dtype=np.float32)
            if values.shape[1] != stop - SKIP:
                problems.append(
                    f"{name}: trial {trials[j]} has {stop} valid frames but its predictions "
                    f"only {predicted.shape[2]}"
                )
                continue
            if prec is not None:
                values = (values * prec[:, SKIP:stop]).astype(np.float32)
            bad = int((~np.isfinite(values)).sum())
            if bad:
                problems.append(
                    f"{name}: trial {trials[j]}: {bad} NaN or infinite values in frames "
                    f"{SKIP}..{stop - 1}"
                )
            out.append(values)
        if not problems:
            writer.write(name, [int(t) for t in trials], out, ids)


