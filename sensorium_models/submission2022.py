"""SENSORIUM 2022 submission files: the starter kit's CSV, written, read back, validated, scored.

One file per test tier of a competition mouse, as ``sensorium/utility/submission.py`` writes
them (pandas ``to_csv(index=False)``)::

    submission_file_live_test.csv     tier "test"        one row per trial of the tier
    submission_file_final_test.csv    tier "final_test"

    trial_indices,image_ids,prediction,neuron_ids
    cfa0860e83a4c3a763a7e62d825349f7,4711,"[0.31, 1.2, ...]","[1, 2, 4, ...]"

``trial_indices`` is ``meta/trials/trial_idx`` (32-hex hashes for the competition mice),
``image_ids`` is ``frame_image_id``, ``prediction`` the list of one value per neuron on the
official scale (responses times :func:`~sensorium_data.scale.official_precision`), and
``neuron_ids`` the unit ids, the same list on every row. The website read the lists with
``ast.literal_eval``; here they are parsed as plain lists of numbers (nothing is evaluated).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_data.scale import official_precision
from sensorium_models.scoring2022 import Units, aligned_predictions, website_metrics
from sensorium_models.submission import check_free

if TYPE_CHECKING:
    import xarray as xr

FILES_2022 = {"test": "submission_file_live_test.csv",
              "final_test": "submission_file_final_test.csv"}
COLUMNS_2022 = ("trial_indices", "image_ids", "prediction", "neuron_ids")


@dataclass(frozen=True)
class Submission2022:
    """One 2022 submission file, read: rows in file order."""

    tier: str
    trial_indices: np.ndarray  # (n,) str
    image_ids: np.ndarray  # (n,) str
    predictions: np.ndarray  # (n, neurons) float64
    neuron_ids: np.ndarray  # (neurons,) int64


def write_submission_2022(
    predictions: Any,
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    tiers: Sequence[str] = ("test", "final_test"),
    units: Units = "official",
    overwrite: bool = False,
) -> list[Path]:
    """Write the 2022 submission files of one recording into the folder ``path``.

    Parameters
    ----------
    predictions
        (trial, neuron): an ``xarray.DataArray`` with a ``trial`` coordinate, or an array
        aligned with all of the recording's trials. It must cover every trial of each tier.
    ds
        The 2022 recording (``sensorium_data.open_mouse``).
    tiers
        ``"test"`` (``submission_file_live_test.csv``) and/or ``"final_test"``.
    units
        ``"official"`` if the predictions are on the leaderboard's scale (a model trained on
        ``ImageDataset(normalize="official")``), ``"raw"`` to scale them here.
    overwrite
        Replace existing files; without it they are an error.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    A simulated 2022 recording (``static2022``), its noise-free rates as the predictions:

    >>> write_submission_2022(static2022.rates, static2022, "submission/", units="raw")
    [PosixPath('submission/submission_file_live_test.csv'), ...]

    A competition mouse (downloaded on first use):

    >>> import sensorium_data as sd
    >>> ds = sd.open_mouse("26872-17-20")  # doctest: +SKIP
    """
    name = str(ds.attrs.get("mouse", "the recording"))
    unknown = [t for t in tiers if t not in FILES_2022]
    if unknown:
        msg = (f"tiers {unknown} have no 2022 submission file; choose among {list(FILES_2022)} "
               "(live test and final test).")
        raise ValueError(msg)
    tier = ds["tier"].values.astype(str)
    absent = [t for t in tiers if not (tier == t).any()]
    if absent:
        msg = (f"{name} has no trials of tier(s) {absent} (its tiers: {sorted(set(tier))}); "
               "only the competition mice have final_test. Pass tiers= with its test tiers.")
        raise ValueError(msg)
    if units not in ("official", "raw"):
        msg = f"units={units!r}; choose 'official' or 'raw'."
        raise ValueError(msg)
    positions, values = aligned_predictions(predictions, ds, name)
    if units == "raw":
        values = values * _precision(ds)
    folder = Path(path).expanduser()
    targets = [folder / FILES_2022[t] for t in tiers]
    check_free(targets, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    trial_idx = _trial_idx(ds)
    neuron_ids = str([int(u) for u in ds["neuron"].values])
    where = {int(p): i for i, p in enumerate(positions)}
    for t in tiers:  # every tier checked before any file is written: no mismatched pair
        rows = np.flatnonzero(tier == t)
        missing = [int(ds["trial"].values[r]) for r in rows if int(r) not in where]
        if missing:
            msg = (f"{name}: no predictions for {len(missing)} of the {len(rows)} trials of tier "
                   f"{t!r} (trials {missing[:5]}...); predict every trial of the tier.")
            raise ValueError(msg)
    for t, target in zip(tiers, targets, strict=True):
        rows = np.flatnonzero(tier == t)  # dataset order, as the starter kit
        partial = target.with_name(f".{target.name}.partial")
        with partial.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS_2022)
            for r in rows:
                row = values[where[int(r)]]
                writer.writerow([trial_idx[r], ds["image_id"].values[r],
                                 str([float(v) for v in row]), neuron_ids])
        partial.replace(target)
    return targets


def read_submission_2022(path: str | os.PathLike[str], *, tier: str | None = None
                         ) -> Submission2022:
    """Read one 2022 submission file (the tier from its name unless given).

    Raises
    ------
    ValueError
        Wrong columns, a list that is not a list of numbers, rows of different lengths or
        neuron ids that change between rows; each names the row and the fix.
    """
    path = Path(path)
    tier = tier if tier is not None else _tier_of(path)
    csv.field_size_limit(2**31 - 1)  # a row holds ~8,000 numbers (not sys.maxsize: Windows)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != COLUMNS_2022:
            msg = (f"{path} has columns {list(header)}; a 2022 submission has "
                   f"{list(COLUMNS_2022)} (sensorium_models.write_submission_2022 writes them).")
            raise ValueError(msg)
        trials, images, rows = [], [], []
        neuron_ids: np.ndarray | None = None
        for line, fields in enumerate(reader, start=2):
            if len(fields) != 4:
                msg = f"{path}, line {line}: {len(fields)} fields; expected 4 {COLUMNS_2022}."
                raise ValueError(msg)
            trials.append(fields[0])
            images.append(fields[1])
            rows.append(_numbers(fields[2], path, line, "prediction"))
            ids = _numbers(fields[3], path, line, "neuron_ids")
            if neuron_ids is None:
                neuron_ids = ids
            elif not np.array_equal(ids, neuron_ids):
                msg = (f"{path}, line {line}: neuron_ids differ from the first row's; every row "
                       "lists the same unit ids.")
                raise ValueError(msg)
            if len(rows[-1]) != len(neuron_ids):
                msg = (f"{path}, line {line}: {len(rows[-1])} predictions for "
                       f"{len(neuron_ids)} neuron ids; give one value per neuron.")
                raise ValueError(msg)
    if neuron_ids is None:
        msg = f"{path} has no rows; a submission has one row per trial of its tier."
        raise ValueError(msg)
    if not np.array_equal(neuron_ids, np.round(neuron_ids)):
        msg = (f"{path}: neuron_ids must be whole numbers (unit ids); got "
               f"{neuron_ids[neuron_ids != np.round(neuron_ids)][:3].tolist()}.")
        raise ValueError(msg)
    return Submission2022(tier, np.array(trials, dtype=str), np.array(images, dtype=str),
                          np.array(rows, dtype=np.float64), neuron_ids.astype(np.int64))


def validate_submission_2022(path: str | os.PathLike[str], ds: xr.Dataset, *,
                             tier: str | None = None) -> Submission2022:
    """Read a 2022 submission file and check it against its recording; the file, read.

    Raises
    ------
    ValueError
        A file of another tier, trials missing or extra, trials listed twice, image ids that
        do not match, other neurons, or values that are not finite.
    """
    sub = read_submission_2022(path, tier=tier)
    name = str(ds.attrs.get("mouse", "the recording"))
    tiers = ds["tier"].values.astype(str)
    trial_idx = _trial_idx(ds)
    expected = set(trial_idx[tiers == sub.tier].tolist())
    given = sub.trial_indices.tolist()
    if len(set(given)) != len(given):
        twice = sorted({t for t in given if given.count(t) > 1})
        msg = f"{path}: trials {twice[:5]} are listed more than once; list each trial once."
        raise ValueError(msg)
    if not expected:
        msg = (f"{path} is a submission for tier {sub.tier!r}, but {name} has no trials of it "
               f"(its tiers: {sorted(set(tiers.tolist()))}).")
        raise ValueError(msg)
    extra = set(given) - expected
    if extra:
        other = sorted({str(t) for t, i in zip(tiers, trial_idx, strict=True) if i in extra})
        hint = (f" They are trials of tier {other}: this looks like the file of another tier "
                "(live_test is tier 'test', final_test tier 'final_test')." if other
                else " They are not trials of this recording: is it another mouse's file?")
        msg = (f"{path}: {len(extra)} trials are not in tier {sub.tier!r} of {name}."
               f"{hint}")
        raise ValueError(msg)
    missing = expected - set(given)
    if missing:
        msg = (f"{path}: {len(missing)} of the {len(expected)} trials of tier {sub.tier!r} of "
               f"{name} are missing (e.g. {sorted(missing)[:3]}); submit one row per trial.")
        raise ValueError(msg)
    if sorted(sub.neuron_ids.tolist()) != sorted(int(u) for u in ds["neuron"].values):
        msg = (f"{path}: its {len(sub.neuron_ids)} neuron_ids are not the {ds.sizes['neuron']} "
               f"unit ids of {name}; list meta/neurons/unit_ids (ds.neuron).")
        raise ValueError(msg)
    image_of = dict(zip(trial_idx.tolist(), ds["image_id"].values.astype(str).tolist(),
                        strict=True))
    wrong = [t for t, i in zip(given, sub.image_ids, strict=True) if image_of[t] != i]
    if wrong:
        msg = (f"{path}: {len(wrong)} trials have image_ids other than the recording's "
               f"frame_image_id (e.g. trial {wrong[0]}); write the recording's image ids.")
        raise ValueError(msg)
    if not np.isfinite(sub.predictions).all():
        msg = f"{path}: predictions hold NaN or infinite values; predict a number everywhere."
        raise ValueError(msg)
    return sub


def score_submission_2022(path: str | os.PathLike[str], ds: xr.Dataset, *,
                          tier: str | None = None) -> dict[str, float]:
    """Score a 2022 submission file as the website did (see :func:`website_metrics`).

    The ground truth is the recording's responses of the file's tier times the official
    precision; trials and neurons are matched by id, whatever their order in the file.
    Withheld responses (the real competition mice's test tiers) cannot be scored here.
    """
    sub = validate_submission_2022(path, ds, tier=tier)
    name = str(ds.attrs.get("mouse", "the recording"))
    row_of = {t: i for i, t in enumerate(_trial_idx(ds).tolist())}
    rows = np.array([row_of[t] for t in sub.trial_indices], dtype=np.int64)
    if "labelled" in ds.coords and not ds["labelled"].values[rows].all():
        msg = (f"{path}: the responses of tier {sub.tier!r} of {name} are withheld (the "
               "competition's ground truth); only the benchmark's server can score this file.")
        raise ValueError(msg)
    column_of = {int(u): j for j, u in enumerate(ds["neuron"].values)}
    columns = np.array([column_of[int(u)] for u in sub.neuron_ids], dtype=np.int64)
    responses = ds["responses"].isel(trial=rows).transpose("trial", "neuron").values
    truth = (responses * _precision(ds))[:, columns]
    return website_metrics(truth, sub.predictions, sub.image_ids)


def _precision(ds: xr.Dataset) -> np.ndarray:
    return official_precision(ds.sensorium.statistics["responses"].sel(statistic="std").values)


def _trial_idx(ds: xr.Dataset) -> np.ndarray:
    """Per trial, the id the submission uses: ``trial_idx`` as str, else the trial number."""
    key = "trial_idx" if "trial_idx" in ds.coords else "trial"
    return ds[key].values.astype(str)


def _tier_of(path: Path) -> str:
    for tier, file in FILES_2022.items():
        if path.name == file:
            return tier
    msg = (f"cannot tell the tier of {path.name}: the 2022 files are named "
           f"{list(FILES_2022.values())}. Rename it, or pass tier='test' or 'final_test'.")
    raise ValueError(msg)


def _numbers(text: str, path: Path, line: int, column: str) -> np.ndarray:
    """A ``[1.5, 2, ...]`` list as numbers; anything else is an error naming the row."""
    text = text.strip()
    try:
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError(text[:20])
        inner = text[1:-1].strip()
        return np.array(inner.split(",") if inner else [], dtype=np.float64)
    except ValueError:
        msg = (f"{path}, line {line}: {column} is not a list of numbers such as "
               f"'[0.5, 1.25]' (it starts {text[:30]!r}).")
        raise ValueError(msg) from None
