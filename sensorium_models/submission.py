"""Submission files in the SENSORIUM 2023 competition's own format.

One brotli-compressed parquet file per test tier, one row per trial::

    mouse          str        the recording's folder name (dynamic29515-10-12-Video-...)
    trial_indices  int64      the trial's file index (data/*/<trial>.npy)
    prediction     list<list<float32>>   neurons x (n_frames - 50): frames 50..n_frames-1
    neuron_ids     list<uint32>          the recording's unit ids, in the order of the rows

named as the competition asked (main track: both files in one zip; bonus track: one zip
each)::

    main   predictions_live_main.parquet.brotli             tier live_test_main
           predictions_final_main.parquet.brotli            tier final_test_main
    bonus  predictions_live_test_bonus_ood.parquet.brotli   tier live_test_bonus
           predictions_final_test_bonus_ood.parquet.brotli  tier final_test_bonus

Needs ``pyarrow`` (``pip install 'sensorium[submission]'``).
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sensorium_models.leaderboard import (
    ArraySource,
    Scale,
    lookup,
    recording_precision,
    recordings,
    rows,
    score,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import xarray as xr

log = logging.getLogger(__name__)

SKIP = 50  # the competition scores frames 50 to 299 and wants predictions from frame 50 on
MAX_FRAMES = 300
FILES = {
    "main": {
        "live_test_main": "predictions_live_main.parquet.brotli",
        "final_test_main": "predictions_final_main.parquet.brotli",
    },
    "bonus": {
        "live_test_bonus": "predictions_live_test_bonus_ood.parquet.brotli",
        "final_test_bonus": "predictions_final_test_bonus_ood.parquet.brotli",
    },
}
TIER_OF = {name: tier for files in FILES.values() for tier, name in files.items()}
COLUMNS = ("mouse", "trial_indices", "prediction", "neuron_ids")
ROWS_PER_GROUP = 8


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        msg = (
            "submission files are parquet: install pyarrow (pip install 'sensorium[submission]' "
            "or pip install pyarrow)."
        )
        raise ImportError(msg) from e
    return pa, pq


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
    >>> write_submission({"F": predictions}, {"F": ds}, "submission/")  # doctest: +SKIP
    [PosixPath('submission/predictions_live_main.parquet.brotli'), ...]
    """
    if track not in FILES:
        msg = f"track must be 'main' or 'bonus'; got {track!r}."
        raise ValueError(msg)
    if scale not in ("raw", "official"):
        msg = f"scale must be 'raw' or 'official'; got {scale!r}."
        raise ValueError(msg)
    recs = recordings(datasets)
    keys = datasets if isinstance(datasets, Mapping) else {}
    sources = {}
    for key, value in predictions.items():
        name = lookup(recs, str(key), keys)
        sources[name] = ArraySource(value, recs[name], name)
    precisions = {lookup(recs, str(k), keys): v for k, v in (precision or {}).items()}
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
                    prec = None
                    if scale == "official":
                        prec = recording_precision(ds, name, precisions)
                    _write_recording(writer, name, ds, sources[name], tier, prec, problems)
            if problems:
                raise ValueError(f"cannot write {file_name}:\n  " + "\n  ".join(problems))
        for zip_name, members in _zips(track).items() if archive else ():
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


def _zips(track: str) -> dict[str, list[str]]:
    files = list(FILES[track].values())
    if track == "main":
        return {"submission_main.zip": files}
    return {name.removesuffix(".parquet.brotli") + ".zip": [name] for name in files}


def submission_paths(path: str | os.PathLike[str], track: Literal["main", "bonus"] = "main",
                     *, archive: bool = True) -> list[Path]:
    """The files :func:`write_submission` writes into the folder ``path``: the parquet files,
    then the zips."""
    if track not in FILES:
        msg = f"track must be 'main' or 'bonus'; got {track!r}."
        raise ValueError(msg)
    folder = Path(path)
    names = list(FILES[track].values()) + (list(_zips(track)) if archive else [])
    return [folder / name for name in names]


def check_free(targets: list[Path], overwrite: bool) -> None:
    """Refuse, naming them, files of an earlier submission unless ``overwrite``."""
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        msg = (f"{', '.join(existing)} already exist (an earlier submission?); pass another "
               "folder, or overwrite=True (sensorium submit --overwrite) to replace them.")
        raise FileExistsError(msg)


