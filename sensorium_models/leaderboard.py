"""The leaderboard table: the benchmark's metrics per mouse, tier and stimulus type.

:func:`evaluate` scores predictions against the foundation's Datasets (one per recording),
reading a few trials at a time, so lazily opened recordings are scored in bounded memory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_data.dataset import BLOCK
from sensorium_data.scale import official_precision
from sensorium_data.tree import TIER_ORDER
from sensorium_models.accumulators import RunningSingleTrialCorrelation
from sensorium_models.repeat_accumulators import RunningCorrelationToAverage, RunningFEVE
from sensorium_models.scoring_inputs import (
    PredictionSource,
    Scale,
    ScoringInputs,
    check_tiers,
    scoring_inputs,
)

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

log = logging.getLogger(__name__)

__all__ = ["evaluate", "flagged", "official_precision", "score", "table"]
BONUS_TIERS = ("live_test_bonus", "final_test_bonus")
IN_DOMAIN = "NaturalVideo"
POOLED = "all"
OUT_OF_DOMAIN = "out_of_domain"
# Per neuron over the scored frames, kept from the correlation's accumulator for calibration
RECORDED, PREDICTED, SPREAD = "_recorded_mean", "_predicted_mean", "_predicted_std"
RAW = "_raw"  # the accumulator of the raw-scale values, for them
OFF_BY = 10.0  # a mean this many times too large or too small is flagged
WARNINGS = {
    "zero": "all zero",
    "constant": "constant",
    "scale": "mean {ratio:.3g}x the responses'",
}


@dataclass
class _Cell:
    """The accumulators of one (mouse, tier, stimulus type)."""

    mouse: str
    tier: str
    stimulus_type: str
    n_neurons: int
    n_unlabelled: int = 0
    n_trials: int = 0
    accs: dict[str, Any] = field(default_factory=dict)
    result: dict[str, np.ndarray] = field(default_factory=dict)  # per-neuron values

    def finish(self) -> None:
        self.n_trials = int(self.accs["single_trial_correlation"].n_trials)
        for metric, acc in self.accs.items():
            if metric == RAW:
                continue
            if acc.n_trials == 0 or (hasattr(acc, "has_repeats") and not acc.has_repeats):
                self.result[metric] = np.full(self.n_neurons, np.nan)
            else:
                self.result[metric] = np.asarray(acc.compute(per_neuron=True))
        # the raw-scale correlation's accumulator holds each neuron's means and spread
        acc = self.accs[RAW]
        if acc.n:
            self.result[RECORDED] = acc.mean_x
            self.result[PREDICTED] = acc.mean_y
            self.result[SPREAD] = np.sqrt(acc.cyy / acc.n)


def evaluate(
    predictions: Mapping[str, Any],
    datasets: Any,
    *,
    tiers: Sequence[str] | None = None,
    scale: Scale = "raw",
    precision: Mapping[str, Any] | None = None,
    skip: int = 50,
    max_frames: int | None = 300,
) -> pd.DataFrame:
    """Score predictions as the leaderboard does: per mouse, tier and stimulus type.

    Parameters
    ----------
    predictions
        Mouse -> predictions of that recording: an ``xarray.DataArray`` (trial, neuron, frame)
        with a ``trial`` coordinate (the trials it holds are scored), or an array (numpy,
        torch, DataArray without ``trial`` coordinate) aligned with all the recording's
        trials. Frame 0 is trial onset, as in ``responses``; frames outside the scored window
        (the first ``skip``, padding) may be NaN. The mouse is the recording's ``mouse``
        attribute (its folder name) or the key of ``datasets``.
    datasets
        The recordings (``sensorium_data.open_mouse``): an ``xarray.Dataset``, a sequence of
        them, or a mapping name -> Dataset.
    tiers
        Score only these tiers (default: every tier the predictions cover).
    scale
        ``"raw"`` compares the predictions with the Dataset's raw responses. ``"official"``
        multiplies responses and predictions (and ``rates``) by the official per-(neuron,
        frame) precision first, which the 2023 leaderboard's ground truth has: a model trained
        on raw responses then scores what its submission would (see :func:`official_precision`).
    precision
        Mouse -> precision array (neuron, frame) for ``scale="official"``; by default it is
        computed from ``ds.sensorium.statistics``.
    skip, max_frames
        The frame window, as in :func:`~sensorium_models.metrics.single_trial_correlation`.

    Returns
    -------
    pandas.DataFrame
        One row per (mouse, tier, stimulus type) with ``n_trials`` (scored), ``n_unlabelled``
        (skipped: responses withheld), ``n_neurons``, ``single_trial_correlation``,
        ``correlation_to_average`` (NaN without repeats) and, for 2022 data, ``feve``. Where the
        Dataset has ``rates`` (the simulator's noise-free truth), ``*_ceiling`` (the metric of
        the rates themselves) and ``*_fraction`` (score / ceiling). Then, for 2023 data, pooled
        rows with mouse ``"all"`` per tier: the mean over all mice's neurons, and for the bonus
        tiers (stimulus type ``"out_of_domain"``) that mean per out-of-domain stimulus type,
        averaged over the types: the retrospective's Table 1 reports the ``final_test_main``
        and ``final_test_bonus`` rows. Every row has ``calibration``, the predictions' mean
        over the scored frames divided by the responses', both raw whatever ``scale`` (the
        official one weights a few frames 100x) (correlations ignore scale; near 1
        when the scale is right), and ``warning``: ``"all zero"``, ``"constant"`` or ``"mean
        Kx the responses'"`` (K above 10 or below 0.1), else empty; each warning is logged too.

    Examples
    --------
    The simulator's noise-free rates, scored as predictions, reach the ceiling:

    >>> import tempfile, sensorium_data as sd
    >>> folder = tempfile.mkdtemp()  # a tenth of the tiny simulated preset: seconds
    >>> tree = sd.simulate(folder, preset="tiny", scale=0.1, progress=False)[0]
    >>> ds = sd.open_mouse(sd.convert(tree, f"{folder}/tiny-A.zarr", progress=False))
    >>> table = evaluate({"tiny-A": ds.rates}, ds, tiers=["oracle"])
    >>> table[["mouse", "tier", "n_trials", "single_trial_correlation_fraction"]]
        mouse    tier  n_trials  single_trial_correlation_fraction
    0  tiny-A  oracle         2                                1.0
    1     all  oracle         2                                1.0

    With a real recording: ``ds = sd.open_mouse("F")``, then ``evaluate({"F": predictions},
    {"F": ds})`` with the predictions of a model (:func:`sensorium_models.predict`).
    """
    inputs = scoring_inputs(predictions, datasets, scale=scale, precision=precision)
    check_tiers(inputs.datasets, tiers)
    frame = table(inputs, tiers=tiers, skip=skip, max_frames=max_frames)
    for line in flagged(frame):
        log.warning("%s", line)
    return frame


def table(
    inputs: ScoringInputs,
    *,
    tiers: Sequence[str] | None = None,
    skip: int = 50,
    max_frames: int | None = 300,
    scale_predictions: bool = True,
) -> pd.DataFrame:
    """The leaderboard table of prepared inputs (:func:`~sensorium_models.scoring_inputs.
    scoring_inputs`), its scale and frame window in ``attrs``.

    With ``scale_predictions=False`` the official scale applies to the ground truth only
    (a submission's values are already in it).
    """
    import pandas as pd

    cells = score(inputs, tiers=tiers, skip=skip, max_frames=max_frames,
                  scale_predictions=scale_predictions)
    frame = pd.DataFrame(rows(cells, inputs.datasets))
    frame.attrs.update(scale=inputs.scale, skip=skip, max_frames=max_frames)
    return frame


def score(
    inputs: ScoringInputs,
    *,
    tiers: Sequence[str] | None,
    skip: int,
    max_frames: int | None,
    scale_predictions: bool = True,
) -> list[_Cell]:
    """The finished cells of every recording with predictions (see :func:`table`)."""
    cells: list[_Cell] = []
    for name, source in inputs.sources.items():
        ds = inputs.datasets[name]
        prec = inputs.precision_of(name)
        scaling = (prec, prec if scale_predictions else None)
        try:
            cells += _score_recording(name, ds, source, tiers, scaling, skip, max_frames)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
    if not any(c.n_trials for c in cells):
        unlabelled = sum(c.n_unlabelled for c in cells)
        msg = (
            f"nothing to score: the predictions cover no labelled trial with frames in the "
            f"window{f' of tiers {list(tiers)}' if tiers else ''} ({unlabelled} unlabelled "
            "trials skipped: their responses are withheld)."
        )
        raise ValueError(msg)
    return cells


def _score_recording(
    name: str,
    ds: xr.Dataset,
    source: PredictionSource,
    tiers: Sequence[str] | None,
    scaling: tuple[np.ndarray | None, np.ndarray | None],
    skip: int,
    max_frames: int | None,
) -> list[_Cell]:
    static = "frame" not in ds["responses"].dims
    trial_ids = ds["trial"].values
    coords = ds.coords
    tier = coords["tier"].values.astype(str) if "tier" in coords else np.full(len(trial_ids), "all")
    kind = (
        coords["stimulus_type"].values.astype(str)
        if "stimulus_type" in coords
        else np.full(len(trial_ids), "unknown")
    )
    labelled = coords["labelled"].values.astype(bool) if "labelled" in coords else None
    group_key = next((k for k in ("video_id", "image_id") if k in coords), None)
    selected = np.isin(trial_ids, source.trials)
    if tiers is not None:
        selected &= np.isin(tier, list(tiers))
    n_neurons = ds.sizes["neuron"]
    window = {"skip": skip, "max_frames": max_frames}
    cells: list[_Cell] = []
    for t in sorted(set(tier[selected]), key=_tier_rank):
        tier_cells = []
        for k in sorted(set(kind[selected & (tier == t)])):
            cell = _Cell(name, t, k, n_neurons)
            positions = np.flatnonzero(selected & (tier == t) & (kind == k))
            if labelled is not None:
                cell.n_unlabelled = int((~labelled[positions]).sum())
                positions = positions[labelled[positions]]
            cell.accs = _accumulators(window, static, group_key is not None, "rates" in ds)
            for b in range(0, len(positions), BLOCK):
                block = positions[b : b + BLOCK]
                _update(cell, ds, source, block, scaling, group_key, static, max_frames)
            cell.finish()
            tier_cells.append(cell)
        cells += tier_cells
        if not static and t not in BONUS_TIERS and len(tier_cells) > 1:
            cells.append(_merged(tier_cells))
        for cell in tier_cells:
            cell.accs = {}  # the per-neuron results are kept; the sums are not needed
    return cells


def _accumulators(window: dict[str, Any], static: bool, repeats: bool, rates: bool) -> dict:
    accs: dict[str, Any] = {"single_trial_correlation": RunningSingleTrialCorrelation(**window),
                            RAW: RunningSingleTrialCorrelation(**window)}
    if repeats:
        accs["correlation_to_average"] = RunningCorrelationToAverage(**window)
        if static:
            accs["feve"] = RunningFEVE(**window)
    if rates:
        for metric in list(accs):
            if metric not in ("feve", RAW):
                accs[f"{metric}_ceiling"] = type(accs[metric])(**window)
    return accs


def _update(
    cell: _Cell,
    ds: xr.Dataset,
    source: PredictionSource,
    block: np.ndarray,
    scaling: tuple[np.ndarray | None, np.ndarray | None],
    group_key: str | None,
    static: bool,
    max_frames: int | None,
) -> None:
    import xarray as xr

    dims = ("trial", "neuron") if static else ("trial", "neuron", "frame")
    trials = ds["trial"].values[block]
    n_frames = None if static or "n_frames" not in ds.coords else ds["n_frames"].values[block]

    def load(var: str) -> np.ndarray:
        return ds[var].isel(trial=block).transpose(*dims).values

    def scaled(values: np.ndarray, prec: np.ndarray | None) -> xr.DataArray:
        if prec is not None:
            values = _apply(values, prec, n_frames, max_frames)
        return xr.DataArray(values, dims=dims, coords={"trial": trials})

    truth_scale, prediction_scale = scaling
    raw_responses, raw_predictions = load("responses"), source.read(trials)
    responses = scaled(raw_responses, truth_scale)
    streams = {"": scaled(raw_predictions, prediction_scale)}
    # calibration on the raw scale: predictions given on the official one (a submission's)
    # are divided by its precision first
    unscale = 1 / truth_scale if truth_scale is not None and prediction_scale is None else None
    cell.accs[RAW].update(scaled(raw_responses, None), scaled(raw_predictions, unscale),
                          n_frames=n_frames)
    if "rates" in ds:
        streams["_ceiling"] = scaled(load("rates"), truth_scale)
    ids = ds[group_key].values[block] if group_key else None
    for suffix, predicted in streams.items():
        cell.accs[f"single_trial_correlation{suffix}"].update(
            responses, predicted, n_frames=n_frames
        )
        if ids is not None:
            acc = cell.accs[f"correlation_to_average{suffix}"]
            acc.update(responses, predicted, ids, n_frames=n_frames)
            if static and not suffix:
                cell.accs["feve"].update(responses, predicted, ids)


def _apply(
    values: np.ndarray, prec: np.ndarray, n_frames: np.ndarray | None, max_frames: int | None
) -> np.ndarray:
    """Multiply (trial, neuron[, frame]) values by a (neuron[, frame]) precision."""
    if prec.ndim == 1 or values.ndim == 2:
        if prec.ndim != 1 or prec.shape[0] != values.shape[1]:
            msg = f"precision has shape {prec.shape}; expected ({values.shape[1]},) neurons."
            raise ValueError(msg)
        return values * (prec[None, :, None] if values.ndim == 3 else prec[None, :])
    if prec.shape[0] != values.shape[1]:
        msg = f"precision has {prec.shape[0]} neurons; the recording has {values.shape[1]}."
        raise ValueError(msg)
    frames = min(values.shape[2], prec.shape[1])
    needed = values.shape[2] if n_frames is None else int(n_frames.max())
    needed = min(needed, values.shape[2], max_frames or needed)
    if prec.shape[1] < needed:
        msg = (
            f"precision covers {prec.shape[1]} frames but frames up to {needed} are scored; "
            "pass the per-frame precision of the whole padded trial."
        )
        raise ValueError(msg)
    out = np.full(values.shape, np.nan, dtype=np.result_type(values, np.float32))
    out[..., :frames] = values[..., :frames] * prec[None, :, :frames]
    return out


def _merged(cells: list[_Cell]) -> _Cell:
    """A row 'all' for a tier of several stimulus types: their accumulators merged.

    The pooled row over mice uses it (one correlation per neuron) instead of the per-type
    cells.
    """
    first = cells[0]
    out = _Cell(first.mouse, first.tier, POOLED, first.n_neurons)
    out.n_unlabelled = sum(c.n_unlabelled for c in cells)
    for metric, acc in first.accs.items():
        merged = type(acc)(**_settings(acc))
        for c in cells:
            merged.merge(c.accs[metric])
        out.accs[metric] = merged
    out.finish()
    return out


def _settings(acc: Any) -> dict[str, Any]:
    out = {"skip": acc.skip, "max_frames": acc.max_frames}
    if hasattr(acc, "min_repeats"):
        out["min_repeats"] = acc.min_repeats
    return out


def _tier_rank(tier: str) -> tuple[int, str]:
    return (TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER), tier)


def rows(cells: list[_Cell], recs: Mapping[str, xr.Dataset]) -> list[dict[str, Any]]:
    """Table rows: every cell, then (2023) the rows pooled over mice per tier."""
    out = [_row(c.mouse, c.tier, c.stimulus_type, [c], c.result) for c in cells]
    static = all("frame" not in ds["responses"].dims for ds in recs.values())
    if static:
        return out
    for tier in sorted({c.tier for c in cells}, key=_tier_rank):
        in_tier = [c for c in cells if c.tier == tier]
        if tier in BONUS_TIERS:
            kinds = sorted({c.stimulus_type for c in in_tier} - {IN_DOMAIN, POOLED})
            parts = [_pool([c for c in in_tier if c.stimulus_type == k]) for k in kinds]
            parts = [p for p in parts if p]
            if not parts:
                continue
            metrics = parts[0].keys()
            result = {m: np.array([_mean(p[m]) for p in parts]) for m in metrics}
            used = [c for c in in_tier if c.stimulus_type in kinds]
            out.append(_row(POOLED, tier, OUT_OF_DOMAIN, used, result))
        else:
            per_mouse = {}
            for c in in_tier:
                if c.stimulus_type == POOLED or c.mouse not in per_mouse:
                    per_mouse[c.mouse] = c
            pooled = _pool(list(per_mouse.values()))
            if pooled:
                out.append(_row(POOLED, tier, POOLED, list(per_mouse.values()), pooled))
    return out


def _pool(cells: list[_Cell]) -> dict[str, np.ndarray]:
    """Per metric, the per-neuron values of the cells side by side (NaN where unscored)."""
    if not cells:
        return {}
    return {m: np.concatenate([c.result[m] for c in cells]) for m in cells[0].result}


def _row(
    mouse: str, tier: str, kind: str, cells: list[_Cell], result: dict[str, np.ndarray]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "mouse": mouse,
        "tier": tier,
        "stimulus_type": kind,
        "n_trials": sum(c.n_trials for c in cells),
        "n_unlabelled": sum(c.n_unlabelled for c in cells),
        "n_neurons": sum({c.mouse: c.n_neurons for c in cells}.values()),
    }
    means = {k: result[k] for k in (RECORDED, PREDICTED, SPREAD) if k in result}
    for metric, values in result.items():
        if metric not in means:
            row[metric] = _mean(values)
    if len(means) == 3:
        row.update(calibration_columns(means[RECORDED], means[PREDICTED], means[SPREAD]))
    else:  # nothing scored
        row.update(calibration=float("nan"), warning="")
    for metric in ("single_trial_correlation", "correlation_to_average"):
        ceiling = row.get(f"{metric}_ceiling")
        if ceiling is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                row[f"{metric}_fraction"] = float(np.float64(row[metric]) / ceiling)
    return row


def calibration_columns(recorded: np.ndarray, predicted: np.ndarray, spread: np.ndarray
                        ) -> dict[str, Any]:
    """``calibration`` (predicted mean / recorded mean, over the neurons' scored frames) and
    ``warning``: what is wrong with the predictions' scale, or "" (see :data:`WARNINGS`).

    Examples
    --------
    >>> calibration_columns(np.array([1.0, 2.0]), np.array([150.0, 300.0]), np.array([1.0, 1.0]))
    {'calibration': 150.0, 'warning': "mean 150x the responses'"}
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(np.float64(_mean(predicted)) / _mean(recorded))
    if np.all(predicted == 0):
        warning = WARNINGS["zero"]
    elif np.all(spread <= 1e-6 * (np.abs(predicted) + 1e-12)):
        warning = WARNINGS["constant"]
    elif np.isfinite(ratio) and not 1 / OFF_BY < ratio < OFF_BY:
        warning = WARNINGS["scale"].format(ratio=ratio)
    else:
        warning = ""
    return {"calibration": ratio, "warning": warning}


def flagged(table: pd.DataFrame) -> list[str]:
    """One line per row of ``table`` with a warning, naming the row and what to check."""
    if "warning" not in table.columns:
        return []
    # read back from a CSV, a column without any warning is float NaN
    bad = table[[isinstance(w, str) and w != "" for w in table["warning"]]]
    return [
        f"predictions of {row.mouse}, {row.tier}, {row.stimulus_type}: {row.warning} "
        f"(calibration {row.calibration:.3g}); correlations ignore scale, so check the run "
        "(docs/training.md, 'When training goes wrong')"
        for row in bad.itertuples()
    ]


def _mean(values: np.ndarray) -> float:
    """Mean over the finite values (NaN marks neurons below FEVE's threshold, no repeats)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")
