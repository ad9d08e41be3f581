"""Pictures of what a model learned: :func:`plot_run` (``sensorium plot RUN``) and the demo's.

Learning curves, recorded against predicted traces of the best neurons, the per-neuron
correlations, and the readout's positions in the video (its retinotopy; against the true
receptive fields on simulated recordings). matplotlib is imported lazily, with the Agg
backend: every figure is a PNG file, no window opens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_data.errors import OVERWRITE, Fix, Message

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from sensorium_models.models import VideoEncoder

COLORS = {"recorded": "0.6", "true rate": "k"}


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        msg = "the figures need matplotlib: pip install matplotlib"
        raise ImportError(msg) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def integer_ticks() -> Any:
    """A tick locator at whole numbers (epochs)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def learning_curves(metrics: Mapping[str, pd.DataFrame], path: Path, *, val_tier: str) -> Path:
    """Validation correlation per epoch, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    for model, table in metrics.items():
        ax.plot(table["epoch"], table["validation_correlation"], marker="o", ms=3, label=model)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(integer_ticks())
    ax.set_ylabel(f"{val_tier} single-trial correlation")
    ax.set_title("learning curves")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
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
           best_model: str, tier: str = "oracle", n: int = 3,
           neurons: np.ndarray | None = None) -> Path:
    """Recorded responses, each model's prediction and the true rates of the ``n`` neurons
    ``best_model`` predicts best (or of the positions ``neurons``), over the trial of ``tier``
    where they vary most (raw units)."""
    plt = pyplot()
    if neurons is None:
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
        ax.set_ylabel(f"neuron {int(ds['neuron'][j])}\n(response, a.u.)", fontsize=8)
    axes_list = np.atleast_1d(axes)
    axes_list[0].set_title(f"{ds.attrs['mouse']}, {tier} trial {int(trial)}: the {len(neurons)} "
                           f"neurons {best_model} predicts best", fontsize=9)
    # above the traces, not over them; every line shares the neuron's axis (raw units), so a
    # prediction off in scale shows as such
    axes_list[0].legend(fontsize=7, ncol=4, loc="lower left", bbox_to_anchor=(0, 1.12),
                        frameon=False)
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


def readout_pixels(model: VideoEncoder, mouse: str, video_shape: tuple[int, int], *,
                   pupil: np.ndarray | None = None) -> np.ndarray:
    """(N, 2) the readout's positions of ``mouse`` as (row, column) in video pixels.

    The readout's mean position ``mu`` (x along the width, y along the height, in [-1, 1]),
    plus the shifter's offset at the mean pupil position (``pupil``, x and y in the model's
    input units; default 0, the mean after the loaders' normalization), indexes
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
            at = torch.zeros(1, 2, 1) if pupil is None else torch.as_tensor(
                np.asarray(pupil, dtype=np.float32).reshape(1, 2, 1))  # (B, 2, T)
            mu = mu + model.shifters[mouse](at).reshape(2).cpu().numpy()  # (N, 2)
        probe = torch.zeros(1, model.in_channels, model.burn_in + 1, height, width)
        out_h, out_w = model.core(probe).shape[-2:]  # the core's output grid
    cols = (mu[:, 0] + 1) / 2 * (out_w - 1) + (width - out_w) / 2
    rows = (mu[:, 1] + 1) / 2 * (out_h - 1) + (height - out_h) / 2
    return np.stack([rows, cols], axis=1)