class _Writer:
    """A brotli parquet file in the competition's schema, written a few rows at a time."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _Writer:
        pa, pq = _pyarrow()
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
    source: ArraySource,
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


@dataclass
class _Row:
    mouse: str | None
    trial: Any
    shape: tuple[int, ...] | str  # (neurons, frames), or a description of the ragged shape
    values: np.ndarray | None  # (neurons, frames) float32, when rectangular
    neuron_ids: np.ndarray | None
    non_finite: int


def _files(path: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """(file name, readable) of every competition file at ``path`` (a file, folder or zip)."""
    path = Path(path)
    if not path.exists():
        msg = f"{path} does not exist."
        raise FileNotFoundError(msg)
    if path.is_dir():
        found = [path / name for name in TIER_OF if (path / name).is_file()]
        if not found:
            msg = f"{path} holds none of the competition's files: {sorted(TIER_OF)}."
            raise FileNotFoundError(msg)
        for p in found:
            yield p.name, p
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if Path(n).name in TIER_OF]
            if not names:
                msg = f"{path} holds none of the competition's files: {sorted(TIER_OF)}."
                raise FileNotFoundError(msg)
            for n in names:
                yield Path(n).name, io.BytesIO(z.read(n))
    else:
        yield path.name, path


def _layout(path: str | os.PathLike[str]) -> list[str]:
    """Problems of the container at ``path``: members of a zip that are not competition files
    at its top level, and a main track without both of its files."""
    path = Path(path)
    problems = []
    if path.is_dir():
        names = [p.name for p in path.iterdir() if p.is_file()]
        strays = [n for n in names if n not in TIER_OF and n.endswith((".parquet", ".brotli"))]
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if not n.endswith("/") and not _hidden(n)]
        names = [n for n in members if Path(n).name in TIER_OF]
        strays = [n for n in members if Path(n).name not in TIER_OF]
        for n in sorted({n for n in members if n not in TIER_OF and Path(n).name in TIER_OF}):
            problems.append(
                f"{path.name}: {n} is inside a folder; the competition reads the files at the "
                "top of the zip (zip the files themselves, not their folder)"
            )
        for n in sorted({n for n in members if members.count(n) > 1}):
            problems.append(f"{path.name}: {n} is in the zip {members.count(n)} times")
    else:
        return problems
    for n in sorted(set(strays)):
        problems.append(
            f"{path.name}: {n} is not a competition file name; expected one of {sorted(TIER_OF)}"
        )
    main = FILES["main"].values()
    found = {Path(n).name for n in names} & set(main)
    if found and len(found) < len(main):
        (missing,) = set(main) - found
        problems.append(
            f"{path.name}: the main track is submitted as both {' and '.join(main)}; "
            f"{missing} is missing (write_submission(..., track='main') writes both)"
        )
    return problems


def _hidden(member: str) -> bool:
    """Zip members a Mac adds: ``__MACOSX/...`` and ``._name``."""
    return member.startswith("__MACOSX/") or Path(member).name.startswith("._")


def _open(source: Any) -> tuple[Any, list[str]]:
    """The parquet file of a submission, its columns checked; and its extra columns."""
    pa, pq = _pyarrow()
    parquet = pq.ParquetFile(source)
    schema = parquet.schema_arrow
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        msg = f"missing columns {missing}; a submission has columns {list(COLUMNS)}."
        raise ValueError(msg)
    numbers = (pa.types.is_floating, pa.types.is_integer)
    kind = schema.field("prediction").type
    if not (_is_list(kind) and _is_list(kind.value_type)
            and any(f(kind.value_type.value_type) for f in numbers)):
        msg = (
            f"column 'prediction' holds {kind}; it must hold one list of lists of numbers per "
            "row (neurons x frames, list<list<float32>> as write_submission writes it; the "
            "starter kit's list<list<double>> reads too)."
        )
        raise ValueError(msg)
    kind = schema.field("neuron_ids").type
    if not (_is_list(kind) and pa.types.is_integer(kind.value_type)):
        msg = (
            f"column 'neuron_ids' holds {kind}; it must hold one list of integer unit ids per "
            "row (list<uint32>, the recording's unit ids in the order of the prediction's rows)."
        )
        raise ValueError(msg)
    return parquet, [c for c in schema.names if c not in COLUMNS]


def _is_list(kind: pa.DataType) -> bool:
    pa, _ = _pyarrow()
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind))


def _read_rows(parquet: Any) -> Iterator[_Row]:
    """The rows of one parquet file (opened by :func:`_open`), a record batch at a time."""
    for batch in parquet.iter_batches(batch_size=ROWS_PER_GROUP, columns=list(COLUMNS)):
        mice = batch.column("mouse").to_pylist()
        trials = batch.column("trial_indices").to_pylist()
        outer_off, inner = _lists(batch.column("prediction"))
        inner_off, flat = _lists(inner)
        values = flat.to_numpy(zero_copy_only=False)
        ids_off, ids_flat = _lists(batch.column("neuron_ids"))
        ids = ids_flat.to_numpy(zero_copy_only=False)
        for i in range(batch.num_rows):
            lo, hi = outer_off[i], outer_off[i + 1]
            lengths = np.diff(inner_off[lo : hi + 1])
            a, b = inner_off[lo], inner_off[hi]
            row_values = values[a:b]
            non_finite = int((~np.isfinite(row_values)).sum())
            if len(lengths) and (lengths == lengths[0]).all():
                shape: tuple[int, ...] | str = (hi - lo, int(lengths[0]))
                grid = row_values.reshape(shape).astype(np.float32, copy=False)
            elif len(lengths):
                shape = f"{hi - lo} neurons of {lengths.min()} to {lengths.max()} frames"
                grid = None
            else:
                shape, grid = (0, 0), np.zeros((0, 0), np.float32)
            row_ids = ids[ids_off[i] : ids_off[i + 1]]
            yield _Row(mice[i], trials[i], shape, grid, row_ids, non_finite)


def _lists(array: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Offsets and values of a list array: row ``i`` is ``values[offsets[i]:offsets[i+1]]``
    (the offsets index the whole values buffer, also for a slice or a null row)."""
    return array.offsets.to_numpy(), array.values


