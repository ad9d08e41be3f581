"""2022 image-loader benchmark: ``ImageDataset`` against the starter kit's ``FileTreeDataset``.

One synthetic recording of the 2022 shape (``--neurons`` neurons, ``--trials`` trials of which
75 % train, images (1, 144, 256) and float32 ``.npy`` files as the release), the train tier
served at scale 0.25 with the SENSORIUM+ channels (4 x 36 x 64), batches of 128, official
normalization, each case in a fresh interpreter, page cache warm (the tree is read once
before):

* ``images-w0`` / ``images-w2``: :class:`sensorium_data.ImageDataset` from the converted
  store with :class:`MouseBatchSampler` and :func:`collate_images`, 0 and 2 workers; its
  construction (read, normalize, rescale every train trial) is timed apart;
* ``kit-w0``: the 2022 starter kit's chain (``sensorium.datasets.static_loader``):
  neuralpredictors' ``FileTreeDataset(images, responses, behavior, pupil_center)`` with
  ``NeuroNormalizer``, ``AddBehaviorAsChannels``, ``ScaleInputs(0.25)``, ``Subsample`` (every
  neuron) and ``ToTensor``, a ``SubsetRandomSampler`` over the train trials, 0 workers (the
  kit's setting: its namedtuple items cannot cross to worker processes, notes B2). Its item
  cache is on (the kit's default): epoch 1 reads the files, later epochs the cache.

Besides speed, ``check`` compares the items of both on the same trials (the kit's numbers, with
scikit-image, against ours) and reports the largest differences.

neuralpredictors is not a dependency and is never committed: ``--neuralpredictors`` names a
checkout (fetched sinzlab/neuralpredictors) and ``--extra`` a folder holding scikit-image and
h5py if the environment lacks them (appended to ``sys.path``).

Usage::

    python benchmarks/images.py --root /tmp/imagebench --neuralpredictors /tmp/np \\
        --extra /tmp/extra --neurons 8000 --trials 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

BATCH = 128
SCALE = 0.25
CASES = ("images-w0", "images-w2", "kit-w0")
DATA_KEYS = ("images", "responses", "behavior", "pupil_center")


def generate(root: Path, neurons: int, trials: int, seed: int = 0) -> Path:
    """A 2022-shaped tree (random images and gamma responses), written once."""
    from sensorium_data.tree import TreeWriter

    tree = root / "static90000-1-1-GrayImageNet-imagebench"
    if (tree / "meta").is_dir():
        return tree
    rng = np.random.default_rng(seed)
    n_train = int(trials * 0.75)
    tiers = np.array(["train"] * n_train + ["validation"] * (trials - n_train))
    rng.shuffle(tiers)
    with TreeWriter(tree, tiers=tiers, unit_ids=np.arange(1, neurons + 1),
                    coordinates=rng.uniform(-300, 300, (neurons, 3)),
                    trial_info={"frame_image_id": np.arange(trials),
                                "trial_idx": rng.permutation(trials)}) as writer:
        for t in range(trials):
            writer.write_trial(t, images=rng.integers(0, 256, (1, 144, 256)).astype(float),
                               responses=rng.gamma(0.5, 1.0, neurons),
                               behavior=rng.normal(1, 0.3, 3), pupil_center=rng.normal(0, 1, 2))
    return tree


def kit_dataset(tree: Path):
    from neuralpredictors.data.datasets import FileTreeDataset
    from neuralpredictors.data.transforms import (
        AddBehaviorAsChannels,
        NeuroNormalizer,
        ScaleInputs,
        Subsample,
        ToTensor,
    )

    dat = FileTreeDataset(str(tree), *DATA_KEYS)
    # sensorium.datasets.static_loader's order
    dat.transforms.extend([NeuroNormalizer(dat), AddBehaviorAsChannels(),
                           ScaleInputs(scale=SCALE), Subsample(np.arange(len(
                               dat.neurons.unit_ids))), ToTensor(cuda=False)])
    return dat


def train_indices(tree: Path) -> np.ndarray:
    return np.flatnonzero(np.load(tree / "meta/trials/tiers.npy") == "train")


def run_case(case: str, tree: Path, store: Path, epochs: int) -> dict[str, object]:
    from typing import Any

    import torch

    import sensorium_data as sd

    start = time.perf_counter()
    sampler: Any
    if case.startswith("images"):
        data = sd.ImageDataset(store, tier="train", scale=SCALE, track="sensorium+")
        sampler = sd.MouseBatchSampler(data, batch_size=BATCH, seed=0)
        loader = torch.utils.data.DataLoader(
            data, batch_sampler=sampler, collate_fn=sd.collate_images,
            num_workers=int(case[-1]), persistent_workers=case.endswith("w2"))
    else:
        data = kit_dataset(tree)
        sampler = torch.utils.data.SubsetRandomSampler(train_indices(tree).tolist())
        loader = torch.utils.data.DataLoader(data, sampler=sampler, batch_size=BATCH)
    build = time.perf_counter() - start
    times, items = [], 0
    for epoch in range(epochs):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        items = 0
        for batch in loader:
            images = batch["images"] if isinstance(batch, dict) else batch.images
            items += len(images)
        times.append(time.perf_counter() - t0)
    rss = sum(p.memory_info().rss for p in [psutil.Process(), *psutil.Process().children(True)])
    return {"case": case, "build_s": build, "epoch_s": times, "items": items,
            "items_per_s_last": items / times[-1], "rss_mb": rss / 1e6}


def check(tree: Path, store: Path, n: int = 64) -> dict[str, float]:
    """Largest differences between the kit's items and ours, over ``n`` train trials."""
    import sensorium_data as sd

    kit = kit_dataset(tree)
    ours = sd.ImageDataset(store, tier="train", scale=SCALE, track="sensorium+")
    index = {int(ours[i]["trial"]): i for i in range(len(ours))}
    diffs = {"images": 0.0, "responses": 0.0, "behavior_channels": 0.0}
    for trial in train_indices(tree)[:n]:
        a, b = kit[int(trial)], ours[index[int(trial)]]
        diffs["images"] = max(diffs["images"], float((a.images[0] - b["images"][0]).abs().max()))
        diffs["behavior_channels"] = max(diffs["behavior_channels"],
                                         float((a.images[1:] - b["images"][1:]).abs().max()))
        diffs["responses"] = max(diffs["responses"],
                                 float((a.responses - b["responses"]).abs().max()))
    return diffs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="folder for the tree and store")
    p.add_argument("--neuralpredictors", type=Path, required=True,
                   help="a checkout of sinzlab/neuralpredictors (never committed)")
    p.add_argument("--extra", type=Path, help="folder with scikit-image and h5py, appended "
                   "to sys.path")
    p.add_argument("--neurons", type=int, default=8000)
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--case", choices=[*CASES, "check"], help="run one case (internal)")
    args = p.parse_args()
    sys.path.insert(0, str(args.neuralpredictors))
    if args.extra:
        sys.path.append(str(args.extra))
    tree = args.root / "static90000-1-1-GrayImageNet-imagebench"
    store = args.root / "bench.zarr"
    if args.case == "check":
        print(json.dumps(check(tree, store)))
        return
    if args.case:
        print(json.dumps(run_case(args.case, tree, store, args.epochs)))
        return
    import sensorium_data as sd

    args.root.mkdir(parents=True, exist_ok=True)
    generate(args.root, args.neurons, args.trials)
    if not store.exists():
        sd.convert(tree, store, progress=False)
    for f in (tree / "data").rglob("*.npy"):  # warm the page cache
        f.read_bytes()
    results = []
    for case in [*CASES, "check"]:
        cmd = [sys.executable, __file__, "--root", str(args.root), "--neuralpredictors",
               str(args.neuralpredictors), "--epochs", str(args.epochs), "--case", case]
        if args.extra:
            cmd += ["--extra", str(args.extra)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    cases = {r["case"]: r for r in results if "case" in r}
    kit = cases["kit-w0"]
    print(f"\nmachine: {platform.machine()}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 1e9:.0f} GB; {args.neurons} neurons, "
          f"{args.trials} trials ({len(train_indices(tree))} train), batch {BATCH}\n")
    print("| case | build s | epoch 1 s | last epoch s | items/s (last) | x kit (last) | "
          "build + epoch 1 s | x kit (build + epoch 1) | RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    first_kit = kit["build_s"] + kit["epoch_s"][0]
    for r in cases.values():
        first = r["build_s"] + r["epoch_s"][0]
        print(f"| {r['case']} | {r['build_s']:.2f} | {r['epoch_s'][0]:.2f} | "
              f"{r['epoch_s'][-1]:.2f} | {r['items_per_s_last']:.0f} | "
              f"{r['items_per_s_last'] / kit['items_per_s_last']:.1f} | "
              f"{first:.2f} | {first_kit / first:.1f} | {r['rss_mb']:.0f} |")
    print(f"\nlargest |kit - ours| over 64 train items: {results[-1]}")


if __name__ == "__main__":
    main()
