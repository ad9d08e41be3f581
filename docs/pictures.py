"""Draw the pictures of docs/data.md and docs/metrics.md from the simulator.

``docs/figures/pictures/dataset.png``: one trial of a simulated recording as ``sensorium_data``
opens it (frames of the video, the four behaviour variables, the responses of every neuron);
``docs/figures/pictures/metrics.png``: what the two leaderboard metrics compare, on one neuron of
the oracle tier (its responses to the repeats of one video, their average and the true rate).

Usage (seconds; writes into ``docs/figures/pictures/`` unless ``--out``)::

    python docs/pictures.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import sensorium_data as sd
from sensorium_models.metrics import single_trial_correlation


def dataset_picture(ds, path: Path) -> Path:
    trial = int(np.flatnonzero(ds["tier"].values.astype(str) == "train")[0])
    one = ds.isel(trial=trial)
    n = int(one["n_frames"])
    seconds = one["time"].values[:n]
    fig = plt.figure(figsize=(8, 6.2), constrained_layout=True)
    grid = fig.add_gridspec(3, 5, height_ratios=[1, 1, 1.6])
    shown = np.linspace(0, n - 1, 5).round().astype(int)
    for k, f in enumerate(shown):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(one["videos"].values[f], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"frame {f} ({seconds[f]:.1f} s)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[1, :])
    for k, name in enumerate(one["behavior_variable"].values):
        values = one["behavior"].values[k, :n]
        spread = np.nanstd(values) or 1.0
        ax.plot(seconds, (values - np.nanmean(values)) / spread + 4 * (3 - k), lw=1,
                label=str(name))
    ax.set_yticks([])
    ax.set_ylabel("behaviour\n(each z-scored)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlim(seconds[0], seconds[-1])
    ax = fig.add_subplot(grid[2, :])
    image = ax.imshow(one["responses"].values[:, :n], aspect="auto", cmap="magma",
                      extent=(seconds[0], seconds[-1], one.sizes["neuron"], 0))
    ax.set_xlabel("seconds")
    ax.set_ylabel("neuron")
    fig.colorbar(image, ax=ax, label="response (raw units)")
    fig.suptitle(f"ds = sd.open_mouse(...): trial {int(one['trial'])} of {ds.attrs['mouse']} "
                 f"({one['tier'].item()}, {one['stimulus_type'].item()}, {n} frames)",
                 fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def metrics_picture(ds, path: Path) -> Path:
    oracle = ds["tier"].values.astype(str) == "oracle"
    videos = ds["video_id"].values.astype(str)
    first = videos[oracle][0]
    repeats = np.flatnonzero(oracle & (videos == first))
    responses = ds["responses"].isel(trial=repeats).transpose("trial", "neuron", "frame").values
    rates = ds["rates"].isel(trial=repeats).transpose("trial", "neuron", "frame").values
    n = int(ds["n_frames"].values[repeats].min())
    r = single_trial_correlation(responses[..., 50:n], rates[..., 50:n], per_neuron=True)
    neuron = int(np.nanargmax(r))
    seconds = ds["time"].values[:n]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True,
                                      gridspec_kw={"width_ratios": [2.2, 1]})
    for k in range(len(repeats)):
        left.plot(seconds, responses[k, neuron, :n], color="0.7", lw=0.8,
                  label="single trials (repeats)" if k == 0 else None)
    left.plot(seconds, responses[:, neuron, :n].mean(0), color="C0", lw=1.6,
              label="average over repeats")
    left.plot(seconds, rates[0, neuron, :n], color="C3", lw=1.4, ls="--",
              label="a prediction (here the true rate)")
    left.axvspan(seconds[0], seconds[50], color="0.92", zorder=0)
    left.text(seconds[25], 0.97, "frames < 50\nnot scored", transform=left.get_xaxis_transform(),
              ha="center", va="top", fontsize=7)
    left.set_xlabel("seconds")
    left.set_ylabel("response (raw units)")
    left.set_title(f"one neuron, {len(repeats)} repeats of one oracle video", fontsize=9)
    left.legend(fontsize=7, loc="upper right")
    single = r
    average = np.array([np.corrcoef(responses[:, i, 50:n].mean(0), rates[0, i, 50:n])[0, 1]
                        for i in range(responses.shape[1])])
    right.scatter(single, average, s=8, color="C0")
    right.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls=":")
    right.set_xlabel("single-trial correlation")
    right.set_ylabel("correlation to average")
    right.set_title("every neuron (prediction: true rate)", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "figures" / "pictures"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = sd.simulate(Path(tmp) / "trees", preset="tiny", scale=0.5, seed=0,
                           progress=False)[0]
        ds = sd.open_mouse(sd.convert(tree, Path(tmp) / "store.zarr", progress=False))
        print(dataset_picture(ds, out / "dataset.png"))
        print(metrics_picture(ds, out / "metrics.png"))


if __name__ == "__main__":
    main()
