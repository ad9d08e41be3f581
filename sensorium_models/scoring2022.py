"""The SENSORIUM 2022 leaderboard: its three metrics, per mouse and tier, as the website ran them.

The website (``sensorium/utility/eval.py`` and ``metrics.py`` of the 2022 starter kit, with
neuralpredictors' ``corr`` and ``fev``) scored the ``test`` ("live") and ``final_test`` tiers
of each competition mouse on the official response scale (responses times
:func:`~sensorium_data.scale.official_precision`), reporting, averaged over neurons:

- ``Single Trial Correlation``: per neuron over all trials (std ddof=0, + 1e-8);
- ``Correlation to Average``: responses and predictions averaged over the repeats of each
  image first, then correlated over images;
- ``FEVE``: ``1 - (mse - noise_var) / (total_var - noise_var)`` over the neurons whose
  ``fev = (total_var - noise_var) / total_var`` reaches 0.15, with ``total_var`` the variance
  of all trials (ddof=1) and ``noise_var`` the mean over images of the variance across
  repeats (ddof=1). FEVE depends on the scale: predictions must be in the official units.

See ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sensorium_data.errors import Fix, Message
from sensorium_data.scale import official_precision
from sensorium_models.metrics import RunningFEVE, correlation_to_average, single_trial_correlation

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

log = logging.getLogger(__name__)

TIERS_2022 = ("validation", "test", "final_test")
"""The tiers the 2022 table reports: validation (model selection), test (the live
leaderboard) and final_test (the final ranking, competition mice only)."""
FEV_THRESHOLD = 0.15
WEBSITE_NAMES = {
    "single_trial_correlation": "Single Trial Correlation",
    "correlation_to_average": "Correlation to Average",
    "feve": "FEVE",
}
Units = Literal["official", "raw"]


def website_metrics(
    responses: Any,
    predictions: Any,
    image_ids: Any,
    *,
    fev_threshold: float = FEV_THRESHOLD,
) -> dict[str, float]:
    """The 2022 website's three numbers for one tier of one mouse.

    Parameters
    ----------
    responses, predictions
        (trial, neuron) arrays, aligned, in the same units (the website's ground truth is on
        the official scale: responses times ``official_precision``).
    image_ids
        One image id per trial (``frame_image_id``); repeats share it. Ids may be strings.
    fev_threshold
        Neurons whose fraction of explainable variance is below this are left out of FEVE.

    Returns
    -------
    dict
        ``single_trial_correlation``, ``correlation_to_average`` and ``feve`` (the website's
        "Single Trial Correlation", "Correlation to Average" and "FEVE"); the last two are NaN
        when no image is shown twice.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.array([[1.0], [3.0], [5.0], [7.0], [4.0]])
    >>> p = np.array([[2.0], [2.0], [6.0], [6.0], [4.0]])
    >>> # total_var 5, noise_var (2 + 7/3) / 2, mse 0.8: FEVE above 1 (noise_var is estimated)
    >>> {k: round(v, 4) for k, v in website_metrics(r, p, ["a", "a", "b", "b", "b"]).items()}
    {'single_trial_correlation': 0.8944, 'correlation_to_average': 1.0, 'feve': 1.4824}
    """
    r = np.asarray(responses, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    ids = np.asarray(image_ids).astype(str)
    if r.ndim != 2 or r.shape != p.shape or len(ids) != len(r):
        msg = (f"responses {r.shape}, predictions {p.shape} and {len(ids)} image ids; pass "
               "(trial, neuron) arrays of one shape and one image id per trial.")
        raise ValueError(msg)
    out = {"single_trial_correlation": float(single_trial_correlation(r, p))}
    _, counts = np.unique(ids, return_counts=True)
    if (counts < 2).all():
        out.update(correlation_to_average=float("nan"), feve=float("nan"))
        return out
    if (counts < 2).any():
        log.info("%d images shown once are left out of correlation to average and FEVE",
                 int((counts < 2).sum()))
    out["correlation_to_average"] = float(correlation_to_average(r, p, ids))
    acc = RunningFEVE(fev_threshold=fev_threshold).update(r, p, ids)
    out["feve"] = float(acc.compute())
    return out


def leaderboard_2022(
    predictions: Mapping[str, Any],
    datasets: Any,
    *,
    tiers: Sequence[str] = TIERS_2022,
    units: Units = "official",
    fev_threshold: float = FEV_THRESHOLD,
) -> pd.DataFrame:
    """The 2022 leaderboard table: per mouse and tier, the website's three metrics.

    Parameters
    ----------
    predictions
        Mouse -> (trial, neuron) predictions: an ``xarray.DataArray`` with a ``trial``
        coordinate (its trials are scored), or an array aligned with all the recording's
        trials.
    datasets
        The 2022 recordings (``sensorium_data.open_mouse``): a Dataset, a list, or a mapping.
    tiers
        The tiers to score (default validation, test, final_test); tiers a mouse does not have
        are left out for it, a tier no mouse has is an error.
    units
        ``"official"``: predictions are on the official scale already (a model trained on
        ``ImageDataset(normalize="official")``); ``"raw"``: in the recording's raw units,
        multiplied by the official precision before scoring.
    fev_threshold
        FEVE's neuron filter.

    Returns
    -------
    pandas.DataFrame
        One row per (mouse, tier): ``n_trials`` (scored), ``n_unlabelled`` (withheld, left
        out), ``n_neurons``, ``single_trial_correlation``, ``correlation_to_average``,
        ``feve``. For a simulated recording (``rates``), ``*_ceiling`` (the metric of the
        noise-free rates) and ``*_fraction`` (score / ceiling).

    Examples
    --------
    A simulated 2022 recording (``static2022``), its noise-free rates as the predictions:

    >>> table = leaderboard_2022({"static2022-A": static2022.rates}, static2022, units="raw")
    >>> table.tier.tolist(), table.feve_fraction.round(3).tolist()
    (['validation', 'test', 'final_test'], [nan, 1.0, 1.0])
    """
    import pandas as pd

    from sensorium_models.scoring_inputs import dataset_name, datasets_by_name

    if units not in ("official", "raw"):
        msg = (f"units={units!r}; choose 'official' (predictions on the leaderboard's scale) "
               "or 'raw' (the recording's units, scaled here).")
        raise ValueError(msg)
    recs = datasets_by_name(datasets)
    keys = datasets if isinstance(datasets, Mapping) else {}
    chosen = [tiers] if isinstance(tiers, str) else list(tiers)
    present: set[str] = set()
    for ds in recs.values():
        _check_static(ds)
        present |= set(ds["tier"].values.astype(str).tolist())
    unknown = [t for t in chosen if t not in present]
    if unknown:
        msg = (f"no recording has trials of tier(s) {unknown}; their tiers: {sorted(present)}. "
               f"The 2022 tiers are {list(TIERS_2022)} (and train).")
        raise ValueError(msg)
    rows = []
    for key, value in predictions.items():
        name = dataset_name(recs, str(key), keys)
        ds = recs[name]
        positions, predicted = aligned_predictions(value, ds, name)
        precision = official_precision(
            ds.sensorium.statistics["responses"].sel(statistic="std").values)
        tier = ds["tier"].values.astype(str)
        labelled = (ds["labelled"].values.astype(bool) if "labelled" in ds.coords
                    else np.ones(ds.sizes["trial"], bool))
        for t in [t for t in chosen if (tier[positions] == t).any()]:
            rows.append(_row(ds, name, t, positions, predicted, tier, labelled, precision,
                             units, fev_threshold))
    if not rows:
        msg = f"the predictions cover no trial of tiers {chosen}."
        raise ValueError(msg)
    return pd.DataFrame(rows)


def _row(ds: xr.Dataset, name: str, t: str, positions: np.ndarray, predicted: np.ndarray,
         tier: np.ndarray, labelled: np.ndarray, precision: np.ndarray, units: Units,
         fev_threshold: float) -> dict[str, Any]:
    in_tier = tier[positions] == t
    keep = in_tier & labelled[positions]
    rows = positions[keep]
    row: dict[str, Any] = {"mouse": name, "tier": t, "n_trials": int(keep.sum()),
                           "n_unlabelled": int((in_tier & ~labelled[positions]).sum()),
                           "n_neurons": int(ds.sizes["neuron"])}
    if not len(rows):
        log.warning("%s: the responses of tier %s are withheld; nothing to score", name, t)
        return {**row, **dict.fromkeys(WEBSITE_NAMES, float("nan"))}
    responses = ds["responses"].isel(trial=rows).transpose("trial", "neuron").values * precision
    guess = predicted[keep] * (precision if units == "raw" else 1.0)
    ids = ds["image_id"].values[rows]
    row.update(website_metrics(responses, guess, ids, fev_threshold=fev_threshold))
    if "rates" in ds:
        rates = ds["rates"].isel(trial=rows).transpose("trial", "neuron").values * precision
        ceiling = website_metrics(responses, rates, ids, fev_threshold=fev_threshold)
        for metric, value in ceiling.items():
            row[f"{metric}_ceiling"] = value
            row[f"{metric}_fraction"] = row[metric] / value if value else float("nan")
    return row


def _check_static(ds: xr.Dataset) -> None:
    if "images" not in ds or "frame" in ds.dims:
        msg = (f"{ds.attrs.get('mouse', 'this recording')} is a 2023 (video) recording; the "
               "2022 table scores static-image recordings. Use sensorium_models.evaluate.")
        raise ValueError(msg)


def aligned_predictions(value: Any, ds: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``ds`` of the predicted trials and the (trial, neuron) predictions, from a
    DataArray with a ``trial`` coordinate or an array aligned with all of ``ds``'s trials."""
    n_trials, n_neurons = ds.sizes["trial"], ds.sizes["neuron"]
    coords = getattr(value, "coords", None)
    if coords is not None and "trial" in coords:
        trials = np.asarray(coords["trial"].values)
        where = {int(t): i for i, t in enumerate(ds["trial"].values)}
        missing = [int(t) for t in trials if int(t) not in where]
        if missing:
            msg = (f"{name}: predictions for trials {missing[:5]} that the recording does not "
                   "have; predict the recording's own trials.")
            raise ValueError(msg)
        positions = np.array([where[int(t)] for t in trials], dtype=np.int64)
        dims = [d for d in ("trial", "neuron") if d in value.dims]
        array = np.asarray(value.transpose(*dims).values if len(dims) == 2 else value.values)
    else:
        array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        positions = np.arange(n_trials)
    if array.shape != (len(positions), n_neurons):
        expected = (len(positions), n_neurons)
        msg = (f"{name}: predictions have shape {array.shape}; expected {expected} "
               "(trial, neuron): one row per trial of the recording (or of the DataArray's "
               "trial coordinate) and one column per neuron.")
        raise ValueError(msg)
    return positions, array.astype(np.float64)


