"""Conversion and open benchmark on a synthetic recording of real size.

Writes a synthetic SENSORIUM 2023 recording in the competition's file-tree format with
:class:`sensorium_data.TreeWriter` (streamed trial by trial, real tier structure), converts it
with :func:`sensorium_data.convert` in a subprocess with a cold page cache, and opens the store
with :func:`sensorium_data.open_mouse` in fresh subprocesses. Measures conversion throughput
(MB/s of ``.npy`` read) and peak memory, store size against tree size, and the wall time and
resident memory of ``open_mouse`` and of a few lazy reads.

The synthetic recording (seeded, so reruns write the same bytes):

* tiers as in the scored mice, scaled to ``--trials``: ~350 train, 60 oracle, 60
  live_test_main, 60 final_test_main, 60 live_test_bonus, 120 final_test_bonus, in random
  order, plus ~3 % indices of tier ``none`` (no files), as in the older mice;
* valid frames 300 for natural videos (train, oracle, main tests), 324 (pink noise,
  live_test_bonus), 315 and 240 (Gaussian dots and random dots, final_test_bonus), NaN after;
* responses: sparse heavy-tailed non-negative activity (per-neuron Bernoulli events with
  log-normal amplitudes smeared over ~5 frames, a small exponential floor, a log-normal gain;
  the model of ``benchmarks/chunking.py``, tuned to the real neuron tables); test tiers are
  exactly zero over all frames, as in the scored mice;
* videos: 0-255 integers, low-pass (1/f spatial, temporally smoothed) noise plus grain; the
  oracle and main test tiers repeat 6 clips 10 times each;
* behavior and pupil_center: smoothed random walks.

All data goes under ``--out``; results are printed as markdown and written to
``<out>/results.json``.

Usage::

    python benchmarks/convert.py --neurons 8000 --trials 700 --frames 324 --dtype float64 \\
        --out /tmp/convbench
    python benchmarks/convert.py --out /tmp/convbench --skip-generate   # reuse the tree
    python benchmarks/convert.py --out /tmp/convbench --skip-generate --skip-convert  # open only

The page cache is dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``, root only) before the
conversion and before the first open; the report says "warm" where that was not allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import dask
import numpy as np
import psutil
import xarray as xr
import zarr

from sensorium_data import TreeWriter

HEIGHT, WIDTH = 36, 64
MB = 1e6
NAME = "dynamic90000-1-1-Video-convbench"
# Tier counts of a scored mouse (sensorium2023_format.md 4.3), scaled to --trials.
TIER_COUNTS = {
    "train": 350,
    "oracle": 60,
    "live_test_main": 60,
    "final_test_main": 60,
    "live_test_bonus": 60,
    "final_test_bonus": 120,
}
REPEATED = ("oracle", "live_test_main", "final_test_main")  # 10 repeats of each clip
KERNEL = (1.0, 0.55, 0.3, 0.15, 0.07)
LOOKAHEAD = 4  # trials generated ahead of the writer; bounds memory


# --------------------------------------------------------------------------------------
# Synthetic file tree
# --------------------------------------------------------------------------------------


def tier_plan(trials: int, rng: np.random.Generator) -> np.ndarray:
    """Tier of every trial index: the scored mice's shares, random order, ~3 % gaps."""
    total = sum(TIER_COUNTS.values())
    counts = {t: round(c * trials / total) for t, c in TIER_COUNTS.items() if t != "train"}
    counts["train"] = trials - sum(counts.values())
    tiers = np.concatenate([np.full(c, t) for t, c in counts.items()])
    rng.shuffle(tiers)
    gaps = np.sort(rng.choice(trials, size=round(0.03 * trials), replace=False))
    return np.insert(tiers, gaps, "none")


