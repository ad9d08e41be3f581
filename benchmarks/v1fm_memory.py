"""Resident memory of training Dynamic-V1FM on five mice of real size, read from the stores.

Five stores (hard-linked copies of one zarr store of a recording of real size, e.g. the
synthetic one of ``benchmarks/convert.py``, under other mouse names), the trainer's clip
dataset (30-frame clips, official normalisation, pupil channels), its per-mouse batch sampler
and ``DataLoader``, the published model with a readout per mouse, AdamW, and the trainer's
epoch function for ``--steps`` optimizer steps (one batch per mouse each); then one pass of
the loader over every training clip of the five mice without the model. Prints the process's
resident memory (``ru_maxrss``, the peak so far) after each stage. On the CPU the activations
are in it too; on a GPU they are not.

Usage::

    python benchmarks/v1fm_memory.py --store /tmp/convbench/dynamic90000-1-1-Video-convbench.zarr \\
        --out /tmp/v1fm_memory --batch 1 --steps 1 [--checkpoint-activations]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time
from pathlib import Path


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> None:
    import torch

    import sensorium_data as sd
    import sensorium_models as sm
    from sensorium_models.training import data
    from sensorium_models.training.loop import train_epoch
    from sensorium_models.training.predict import autocast_for

    sys.path.insert(0, str(Path(__file__).parent))
    from loader import five_stores

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True, help="a zarr store of real size")
    p.add_argument("--out", type=Path, default=Path("/tmp/v1fm_memory"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--checkpoint-activations", action="store_true",
                   help="recompute the blocks' activations in the backward pass")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    five_stores(args.store, args.out, 4)
    paths = [args.store, *sorted(args.out.glob("mouse-*.zarr"))]
    print(f"start: {rss_gib():.2f} GiB", flush=True)
    datasets = {}
    for path in paths:
        ds = sd.open_mouse(path)
        datasets[str(ds.attrs["mouse"])] = ds
    clips = sd.ClipDataset(list(datasets.values()), tier="train", frames=30,
                           normalize="official", pupil_channels=True, seed=0)
    sampler = sd.MouseBatchSampler(clips, args.batch, mode="per_mouse", drop_last=True, seed=0)
    loader = data.loader(clips, sampler, 0)
    neurons = {m: ds.sizes["neuron"] for m, ds in datasets.items()}
    trials = sum(int((ds.tier == "train").sum()) for ds in datasets.values())
    print(f"opened {len(datasets)} mice ({sum(neurons.values()):,} neurons, {trials} train "
          f"trials): {rss_gib():.2f} GiB", flush=True)
    model = sm.create_model("dynamic_v1fm", mice=sm.mouse_specs(datasets), in_channels=5)
    if args.checkpoint_activations:
        from sensorium_models.training.recompute import enable_checkpointing

        enable_checkpointing(model, "dynamic_v1fm")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    params = sum(p.numel() for p in model.parameters())
    print(f"model of {params / 1e6:.1f} M parameters: {rss_gib():.2f} GiB", flush=True)
    t0 = time.perf_counter()
    train_epoch(model, model, itertools.islice(iter(loader), args.steps * len(datasets)),
                optimizer, loss_scale=dict.fromkeys(datasets, 1.0),
                batches_per_step=len(datasets), device=torch.device("cpu"),
                autocast=autocast_for(torch.device("cpu"), False))
    print(f"{args.steps} optimizer steps of {len(datasets)} batches of {args.batch} clips "
          f"({time.perf_counter() - t0:.0f} s): {rss_gib():.2f} GiB", flush=True)
    t0 = time.perf_counter()
    n = sum(batch["responses"].shape[0] for batch in loader)
    print(f"one pass of the loader over {n} clips ({time.perf_counter() - t0:.0f} s): "
          f"{rss_gib():.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
