"""What the store's integrity checks cost (sensorium_data.chunks), side by side.

Writes a synthetic recording (``--neurons`` x ``--trials`` trials of ``--frames`` frames, 80 %
train, NaN padding past 300 frames), converts it, and times with a warm page cache:

* reading all responses of an opened Dataset: ``xr.open_zarr(store)`` as zarr reads it,
  against ``open_mouse(store)``, whose blocks check missing and truncated chunk files;
* 80-frame ``ClipDataset`` items, with the blosc size check against without it.

Prints the medians of ``--repeats`` alternating runs and their ratios (checked / unchecked).

Usage::

    python benchmarks/checks.py --neurons 2000 --trials 60 --frames 324 --out /tmp/checksbench
    python benchmarks/checks.py --scheduler synchronous    # the xarray reads without threads
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr

import sensorium_data as sd
from sensorium_data.store.chunks import Chunks


def write_tree(root: Path, neurons: int, trials: int, frames: int) -> Path:
    rng = np.random.default_rng(0)
    tiers = ["train" if i < int(0.8 * trials) else "oracle" for i in range(trials)]
    with sd.TreeWriter(root, tiers=tiers, unit_ids=np.arange(1, neurons + 1),
                       coordinates=rng.normal(size=(neurons, 3))) as writer:
        for t in range(trials):
            valid = min(300, frames)
            video = rng.integers(0, 256, (36, 64, frames)).astype(np.float32)
            video[..., valid:] = np.nan
            responses = rng.gamma(0.3, 1.0, (neurons, frames)).astype(np.float32)
            responses[:, valid:] = np.nan
            behavior = rng.normal(size=(2, frames))
            behavior[:, valid:] = np.nan
            writer.write_trial(t, videos=video, responses=responses, behavior=behavior,
                               pupil_center=behavior.copy())
    return root


def side_by_side(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of ``first()`` and ``second()``, run alternately (after one warm-up
    each), so that the load of a shared machine falls on both."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--frames", type=int, default=324)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/checksbench"))
    parser.add_argument("--scheduler", default="threads", choices=["threads", "synchronous"],
                        help="dask scheduler of the xarray reads")
    args = parser.parse_args()
    dask.config.set(scheduler=args.scheduler)
    shutil.rmtree(args.out, ignore_errors=True)
    tree = write_tree(args.out / "rec", args.neurons, args.trials, args.frames)
    store = sd.convert(tree, args.out / "rec.zarr", progress=False)

    plain_ds, checked_ds = xr.open_zarr(store, chunks={}), sd.open_mouse(store)
    plain, checked = side_by_side(lambda: plain_ds["responses"].values,
                                  lambda: checked_ds["responses"].values, args.repeats)

    clips = sd.ClipDataset(store, tier="train", frames=80, normalize=None, seed=0)
    original = Chunks.check_blosc

    def items(check: bool) -> None:
        Chunks.check_blosc = original if check else (  # type: ignore[method-assign]
            lambda self, index, raw=None: None)
        try:
            for i in range(len(clips)):
                clips[i]
        finally:
            Chunks.check_blosc = original  # type: ignore[method-assign]

    without, with_check = side_by_side(lambda: items(False), lambda: items(True), args.repeats)

    print(f"recording: {args.neurons} neurons, {args.trials} trials, {args.frames} frames; "
          f"dask scheduler: {args.scheduler}")
    print("| read | unchecked s | checked s | ratio |")
    print("|---|---|---|---|")
    print(f"| all responses via xarray | {plain:.3f} | {checked:.3f} | {checked / plain:.2f} |")
    print(f"| {len(clips)} clip items (80 frames) | {without:.3f} | {with_check:.3f} | "
          f"{with_check / without:.2f} |")


if __name__ == "__main__":
    main()
