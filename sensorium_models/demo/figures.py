"""The demo's figures: learning curves, traces of the best neurons, receptive-field positions.

matplotlib is imported lazily (``pip install matplotlib``), with the Agg backend: the demo
writes PNG files and never opens a window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from sensorium_models.models import VideoEncoder

COLORS = {"recorded": "0.6", "true rate": "k"}


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        msg = "the demo's figures need matplotlib: pip install matplotlib"
        raise ImportError(msg) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(metrics: Mapping[str, pd.DataFrame], path: Path, *, val_tier: str) -> Path:
    """Validation correlation per epoch, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    for model, table in metrics.items():
        ax.plot(table["epoch"], table["validation_correlation"], marker="o", ms=3, label=model)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{val_tier} single-trial correlation")
    ax.set_title("learning curves")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def best_neurons(ds: xr.Dataset, predictions: Mapping[str, xr.DataArray], model: str,
                 tier: str, n: int = 3) -> np.ndarray:
    """Positions of the ``n`` neurons ``model`` predicts best on ``tier`` (single-trial)."""
    from sensorium_models.metrics import single_trial_correlation

    trials = predictions[model]["trial"].values[predictions[model]["tier"].values == tier]
    responses = ds["responses"].sel(trial=trials).transpose("trial", "neuron", "frame").values
    r = single_trial_correlation(responses, predictions[model].sel(trial=trials).values,
                                 per_neuron=True)
    return np.argsort(-np.asarray(r))[:n]


def traces(ds: xr.Dataset, predictions: Mapping[str, xr.DataArray], path: Path, *,
           best_model: str, tier: str = "oracle", n: int = 3) -> Path:
    """Recorded responses, each model's prediction and the true rates of the ``n`` neurons
    ``best_model`` predicts best, over the trial of ``tier`` where they vary most (raw
    units)."""
    plt = pyplot()
    neurons = best_neurons(ds, predictions, best_model, tier, n)
    trials = predictions[best_model]["trial"].values[predictions[best_model]["tier"].values == tier]
    truth = ds["rates"] if "rates" in ds else ds["responses"]
    spread = truth.sel(trial=trials).isel(neuron=neurons).std("frame").sum("neuron").values
    trial = trials[int(np.nanargmax(spread))]
    length = int(ds["n_frames"].sel(trial=trial))
    seconds = np.arange(length) / float(ds.attrs.get("fps", 30.0))
    fig, axes = plt.subplots(len(neurons), 1, figsize=(7, 1.7 * len(neurons)), sharex=True,
                             constrained_layout=True)
    for ax, j in zip(np.atleast_1d(axes), neurons, strict=True):
        ax.plot(seconds, ds["responses"].sel(trial=trial).isel(neuron=j).values[:length],
                color=COLORS["recorded"], lw=0.8, label="recorded")
        if "rates" in ds:
            ax.plot(seconds, ds["rates"].sel(trial=trial).isel(neuron=j).values[:length],
                    color=COLORS["true rate"], lw=1.2, label="true rate")
        for model, values in predictions.items():
            ax.plot(seconds, values.sel(trial=trial).isel(neuron=j).values[:length], lw=1.2,
                    label=f"predicted: {model}")
        ax.set_ylabel(f"neuron {int(ds['neuron'][j])}")
    axes_list = np.atleast_1d(axes)
    axes_list[0].set_title(f"{ds.attrs['mouse']}, {tier} trial {int(trial)}: the {len(neurons)} "
                           f"neurons {best_model} predicts best")
    axes_list[0].legend(fontsize=7, ncol=2, loc="upper right")
    axes_list[-1].set_xlabel("seconds (the first frames have no prediction: burn-in)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def true_receptive_fields(ds: xr.Dataset) -> np.ndarray | None:
    """(N, 2) true receptive-field centres (row, column in video pixels) of a simulated
    recording, in the order of ``ds.neuron``; None for other recordings."""
    source = ds.attrs.get("source")
    path = Path(str(source)) / "meta" / "simulation_neurons.json" if source else None
    if path is None or not path.is_file():
        return None
    truth = json.loads(path.read_text())
    index = {int(u): i for i, u in enumerate(truth["unit_id"])}
    rows = [index[int(u)] for u in ds["neuron"].values]
    return np.stack([np.asarray(truth["rf_row"])[rows], np.asarray(truth["rf_col"])[rows]], 1)


def receptive_fields(learned: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                     path: Path, *, model: str, video_shape: tuple[int, int]) -> Path:
    """Learned against true receptive-field centres, per mouse: rows and columns."""
    plt = pyplot()
    mice = [m for m in learned if m in truth]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), constrained_layout=True)
    for k, (ax, what) in enumerate(zip(axes, ("row", "column"), strict=True)):
        top = video_shape[k]
        for mouse in mice:
            r = np.corrcoef(truth[mouse][:, k], learned[mouse][:, k])[0, 1]
            ax.scatter(truth[mouse][:, k], learned[mouse][:, k], s=8, alpha=0.7,
                       label=f"{mouse} (r = {r:.2f})")
        ax.plot([0, top], [0, top], color="0.5", lw=0.8, ls="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true receptive-field {what} (pixel)")
        ax.set_ylabel(f"learned {what} (pixel)")
        ax.legend(fontsize=7)
    fig.suptitle(f"{model}: readout positions mapped to the {video_shape[0]}x{video_shape[1]} "
                 "video")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def readout_pixels(model: VideoEncoder, mouse: str, video_shape: tuple[int, int]
                   ) -> np.ndarray:
    """(N, 2) the readout's positions of ``mouse`` as (row, column) in video pixels.

    The readout's mean position ``mu`` (x along the width, y along the height, in [-1, 1]),
    plus the shifter's offset at the mean pupil position (0 after normalization), indexes
    the core's output grid of H' x W' with ``align_corners=True``: column
    ``(x + 1) / 2 * (W' - 1)`` of the grid. A core without padding or stride shrinks the
    image by the same number of pixels on each side (the factorized baseline: 36 x 64 ->
    18 x 46, 9 on each side), and its output pixel ``j`` is centred on input pixel
    ``j + (W - W') / 2``; so the video column is ``(x + 1) / 2 * (W' - 1) + (W - W') / 2``,
    and likewise for rows.
    """
    import torch

    height, width = video_shape
    with torch.no_grad():
        readout: Any = model.readouts[mouse]
        mu = readout.mu.cpu().numpy().astype(np.float64)  # (N, 2): x, y
        if model.shifters is not None:
            pupil = torch.zeros(1, 2, 1)  # (B, 2, T): the mean pupil position
            mu = mu + model.shifters[mouse](pupil).reshape(2).cpu().numpy()  # (N, 2)
        probe = torch.zeros(1, model.in_channels, model.burn_in + 1, height, width)
        out_h, out_w = model.core(probe).shape[-2:]  # the core's output grid
    cols = (mu[:, 0] + 1) / 2 * (out_w - 1) + (width - out_w) / 2
    rows = (mu[:, 1] + 1) / 2 * (out_h - 1) + (height - out_h) / 2
    return np.stack([rows, cols], axis=1)
