"""Scoring benchmark: sensorium_models.metrics against a straightforward numpy implementation.

Scores a full-size ``final_test_main`` tier of the five scored mice (F-J): per mouse the
catalog's real trials of that tier (56-60), repeat groups (6 videos, 9-10 repeats), valid
frames (300) and padded length (324-414), and its real neuron count (7,863-8,202; 40,034
in all). Responses and predictions are synthetic float32 (the metric's cost does not
depend on the values), NaN past each trial's valid frames, as the foundation's Dataset
holds them.

Two metrics, two implementations each:

- ``straightforward``: what the starter kit and most teams do: cut every trial to frames
  [50, 300), concatenate all trials in time (a copy), then z-score and correlate
  (``neuralpredictors.measures.np_functions.corr``'s formula); for the correlation to
  average, the repeats of each video are stacked and averaged from that concatenation.
- ``sensorium_models``: :func:`single_trial_correlation` and :func:`correlation_to_average`,
  which read one trial at a time into float64 running sums.

Wall time is the best of ``--repeats`` runs per mouse (the implementations take turns
within each repeat, so both see the same load), summed over the mice; CPU time (user +
system of the process) is reported next to it, as it is less sensitive to other jobs on a
shared machine. Peak memory is what the call allocates on top of its inputs, measured with
``tracemalloc`` (numpy reports its buffers to it) in a separate run, the maximum over the
mice. The inputs themselves (about 1.2 GB per mouse) are not counted for either.

Usage::

    python benchmarks/metrics.py                 # all five mice, 3 repeats
    python benchmarks/metrics.py --mice F --repeats 1
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from sensorium_data import catalog
from sensorium_models import accumulators, evaluate
from sensorium_models.metrics import correlation_to_average, single_trial_correlation

SKIP, MAX_FRAMES, TIER = 50, 300, "final_test_main"
MiB = 2**20


def tier_of(letter: str, rng: np.random.Generator):
    """Responses, predictions (trial, neuron, frame) and video ids of one mouse's tier."""
    rec = catalog.lookup(letter)
    trials = rec.trials()
    trials = trials[trials.tier == TIER]
    n_trials, n_neurons, frames = len(trials), rec.n_neurons, rec.frames
    signal = {v: rng.gamma(0.3, 1.0, (n_neurons, frames)).astype(np.float32)
              for v in trials.video_id.unique()}  # fmt: skip
    responses = np.empty((n_trials, n_neurons, frames), np.float32)
    predictions = np.empty_like(responses)
    for i, (video, valid) in enumerate(zip(trials.video_id, trials.valid_frames, strict=True)):
        responses[i] = signal[video] + rng.standard_exponential((n_neurons, frames), np.float32)
        predictions[i] = signal[video] * 0.8 + rng.standard_normal((n_neurons, frames), np.float32)
        responses[i, :, valid:] = np.nan
    return responses, predictions, trials.video_id.to_numpy()


def _windows(responses: np.ndarray, predictions: np.ndarray):
    xs, ys = [], []
    for r, p in zip(responses, predictions, strict=True):
        all_nan = np.isnan(r).all(axis=0)
        valid = int(np.argmax(all_nan)) if all_nan.any() else r.shape[1]
        stop = min(valid, MAX_FRAMES)
        xs.append(r[:, SKIP:stop])
        ys.append(p[:, SKIP:stop])
    return xs, ys


def _corr(y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """neuralpredictors' corr over axis 0: z-scores (ddof=0, eps 1e-8), then the mean product."""
    z1 = (y1 - y1.mean(axis=0, keepdims=True)) / (y1.std(axis=0, keepdims=True) + 1e-8)
    z2 = (y2 - y2.mean(axis=0, keepdims=True)) / (y2.std(axis=0, keepdims=True) + 1e-8)
    r = (z1 * z2).mean(axis=0)
    r[np.isnan(r)] = 0
    return r


def straightforward_single(responses, predictions, video_ids) -> float:
    xs, ys = _windows(responses, predictions)
    return float(_corr(np.concatenate(xs, axis=1).T, np.concatenate(ys, axis=1).T).mean())


def straightforward_average(responses, predictions, video_ids) -> float:
    xs, ys = _windows(responses, predictions)
    lengths = [x.shape[1] for x in xs]
    x, y = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)  # (neuron, all frames)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    ax, ay = [], []
    for video in np.unique(video_ids):
        members = np.flatnonzero(video_ids == video)
        n = min(lengths[i] for i in members)
        ax.append(np.stack([x[:, starts[i] : starts[i] + n] for i in members]).mean(axis=0))
        ay.append(np.stack([y[:, starts[i] : starts[i] + n] for i in members]).mean(axis=0))
    return float(_corr(np.concatenate(ax, axis=1).T, np.concatenate(ay, axis=1).T).mean())


def ours_single(responses, predictions, video_ids) -> float:
    return single_trial_correlation(responses, predictions, skip=SKIP, max_frames=MAX_FRAMES)


