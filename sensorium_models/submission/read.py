"""Reading and validating submission files: a file, a folder or a zip of them, checked
against the recordings with every problem named."""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_models.scoring_inputs import datasets_by_name
from sensorium_models.submission.format import (
    COLUMNS,
    FILES,
    ROWS_PER_GROUP,
    SKIP,
    TIER_OF,
    hidden,
    pyarrow_modules,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import xarray as xr

log = logging.getLogger(__name__)


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
            members = [n for n in z.namelist() if not n.endswith("/") and not hidden(n)]
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


def _open(source: Any) -> tuple[Any, list[str]]:
    """The parquet file of a submission, its columns checked; and its extra columns."""
    pa, pq = pyarrow_modules()
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
    pa, _ = pyarrow_modules()
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
    >>> import tempfile, sensorium_data as sd
    >>> folder = tempfile.mkdtemp()  # a tenth of the tiny simulated preset: seconds
    >>> tree = sd.simulate(folder, preset="tiny", scale=0.1, progress=False)[0]
    >>> ds = sd.open_mouse(sd.convert(tree, f"{folder}/tiny-A.zarr", progress=False))
    >>> import sensorium_models as sm
    >>> _ = sm.write_submission({"tiny-A": ds.rates}, ds, f"{folder}/submission")
    >>> table = read_submission(f"{folder}/submission/submission_main.zip")
    >>> table[["file", "mouse", "trial_indices"]].iloc[0]
    file             predictions_live_main.parquet.brotli
    mouse                                          tiny-A
    trial_indices                                       4
    Name: 0, dtype: object
    >>> table["prediction"].iloc[0].shape  # neurons x (n_frames - 50)
    (8, 100)
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
    >>> import tempfile, sensorium_data as sd
    >>> folder = tempfile.mkdtemp()  # a tenth of the tiny simulated preset: seconds
    >>> tree = sd.simulate(folder, preset="tiny", scale=0.1, progress=False)[0]
    >>> ds = sd.open_mouse(sd.convert(tree, f"{folder}/tiny-A.zarr", progress=False))
    >>> import sensorium_models as sm
    >>> paths = sm.write_submission({"tiny-A": ds.rates}, ds, f"{folder}/submission")
    >>> validate_submission(f"{folder}/submission/submission_main.zip", ds)  # valid
    []
    >>> other = ds.assign_attrs(mouse="tiny-B")  # not the recording submitted for
    >>> for problem in validate_submission(f"{folder}/submission", other):  # doctest: +ELLIPSIS
    ...     print(problem)
    predictions_live_main.parquet.brotli: tiny-A: 2 rows of a mouse not in the datasets: ...
    ...
    """
    return validate(path, datasets_by_name(datasets), keep=False)[0]


def validate(
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


