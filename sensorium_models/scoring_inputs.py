"""What scoring starts from, prepared once for the leaderboard and the submissions.

:func:`scoring_inputs` checks the scale, finds each recording's name, wraps each mouse's
predictions in an :class:`ArraySource` and keys the given precisions by recording name;
``evaluate``, ``write_submission`` and ``score_submission`` all start from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from sensorium_data.catalog import resolve_mouse
from sensorium_data.dataset import tiers_with_trials
from sensorium_data.scale import official_precision
from sensorium_models._arrays import as_trials

if TYPE_CHECKING:
    import xarray as xr

Scale = Literal["raw", "official"]
SCALES = ("raw", "official")


class PredictionSource(Protocol):
    """Predictions of one recording, read a block of trials at a time."""

    trials: np.ndarray  # trial ids (the Dataset's `trial` coordinate) that have predictions

    def read(self, trials: np.ndarray) -> np.ndarray:
        """(trial, neuron, frame) or (trial, neuron) predictions; frame 0 is trial onset."""
        ...


@dataclass
class ScoringInputs:
    """The recordings by name, their predictions and what the scale needs.

    Attributes
    ----------
    datasets
        Recording name -> Dataset.
    sources
        Recording name -> its predictions (only recordings that have some).
    scale
        ``"raw"`` or ``"official"``.
    precision
        Recording name -> the precision (neuron, frame) the caller gave, or None: the
        official precision is then computed from the recording's statistics.
    """

    datasets: dict[str, xr.Dataset]
    sources: dict[str, PredictionSource] = field(default_factory=dict)
    scale: Scale = "raw"
    precision: dict[str, Any] | None = None

    def precision_of(self, name: str) -> np.ndarray | None:
        """The recording's official precision (neuron, frame) on the official scale, else
        None."""
        if self.scale != "official":
            return None
        return recording_precision(self.datasets[name], name, self.precision)


def scoring_inputs(
    predictions: Mapping[str, Any] | None,
    datasets: Any,
    *,
    scale: Scale = "raw",
    precision: Mapping[str, Any] | None = None,
) -> ScoringInputs:
    """Check and key by recording name what scoring (or a submission) starts from.

    Parameters
    ----------
    predictions
        Mouse -> predictions, as for :func:`~sensorium_models.leaderboard.evaluate`; None
        leaves ``sources`` empty for the caller to fill (a submission read from disk).
    datasets
        An ``xarray.Dataset``, a sequence of them or a mapping name -> Dataset.
    scale
        ``"raw"`` or ``"official"``.
    precision
        Mouse -> precision (neuron, frame), keyed like ``predictions``.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"responses": (("trial", "neuron"), np.ones((2, 3)))},
    ...                 coords={"trial": [0, 1], "neuron": [7, 8, 9]}, attrs={"mouse": "m1"})
    >>> inputs = scoring_inputs({"m1": np.zeros((2, 3))}, [ds])
    >>> sorted(inputs.sources), inputs.sources["m1"].trials.tolist()
    (['m1'], [0, 1])
    >>> scoring_inputs({}, [ds], scale="rescaled")
    Traceback (most recent call last):
    ...
    ValueError: scale must be 'raw' or 'official'; got 'rescaled'.
    """
    if predictions is not None and not isinstance(predictions, Mapping):
        msg = (
            "predictions must be a mapping mouse -> array or DataArray (trial, neuron, frame); "
            f"got {type(predictions).__name__}."
        )
        raise TypeError(msg)
    if scale not in SCALES:
        msg = f"scale must be 'raw' or 'official'; got {scale!r}."
        raise ValueError(msg)
    recs = datasets_by_name(datasets)
    keys = datasets if isinstance(datasets, Mapping) else {}
    sources: dict[str, PredictionSource] = {}
    for key, value in (predictions or {}).items():
        name = dataset_name(recs, str(key), keys)
        sources[name] = ArraySource(value, recs[name], name)
    precisions = None
    if precision is not None:
        precisions = {dataset_name(recs, str(k), keys): v for k, v in precision.items()}
    return ScoringInputs(recs, sources, scale, precisions)


def datasets_by_name(datasets: Any) -> dict[str, xr.Dataset]:
    """Recordings by name (the ``mouse`` attribute, else the mapping's key, else the
    position).

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"responses": ("trial", [1.0])}, attrs={"mouse": "m1"})
    >>> list(datasets_by_name({"F": ds}))
    ['m1']
    >>> datasets_by_name(3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: datasets must be an xarray.Dataset, ... got int.
    """
    if hasattr(datasets, "data_vars"):
        datasets = [datasets]
    items: Iterable[tuple[Any, Any]]
    if isinstance(datasets, Mapping):
        items = datasets.items()
    elif isinstance(datasets, Sequence):
        items = ((None, ds) for ds in datasets)
    else:
        msg = (
            "datasets must be an xarray.Dataset, a sequence of them or a mapping name -> "
            f"Dataset; got {type(datasets).__name__}."
        )
        raise TypeError(msg)
    out: dict[str, xr.Dataset] = {}
    for key, ds in items:
        if not hasattr(ds, "data_vars") or "responses" not in ds.data_vars:
            msg = (
                f"{key or 'each dataset'} must be a recording's xarray.Dataset with a "
                "`responses` variable (see sensorium_data.open_mouse)."
            )
            raise TypeError(msg)
        name = str(ds.attrs.get("mouse", key if key is not None else len(out)))
        out[name] = ds
    return out


def dataset_name(recs: Mapping[str, xr.Dataset], key: str, keys: Mapping[Any, Any]) -> str:
    """The recording name of a user's key: a name, a key of the datasets mapping, or a
    catalog name of the recording (letter ``"F"``, short name ``"29515-10-12"``)."""
    if key in recs:
        return key
    for user_key, ds in keys.items():
        if user_key == key:
            return str(ds.attrs.get("mouse", user_key))
    try:
        name = resolve_mouse(key, recs)
    except (LookupError, ValueError, OSError):  # an unreadable catalog names nothing
        name = None
    if name is not None:
        return name
    msg = f"no dataset for mouse {key!r}; the datasets are {sorted(recs)}."
    raise KeyError(msg)


class ArraySource:
    """Predictions given as an array aligned with the recording, or a DataArray by trial."""

    def __init__(self, predictions: Any, ds: xr.Dataset, name: str):
        data = as_trials(predictions, f"predictions of {name}")
        n_trials, n_neurons = ds.sizes["trial"], ds.sizes["neuron"]
        if data.labels is not None:
            trials = data.labels
            unknown = np.setdiff1d(trials, ds["trial"].values)
            if len(unknown):
                msg = (
                    f"predictions of {name} have {len(unknown)} trials the recording does not "
                    f"have: {unknown[:20].tolist()}."
                )
                raise ValueError(msg)
        elif data.shape[0] == n_trials:
            trials = ds["trial"].values
        else:
            msg = (
                f"predictions of {name} have {data.shape[0]} trials but the recording has "
                f"{n_trials}: pass an array aligned with all its trials, or a DataArray with a "
                "`trial` coordinate to predict some of them."
            )
            raise ValueError(msg)
        self.order = None
        if data.neurons is not None and not np.array_equal(data.neurons, ds["neuron"].values):
            index = {v: i for i, v in enumerate(data.neurons.tolist())}
            missing = [v for v in ds["neuron"].values.tolist() if v not in index]
            if missing or len(index) != n_neurons:
                msg = (
                    f"the neuron coordinate of the predictions of {name} does not hold the "
                    f"recording's {n_neurons} neurons (missing {missing[:10]})."
                )
                raise ValueError(msg)
            self.order = np.array([index[v] for v in ds["neuron"].values.tolist()])
        elif data.shape[1] != n_neurons:
            msg = (
                f"predictions of {name} have {data.shape[1]} neurons but the recording has "
                f"{n_neurons}."
            )
            raise ValueError(msg)
        self.data, self.trials = data.data, np.asarray(trials)
        self.position = {t: i for i, t in enumerate(self.trials.tolist())}

    def read(self, trials: np.ndarray) -> np.ndarray:
        rows = [self.position[t] for t in trials.tolist()]
        index = rows if isinstance(self.data, np.ndarray) else np.asarray(rows)
        block = np.asarray(self.data[index])
        return block if self.order is None else block[:, self.order]


def check_tiers(recs: Mapping[str, xr.Dataset], tiers: str | Sequence[str] | None) -> None:
    """Name the tiers asked for that no recording has trials of, and the tiers they have."""
    if tiers is None:
        return
    present = set().union(*(tiers_with_trials(ds) for ds in recs.values()))
    chosen = [tiers] if isinstance(tiers, str) else list(tiers)
    unknown = [t for t in chosen if t not in present]
    if unknown:
        msg = (f"no recording has trials of tier(s) {unknown}; their tiers: "
               f"{sorted(present - {'none'})}.")
        raise ValueError(msg)


def recording_precision(ds: xr.Dataset, name: str, given: Mapping[str, Any] | None) -> np.ndarray:
    """The official precision of a recording: given by name, else from its statistics."""
    if given is not None and name in given:
        return np.asarray(given[name], dtype=np.float64)
    try:
        std = ds.sensorium.statistics["responses"].sel(statistic="std")
    except (AttributeError, KeyError, ValueError) as e:
        msg = (
            f"scale='official' needs the response statistics of {name}: pass precision="
            "{mouse: array (neuron, frame)} (see official_precision), or open the recording "
            f"with sensorium_data.open_mouse so that ds.sensorium.statistics exists ({e})."
        )
        raise ValueError(msg) from e
    return official_precision(std.transpose("neuron", ...).values)


def scored_tiers(datasets: Mapping[str, xr.Dataset]) -> list[str]:
    """Tiers with labelled trials in some recording, except train."""
    out: set[str] = set()
    for ds in datasets.values():
        labelled = ds["labelled"].values.astype(bool) & (ds["n_frames"].values > 0)
        out |= set(ds["tier"].values.astype(str)[labelled])
    return sorted(str(t) for t in out - {"train", "none"})
