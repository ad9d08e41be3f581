"""Whole-trial predictions of a trained model, in the recordings' raw response units."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sensorium_data.errors import Message, reason
from sensorium_models.models.ensemble import Ensemble
from sensorium_models.training import data

if TYPE_CHECKING:
    import xarray as xr
    from torch import nn

log = logging.getLogger(__name__)

Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


def no_autocast() -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


def autocast_for(device: torch.device, amp: bool) -> Autocast:
    """bf16 autocast on a GPU when ``amp``; nothing elsewhere."""
    if amp and device.type == "cuda":
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return no_autocast


def whole_trials(model: nn.Module, batch: Mapping[str, Any], device: torch.device,
                 autocast: Autocast = no_autocast) -> np.ndarray:
    """The model's output for a batch of whole trials, frame-aligned with the input.

    Returns float32 (B, N, F): frame ``t`` of trial ``b``, NaN before the model's burn-in
    and past the trial's ``length``. Trials of equal length go through together, each cut to
    its own length: the batch's padding never reaches a model that looks ahead in time (a
    transformer attending over the whole trial, as ViV1T's); a trial no longer than the
    burn-in stays NaN.
    """
    videos = batch["videos"].to(device, non_blocking=True)  # (B, C, F, H, W)
    behavior = batch["behavior"].to(device, non_blocking=True)  # (B, 4, F)
    lengths = batch["length"].tolist()
    n_trials, frames = videos.shape[0], videos.shape[2]
    burn_in = int(getattr(model, "burn_in", 0))
    aligned: np.ndarray | None = None
    for length in sorted(set(lengths)):
        rows = [b for b, n in enumerate(lengths) if n == length]
        if length <= burn_in:
            continue
        with torch.no_grad(), autocast():
            out = model(videos[rows, :, :length], mouse=batch["mouse"],
                        behavior=behavior[rows, :, :length])  # (B_l, N, length - burn_in)
        out = out.float().cpu().numpy()
        if aligned is None:
            aligned = np.full((n_trials, out.shape[1], frames), np.nan, dtype=np.float32)
        aligned[rows, :, length - out.shape[-1]:length] = out
    if aligned is None:
        msg = (f"every trial of this batch is at most {burn_in} frames long, the model's "
               "burn-in: nothing to predict.")
        raise ValueError(msg)
    return aligned


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode, put back in its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


RunPath = str | os.PathLike[str]


def predict(
    run_or_model: RunPath | Sequence[RunPath] | nn.Module,
    datasets: Any,
    *,
    tiers: str | Sequence[str] | None = None,
    batch_size: int = 8,
    device: str = "auto",
    normalize: str | None = "official",
    behavior_channels: bool = True,
    pupil_channels: bool = False,
    canvas: int | None = None,
    relu_responses: bool = False,
    progress: bool = False,
) -> dict[str, xr.DataArray]:
    """Predict whole trials, per mouse, in raw response units.

    The model sees each trial whole; a convolutional model's first ``burn_in`` frames have
    no prediction (NaN), nor do frames past the trial's ``n_frames``. Predictions are divided
    by the loader's response precision, so that ``sensorium_models.evaluate(predictions,
    datasets, scale="official")`` and ``write_submission(..., scale="official")`` take them
    as they are.

    Parameters
    ----------
    run_or_model
        A run directory (its ``best.pt``; the loader options come from its config); a list
        of run directories, whose models are ensembled (:class:`~sensorium_models.Ensemble`:
        the mean prediction; the runs must share their mice, burn-in, inputs and loader
        options, as seeds of one recipe do); or a model from
        :func:`sensorium_models.create_model` / :func:`load_run`.
    datasets
        The recordings (``sensorium_data.open_mouse``): a Dataset, a list of them or a mapping
        name -> Dataset; each must be one the model has a readout for.
    tiers
        Tiers to predict; default every tier except ``"train"``. Mice without trials of a
        tier are skipped for it.
    batch_size, device, progress
        Trials per forward pass; ``"auto"`` (CUDA if available) or a torch device; a progress
        bar over batches.
    normalize, behavior_channels, pupil_channels, canvas, relu_responses
        The loader options the model was trained with (ignored for a run directory, which
        records them).

    Returns
    -------
    dict of str to xarray.DataArray
        Mouse (recording name) -> float32 (trial, neuron, frame) with coordinates ``trial``,
        ``neuron`` and ``tier``, the recording's frames.

    Examples
    --------
    A run trained on the simulated tiny mice (``run``), their recordings (``datasets``):

    >>> import sensorium_data as sd, sensorium_models as sm
    >>> predictions = sm.predict(run, datasets, tiers="oracle")  # default: all but train
    >>> sorted(predictions), predictions["tiny-A"].dims
    (['tiny-A', 'tiny-B', 'tiny-C'], ('trial', 'neuron', 'frame'))
    >>> table = sm.evaluate(predictions, datasets, scale="official")

    The five mice of SENSORIUM 2023 are downloaded on first use:

    >>> datasets = {m: sd.open_mouse(m) for m in "FGHIJ"}  # doctest: +SKIP
    """
    import xarray as xr
    from tqdm.auto import tqdm

    from sensorium_models.scoring_inputs import check_tiers, datasets_by_name
    from sensorium_models.training.checkpoint import load_run

    model: Any  # a VideoEncoder or an Ensemble: both have mice and burn_in
    runs = run_paths(run_or_model)
    if runs:
        options = shared_loader_options(runs)
        models: list[Any] = [load_run(run, device="cpu") for run in runs]
        try:
            model = models[0] if len(models) == 1 else Ensemble(models)
        except ValueError as e:
            named = ", ".join(f"model {i} = {run}" for i, run in enumerate(runs))
            raise ValueError(Message(f"cannot ensemble these runs ({named}): ",
                                     reason(e))) from e
    else:
        model = run_or_model
        options = {"normalize": normalize, "behavior_channels": behavior_channels,
                   "pupil_channels": pupil_channels, "canvas": canvas,
                   "relu_responses": relu_responses}
    dev = resolve_device(device)
    model = model.to(dev)
    recs = datasets_by_name(datasets)
    unknown = [m for m in recs if m not in model.mice]
    if unknown:
        msg = (
            f"the model has no readout for {unknown}; it was trained on {list(model.mice)}. "
            "Predict the recordings it was trained on."
        )
        raise ValueError(msg)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        msg = f"batch_size={batch_size!r}; pass a positive integer (trials per forward pass)."
        raise ValueError(msg)
    check_tiers(recs, tiers)
    out: dict[str, xr.DataArray] = {}
    with evaluating(model):
        for name, ds in recs.items():
            wanted = wanted_tiers(ds, tiers)
            if not wanted:
                log.info("%s: no trials of tiers %s; skipped", name, tiers)
                continue
            dataset = data.trials([ds], wanted, options)
            precision = dataset.precision(name)  # (N, T): normalized = raw * precision
            values = np.full((len(dataset), ds.sizes["neuron"], ds.sizes["frame"]), np.nan,
                             dtype=np.float32)
            batches = data.batches_by_mouse(dataset, batch_size)
            bar = tqdm(data.loader(dataset, batches, 0), total=len(batches), disable=not progress,
                       desc=f"predicting {name}", leave=False)
            trial_ids = np.zeros(len(dataset), dtype=np.int64)
            for indices, batch in zip(batches, bar, strict=True):
                predicted = whole_trials(model, batch, dev)  # (B, N, F)
                frames = min(predicted.shape[-1], values.shape[-1])
                values[indices, :, :frames] = predicted[..., :frames] / precision[:, :frames]
                trial_ids[indices] = batch["trial"].numpy()
            # plain strings, which survive a zarr or netCDF round trip as strings
            tier = ds["tier"].sel(trial=trial_ids).values.astype(str)
            out[name] = xr.DataArray(
                values, dims=("trial", "neuron", "frame"),
                coords={"trial": trial_ids, "neuron": ds["neuron"].values, "tier": ("trial", tier)},
                name="predictions", attrs={"mouse": name, "units": "raw responses"},
            )
    return out


def run_paths(run_or_model: Any) -> list[RunPath]:
    """The run directories ``run_or_model`` names: one, several, or none (a model)."""
    if isinstance(run_or_model, str | os.PathLike):
        return [run_or_model]
    if isinstance(run_or_model, Sequence):
        runs = list(run_or_model)
        if not runs or not all(isinstance(r, str | os.PathLike) for r in runs):
            kinds = ", ".join(type(r).__name__ for r in runs) or "nothing"
            msg = (f"run_or_model is a {type(run_or_model).__name__} of {kinds}: pass a run "
                   "directory, a non-empty list of run directories (an ensemble), or a model.")
            raise TypeError(msg)
        return runs
    return []


def shared_loader_options(runs: Sequence[RunPath]) -> dict[str, Any]:
    """The loader options of ``runs`` (normalization, input channels), which must agree: an
    ensemble averages its members' outputs in the units they were trained in."""
    from sensorium_models.training.checkpoint import read_config

    options = [data.loader_options(read_config(run)) for run in runs]
    for run, other in zip(runs[1:], options[1:], strict=True):
        differing = {k: (options[0][k], v) for k, v in other.items() if v != options[0][k]}
        if differing:
            text = "; ".join(f"{k}: {a!r} in {runs[0]}, {b!r} in {run}" for k, (a, b)
                             in differing.items())
            msg = (f"cannot ensemble runs trained with other loader options ({text}); "
                   "ensemble runs of one recipe (seeds, folds).")
            raise ValueError(msg)
    return options[0]


def wanted_tiers(ds: xr.Dataset, tiers: str | Sequence[str] | None) -> list[str]:
    """The tiers of ``tiers`` (default: all but train) that ``ds`` has trials of."""
    from sensorium_data.dataset import tiers_with_trials

    present = set(tiers_with_trials(ds))
    if tiers is None:
        return sorted(present - {"train", "none"})
    chosen = [tiers] if isinstance(tiers, str) else list(tiers)
    return [t for t in chosen if t in present]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: the first CUDA device if there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        msg = f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        raise ValueError(msg) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"device {device!r} was asked for but torch sees no CUDA device; use 'cpu'."
        raise ValueError(msg)
    return dev