def twin_feve(
    predictions: Any,
    ds: xr.Dataset,
    *,
    tier: str = "test",
    units: Units = "official",
    fev_threshold: float = FEV_THRESHOLD,
) -> dict[str, float]:
    """FEVE on a ``static2022`` twin as a fraction of its known explainable variance.

    The website estimates each neuron's explainable variance from the responses (their
    variance minus the variance across repeats). The twin knows it: its ``rates`` are the
    noise-free expected responses of every trial. Per neuron, over the tier's trials ``t``,
    on the official scale::

        feve_known       = 1 - mean_t (p_t - rate_t)^2 / mean_t (rate_t - mean rate)^2
        feve_known_image = 1 - (mean_t (p_t - rate_t)^2 - within) / stimulus

    ``feve_known`` is the fraction of the rates' variance (what the image and the behaviour
    explain) that the predictions explain: the population value of the website's
    ``1 - (mse - noise) / (total - noise)`` with the noise taken out exactly instead of
    estimated; the rates score 1. ``within`` is the rates' mean squared deviation from their
    image's mean over its repeats (what behaviour explains) and ``stimulus`` the rest of
    their variance (what the image explains): ``feve_known_image`` is the known counterpart of
    the website's FEVE, whose repeat-based noise holds behaviour's share too. An image-only
    model (SENSORIUM track: one prediction per image) scores ``1 - mean_t (p_t - image
    mean)^2 / stimulus`` on it, 1 at best; the rates score ``1 + within / stimulus``.

    Each is averaged over the neurons whose known explainable fraction (``stimulus / (signal
    + noise)`` of ``meta/simulation_explainable_variance.json``, what the website's FEV
    estimates) reaches ``fev_threshold``, as the website averages FEVE. Nothing here is
    estimated from the noisy responses: an earlier version used ``1 - (mse - noise) /
    (total_var - noise)`` with the responses' sample variance and the known noise, whose
    denominator is a difference of a noisy sample variance and a population value and went
    negative for some neurons even at the twin's full size (the rates' own per-neuron values
    -79 to 29, their means 0.27 to 0.92 across tiers; docs/metrics.md).

    Parameters
    ----------
    predictions
        As for :func:`leaderboard_2022` (one recording).
    ds
        A recording of the static2022 preset (its ``source`` tree holds the ground truth).
    tier, units, fev_threshold
        The tier scored; the predictions' units; neurons whose known explainable fraction is
        below the threshold are left out.

    Returns
    -------
    dict
        ``feve`` (the website's, from the repeats), ``feve_known``, ``feve_known_image``,
        ``feve_known_median`` and ``feve_known_image_median`` (the medians over the same
        neurons) and ``n_neurons`` (the neurons averaged).
    """
    import json
    from pathlib import Path

    name = str(ds.attrs.get("mouse", "the recording"))
    source = Path(str(ds.attrs.get("source", "")))
    truth_file = source / "meta" / "simulation_explainable_variance.json"
    neurons_file = source / "meta" / "simulation_neurons.json"
    if not truth_file.is_file() or not neurons_file.is_file() or "rates" not in ds:
        msg: str = Message(f"{name} has no known explainable variance ({truth_file} is missing): "
                      "twin_feve needs a recording of the static2022 preset (",
                      Fix("sensorium_data.simulate(out, preset='static2022')",
                          "sensorium simulate OUT --preset static2022"),
                      "), opened from its folder.")
        raise ValueError(msg)
    known = json.loads(truth_file.read_text())
    if tier not in known:
        msg = f"{name} has no tier {tier!r}; its tiers: {sorted(known)}."
        raise ValueError(msg)
    order = {int(u): i for i, u in enumerate(json.loads(neurons_file.read_text())["unit_id"])}
    columns = np.array([order[int(u)] for u in ds["neuron"].values])
    positions, predicted = aligned_predictions(predictions, ds, name)
    precision = official_precision(
        ds.sensorium.statistics["responses"].sel(statistic="std").values)
    keep = ds["tier"].values.astype(str)[positions] == tier
    rows = positions[keep]
    if not len(rows):
        msg = f"the predictions of {name} cover no trial of tier {tier!r}."
        raise ValueError(msg)
    responses = ds["responses"].isel(trial=rows).transpose("trial", "neuron").values * precision
    rates = (ds["rates"].isel(trial=rows).transpose("trial", "neuron").values
             .astype(np.float64) * precision)
    guess = predicted[keep] * (precision if units == "raw" else 1.0)
    fraction = np.asarray(known[tier]["explainable_fraction"])[columns]
    use = fraction >= fev_threshold
    if not use.any():
        msg = (f"no neuron of {name} has a known explainable fraction of at least "
               f"{fev_threshold} in tier {tier!r}; lower fev_threshold.")
        raise ValueError(msg)
    image_ids = ds["image_id"].values[rows]
    image_mean = np.empty_like(rates)
    for image in np.unique(image_ids):
        at = image_ids == image
        image_mean[at] = rates[at].mean(axis=0)
    signal = ((rates - rates.mean(axis=0)) ** 2).mean(axis=0)
    within = ((rates - image_mean) ** 2).mean(axis=0)
    stimulus = signal - within
    mse = ((guess - rates) ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        overall = (1 - mse / signal)[use]
        image = (1 - (mse - within) / stimulus)[use]
    website = website_metrics(responses, guess, image_ids, fev_threshold=fev_threshold)["feve"]
    return {"feve": website, "feve_known": float(overall.mean()),
            "feve_known_image": float(image.mean()),
            "feve_known_median": float(np.median(overall)),
            "feve_known_image_median": float(np.median(image)),
            "n_neurons": int(use.sum())}