def stimulus_plan(tiers: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid frames and video clip of every trial index (-1: a clip of its own)."""
    n_valid = np.full(len(tiers), min(300, frames))
    clip = np.full(len(tiers), -1)
    bonus_final = np.flatnonzero(tiers == "final_test_bonus")
    n_valid[tiers == "live_test_bonus"] = frames  # pink noise: the full padded length
    n_valid[bonus_final[: len(bonus_final) // 2]] = min(315, frames)  # Gaussian dots
    n_valid[bonus_final[len(bonus_final) // 2 :]] = min(240, frames)  # random dots
    for k, tier in enumerate(REPEATED):
        where = np.flatnonzero(tiers == tier)
        clip[where] = 100 * k + np.arange(len(where)) // 10
    return n_valid, clip


def synth_video(rng: np.random.Generator, n: int, frames: int) -> np.ndarray:
    """(height, width, frames) 0-255 integers as float, NaN after ``n`` frames."""
    ft = np.fft.fftfreq(frames)[:, None, None]
    fy = np.fft.fftfreq(HEIGHT)[None, :, None]
    fx = np.fft.rfftfreq(WIDTH)[None, None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / WIDTH) ** 1.2
    amplitude = amplitude / (1.0 + (np.abs(ft) / 0.02) ** 2)
    phase = rng.uniform(0, 2 * np.pi, size=amplitude.shape)
    field = np.fft.irfftn(amplitude * np.exp(1j * phase), s=(frames, HEIGHT, WIDTH),
                         axes=(0, 1, 2))
    field = (field - field.mean()) / field.std() * 35.0 + 120.0
    field += rng.normal(0, 1.5, size=field.shape)
    video = np.clip(np.rint(field), 0, 255)  # (frames, height, width)
    video[n:] = np.nan
    return np.moveaxis(video, 0, -1)  # (height, width, frames)


def synth_responses(
    rng: np.random.Generator, gain: np.ndarray, p: np.ndarray, n: int, frames: int
) -> np.ndarray:
    """(neurons, frames) sparse heavy-tailed non-negative activity, NaN after ``n`` frames."""
    neurons = len(gain)
    hit = rng.random((neurons, n), dtype=np.float32) < p
    events = np.zeros((neurons, n))
    events[hit] = rng.lognormal(0.0, 1.2, size=int(hit.sum()))
    smooth = events.copy()
    for lag, w in enumerate(KERNEL[1:], start=1):
        smooth[:, lag:] += w * events[:, : n - lag]
    out = np.full((neurons, frames), np.nan)
    out[:, :n] = gain * (smooth + 0.03 * rng.standard_exponential((neurons, n)))
    return out


def synth_walks(rng: np.random.Generator, n: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """behavior (pupil dilation, running speed) and pupil_center (x, y), NaN after ``n``."""
    steps = rng.normal(0, 1, size=(4, n + 30))
    walk = np.cumsum(steps, axis=1)
    c = np.cumsum(walk, axis=1)
    smooth = (c[:, 30:] - c[:, :-30]) / 30.0  # 30-frame moving average
    behavior = np.full((2, frames), np.nan)
    pupil = np.full((2, frames), np.nan)
    behavior[0, :n] = 10.0 + 0.3 * smooth[0]
    behavior[1, :n] = np.maximum(0.0, 2.0 * smooth[1] + rng.normal(0, 0.05, size=n))
    pupil[:, :n] = np.array([[-10.0], [5.0]]) + 0.2 * smooth[2:]
    return behavior, pupil


def generate(out: Path, neurons: int, trials: int, frames: int, dtype: str, seed: int) -> Path:
    """Write the synthetic tree to ``out/NAME`` on two threads; return its folder."""
    rng = np.random.default_rng(seed)
    tiers = tier_plan(trials, rng)
    n_valid, clip = stimulus_plan(tiers, frames)
    gain = rng.lognormal(0.0, 0.6, size=(neurons, 1))
    p = rng.uniform(0.01, 0.06, size=(neurons, 1)).astype(np.float32)
    unit_ids = np.sort(rng.choice(np.arange(1, int(neurons * 1.1) + 2), neurons, replace=False))
    xyz = np.column_stack([
        rng.integers(-1100, -300, neurons),
        rng.integers(-900, -100, neurons),
        rng.choice(np.arange(200, 426, 25), neurons),
    ]).astype(np.float64)

    def make(trial: int) -> dict[str, np.ndarray]:
        t_rng = np.random.default_rng([seed, trial])
        n = int(n_valid[trial])
        v_rng = t_rng if clip[trial] < 0 else np.random.default_rng([seed, 10**6 + clip[trial]])
        videos = synth_video(v_rng, n, frames)
        if "test" in tiers[trial]:
            responses = np.zeros((neurons, frames))  # withheld, as in the scored mice
        else:
            responses = synth_responses(t_rng, gain, p, n, frames)
        behavior, pupil_center = synth_walks(t_rng, n, frames)
        return {"videos": videos, "responses": responses, "behavior": behavior,
                "pupil_center": pupil_center}

    root = out / NAME
    with_files = [int(t) for t in np.flatnonzero(tiers != "none")]
    pending: deque[tuple[int, Future]] = deque()
    with ThreadPoolExecutor(2) as pool, TreeWriter(
        root, tiers=tiers, unit_ids=unit_ids, coordinates=xyz, dtype=np.dtype(dtype)
    ) as writer:
        for trial in with_files:
            pending.append((trial, pool.submit(make, trial)))
            if len(pending) > LOOKAHEAD:
                t, fut = pending.popleft()
                writer.write_trial(t, **fut.result())
        while pending:
            t, fut = pending.popleft()
            writer.write_trial(t, **fut.result())
    return root


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------

# Peak RSS of the child's own address space. Not ru_maxrss: Linux carries the parent's peak
# into it across fork and exec, so it would report the generator's peak.
HWM = r"""
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
"""

CONVERT_CHILD = HWM + r"""
import json, resource, sys, time
t0 = time.perf_counter()
import psutil
import sensorium_data
from sensorium_data.store import conversion as S
from sensorium_data.store import video as V
from sensorium_data.store import writer as W
t_import = time.perf_counter() - t0
phases = {}
def timed(name, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
    return wrapper
S.open_tree = timed("open_tree", S.open_tree)
V.VideoWriter.__init__ = timed("check_shapes", V.VideoWriter.__init__)
for name in ("_videos", "_responses", "_behavior", "_coords", "_statistics"):
    setattr(V.VideoWriter, name, timed(name.strip("_"), getattr(V.VideoWriter, name)))
W.zarr.consolidate_metadata = timed("consolidate", W.zarr.consolidate_metadata)
start = time.perf_counter()
sensorium_data.convert(sys.argv[1], sys.argv[2], progress=False)
wall = time.perf_counter() - start
ru = resource.getrusage(resource.RUSAGE_SELF)
io = psutil.Process().io_counters()
print(json.dumps({"import_s": t_import, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": hwm(), "read_bytes": io.read_bytes,
                  "write_bytes": io.write_bytes, "phases_s": phases}))
"""

OPEN_CHILD = HWM + r"""
import json, sys, time
import numpy as np
import psutil
proc = psutil.Process()
out = {"rss_python_mb": proc.memory_info().rss / 1e6}
t0 = time.perf_counter()
import sensorium_data
out["import_s"] = time.perf_counter() - t0
out["rss_import_mb"] = proc.memory_info().rss / 1e6
t0, c0 = time.perf_counter(), time.process_time()
ds = sensorium_data.open_mouse(sys.argv[1], progress=False)
out["open_s"] = time.perf_counter() - t0
out["open_cpu_s"] = time.process_time() - c0  # all threads; less sensitive to machine load
out["rss_open_mb"] = proc.memory_info().rss / 1e6
out["peak_rss_open_mb"] = hwm()
t0 = time.perf_counter()
sensorium_data.open_mouse(sys.argv[1], progress=False)  # lazy imports (dask.array) done
out["open_again_s"] = time.perf_counter() - t0
r = ds.responses
train = np.flatnonzero(ds.tier.values == "train")
reads = {
    "one trial's responses": lambda: r.isel(trial=int(train[len(train) // 2])).values,
    "one neuron, all trials": lambda: r.isel(neuron=r.sizes["neuron"] // 2).values,
    "oracle mean, 100 neurons": lambda: (
        r.where(ds.tier == "oracle", drop=True).isel(neuron=slice(0, 100))
        .mean(["trial", "frame"]).values
    ),
}
for name, read in reads.items():
    t0 = time.perf_counter()
    read()
    out[name + " s"] = time.perf_counter() - t0
    out[name + " rss_mb"] = proc.memory_info().rss / 1e6
out["peak_rss_mb"] = hwm()
print(json.dumps(out))
"""


def drop_caches() -> bool:
    """Flush and drop the page cache (root only); False if not allowed."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_child(code: str, *args: str) -> tuple[dict, dict]:
    """Run ``code`` in a fresh interpreter; its JSON result and psutil samples of the run."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                             text=True)
    proc = psutil.Process(child.pid)
    psutil.cpu_percent()
    cpu, peak = [], 0.0
    while child.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss / MB)
        except psutil.NoSuchProcess:
            break
        cpu.append(psutil.cpu_percent(interval=0.25))
    stdout, _ = child.communicate()
    if child.returncode:
        msg = f"benchmark child failed with exit status {child.returncode}"
        raise RuntimeError(msg)
    polled = {"polled_peak_rss_mb": peak,
              "machine_cpu_percent": statistics.mean(cpu) if cpu else float("nan")}
    return json.loads(stdout.strip().splitlines()[-1]), polled


def tree_bytes(path: Path) -> tuple[int, int, int]:
    """Apparent bytes, bytes on disk and number of files under ``path``."""
    size = disk = files = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            size, disk, files = size + st.st_size, disk + st.st_blocks * 512, files + 1
    return size, disk, files


def measure(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    root, store = out / NAME, out / f"{NAME}.zarr"
    res: dict = {"command": " ".join(["python", *map(shlex.quote, sys.argv)])}
    if not args.skip_generate:
        if root.exists():
            shutil.rmtree(root)
        res["generate_load"] = load()
        start = time.perf_counter()
        generate(out, args.neurons, args.trials, args.frames, args.dtype, args.seed)
        res["generate_s"] = time.perf_counter() - start
    elif not (root / "data").is_dir():
        msg = f"--skip-generate: no tree at {root}; run once without it to write one."
        raise SystemExit(msg)
    res["data"] = tree_bytes(root / "data")
    res["meta"] = tree_bytes(root / "meta")
    res["responses"] = tree_bytes(root / "data" / "responses")

    if not args.skip_convert:
        if store.exists():
            shutil.rmtree(store)
        res["convert_cold"] = drop_caches()
        res["convert_load"] = load()
        res["convert"], res["convert_polled"] = run_child(CONVERT_CHILD, str(root), str(store))
        start = time.perf_counter()
        subprocess.run(["sync"], check=True)
        res["sync_after_convert_s"] = time.perf_counter() - start
    res["store"] = tree_bytes(store)

    res["open_load"] = load()
    res["open_cold_cache"] = drop_caches()
    res["open_cold"], _ = run_child(OPEN_CHILD, str(store))
    res["open_warm"] = [run_child(OPEN_CHILD, str(store))[0] for _ in range(args.open_runs)]
    res["open_load_after"] = load()
    return res


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def machine() -> str:
    ram = psutil.virtual_memory().total / 2**30
    versions = ", ".join(
        f"{m.__name__} {m.__version__}" for m in (zarr, xr, dask, np)
    )
    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"{ram:.0f} GiB RAM, Python {platform.python_version()}; {versions}")


def report(args: argparse.Namespace, res: dict) -> str:
    data, meta, store = res["data"], res["meta"], res["store"]
    npy = data[0] + meta[0]
    lines = [
        f"`{res['command']}`",
        "",
        f"Machine: {machine()}.",
        "",
        "| Quantity | Value |",
        "|---|---|",
        f"| recording | {args.neurons} neurons, {res['data'][2] // 4} trial files x "
        f"{args.frames} frames, {args.dtype} |",
    ]
    if "generate_s" in res:
        rate = data[0] / MB / res["generate_s"]
        lines.append(f"| generate tree (TreeWriter) | {res['generate_s']:.0f} s "
                     f"({rate:.0f} MB/s; load before {res['generate_load']}) |")
    lines += [
        f"| .npy tree: data/ + meta/ | {npy / 1e9:.2f} GB ({data[2] + meta[2]} files); "
        f"responses {res['responses'][0] / 1e9:.2f} GB |",
        f"| store | {store[0] / 1e9:.2f} GB apparent, {store[1] / 1e9:.2f} GB on disk (du), "
        f"{store[2]} files |",
        f"| store / .npy | {store[0] / npy:.3f} (files {store[2] / (data[2] + meta[2]):.2f}) |",
    ]
    if "convert" in res:
        c, polled = res["convert"], res["convert_polled"]
        cache = "cold" if res["convert_cold"] else "warm (could not drop caches)"
        phases = ", ".join(f"{k} {v:.1f}" for k, v in c["phases_s"].items())
        lines += [
            f"| convert wall time ({cache} page cache) | {c['wall_s']:.1f} s "
            f"(CPU {c['cpu_s']:.0f} s; machine CPU busy {polled['machine_cpu_percent']:.0f} %; "
            f"load before {res['convert_load']}) |",
            f"| convert throughput (.npy data/ bytes / wall) | "
            f"{data[0] / MB / c['wall_s']:.0f} MB/s "
            f"(disk reads by the process {c['read_bytes'] / 1e9:.2f} GB) |",
            f"| convert phases (s) | {phases} |",
            f"| convert peak RSS | {c['peak_rss_mb']:.0f} MB (VmHWM; polled "
            f"{polled['polled_peak_rss_mb']:.0f} MB) |",
            f"| sync after convert | {res['sync_after_convert_s']:.1f} s |",
        ]
    warm = res["open_warm"]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in warm)

    cold = res["open_cold"]
    cache = "cold" if res["open_cold_cache"] else "not cold (could not drop caches)"
    lines += [
        f"| `import sensorium_data` | {med('import_s'):.2f} s warm median; "
        f"{cold['import_s']:.2f} s {cache} |",
        f"| `open_mouse(store)` wall | {med('open_s'):.3f} s warm median of {len(warm)} "
        f"(min {min(r['open_s'] for r in warm):.3f}, max {max(r['open_s'] for r in warm):.3f}); "
        f"{cold['open_s']:.3f} s {cache} |",
        f"| `open_mouse(store)` CPU time (all threads) | {med('open_cpu_s'):.3f} s warm median; "
        f"{cold['open_cpu_s']:.3f} s {cache} |",
        f"| second `open_mouse(store)` in the same process | {med('open_again_s'):.3f} s "
        f"warm median |",
        f"| RSS after import (baseline) | {med('rss_import_mb'):.0f} MB "
        f"(bare interpreter + psutil {med('rss_python_mb'):.0f} MB) |",
        f"| RSS after open | {med('rss_open_mb'):.0f} MB "
        f"(+{med('rss_open_mb') - med('rss_import_mb'):.0f} MB over baseline; "
        f"peak during open {med('peak_rss_open_mb'):.0f} MB) |",
    ]
    for name in ("one trial's responses", "one neuron, all trials", "oracle mean, 100 neurons"):
        lines.append(
            f"| read: {name} | {med(name + ' s'):.2f} s warm median, {cold[name + ' s']:.2f} s "
            f"cold; RSS after {med(name + ' rss_mb'):.0f} MB |"
        )
    lines += [
        f"| peak RSS over open + reads | {med('peak_rss_mb'):.0f} MB |",
        f"| load during open runs | before {res['open_load']}, after {res['open_load_after']} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=8000)
    parser.add_argument("--trials", type=int, default=700, help="trials with files")
    parser.add_argument("--frames", type=int, default=324, help="padded frames per trial")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--out", default="/tmp/convbench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--open-runs", type=int, default=5)
    parser.add_argument("--skip-generate", action="store_true", help="reuse the tree in --out")
    parser.add_argument("--skip-convert", action="store_true", help="reuse the store in --out")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    res = measure(args)
    (Path(args.out) / "results.json").write_text(json.dumps(res, indent=2))
    print(report(args, res))


if __name__ == "__main__":
    main()
