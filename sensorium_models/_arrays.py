"""Turn what users pass (numpy, torch, xarray, dask) into per-trial windows of plain numpy.

Nothing here loads a whole array: inputs are read a block of trials at a time, so a dask- or
zarr-backed DataArray is scored in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorium_data.dataset import BLOCK
from sensorium_data.tree import valid_frames


@dataclass(frozen=True)
class Trials:
    """An array of trials in canonical layout, (trial, neuron, frame) or (trial, neuron)."""

    data: Any  # numpy or any lazy array that slices (dask, zarr, memmap)
    name: str
    labels: np.ndarray | None  # the `trial` coordinate of a DataArray, to name trials in errors
    neurons: np.ndarray | None  # the `neuron` coordinate of a DataArray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    def label(self, position: int) -> str:
        if self.labels is None:
            return f"trial {position}"
        return f"trial {self.labels[position]}"


def as_trials(value: Any, name: str) -> Trials:
    """Wrap ``value`` without copying it; DataArrays are put in (trial, neuron, frame) order."""
    labels = neurons = None
    if hasattr(value, "dims") and hasattr(value, "coords") and hasattr(value, "transpose"):
        dims = tuple(value.dims)
        order = [d for d in ("trial", "neuron", "frame") if d in dims]
        if len(order) == len(dims) and order[:2] == ["trial", "neuron"]:
            value = value.transpose(*order)
        if "trial" in value.coords and value.dims[0] == "trial":
            labels = np.asarray(value.coords["trial"].values)
        if "neuron" in value.coords and value.dims[1:2] == ("neuron",):
            neurons = np.asarray(value.coords["neuron"].values)
        value = value.data
    elif type(value).__module__.split(".")[0] == "torch":
        tensor = value.detach()
        if str(tensor.dtype) in ("torch.float16", "torch.bfloat16"):
            tensor = tensor.float()
        value = tensor.cpu().numpy()
    elif not all(hasattr(value, a) for a in ("shape", "dtype", "__getitem__")):
        value = np.asarray(value)
    kind = np.dtype(value.dtype).kind
    if kind not in "fiu":
        msg = f"{name} must hold real numbers; got dtype {value.dtype}."
        raise TypeError(msg)
    if len(value.shape) not in (2, 3):
        msg = (
            f"{name} must be 3-D (trial, neuron, frame) for 2023 data or 2-D (trial, neuron) "
            f"for 2022 data; got shape {tuple(value.shape)}."
        )
        raise ValueError(msg)
    return Trials(value, name, labels, neurons)


def check_pair(responses: Trials, predictions: Trials) -> None:
    """Same trials and neurons; predictions may differ in frames (the window decides)."""
    r, p = responses.shape, predictions.shape
    if len(r) != len(p) or r[:2] != p[:2]:
        axes = "(trial, neuron, frame)" if len(r) == 3 else "(trial, neuron)"
        msg = (
            f"responses and predictions must have the same trials and neurons: responses "
            f"{axes} = {r}, predictions = {p}."
        )
        raise ValueError(msg)
    for what, a, b in (
        ("trial", responses.labels, predictions.labels),
        ("neuron", responses.neurons, predictions.neurons),
    ):
        if a is not None and b is not None and not np.array_equal(a, b):
            first = int(np.flatnonzero(a != b)[0])
            msg = (
                f"the {what} coordinates of responses and predictions differ (first at position "
                f"{first}: {a[first].item()!r} vs {b[first].item()!r}); align them, e.g. "
                f"predictions.sel({what}=responses.{what})."
            )
            raise ValueError(msg)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_window(skip: int, max_frames: int | None) -> None:
    if not _is_int(skip) or skip < 0:
        msg = (
            "skip must be a non-negative integer (frames dropped at each trial's start); "
            f"got {skip!r}."
        )
        raise ValueError(msg)
    if max_frames is not None and (not _is_int(max_frames) or max_frames <= skip):
        msg = (
            f"max_frames must be None or an integer above skip={skip} (frames [skip, max_frames) "
            f"are scored); got {max_frames!r}."
        )
        raise ValueError(msg)


def check_n_frames(n_frames: Any, n_trials: int) -> np.ndarray | None:
    if n_frames is None:
        return None
    out = np.asarray(n_frames)
    if out.shape != (n_trials,) or out.dtype.kind not in "iu":
        msg = (
            f"n_frames must hold one integer per trial ({n_trials}); got "
            f"{out.dtype} of shape {out.shape}."
        )
        raise ValueError(msg)
    return out


def check_groups(ids: Any, n_trials: int, name: str) -> np.ndarray:
    """Repeat-group ids (video or image ids) as a 1-D array, one per trial."""
    if hasattr(ids, "values") and hasattr(ids, "dims"):
        ids = ids.values
    elif type(ids).__module__.split(".")[0] == "torch":
        ids = ids.detach().cpu().numpy()
    out = np.asarray(ids)
    if out.ndim != 1 or len(out) != n_trials:
        msg = (
            f"{name} must give one id per trial: responses have {n_trials} trials but {name} "
            f"has shape {out.shape}."
        )
        raise ValueError(msg)
    return out


@dataclass(frozen=True)
class Window:
    """The scored frames of one trial: ``x[:, j]`` is frame ``start + j``."""

    position: int
    start: int
    x: np.ndarray  # responses (neuron, frames)
    y: np.ndarray | None  # predictions (neuron, frames)


def windows(
    responses: Trials,
    predictions: Trials | None,
    *,
    skip: int,
    max_frames: int | None,
    n_frames: np.ndarray | None = None,
    positions: Sequence[int] | None = None,
) -> Iterator[Window]:
    """Yield the non-empty scoring window of every trial, a block of trials read at a time.

    3-D inputs keep frames ``[skip, min(valid frames, max_frames))``; a 2-D (2022) trial is one
    frame, kept unless its responses are all NaN (withheld).
    """
    static = len(responses.shape) == 2
    n_trials = responses.shape[0]
    todo = list(range(n_trials) if positions is None else positions)
    for b in range(0, len(todo), BLOCK):
        block = todo[b : b + BLOCK]
        r_block = _read(responses, block)
        p_block = None if predictions is None else _read(predictions, block)
        for k, i in enumerate(block):
            x = r_block[k][:, None] if static else r_block[k]
            if static:
                start, stop = 0, 1 if not np.isnan(x).all() else 0
            else:
                end = valid_frames(x) if n_frames is None else int(n_frames[i])
                start = skip
                stop = min(end, x.shape[1], max_frames or x.shape[1])
            if stop <= start:
                continue
            y = None
            if p_block is not None:
                y = p_block[k][:, None] if static else p_block[k]
                if y.shape[1] < stop:
                    msg = (
                        f"predictions of {predictions.label(i) if predictions else i} have "
                        f"{y.shape[1]} frames but frames up to {stop} are scored (the trial has "
                        f"valid frames up to {stop}); pad the predictions to the responses' frames."
                    )
                    raise ValueError(msg)
                y = y[:, start:stop]
            yield Window(i, start, x[:, start:stop], y)


def _read(trials: Trials, block: list[int]) -> Sequence[np.ndarray] | np.ndarray:
    """The trials of ``block``, in order: views of a numpy array, else read in one go."""
    data = trials.data
    if isinstance(data, np.ndarray):
        return [data[i] for i in block]
    if _contiguous(block):
        return np.asarray(data[block[0] : block[-1] + 1])
    return np.asarray(data[np.asarray(block)])


def _contiguous(block: list[int]) -> bool:
    return block == list(range(block[0], block[0] + len(block)))


def raise_non_finite(window: Window, responses: Trials, predictions: Trials | None) -> None:
    """Name what is not finite in a window whose sums came out non-finite, then raise."""
    stop = window.start + window.x.shape[1]
    frames = f"frames {window.start}..{stop - 1}"
    bad_x = ~np.isfinite(window.x)
    if bad_x.any():
        neurons = np.flatnonzero(bad_x.any(axis=1))
        msg = (
            f"responses of {responses.label(window.position)} have {int(bad_x.sum())} NaN or "
            f"infinite values inside the scored {frames} ({len(neurons)} neurons, first "
            f"neuron position {neurons[0]}). A trial's valid frames end at its first all-NaN "
            "frame; pass n_frames if its padding is not NaN."
        )
        raise ValueError(msg)
    if window.y is not None and predictions is not None:
        bad_y = ~np.isfinite(window.y)
        if bad_y.any():
            neurons = np.flatnonzero(bad_y.any(axis=1))
            msg = (
                f"predictions of {predictions.label(window.position)} have {int(bad_y.sum())} "
                f"NaN or infinite values where the responses are valid ({frames}; "
                f"{len(neurons)} neurons, first neuron position {neurons[0]})."
            )
            raise ValueError(msg)
