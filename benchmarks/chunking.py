"""Chunk shape and codec benchmark for the per-recording zarr v3 store.

Writes a synthetic SENSORIUM 2023 recording (real-size trials, fewer of them) in several
candidate layouts and measures, per layout: store size, file count, write throughput,
random 80-frame clip reads, whole-trial reads, one neuron across all trials (zarr direct),
and the same through ``xarray.open_zarr`` + dask. Also checks that uncompressed v3 chunks
are plain C-order bytes that ``np.memmap`` can map, and measures clip reads from such maps.

All data goes under ``--out`` (default ``/tmp/chunkbench``); results are printed as markdown
tables and written to ``<out>/results.json``. The machine may be shared, so reads are timed
round-robin over all layouts (same load for all), after an uncounted warm-up round (warm page
cache); each number is a median over rounds of per-round medians. Writes go to the page
cache (no fsync), so write throughput is conversion CPU cost, not disk bandwidth. Stores
are deleted after measuring unless ``--keep``. The docs page docs/storage.md
reports a run of this script.

Usage::

    python benchmarks/chunking.py --trials 80 --out /tmp/chunkbench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask
import numcodecs
import numpy as np
import psutil
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, Delta, TransposeCodec, ZstdCodec

HEIGHT, WIDTH = 36, 64
CLIP = 80
BEHAVIOR_VARIABLES = 4
MB = 1e6

# Valid frames per stimulus type (sensorium2023_format.md 4.1) and a rough share of trials.
VALID_FRAMES = (300, 240, 315, 324, 310)
VALID_SHARE = (0.8, 0.05, 0.05, 0.05, 0.05)


# --------------------------------------------------------------------------------------
# Synthetic recording
# --------------------------------------------------------------------------------------


@dataclass
class Recording:
    responses: np.ndarray  # (trial, neuron, frame) float64, NaN past valid / withheld
    videos: np.ndarray  # (trial, frame, height, width) uint8, 0 past valid
    behavior: np.ndarray  # (trial, 4, frame) float64, NaN past valid
    n_valid: np.ndarray  # (trial,) valid frames
    labelled: np.ndarray  # (trial,) False where responses are withheld (all NaN)


def valid_lengths(rng: np.random.Generator, trials: int, frames: int) -> np.ndarray:
    n = rng.choice(VALID_FRAMES, size=trials, p=VALID_SHARE)
    return np.minimum(n, frames)


def synth_responses(
    rng: np.random.Generator, n_valid: np.ndarray, labelled: np.ndarray, neurons: int, frames: int
) -> np.ndarray:
    """Sparse, heavy-tailed, non-negative float64 activity.

    Per neuron: Bernoulli(p ~ U(0.01, 0.06)) events with LogNormal(0, 1.2) amplitudes,
    smeared over ~5 frames (30 Hz frames resampled from slower imaging), plus a small
    exponential floor, times a LogNormal(0, 0.6) per-neuron gain. Tuned so that the
    per-neuron std/mean (~5) and max/std (~40) match the real recordings' neuron tables.
    """
    trials = len(n_valid)
    gain = rng.lognormal(0.0, 0.6, size=(neurons, 1))
    p = rng.uniform(0.01, 0.06, size=(neurons, 1))
    kernel = (1.0, 0.55, 0.3, 0.15, 0.07)
    out = np.full((trials, neurons, frames), np.nan)
    for t in range(trials):
        if not labelled[t]:
            continue
        n = int(n_valid[t])
        events = (rng.random((neurons, n)) < p) * rng.lognormal(0.0, 1.2, size=(neurons, n))
        smooth = np.zeros_like(events)
        for lag, w in enumerate(kernel):
            smooth[:, lag:] += w * events[:, : n - lag]
        out[t, :, :n] = gain * (smooth + rng.exponential(0.03, size=(neurons, n)))
    return out


def synth_videos(rng: np.random.Generator, n_valid: np.ndarray, frames: int) -> np.ndarray:
    """Natural-like grayscale movies: 1/f spatial, low-pass temporal noise + moving discs.

    Plus a little grain (sd 1.5 gray levels) so the 8-bit values are not unrealistically
    smooth. Padded frames are 0.
    """
    trials = len(n_valid)
    out = np.zeros((trials, frames, HEIGHT, WIDTH), dtype=np.uint8)
    ft = np.fft.fftfreq(frames)[:, None, None]
    fy = np.fft.fftfreq(HEIGHT)[None, :, None]
    fx = np.fft.rfftfreq(WIDTH)[None, None, :]
    fs = np.sqrt(fy**2 + fx**2)
    amplitude = 1.0 / np.maximum(fs, 1.0 / WIDTH) ** 1.2 / (1.0 + (np.abs(ft) / 0.02) ** 2)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for t in range(trials):
        n = int(n_valid[t])
        phase = rng.uniform(0, 2 * np.pi, size=amplitude.shape)
        spec = amplitude * np.exp(1j * phase)
        field_ = np.fft.irfftn(spec, s=(frames, HEIGHT, WIDTH), axes=(0, 1, 2))[:n]
        field_ = (field_ - field_.mean()) / field_.std() * 35.0 + 120.0
        for _ in range(3):
            y0, x0 = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
            vy, vx = rng.normal(0, 0.15), rng.normal(0, 0.3)
            radius, level = rng.uniform(3, 8), rng.uniform(-70, 70)
            for f in range(n):
                cy, cx = (y0 + vy * f) % HEIGHT, (x0 + vx * f) % WIDTH
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
                field_[f][mask] += level
        field_ += rng.normal(0, 1.5, size=field_.shape)
        out[t, :n] = np.clip(np.rint(field_), 0, 255).astype(np.uint8)
    return out


def synth_behavior(rng: np.random.Generator, n_valid: np.ndarray, frames: int) -> np.ndarray:
    """Pupil dilation, running speed, pupil x, pupil y as smooth float64 traces."""
    trials = len(n_valid)
    out = np.full((trials, BEHAVIOR_VARIABLES, frames), np.nan)
    for t in range(trials):
        n = int(n_valid[t])
        walk = np.cumsum(rng.normal(0, 1, size=(BEHAVIOR_VARIABLES, n)), axis=1)
        kern = np.exp(-np.arange(30) / 8.0)
        smooth = np.stack([np.convolve(w, kern / kern.sum(), mode="same") for w in walk])
        pupil = 10.0 + 0.3 * smooth[0]
        running = np.maximum(0.0, 2.0 * smooth[1] + rng.normal(0, 0.05, size=n))
        saccades = np.cumsum((rng.random((2, n)) < 0.01) * rng.normal(0, 3, size=(2, n)), axis=1)
        gaze = np.array([[-10.0], [5.0]]) + 0.2 * smooth[2:] + saccades
        out[t, :, :n] = np.vstack([pupil, running, gaze]) + rng.normal(0, 1e-3, size=(4, n))
    return out


def make_recording(trials: int, neurons: int, frames: int, withheld: float, seed: int) -> Recording:
    rng = np.random.default_rng(seed)
    n_valid = valid_lengths(rng, trials, frames)
    labelled = rng.random(trials) >= withheld
    labelled[0] = True
    return Recording(
        responses=synth_responses(rng, n_valid, labelled, neurons, frames),
        videos=synth_videos(rng, n_valid, frames),
        behavior=synth_behavior(rng, n_valid, frames),
        n_valid=n_valid,
        labelled=labelled,
    )


def response_stats(rec: Recording) -> dict[str, float]:
    """Per-neuron std/mean and max/std over labelled valid frames (medians over neurons)."""
    x = rec.responses[rec.labelled].astype(np.float32)
    x = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    mean, std, mx = np.nanmean(x, 1), np.nanstd(x, 1), np.nanmax(x, 1)
    return {
        "std_over_mean": float(np.median(std / mean)),
        "max_over_std": float(np.median(mx / std)),
        "frac_below_0.1_mean": float(np.nanmean(x < 0.1 * mean[:, None])),
    }


# --------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------


def zstd(level: int) -> ZstdCodec:
    return ZstdCodec(level=level)


def blosc(cname: str, shuffle: str, typesize: int = 4, clevel: int = 5) -> BloscCodec:
    return BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize)


CODECS: dict[str, Callable[[], list]] = {
    "none": lambda: [],
    "zstd-1": lambda: [zstd(1)],
    "zstd-3": lambda: [zstd(3)],
    "blosc-lz4-shuf": lambda: [blosc("lz4", "shuffle")],
    "blosc-lz4-bitshuf": lambda: [blosc("lz4", "bitshuffle")],
    "blosc-zstd-shuf": lambda: [blosc("zstd", "shuffle", clevel=3)],
    "blosc-zstd-bitshuf": lambda: [blosc("zstd", "bitshuffle", clevel=3)],
    "blosc-lz4-noshuf": lambda: [blosc("lz4", "noshuffle", typesize=1)],  # for uint8
    "blosc-zstd-noshuf": lambda: [blosc("zstd", "noshuffle", typesize=1, clevel=3)],
}
RESPONSE_CODECS = [c for c in CODECS if not c.endswith("noshuf")]


@dataclass
class Layout:
    name: str
    chunks: tuple[int, ...]
    codec: str
    shards: tuple[int, ...] | None = None
    transpose: tuple[int, ...] | None = None  # on-disk axis order inside a chunk
    delta: bool = False  # numcodecs Delta filter (uint8 videos)
    key_separator: str = "/"  # "." puts every chunk file directly under the array folder

    def filters(self) -> list:
        if self.delta:
            return [Delta(dtype="u1")]
        return [TransposeCodec(order=self.transpose)] if self.transpose else []


def round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def response_layouts(neurons: int, frames: int, codec: str) -> list[Layout]:
    """Codec sweep on whole-trial chunks, then a chunk-shape sweep (uncompressed and `codec`).

    An inner chunk must divide the shard, and 324 = 2^2 * 3^4 is not a multiple of 25, 50 or
    100: the one-trial shard is rounded up to a multiple of the inner chunk (1 file a trial).
    """
    n, t = neurons, frames
    out = [Layout(f"trial/{c}", (1, n, t), c) for c in RESPONSE_CODECS]
    out += [
        Layout("f100/none", (1, n, 100), "none"),
        Layout("f50/none", (1, n, 50), "none"),
        Layout("shard[f50]/none", (1, n, 50), "none", shards=(1, n, round_up(t, 50))),
        Layout("f50/zstd-3", (1, n, 50), "zstd-3"),
        Layout("f50/blosc-lz4-shuf", (1, n, 50), "blosc-lz4-shuf"),
        Layout("f50/blosc-zstd-shuf", (1, n, 50), "blosc-zstd-shuf"),
        Layout(f"f100/{codec}", (1, n, 100), codec),
        Layout(f"f50/{codec}", (1, n, 50), codec),
        Layout(f"f25/{codec}", (1, n, 25), codec),
        Layout(f"n2000/{codec}", (1, min(2000, n), t), codec),
        Layout(f"shard[f50]/{codec}", (1, n, 50), codec, shards=(1, n, round_up(t, 50))),
        Layout("trial-T/none", (1, n, t), "none", transpose=(0, 2, 1)),
    ]
    return list({lo.name: lo for lo in out}.values())  # drop repeats when codec is "none"


def create(path: Path, name: str, shape, layout: Layout, dtype, dims, fill) -> zarr.Array:
    group = zarr.open_group(path, mode="a", zarr_format=3)
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=layout.chunks,
        shards=layout.shards,
        filters=layout.filters(),
        compressors=CODECS[layout.codec](),
        fill_value=fill,
        dimension_names=dims,
        chunk_key_encoding={"name": "default", "separator": layout.key_separator},
        overwrite=True,
    )


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def tree_stats(path: Path, trials: np.ndarray | None = None) -> dict[str, int]:
    """Bytes, files and directories under path; bytes of chunk files of the given trials."""
    files = dirs = size = 0
    for _root, dnames, fnames in os.walk(path):
        dirs += len(dnames)
        files += len(fnames)
        size += sum(os.path.getsize(os.path.join(_root, f)) for f in fnames)
    out = {"bytes": size, "files": files, "dirs": dirs}
    if trials is not None:
        arr_dir = next(p for p in path.iterdir() if p.is_dir())
        out["bytes_trials"] = sum(
            sum(f.stat().st_size for f in (arr_dir / "c" / str(t)).rglob("*") if f.is_file())
            for t in trials
            if (arr_dir / "c" / str(t)).exists()
        )
    return out


def write_trials(arr: zarr.Array, source: np.ndarray, dtype) -> list[float]:
    """Write trial by trial (cast included); seconds per trial."""
    times = []
    for t in range(source.shape[0]):
        t0 = time.perf_counter()
        arr[t] = source[t].astype(dtype)
        times.append(time.perf_counter() - t0)
    return times


def clip_plan(rec: Recording, count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    trials = np.flatnonzero(rec.labelled & (rec.n_valid >= CLIP))
    picks = rng.choice(trials, size=count)
    return [(int(t), int(rng.integers(0, rec.n_valid[t] - CLIP + 1))) for t in picks]


Reader = Callable[[int, int], object]  # (trial or neuron, start) -> array


def interleaved(
    cands: dict[str, dict[str, tuple[Reader, list[tuple[int, int]]]]],
    rounds: int,
    warm: tuple[str, ...] = ("clip", "trial"),
) -> dict[str, dict[str, float]]:
    """Time every candidate's reads round-robin, so all see the same machine load.

    ``cands[name][op] = (read, plan)``. A first, uncounted round runs the ``warm`` ops (page
    cache, zarr metadata, memmaps). Each counted round takes the median over its plan; the
    result is the median over rounds, in ms.
    """
    samples: dict[str, dict[str, list[float]]] = {
        n: {op: [] for op in ops} for n, ops in cands.items()
    }
    for rnd in range(rounds + 1):
        for name, ops in cands.items():
            for op, (read, plan) in ops.items():
                if rnd == 0 and op not in warm:
                    continue
                times = [timed(lambda t=t, s=s, read=read: read(t, s)) for t, s in plan]
                if rnd:
                    samples[name][op].append(statistics.median(times))
    return {
        n: {op: 1e3 * statistics.median(v) for op, v in ops.items()} for n, ops in samples.items()
    }


def write_responses(rec: Recording, layout: Layout, root: Path) -> tuple[Path, dict]:
    path = root / f"responses-{layout.name.replace('/', '_')}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    _trials, neurons, frames = rec.responses.shape
    arr = create(
        path,
        "responses",
        rec.responses.shape,
        layout,
        "float32",
        ("trial", "neuron", "frame"),
        np.nan,
    )
    wall0 = time.perf_counter()
    wtimes = write_trials(arr, rec.responses, np.float32)
    wall = time.perf_counter() - wall0
    zarr.consolidate_metadata(path)
    lab = np.flatnonzero(rec.labelled)
    t = int(lab[0])
    assert np.array_equal(arr[t], rec.responses[t].astype(np.float32), equal_nan=True)
    return path, {
        "write_MBps": neurons * frames * 8 / statistics.median([wtimes[t] for t in lab]) / MB,
        "write_wall_s": wall,
        **tree_stats(path, lab),
    }


def response_readers(path: Path, rec: Recording, args: argparse.Namespace, plan) -> dict:
    arr = zarr.open_array(path / "responses", mode="r")
    lab = np.flatnonzero(rec.labelled)
    cell = [(int(np.random.default_rng(1).integers(rec.responses.shape[1])), 0)]

    def xr_neuron(c: int, _s: int) -> object:
        ds = xr.open_zarr(path, consolidated=True, zarr_format=3)
        return ds.responses.isel(neuron=c).values

    return {
        "clip": (lambda t, s: arr[t, :, s : s + CLIP], plan),
        "trial": (lambda t, s: arr[t], [(int(t), 0) for t in lab[: args.trial_reads]]),
        "neuron": (lambda c, s: arr[:, c, :], cell),
        "xr_neuron": (xr_neuron, cell),
    }


def mmap_readers(
    path: Path, rec: Recording, args: argparse.Namespace, plan, transposed: bool
) -> tuple[dict, dict]:
    """Map the chunk files of a whole-trial, uncompressed store; check them against the data."""
    _trials, neurons, frames = rec.responses.shape
    arr = zarr.open_array(path / "responses", mode="r")
    disk_shape = (frames, neurons) if transposed else (neurons, frames)
    maps: dict[int, np.memmap] = {}

    def chunk(t: int) -> np.memmap:
        if t not in maps:
            maps[t] = np.memmap(
                path / "responses" / "c" / str(t) / "0" / "0",
                dtype="<f4",
                mode="r",
                shape=disk_shape,
            )
        return maps[t]

    lab = np.flatnonzero(rec.labelled)
    withheld = np.flatnonzero(~rec.labelled)
    check = {
        "codecs": [type(c).__name__ for c in arr.metadata.codecs],
        "chunk_file_bytes": os.path.getsize(path / "responses" / "c" / str(lab[0]) / "0" / "0"),
        "expected_bytes": neurons * frames * 4,
        "memmap_equal": all(
            np.array_equal(
                chunk(int(t)).T if transposed else chunk(int(t)),
                rec.responses[t].astype(np.float32),
                equal_nan=True,
            )
            for t in lab[:5]
        ),
        "withheld_trial_has_no_file": (
            not (path / "responses" / "c" / str(withheld[0])).exists() if len(withheld) else None
        ),
    }
    if transposed:
        clip = lambda t, s: np.array(chunk(t)[s : s + CLIP])  # noqa: E731
    else:
        clip = lambda t, s: np.array(chunk(t)[:, s : s + CLIP])  # noqa: E731
    readers = {
        "clip": (clip, plan),
        "trial": (lambda t, s: np.array(chunk(t)), [(int(t), 0) for t in lab[: args.trial_reads]]),
    }
    return readers, check


def bench_responses(
    rec: Recording, layouts: list[Layout], root: Path, args: argparse.Namespace, plan
) -> tuple[dict, dict]:
    results: dict = {}
    paths: dict[str, Path] = {}
    for layout in layouts:
        t0 = time.perf_counter()
        paths[layout.name], results[layout.name] = write_responses(rec, layout, root)
        r = results[layout.name]
        print(
            f"wrote {layout.name:28s} {time.perf_counter() - t0:5.1f} s  "
            f"f32/store {rec.responses.size * 4 / r['bytes']:.2f}",
            flush=True,
        )
    cands = {name: response_readers(p, rec, args, plan) for name, p in paths.items()}
    mmap: dict = {}
    for name, transposed in (("trial/none", False), ("trial-T/none", True)):
        if name in paths:
            readers, mmap[name] = mmap_readers(paths[name], rec, args, plan, transposed)
            cands[f"memmap {name}"] = readers
    t0 = time.perf_counter()
    timings = interleaved(cands, args.rounds)
    print(f"interleaved reads: {time.perf_counter() - t0:.0f} s", flush=True)
    lab = np.flatnonzero(rec.labelled)
    for name, path in paths.items():
        results[name].update(timings[name])
        ds = xr.open_zarr(path, consolidated=True, zarr_format=3)
        results[name]["dask_chunks"] = list(ds.responses.data.chunksize)
        results[name]["xr_tier_mean_ms"] = 1e3 * timed(
            lambda ds=ds: ds.responses.isel(trial=lab).mean("trial").values
        )
        if not args.keep:
            shutil.rmtree(path)
    for name in mmap:
        mmap[name].update(timings[f"memmap {name}"])
        mmap[name]["zarr_clip_ms"] = timings[name]["clip"]
    return results, mmap


def bench_videos(rec: Recording, root: Path, args: argparse.Namespace, plan) -> dict:
    trials, frames = rec.videos.shape[:2]
    layouts = []
    for c in ("none", "zstd-1", "zstd-3", "blosc-lz4-noshuf", "blosc-zstd-noshuf"):
        for f in (frames, 100):
            name = f"{'trial' if f == frames else 'f100'}/{c}"
            layouts.append(Layout(name, (1, f, HEIGHT, WIDTH), c))
    layouts.append(Layout("trial/delta+zstd-3", (1, frames, HEIGHT, WIDTH), "zstd-3", delta=True))
    out: dict = {}
    cands: dict = {}
    paths = []
    for layout in layouts:
        path = root / f"videos-{layout.name.replace('/', '_')}.zarr"
        shutil.rmtree(path, ignore_errors=True)
        arr = create(
            path,
            "videos",
            rec.videos.shape,
            layout,
            "uint8",
            ("trial", "frame", "height", "width"),
            0,
        )
        wtimes = write_trials(arr, rec.videos, np.uint8)
        st = tree_stats(path)
        assert np.array_equal(arr[plan[0][0]], rec.videos[plan[0][0]])
        out[layout.name] = {
            "ratio": rec.videos.nbytes / st["bytes"],
            "files": st["files"],
            "dirs": st["dirs"],
            "write_ms": 1e3 * statistics.median(wtimes),
        }
        cands[layout.name] = {
            "clip": (lambda t, s, a=arr: a[t, s : s + CLIP], plan),
            "trial": (
                lambda t, s, a=arr: a[t],
                [(t, 0) for t in range(min(trials, args.trial_reads))],
            ),
        }
        paths.append(path)
    for name, timings in interleaved(cands, args.rounds).items():
        out[name].update(timings)
    for path in paths:
        shutil.rmtree(path)
    return out


def bench_behavior(args: argparse.Namespace, root: Path) -> dict:
    """Behaviour at the real trial count: it is tiny, so layouts differ by file count."""
    rng = np.random.default_rng(args.seed + 7)
    n_valid = valid_lengths(rng, args.behavior_trials, args.frames)
    beh = synth_behavior(rng, n_valid, args.frames)
    beh32 = beh.astype(np.float32)
    trials = beh.shape[0]
    shape = beh.shape
    one = (1, BEHAVIOR_VARIABLES, args.frames)
    layouts = [
        Layout("1 trial/chunk", one, "zstd-3"),
        Layout("1 trial/chunk, '.' keys", one, "zstd-3", key_separator="."),
        Layout("64 trials/chunk", (64, BEHAVIOR_VARIABLES, args.frames), "zstd-3"),
        Layout("all trials/chunk", shape, "zstd-3"),
        Layout("shard all[1 trial/chunk]", one, "zstd-3", shards=shape),
    ]
    plan = [
        (int(t), int(rng.integers(0, n_valid[t] - CLIP + 1)))
        for t in rng.choice(trials, size=args.clips)
    ]
    out: dict = {}
    cands: dict = {}
    paths = []
    for layout in layouts:
        slug = "".join(ch if ch.isalnum() else "_" for ch in layout.name)
        path = root / f"behavior-{slug}.zarr"
        shutil.rmtree(path, ignore_errors=True)
        arr = create(
            path,
            "behavior",
            shape,
            layout,
            "float32",
            ("trial", "behavior_variable", "frame"),
            np.nan,
        )
        # trial by trial (as the converter writes) for the first 100 trials, then all at once
        per_trial = write_trials(arr, beh[:100], np.float32)
        bulk = timed(lambda a=arr: a.__setitem__(slice(None), beh32))
        st = tree_stats(path)
        assert np.array_equal(arr[:], beh32, equal_nan=True)
        out[layout.name] = {
            "bytes": st["bytes"],
            "ratio": beh32.nbytes / st["bytes"],
            "files": st["files"],
            "dirs": st["dirs"],
            "write_one_trial_ms": 1e3 * statistics.median(per_trial),
            "write_bulk_ms": 1e3 * bulk,
        }
        cands[layout.name] = {
            "trial": (lambda t, s, a=arr: a[t], plan),
            "clip": (lambda t, s, a=arr: a[t, :, s : s + CLIP], plan),
            "all": (lambda t, s, a=arr: a[:], [(0, 0)]),
        }
        paths.append(path)
    for name, timings in interleaved(cands, args.rounds, warm=("trial", "clip", "all")).items():
        out[name].update(timings)
    for path in paths:
        shutil.rmtree(path)
    return out


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report(res: dict, args: argparse.Namespace) -> str:
    meta = res["meta"]
    trials, neurons, frames = meta["shape"]
    f32, f64 = meta["f32_bytes"], meta["f64_npy_bytes"]
    lab_f32 = meta["labelled_f32_bytes"]
    parts = [
        f"## Setup\n\n{meta['machine']}; python {meta['python']}, zarr {meta['zarr']}, "
        f"numcodecs {meta['numcodecs']}, xarray {meta['xarray']}, dask {meta['dask']}, "
        f"numpy {meta['numpy']}.\n\nResponses: {trials} trials x {neurons} neurons x "
        f"{frames} frames float32 ({f32 / MB:.0f} MB raw float32; {f64 / MB:.0f} MB as "
        f"float64 .npy); {meta['labelled']} labelled trials, {trials - meta['labelled']} "
        f"withheld (all NaN); valid frames {meta['valid_frames']}. Synthetic statistics "
        f"(median over neurons): std/mean {meta['stats']['std_over_mean']:.2f}, max/std "
        f"{meta['stats']['max_over_std']:.1f}.\n\nReads are timed round-robin over all "
        f"layouts of a table ({args.rounds} rounds after a warm-up round): per round the "
        f"median of {args.clips} random labelled (trial, start) clips, {args.trial_reads} "
        f"whole trials, 1 neuron read; reported: the median over rounds. Write MB/s: "
        f"float64 bytes in / median time per labelled trial (cast + encode + write to the "
        f"page cache). xr tier mean: one run.",
    ]
    base = res["responses"].get("trial/none", {}).get("clip")
    rows = []
    for name, r in res["responses"].items():
        rows.append(
            [
                f"`{name}`",
                f"{f32 / r['bytes']:.2f}",
                f"{lab_f32 / r['bytes_trials']:.2f}",
                f"{f64 / r['bytes']:.2f}",
                f"{r['files']}+{r['dirs']}",
                f"{r['write_MBps']:.0f}",
                f"{r['clip']:.1f}",
                f"{1e3 / r['clip']:.0f}",
                f"{base / r['clip']:.2f}" if base else "",
                f"{r['trial']:.1f}",
                f"{r['neuron']:.0f}",
                f"{r['xr_neuron']:.0f}",
                f"{r['xr_tier_mean_ms']:.0f}",
                "x".join(map(str, r["dask_chunks"])),
            ]
        )
    parts.append(
        "## responses (trial, neuron, frame) float32\n\n"
        + table(
            [
                "layout",
                "f32/store",
                "f32/store labelled",
                "f64 npy/store",
                "files+dirs",
                "write MB/s",
                "clip ms",
                "clips/s",
                "clip speed vs trial/none",
                "trial ms",
                "1 neuron ms (zarr)",
                "xr open+1 neuron ms",
                "xr tier mean ms",
                "dask chunk",
            ],
            rows,
        )
    )
    rows = []
    for name, r in res["mmap"].items():
        rows.append(
            [
                f"`{name}`",
                ", ".join(r["codecs"]),
                f"{r['chunk_file_bytes']} / {r['expected_bytes']}",
                str(r["memmap_equal"]),
                str(r["withheld_trial_has_no_file"]),
                f"{r['clip']:.2f}",
                f"{1e3 / r['clip']:.0f}",
                f"{r['zarr_clip_ms'] / r['clip']:.1f}",
                f"{r['trial']:.1f}",
            ]
        )
    parts.append(
        "## np.memmap of uncompressed whole-trial chunk files\n\n"
        + table(
            [
                "store",
                "codecs",
                "chunk file bytes / N*T*4",
                "memmap == values",
                "withheld trial has no file",
                "clip ms",
                "clips/s",
                "x faster than zarr read",
                "trial copy ms",
            ],
            rows,
        )
    )
    rows = []
    for name, r in res["videos"].items():
        rows.append(
            [
                f"`{name}`",
                f"{r['ratio']:.2f}",
                f"{r['files']}+{r['dirs']}",
                f"{r['write_ms']:.1f}",
                f"{r['clip']:.2f}",
                f"{1e3 / r['clip']:.0f}",
                f"{r['trial']:.2f}",
            ]
        )
    parts.append(
        f"## videos ({trials}, {frames}, 36, 64) uint8\n\n"
        + table(
            [
                "layout",
                "raw/store",
                "files+dirs",
                "write ms/trial",
                "clip ms",
                "clips/s",
                "trial ms",
            ],
            rows,
        )
    )
    rows = []
    for name, r in res["behavior"].items():
        rows.append(
            [
                name,
                f"{r['bytes'] / 1e3:.0f} kB",
                f"{r['ratio']:.2f}",
                f"{r['files']}+{r['dirs']}",
                f"{r['write_one_trial_ms']:.2f}",
                f"{r['write_bulk_ms']:.1f}",
                f"{r['trial']:.2f}",
                f"{r['clip']:.2f}",
                f"{r['all']:.1f}",
            ]
        )
    parts.append(
        f"## behavior ({args.behavior_trials}, 4, {frames}) float32, zstd-3\n\n"
        + table(
            [
                "layout",
                "store",
                "raw/store",
                "files+dirs",
                "write 1 trial ms",
                "write all at once ms",
                "1 trial ms",
                "clip ms",
                "all trials ms",
            ],
            rows,
        )
    )
    parts.append(f"Total run time: {res['meta']['run_s']:.0f} s.")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=80)
    p.add_argument("--neurons", type=int, default=8000)
    p.add_argument("--frames", type=int, default=324)
    p.add_argument(
        "--withheld",
        type=float,
        default=0.4,
        help="share of trials with withheld (all-NaN) responses",
    )
    p.add_argument("--behavior-trials", type=int, default=720)
    p.add_argument("--clips", type=int, default=50, help="random clips per round")
    p.add_argument("--trial-reads", type=int, default=10, help="whole trials per round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (after a warm-up)")
    p.add_argument(
        "--chunk-codec",
        default="blosc-lz4-shuf",
        choices=RESPONSE_CODECS,
        help="compressed codec used for the chunk-shape sweep of responses",
    )
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only these responses layouts (names as in the table)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/chunkbench"))
    p.add_argument("--keep", action="store_true", help="keep the stores after measuring")
    args = p.parse_args(argv)

    warnings.filterwarnings("ignore", category=UserWarning)  # consolidated-metadata notices
    dask.config.set(scheduler="threads")
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    rec = make_recording(args.trials, args.neurons, args.frames, args.withheld, args.seed)
    print(f"synthetic recording: {time.perf_counter() - t0:.1f} s", flush=True)
    plan = clip_plan(rec, args.clips, args.seed + 1)
    lab = rec.labelled
    valid, counts = np.unique(rec.n_valid, return_counts=True)
    res: dict = {
        "meta": {
            "machine": (
                f"{platform.platform()}, {psutil.cpu_count()} logical CPUs, "
                f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
            ),
            "python": platform.python_version(),
            "zarr": zarr.__version__,
            "numcodecs": numcodecs.__version__,
            "xarray": xr.__version__,
            "dask": dask.__version__,
            "numpy": np.__version__,
            "shape": list(rec.responses.shape),
            "labelled": int(lab.sum()),
            "valid_frames": {int(k): int(v) for k, v in zip(valid, counts, strict=True)},
            "f32_bytes": rec.responses.size * 4,
            "labelled_f32_bytes": int(lab.sum()) * rec.responses[0].size * 4,
            "f64_npy_bytes": rec.responses.size * 8 + 128 * args.trials,
            "stats": response_stats(rec),
            "args": {k: str(v) for k, v in vars(args).items()},
        },
    }
    layouts = response_layouts(args.neurons, args.frames, args.chunk_codec)
    if args.only is not None:
        layouts = [lo for lo in layouts if lo.name in args.only]
    res["responses"], res["mmap"] = bench_responses(rec, layouts, args.out, args, plan)
    print(f"responses done: {time.perf_counter() - start:.0f} s", flush=True)
    res["videos"] = bench_videos(rec, args.out, args, plan)
    print(f"videos done: {time.perf_counter() - start:.0f} s", flush=True)
    del rec
    res["behavior"] = bench_behavior(args, args.out)
    res["meta"]["run_s"] = time.perf_counter() - start
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    print()
    print(report(res, args))


if __name__ == "__main__":
    main()