def _trial(value: Any) -> int | None:
    """A trial index as the starter kit (int) or its README ('12.npy') writes it."""
    try:
        return int(str(value).removesuffix(".npy"))
    except ValueError:
        return None


def read_submission(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a submission file (or a folder or zip of them) into a DataFrame.

    Returns
    -------
    pandas.DataFrame
        Columns ``file``, ``mouse``, ``trial_indices`` (int), ``prediction`` (a (neurons,
        frames) float32 array per row) and ``neuron_ids`` (an array per row).

    Examples
    --------
    >>> read_submission("submission/predictions_final_main.parquet.brotli")  # doctest: +SKIP
    """
    import pandas as pd

    records = []
    for file_name, source in _files(path):
        parquet, extra = _open(source)
        if extra:
            log.warning("%s: extra columns %s are not read (a submission has columns %s)",
                        file_name, extra, list(COLUMNS))
        for row in _read_rows(parquet):
            if row.values is None:
                msg = (
                    f"{file_name}: trial {row.trial} of {row.mouse} is not rectangular "
                    f"({row.shape}); validate_submission reports every problem."
                )
                raise ValueError(msg)
            records.append(
                {
                    "file": file_name,
                    "mouse": row.mouse,
                    "trial_indices": _trial(row.trial),
                    "prediction": row.values,
                    "neuron_ids": row.neuron_ids,
                }
            )
    return pd.DataFrame.from_records(
        records, columns=["file", "mouse", "trial_indices", "prediction", "neuron_ids"]
    )


def validate_submission(path: str | os.PathLike[str], datasets: Any) -> list[str]:
    """Check a submission against the recordings; return every problem found (none: valid).

    Checks each competition file at ``path`` (a file, a folder or a zip): every trial of its
    tier is there once and no other; each prediction is neurons x (n_frames - 50); the neuron
    ids are the recording's unit ids in order; every value is finite. Problems are grouped
    per file, mouse and kind, and name all the trials concerned.

    Examples
    --------
    >>> for problem in validate_submission("submission_main.zip", datasets):  # doctest: +SKIP
    ...     print(problem)
    """
    return _validate(path, recordings(datasets), keep=False)[0]


def _validate(
    path: str | os.PathLike[str], recs: Mapping[str, xr.Dataset], *, keep: bool
) -> tuple[list[str], dict[str, dict[int, np.ndarray]]]:
    """Problems, and (``keep``) the well-shaped predictions by mouse and trial."""
    problems = _layout(path)
    kept: dict[str, dict[int, np.ndarray]] = {name: {} for name in recs}
    for file_name, source in _files(path):
        tier = TIER_OF.get(file_name)
        if tier is None:
            problems.append(
                f"{file_name}: not a competition file name; expected one of {sorted(TIER_OF)}"
            )
            continue
        try:
            found = _check_file(file_name, source, tier, recs, kept if keep else None)
        except ValueError as e:
            problems.append(f"{file_name}: {e}")
            continue
        problems += found
    return problems, kept


def _check_file(
    file_name: str,
    source: Any,
    tier: str,
    recs: Mapping[str, xr.Dataset],
    kept: dict[str, dict[int, np.ndarray]] | None,
) -> list[str]:
    issues: dict[tuple[str, str], list[str]] = {}  # (mouse, kind) -> trials and details

    def report(mouse: str, kind: str, detail: str) -> None:
        issues.setdefault((mouse, kind), []).append(detail)

    seen: dict[str, list[int]] = {name: [] for name in recs}
    n_frames = {name: _by_trial(ds, "n_frames") for name, ds in recs.items()}
    tiers = {name: _by_trial(ds, "tier") for name, ds in recs.items()}
    parquet, extra = _open(source)
    problems = []
    if extra:
        problems.append(
            f"{file_name}: extra columns {extra}; a submission has exactly the columns "
            f"{list(COLUMNS)}: drop the others"
        )
    for row in _read_rows(parquet):
        mouse = str(row.mouse)
        trial = _trial(row.trial)
        if mouse not in recs:
            report(mouse, "rows of a mouse not in the datasets", f"trial {row.trial}")
            continue
        if trial is None:
            report(mouse, "trial indices that are not integers", repr(row.trial))
            continue
        seen[mouse].append(trial)
        if tiers[mouse].get(trial) != tier:
            where = tiers[mouse].get(trial, "no such trial")
            report(mouse, f"trials not in tier {tier}", f"{trial} ({where})")
            continue
        units = recs[mouse]["neuron"].values
        want = (len(units), int(n_frames[mouse][trial]) - SKIP)
        if row.shape != want:
            got = f"{row.shape[0]} x {row.shape[1]}" if isinstance(row.shape, tuple) else row.shape
            detail = f"trial {trial}: {got}, expected {want[0]} x {want[1]}"
            report(mouse, "predictions of the wrong shape (neurons x (n_frames - 50))", detail)
        ids = np.asarray(row.neuron_ids)
        if not np.array_equal(ids, units):
            if len(ids) == len(units) and set(ids.tolist()) == set(units.tolist()):
                kind = "wrong neuron order (neuron_ids must be the unit ids in recording order)"
            else:
                kind = "wrong neuron_ids (not the recording's unit ids)"
            report(mouse, kind, f"trial {trial}")
        if row.non_finite:
            report(mouse, "non-finite predictions", f"trial {trial}: {row.non_finite} values")
        if kept is not None and row.shape == want and row.values is not None:
            kept[mouse][trial] = row.values
    for mouse, trials in seen.items():
        wanted = {t for t, k in tiers[mouse].items() if k == tier}
        if not wanted and not trials:
            continue
        counts: dict[int, int] = {}
        for t in trials:
            counts[t] = counts.get(t, 0) + 1
        for t, c in sorted(counts.items()):
            if c > 1:
                report(mouse, "duplicated trials", f"{t} ({c} rows)")
        for t in sorted(wanted - set(counts)):
            report(mouse, f"missing trials of tier {tier}", str(t))
    for (mouse, kind), details in issues.items():
        problems.append(f"{file_name}: {mouse}: {len(details)} {kind}: {', '.join(details)}")
    return problems


def _by_trial(ds: xr.Dataset, coord: str) -> dict[int, Any]:
    values = ds[coord].values
    values = values.astype(str) if values.dtype.kind in "OUS" else values
    return dict(zip(ds["trial"].values.tolist(), values.tolist(), strict=True))


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
    """
    import pandas as pd

    recs = recordings(datasets)
    problems, kept = _validate(path, recs, keep=True)
    if problems:
        raise ValueError("invalid submission:\n  " + "\n  ".join(problems))
    sources: dict[str, Any] = {name: _SubmittedSource(r) for name, r in kept.items() if r}
    keys = datasets if isinstance(datasets, Mapping) else {}
    precisions = None
    if precision is not None:
        precisions = {lookup(recs, str(k), keys): v for k, v in precision.items()}
    cells = score(
        sources,
        recs,
        tiers=None,
        scale=scale,
        precision=precisions,
        skip=SKIP,
        max_frames=MAX_FRAMES,
        scale_predictions=False,
    )
    table = pd.DataFrame(rows(cells, recs))
    table.attrs.update(scale=scale, skip=SKIP, max_frames=MAX_FRAMES)
    return table