def run_curves(metrics: pd.DataFrame, path: Path, *, model: str, val_tier: str,
               schedule: str = "plateau") -> Path:
    """One run's validation correlation (best epoch and, with the ``plateau`` schedule, its
    learning-rate decays marked) and training loss per epoch. A ``warmup_cosine`` run's LR
    falls every step by design: named in the title, not marked."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 4.6), sharex=True,
                                      constrained_layout=True)
    epochs, corr = metrics["epoch"].to_numpy(), metrics["validation_correlation"].to_numpy()
    top.plot(epochs, corr, marker="o", ms=3, color="C0")
    best = int(np.nanargmax(corr))
    top.plot(epochs[best], corr[best], marker="*", ms=12, color="C3", ls="none",
             label=f"best: {corr[best]:.3f} at epoch {int(epochs[best])}")
    lr = metrics["lr"].to_numpy()
    decays = (np.flatnonzero(lr[1:] < lr[:-1]) + 1 if schedule == "plateau"
              else np.array([], dtype=int))
    for k in decays:  # the LR of row k is the one it trained with
        for ax in (top, bottom):
            ax.axvline(epochs[k] - 0.5, color="0.6", ls=":", lw=1)
        top.text(epochs[k] - 0.5, 0.97, f"lr {lr[k]:.1e}", transform=top.get_xaxis_transform(),
                 fontsize=7, rotation=90, va="top", ha="right", color="0.4")
    top.set_ylabel(f"{val_tier} single-trial corr.")
    top.set_title(f"{model}: learning curves"
                  + ("" if schedule == "plateau" else f" (lr: {schedule})"))
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="best")
    bottom.plot(epochs, metrics["train_loss"].to_numpy(), marker="o", ms=3, color="C1")
    bottom.set_ylabel("train loss (Poisson)")
    bottom.set_xlabel("epoch")
    bottom.xaxis.set_major_locator(integer_ticks())
    bottom.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def correlations(per_neuron: np.ndarray, path: Path, *, title: str,
                 ceiling: np.ndarray | None = None) -> Path:
    """Histogram of per-neuron single-trial correlations (and of the ceiling's, if given)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    values = [("model", np.asarray(per_neuron, dtype=np.float64), "C0")]
    if ceiling is not None:
        values.append(("ceiling (true rates)", np.asarray(ceiling, dtype=np.float64), "0.5"))
    low = min(-0.1, *(float(np.nanmin(v)) for _, v, _ in values))
    bins = np.linspace(low, 1.0, 45)
    for label, v, color in values:
        median = float(np.nanmedian(v))
        ax.hist(v, bins=bins, color=color, alpha=0.6, label=f"{label}: median {median:.3f}")
        ax.axvline(median, color=color, lw=1.5)
    ax.set_xlabel("single-trial correlation per neuron")
    ax.set_ylabel("neurons")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def readout_map(pixels: Mapping[str, np.ndarray], cortex: Mapping[str, np.ndarray], path: Path,
                *, model: str, video_shape: tuple[int, int]) -> Path:
    """Every neuron's readout position in the video, one column per mouse, coloured by its
    cortical x (top row) and y (bottom row): neighbours in cortex should look at neighbouring
    places (retinotopy)."""
    plt = pyplot()
    mice = list(pixels)
    height, width = video_shape
    fig, axes = plt.subplots(2, len(mice), figsize=(0.6 + 3.0 * len(mice), 4.2), squeeze=False,
                             constrained_layout=True)
    for j, mouse in enumerate(mice):
        rows, cols = pixels[mouse][:, 0], pixels[mouse][:, 1]
        for i, axis in enumerate(("x", "y")):
            ax = axes[i, j]
            dots = ax.scatter(cols, rows, c=cortex[mouse][:, i], s=5, cmap="viridis")
            ax.set_xlim(0, width)
            ax.set_ylim(height, 0)  # image rows run downwards
            ax.set_aspect("equal")
            ax.set_title(f"{mouse}: cortical {axis}", fontsize=8)
            if j == 0:
                ax.set_ylabel("video row (pixel)")
            if i == 1:
                ax.set_xlabel("video column (pixel)")
            fig.colorbar(dots, ax=ax, shrink=0.8).set_label(
                f"cortical {axis} (recording's units)", fontsize=7)
    fig.suptitle(f"{model}: readout positions in the {height}x{width} video, "
                 "coloured by cortical position", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


RUN_FIGURES = ("learning_curves.png", "traces.png", "correlations.png",
               "readout_positions.png", "receptive_fields.png")


def plot_run(run: str | os.PathLike[str], datasets: Any = None, *,
             predictions: Mapping[str, xr.DataArray] | None = None,
             out: str | os.PathLike[str] | None = None, mouse: str | None = None,
             tier: str | None = None, device: str = "auto", batch_size: int = 8,
             data_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
             progress: bool = False) -> list[Path]:
    """Write the figures of a trained run; return their paths.

    Parameters
    ----------
    run
        A run directory written by :func:`sensorium_models.train`.
    datasets
        The run's recordings, as for :func:`sensorium_models.predict` (a Dataset, a list or a
        mapping; recordings the run was not trained on are left out); default: opened again
        from the run's config, without downloading (``data_dir`` overrides the config's).
    predictions
        The run's predictions of ``tier`` (recording name -> DataArray, as
        :func:`sensorium_models.predict` or the run's cache,
        ``sensorium_models.predictions.predict_cached``, return them); default: predicted
        here. The CLI passes the cached ones.
    out
        The folder of the figures, created if needed (default ``RUN/figures``).
    mouse
        The recording whose traces and correlations are drawn: a name of ``datasets``, a
        letter or a short name (default: the run's first).
    tier
        The tier they are drawn from (default: the run's validation tier, ``oracle``); the
        recording needs trials of it with responses.
    device, batch_size, progress
        As for :func:`sensorium_models.predict`, which predicts that tier of that recording.
    overwrite
        Replace figures already in ``out``; without it they are an error, before anything
        is computed.

    Returns
    -------
    list of Path
        ``learning_curves.png`` (validation correlation with the best epoch and the
        learning-rate decays, train loss), ``traces.png`` (recorded against predicted
        responses of the three neurons predicted best, with the true rates of a simulated
        recording), ``correlations.png`` (per-neuron single-trial correlations on ``tier``,
        with the ceiling of a simulated recording), ``readout_positions.png`` (every neuron's
        readout position in the video, coloured by its cortical position) and, for simulated
        recordings, ``receptive_fields.png`` (learned against true receptive-field centres).

    Examples
    --------
    >>> paths = plot_run(run, datasets, out="figures", device="cpu")
    >>> [p.name for p in paths]
    ['learning_curves.png', 'traces.png', 'correlations.png', 'readout_positions.png',
     'receptive_fields.png']
    """
    import pandas as pd

    from sensorium_models.metrics import single_trial_correlation
    from sensorium_models.scoring_inputs import datasets_by_name
    from sensorium_models.training import data, load_run, predict, read_config

    # every check before anything is drawn or written
    config = read_config(run)  # a clear error for a folder that is not a run
    run_dir = Path(run)
    folder = Path(out) if out is not None else run_dir / "figures"
    check_figures_free(folder, overwrite)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    if metrics.empty or not (run_dir / "best.pt").is_file():
        msg: str = Message(
            f"{run_dir} has no finished epoch yet (metrics.csv has no rows or best.pt is "
            "missing); plot it after its first epoch (",
            Fix(f"sm.train(sm.read_config(run), resume={str(run_dir)!r})",
                f"sensorium train --resume {run_dir}"), ").",
        )
        raise ValueError(msg)
    model: Any = load_run(run)
    if datasets is None:
        datasets = data.open_run_mice(run, data_dir)
    given = datasets_by_name(datasets)  # by the names the model knows them by
    known = {m: ds for m, ds in given.items() if m in model.mice}
    if not known:
        msg = (f"none of the recordings given ({', '.join(given)}) is one the run was trained "
               f"on: {', '.join(model.mice)}.")
        raise ValueError(msg)
    name = pick_mouse(known, mouse, list(model.mice))
    ds = known[name]
    tier = config.val_tier if tier is None else tier
    have = labelled_tiers(ds)
    if tier not in have:
        msg = Message(f"{name} has no trials of tier {tier!r} with responses; its tiers with "
                      f"responses: {sorted(have)}. Pass one as ", Fix("tier=", "--tier"), ".")
        raise ValueError(msg)

    folder.mkdir(parents=True, exist_ok=True)
    model_name = config.model
    paths = [run_curves(metrics, folder / "learning_curves.png", model=model_name,
                        val_tier=config.val_tier, schedule=config.schedule)]
    if predictions is None:
        predictions = predict(model, {name: ds}, tiers=tier, device=device,
                              batch_size=batch_size, progress=progress,
                              **data.loader_options(config))
    shown = tier_of(predictions, name, tier)
    trials = shown["trial"].values
    responses = ds["responses"].sel(trial=trials).transpose("trial", "neuron", "frame").values
    per_neuron = single_trial_correlation(responses, shown.values, per_neuron=True)
    paths.append(traces(ds, {model_name: shown}, folder / "traces.png",
                        best_model=model_name, tier=tier, neurons=np.argsort(-per_neuron)[:3]))
    ceiling = None
    if "rates" in ds:
        rates = ds["rates"].sel(trial=trials).transpose("trial", "neuron", "frame").values
        ceiling = single_trial_correlation(responses, rates, per_neuron=True)
    paths.append(correlations(per_neuron, folder / "correlations.png", ceiling=ceiling,
                              title=f"{model_name} on {name}, {tier} ({len(trials)} trials, "
                                    f"{per_neuron.size} neurons)"))

    model = model.cpu()
    shape = (ds.sizes["height"], ds.sizes["width"])
    pixels = {m: readout_pixels(model, m, shape, pupil=mean_pupil(d, config))
              for m, d in known.items()}
    cortex = {m: np.stack([d["x"].values, d["y"].values], axis=1) for m, d in known.items()}
    paths.append(readout_map(pixels, cortex, folder / "readout_positions.png", model=model_name,
                             video_shape=shape))
    truth = {m: t for m, d in known.items() if (t := true_receptive_fields(d)) is not None}
    if truth:
        paths.append(receptive_fields({m: pixels[m] for m in truth}, truth,
                                      folder / "receptive_fields.png", model=model_name,
                                      video_shape=shape))
    return paths


def check_figures_free(folder: Path, overwrite: bool) -> None:
    """Figures already in ``folder`` are an error unless ``overwrite``."""
    existing = [folder / name for name in RUN_FIGURES if (folder / name).exists()]
    if existing and not overwrite:
        msg = Message(f"{folder} already holds figures ({', '.join(p.name for p in existing)}); "
                      "pass another folder as ", Fix("out=", "--out"), ", or ", OVERWRITE,
                      " to replace them.")
        raise FileExistsError(msg)


def tier_of(predictions: Mapping[str, xr.DataArray], name: str, tier: str) -> xr.DataArray:
    """The trials of ``tier`` in the predictions of recording ``name``, else a named error."""
    if name not in predictions:
        msg = (f"predictions has no recording {name!r} (it has {', '.join(predictions)}); "
               "pass the run's predictions of the recording drawn.")
        raise ValueError(msg)
    values = predictions[name]
    rows = np.flatnonzero(values["tier"].values.astype(str) == tier)
    if rows.size == 0:
        msg = Message(f"predictions of {name} have no trials of tier {tier!r}; predict that "
                      "tier (", Fix(f"sensorium_models.predict(run, datasets, tiers={tier!r})",
                                    f"--tier {tier}"), ").")
        raise ValueError(msg)
    return values.isel(trial=rows)


def mean_pupil(ds: xr.Dataset, config: Any) -> np.ndarray | None:
    """The mean pupil position of the train tier in the model's input units: None (zero)
    where the loader centres it (``official``, ``per_neuron``), raw x, y for ``none``."""
    if config.normalize != "none":
        return None
    train = ds["behavior"].isel(behavior_variable=[2, 3]).where(ds["tier"] == config.train_tier)
    return np.asarray(train.mean(("trial", "frame")).values, dtype=np.float64)


def pick_mouse(datasets: Mapping[str, xr.Dataset], mouse: str | None,
               trained: list[str] | None = None) -> str:
    """The name in ``datasets`` that ``mouse`` (a name, letter or short name) refers to;
    ``trained`` (the run's recordings) makes the error say which exist but were not given."""
    if mouse is None:
        return next(iter(datasets))
    from sensorium_data.catalog import resolve_mouse

    trained = list(datasets) if trained is None else trained
    wanted = resolve_mouse(mouse, [*datasets, *trained]) or mouse
    if wanted in datasets:
        return wanted
    if wanted in trained:
        msg = (f"mouse {mouse!r} is one of the run's recordings but was not given; pass its "
               f"Dataset too (given: {', '.join(datasets)}).")
    else:
        msg = f"mouse {mouse!r} is not one of the run's recordings: {', '.join(trained)}."
    raise ValueError(msg)


def labelled_tiers(ds: xr.Dataset) -> set[str]:
    """The tiers ``ds`` has trials of with responses (labelled, with frames)."""
    labelled = ds["labelled"].values.astype(bool) & (ds["n_frames"].values > 0)
    return {str(t) for t in ds["tier"].values.astype(str)[labelled]} - {"none"}
