"""Beyond one machine, measured side by side on this machine: converting two recordings in
one process, on one dask worker and on two; one training epoch on one process and on two
gloo ranks (``sensorium train --nproc``). Prints a markdown table (seconds and ratios to the
one-process run) and writes ``<out>/results.json``; docs/scaling.md quotes it.

Usage::

    python benchmarks/scaling.py --out /tmp/scaling            # the simulator's tiny mice
    python benchmarks/scaling.py --out /tmp/scaling --scale 4 --skip-training  # bigger mice

Every measurement runs in this call on the same data, one after the other (the machine's
load at the start is printed: on a shared machine the ratios are what to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def convert_times(trees: list[Path], out: Path) -> dict[str, float]:
    from distributed import Client, LocalCluster

    from sensorium_data.cluster import convert_many

    times = {}
    for label, workers in (("one process", 0), ("1 dask worker", 1), ("2 dask workers", 2)):
        folder = out / "stores" / label.replace(" ", "-")
        shutil.rmtree(folder, ignore_errors=True)
        stores = [folder / f"{t.name}.zarr" for t in trees]
        if workers == 0:
            start = time.perf_counter()
            convert_many(trees, stores)
            times[label] = time.perf_counter() - start
            continue
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("sensorium_data.store"))  # imports before the clock
            start = time.perf_counter()
            convert_many(trees, stores, client=client)
            times[label] = time.perf_counter() - start
    return times


def epoch_times(stores: list[Path], out: Path, epochs: int) -> dict[str, dict[str, float]]:
    times = {}
    for nproc in (1, 2):
        run = out / "runs" / f"nproc{nproc}"
        shutil.rmtree(run, ignore_errors=True)
        command = [sys.executable, "-m", "sensorium_models.cli", "train", "--nproc", str(nproc),
                   "--model", "factorized_baseline", "--mice", *map(str, stores),
                   "--max-epochs", str(epochs), "--device", "cpu", "--out", str(run),
                   "--set", "batch_size=8", "--set", "score=false", "--set", "progress=false",
                   "--set", "normalize=per_neuron",
                   "--set", "model_config.hidden_channels=[8,16,16]"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
        seconds = [float(line.split(",")[-1])
                   for line in (run / "metrics.csv").read_text().splitlines()[1:]]
        times[f"{nproc} process{'es' if nproc > 1 else ''}"] = {
            "epoch_s": sum(seconds) / len(seconds), "wall_s": wall}
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="the tiny preset's scale")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--skip-training", action="store_true", help="conversion only")
    args = parser.parse_args()
    import sensorium_data as sd

    load = os.getloadavg()
    print(f"load average at the start: {load}, {os.cpu_count()} CPUs")
    trees = sd.simulate(args.out / "trees", preset="tiny", scale=args.scale, progress=False,
                        overwrite=True)[:2]
    conversion = convert_times(trees, args.out)
    stores = sorted((args.out / "stores" / "one-process").glob("*.zarr"))
    training = {} if args.skip_training else epoch_times(stores, args.out, args.epochs)
    results = {"scale": args.scale, "load_at_start": load,
               "load_at_end": os.getloadavg(),
               "convert_two_recordings_s": conversion, "training": training}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    base = conversion["one process"]
    print("\n| converting 2 recordings | seconds | ratio to one process |\n|---|---|---|")
    for label, t in conversion.items():
        print(f"| {label} | {t:.2f} | {t / base:.2f} |")
    if not training:
        return
    first = next(iter(training.values()))
    print("\n| one training epoch | epoch s (metrics.csv) | ratio | wall s (with start-up) |"
          "\n|---|---|---|---|")
    for label, t in training.items():
        print(f"| {label} | {t['epoch_s']:.2f} | {t['epoch_s'] / first['epoch_s']:.2f} | "
              f"{t['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
