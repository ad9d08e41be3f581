"""Learned receptive fields of the 2022 twin's runs against the twin's true ones: a figure.

For runs of ``benchmarks/twin_2022.py`` (``--runs``, default sota and ln) and one mouse of the
twin, each neuron's *sensitivity map* is the mean absolute gradient of its predicted response
with respect to the image, over the mouse's test images (behaviour channels as recorded): where
on the screen the model reads the neuron. It is compared with the envelope of the twin's true
linear receptive field (``meta/simulation_receptive_fields.npy``, absolute value): their
Pearson correlation per neuron (1: the model reads exactly where the neuron looks). A
gradient map, not the filter itself: the twin's units range from simple to complex (energy)
cells, whose linear filter a gradient does not recover, but whose location it does.

Usage::

    python benchmarks/twin_2022_rf.py --out /tmp/i22models/twin \
        --figure docs/figures/models/twin_2022_receptive_fields.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def sensitivity(run: Path, store: Path, mouse: str) -> np.ndarray:
    """(neurons, H, W) mean |d prediction / d image| over the mouse's test images."""
    import sensorium_models as sm
    from sensorium_models.training import images

    model = sm.load_run(run).eval()
    config = sm.read_config(run)
    import sensorium_data as sd

    ds = sd.open_mouse(store)
    dataset = images.image_set(config, {mouse: ds}, "test")
    batch = images.collate_as_clips([dataset[i] for i in range(len(dataset))])
    videos = batch["videos"].clone().requires_grad_(True)  # (B, C, 1, H, W)
    out = model(videos, mouse=mouse, behavior=batch["behavior"])[..., 0]  # (B, N)
    maps = np.zeros((out.shape[1], *videos.shape[-2:]))
    for n in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[:, n].sum(), videos, retain_graph=True)
        maps[n] = grad[:, 0, 0].abs().mean(0).numpy()  # image channel
    return maps


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per neuron Pearson correlation of two (neurons, H, W) maps."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="twin_2022.py's --out")
    parser.add_argument("--mouse", default="static2022-B")
    parser.add_argument("--runs", nargs="+", default=["sota", "ln"])
    parser.add_argument("--neurons", type=int, default=6, help="neurons drawn")
    parser.add_argument("--figure", type=Path, required=True)
    args = parser.parse_args()
    tree = args.out / "trees-gain" / args.mouse
    store = args.out / "stores-gain" / f"{args.mouse}.zarr"
    true = np.abs(np.load(tree / "meta" / "simulation_receptive_fields.npy"))  # (N, H, W)
    maps = {run: sensitivity(args.out / "runs" / run, store, args.mouse) for run in args.runs}
    scores = {run: correlation(m, true) for run, m in maps.items()}
    drawn = np.argsort(-scores[args.runs[0]])[:: max(1, len(true) // args.neurons)][
        :args.neurons]
    fig, axes = plt.subplots(len(args.runs) + 1, len(drawn),
                             figsize=(2.2 * len(drawn), 1.4 * (len(args.runs) + 1)))
    for j, n in enumerate(drawn):
        axes[0, j].imshow(true[n], cmap="gray_r")
        axes[0, j].set_title(f"neuron {n}", fontsize=8)
        for i, run in enumerate(args.runs, start=1):
            axes[i, j].imshow(maps[run][n], cmap="gray_r")
            axes[i, j].set_title(f"{run}: r = {scores[run][n]:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("|true RF|", fontsize=8)
    for i, run in enumerate(args.runs, start=1):
        axes[i, 0].set_ylabel(f"{run} |grad|", fontsize=8)
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    summary = {run: {"median_r": float(np.median(s)), "mean_r": float(np.mean(s)),
                     "neurons": len(s)} for run, s in scores.items()}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