def ours_average(responses, predictions, video_ids) -> float:
    return correlation_to_average(
        responses, predictions, video_ids, skip=SKIP, max_frames=MAX_FRAMES
    )


def evaluate_both(responses, predictions, video_ids) -> float:
    """Both metrics through the leaderboard, from a recording's Dataset (not compared)."""
    trials = np.arange(len(responses))
    n_frames = np.full(len(responses), MAX_FRAMES)
    ds = xr.Dataset(
        {"responses": (("trial", "neuron", "frame"), responses)},
        coords={"trial": trials, "tier": ("trial", [TIER] * len(trials)),
                "video_id": ("trial", video_ids), "n_frames": ("trial", n_frames)},
        attrs={"mouse": "m"},
    )  # fmt: skip
    pred = xr.DataArray(predictions, dims=("trial", "neuron", "frame"), coords={"trial": trials})
    table = evaluate({"m": pred}, [ds], skip=SKIP, max_frames=MAX_FRAMES)
    return float(table.single_trial_correlation.iloc[0])


IMPLEMENTATIONS: dict[str, dict[str, Callable[..., float]]] = {
    "single_trial_correlation": {
        "straightforward": straightforward_single,
        "sensorium_models": ours_single,
    },
    "correlation_to_average": {
        "straightforward": straightforward_average,
        "sensorium_models": ours_average,
    },
    "both, evaluate() on a Dataset": {"sensorium_models": evaluate_both},
}


def timed(f: Callable[..., float], args: tuple) -> tuple[float, float, float]:
    """(value, wall seconds, CPU seconds) of one call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    value = f(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def peak_mib(f: Callable[..., float], args: tuple) -> float:
    """MiB the call allocates on top of its inputs, at its peak."""
    gc.collect()
    accumulators._SCRATCH.__dict__.clear()  # count the shared scratch space too
    tracemalloc.start()
    f(*args)
    peak = tracemalloc.get_traced_memory()[1] / MiB
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mice", nargs="+", default=["F", "G", "H", "I", "J"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/metrics.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: dict = {m: {impl: {"seconds": 0.0, "cpu_seconds": 0.0, "peak_mib": 0.0}
                         for impl in impls}
                     for m, impls in IMPLEMENTATIONS.items()}  # fmt: skip
    neurons = trials = 0
    for letter in args.mice:
        data = tier_of(letter, rng)
        neurons += data[0].shape[1]
        trials += data[0].shape[0]
        print(f"mouse {letter}: {data[0].shape} float32 x 2 ({2 * data[0].nbytes / 1e9:.2f} GB)")
        for metric, impls in IMPLEMENTATIONS.items():
            values, best = {}, {}
            for _ in range(args.repeats):
                for impl, f in impls.items():
                    value, wall, cpu = timed(f, data)
                    values[impl] = value
                    best[impl] = min(best.get(impl, (wall, cpu)), (wall, cpu))
            for impl, f in impls.items():
                peak = peak_mib(f, data)
                r = results[metric][impl]
                r["seconds"] += best[impl][0]
                r["cpu_seconds"] += best[impl][1]
                r["peak_mib"] = max(r["peak_mib"], peak)
                print(
                    f"  {metric:30s} {impl:17s} {values[impl]:.6f}  {best[impl][0]:6.2f} s "
                    f"(cpu {best[impl][1]:6.2f} s)  {peak:7.0f} MiB"
                )
            if "straightforward" in values:
                gap = abs(values["straightforward"] - values["sensorium_models"])
                gaps = results[metric]
                gaps["abs_difference"] = max(gaps.get("abs_difference", 0), gap)
        del data
        gc.collect()
    print(f"\n{len(args.mice)} mice, {neurons} neurons, {trials} trials of tier {TIER}")
    print("| metric | implementation | wall time (s) | CPU time (s) | peak memory (MiB) |")
    print("|---|---|---:|---:|---:|")
    for metric, impls in results.items():
        for impl in IMPLEMENTATIONS[metric]:
            r = impls[impl]
            print(
                f"| {metric} | {impl} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} "
                f"| {r['peak_mib']:.0f} |"
            )
    for metric, impls in results.items():
        if "straightforward" not in impls:
            continue
        a, b = impls["straightforward"], impls["sensorium_models"]
        print(
            f"{metric}: {a['seconds'] / b['seconds']:.1f}x faster (wall), "
            f"{a['cpu_seconds'] / b['cpu_seconds']:.1f}x (CPU), "
            f"{b['peak_mib'] / a['peak_mib']:.3f} of the peak memory, "
            f"|difference| {impls['abs_difference']:.1e}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "numpy": np.__version__, "platform": platform.platform(),
               "load_average": os.getloadavg()}  # fmt: skip
    summary = {"mice": args.mice, "neurons": neurons, "trials": trials, "tier": TIER,
               "repeats": args.repeats, "machine": machine, "results": results}  # fmt: skip
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
