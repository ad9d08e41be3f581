"""Training-loader benchmark: clips per second and peak memory, side by side with the peers.

On one real-size recording (the tree and store written by ``benchmarks/convert.py``: 8,000
neurons, 700 trials of 324 frames, float64 ``.npy``), batches of ``--batch`` clips of
``--frames`` frames from the train tier, each case in a fresh interpreter:

* ``zarr-w0`` / ``zarr-w2``: :class:`sensorium_data.ClipDataset` reading the zarr store, in a
  ``DataLoader`` with 0 and 2 worker processes;
* ``memory``: ``ClipDataset(in_memory=True)`` (the tier loaded once; load time reported apart);
* ``npy-w0`` / ``npy-w2``: the anchors' way, as the starter kit's ``MovieFileTreeDataset``
  without its RAM cache does it: ``np.load`` of the trial's whole ``videos``, ``responses``,
  ``behavior`` and ``pupil_center`` files, the official normalization of the whole trial, then
  the window is cut (sensorium2023_format.md section 5);
* ``bound``: copying the bytes of one float32 clip (videos, responses, behaviour) once in
  memory, from 64 different sources so that the copy is not served from the CPU cache;
* ``five-mice``: one ``ClipDataset`` over five stores (hard-linked copies of the store with
  other mouse names), 0 and 2 workers: peak resident memory of the process tree.

Cases marked cold run right after dropping the page cache (``echo 3 >
/proc/sys/vm/drop_caches``, root only; the report says so where that was not allowed). Warm
cases read every clip of their plan once before timing it. Clip rates are steady-state: the
first batch (worker start-up, store opening) is timed apart.

Usage::

    python benchmarks/convert.py --neurons 8000 --trials 700 --frames 324 --dtype float64 \\
        --out /tmp/convbench                     # once: the tree and its store
    python benchmarks/loader.py --tree /tmp/convbench/dynamic90000-1-1-Video-convbench \\
        --out /tmp/loaderbench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from convert import drop_caches  # benchmarks/convert.py, beside this script

MB = 1e6
HEIGHT, WIDTH = 36, 64
CASES = ("bound", "memory", "zarr-w0", "zarr-w2", "npy-w0", "npy-w2")


# --------------------------------------------------------------------------------------
# The anchors' way: whole-trial .npy files, normalized, then cut
# --------------------------------------------------------------------------------------


class NpyClips:
    """A torch-style dataset of random clips read as the starter kit reads them."""

    def __init__(self, tree: Path, frames: int, seed: int):
        import torch  # noqa: F401  (the DataLoader needs it; imported like the real peer)

        self.tree = tree
        self.frames = frames
        self.rng = np.random.default_rng(seed)  # a copy per worker, like Subsequence's draws
        tiers = np.load(tree / "meta/trials/tiers.npy")
        self.trials = np.flatnonzero(tiers == "train")
        stats = tree / "meta/statistics"

        def stat(key: str, name: str) -> np.ndarray:
            return np.load(stats / key / "all" / f"{name}.npy")

        self.v_mean, self.v_std = stat("videos", "mean"), stat("videos", "std")
        r_std = stat("responses", "std")
        threshold = 0.01 * np.nanmean(r_std)
        self.r_prec = np.where(r_std > threshold, 1.0 / np.maximum(r_std, threshold),
                               1.0 / threshold)
        self.b_std = stat("behavior", "std")
        self.p_mean, self.p_std = stat("pupil_center", "mean"), stat("pupil_center", "std")

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, i: int) -> dict:
        import torch

        trial = int(self.trials[i])
        data = self.tree / "data"
        videos = np.load(data / "videos" / f"{trial}.npy")  # (36, 64, T) float64
        responses = np.load(data / "responses" / f"{trial}.npy")  # (N, T)
        behavior = np.load(data / "behavior" / f"{trial}.npy")  # (2, T)
        pupil = np.load(data / "pupil_center" / f"{trial}.npy")  # (2, T)
        # NeuroNormalizer on the whole trial, before CutVideos and Subsequence.
        videos = (videos - self.v_mean) / self.v_std
        responses = responses * self.r_prec
        behavior = behavior / self.b_std
        pupil = (pupil - self.p_mean) / self.p_std
        length = int(np.argmax(np.isnan(videos[0, 0]))) or videos.shape[-1]
        start = int(self.rng.integers(0, length - self.frames + 1))
        window = slice(start, start + self.frames)
        clip = np.moveaxis(videos[..., window], -1, 0)[None]  # (1, F, 36, 64)
        beh = behavior[:, window]
        channels = np.broadcast_to(beh[:, :, None, None], (2, self.frames, HEIGHT, WIDTH))
        return {
            "videos": torch.from_numpy(np.concatenate([clip, channels]).astype(np.float32)),
            "responses": torch.from_numpy(responses[:, window].astype(np.float32)),
            "behavior": torch.from_numpy(
                np.concatenate([beh, pupil[:, window]]).astype(np.float32)),
            "mouse": self.tree.name, "trial": trial, "start": start,
        }


# --------------------------------------------------------------------------------------
# One case, in a child interpreter
# --------------------------------------------------------------------------------------


def _tree() -> list[psutil.Process]:
    proc = psutil.Process()
    return [proc, *proc.children(recursive=True)]


def rss_tree_mb() -> float:
    """Resident memory of this process and its workers, summed (counts shared pages, such as
    torch's libraries, once per process)."""
    total = 0
    for proc in _tree():
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / MB


def pss_tree_mb() -> float:
    """Proportional set size of the process tree: shared pages split between the processes
    that map them, so the sum is the memory the tree takes (slow to read: once per case)."""
    total = 0
    for proc in _tree():
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, AttributeError):
            pass
    return total / MB


def drain(loader, batches: int) -> dict:
    """Iterate ``batches`` batches; time the first apart from the rest."""
    peak = rss_tree_mb()
    it = iter(loader)
    t0 = time.perf_counter()
    next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    clips = 0
    for _ in range(batches - 1):
        batch = next(it)
        clips += len(batch["responses"])
        peak = max(peak, rss_tree_mb())
    rest = time.perf_counter() - t1
    return {"first_batch_s": first, "clips": clips, "seconds": rest,
            "clips_per_s": clips / rest, "peak_rss_mb": peak, "pss_mb": pss_tree_mb()}


def loader_for(dataset, args: argparse.Namespace, workers: int):
    import torch

    from sensorium_data import collate

    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, num_workers=workers,
        collate_fn=collate, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )


def case_bound(args: argparse.Namespace) -> dict:
    neurons = int(np.load(args.tree / "meta/neurons/unit_ids.npy").shape[0])
    per_frame = neurons + 3 * HEIGHT * WIDTH + 4  # float32 values of one frame of one clip
    size = args.frames * per_frame
    sources = np.random.default_rng(0).random((64, size), dtype=np.float32)
    n = args.clips * 4
    t0 = time.perf_counter()
    for i in range(n):
        out = np.empty(size, np.float32)
        np.copyto(out, sources[i % 64])
    seconds = time.perf_counter() - t0
    return {"clips": n, "seconds": seconds, "clips_per_s": n / seconds,
            "bytes_per_clip": size * 4, "peak_rss_mb": rss_tree_mb()}


def case_memory(args: argparse.Namespace) -> dict:
    from sensorium_data import ClipDataset

    t0 = time.perf_counter()
    ds = ClipDataset(args.store, frames=args.frames, in_memory=True, seed=args.seed)
    load_s = time.perf_counter() - t0
    order = np.random.default_rng(args.seed).integers(0, len(ds), args.clips * 4)
    ds[int(order[0])]
    t1 = time.perf_counter()
    for i in order:
        ds[int(i)]
    seconds = time.perf_counter() - t1
    res = {"clips": len(order), "seconds": seconds, "clips_per_s": len(order) / seconds,
           "load_s": load_s, "peak_rss_mb": rss_tree_mb()}
    res["loader"] = drain(loader_for(ds, args, 0), args.clips // args.batch)
    return res


def case_loader(args: argparse.Namespace, kind: str, workers: int) -> dict:
    if kind == "zarr":
        from sensorium_data import ClipDataset

        dataset = ClipDataset(args.store, frames=args.frames, seed=args.seed)
    else:
        dataset = NpyClips(args.tree, args.frames, args.seed)
    batches = args.clips // args.batch
    if args.warm:
        drain(loader_for(dataset, args, workers), batches)
    return drain(loader_for(dataset, args, workers), batches)


def case_five_mice(args: argparse.Namespace, workers: int) -> dict:
    from sensorium_data import ClipDataset

    stores = [args.store, *sorted(args.out.glob("mouse-*.zarr"))]
    dataset = ClipDataset(stores, frames=args.frames, seed=args.seed)
    res = drain(loader_for(dataset, args, workers), args.clips // args.batch)
    res["mice"] = len(stores)
    return res


def case_io(args: argparse.Namespace) -> dict:
    """Where a cold clip's time goes, per clip: path lookups, reads and decoding of its chunk
    files read in turn; the same reads after ``posix_fadvise(WILLNEED)`` of a batch's files;
    read by 4 threads; and the reads of the whole-trial ``.npy`` files. Page cache dropped
    before each."""
    from concurrent.futures import ThreadPoolExecutor

    from numcodecs import blosc, zstd

    import sensorium_data as sd

    ds = sd.open_mouse(args.store)
    train = np.flatnonzero(ds.tier.values == "train")
    rng = np.random.default_rng(args.seed)
    n = min(args.clips // 4, len(train))
    positions = rng.choice(train, n, replace=False)
    starts = rng.integers(0, 300 - args.frames + 1, n)
    step = json.loads((args.store / "responses/zarr.json").read_text())[
        "chunk_grid"]["configuration"]["chunk_shape"][-1]

    def files(pos: int, start: int) -> list[Path]:
        out = [args.store / "videos/c" / str(pos) / "0/0/0"]
        for k in range(start // step, (start + args.frames - 1) // step + 1):
            out.append(args.store / "responses/c" / str(pos) / "0" / str(k))
        return out

    plan = [files(int(p), int(s)) for p, s in zip(positions, starts, strict=True)]
    res: dict = {"clips": n, "cache": "cold" if drop_caches() else "warm"}
    t_open = t_read = t_decode = 0.0
    nbytes = 0
    for paths in plan:
        for path in paths:
            t0 = time.perf_counter()
            f = open(path, "rb")  # the path lookup, timed apart from the read
            t1 = time.perf_counter()
            raw = f.read()
            f.close()
            t2 = time.perf_counter()
            (zstd if "videos" in path.parts else blosc).decompress(raw)
            t3 = time.perf_counter()
            t_open, t_read, t_decode = t_open + t1 - t0, t_read + t2 - t1, t_decode + t3 - t2
            nbytes += len(raw)
    res.update(open_ms=1e3 * t_open / n, read_ms=1e3 * t_read / n,
               decode_ms=1e3 * t_decode / n, mb_per_clip=nbytes / n / MB)
    drop_caches()
    t_advise = t_read = 0.0
    for b in range(0, n, args.batch):
        batch = [path for paths in plan[b:b + args.batch] for path in paths]
        t0 = time.perf_counter()
        for path in batch:
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            os.close(fd)
        t1 = time.perf_counter()
        for path in batch:
            path.read_bytes()
        t_advise, t_read = t_advise + t1 - t0, t_read + time.perf_counter() - t1
    res.update(fadvise_ms=1e3 * t_advise / n, read_after_fadvise_ms=1e3 * t_read / n)
    drop_caches()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        for b in range(0, n, args.batch):
            list(pool.map(Path.read_bytes,
                          [path for paths in plan[b:b + args.batch] for path in paths]))
    res["threads_read_ms"] = 1e3 * (time.perf_counter() - t0) / n
    drop_caches()
    t0, nbytes = time.perf_counter(), 0
    for trial in ds.trial.values[positions]:
        for name in ("videos", "responses", "behavior", "pupil_center"):
            nbytes += len((args.tree / "data" / name / f"{trial}.npy").read_bytes())
    res.update(npy_read_ms=1e3 * (time.perf_counter() - t0) / n, npy_mb_per_clip=nbytes / n / MB)
    res["clips_per_s"], res["peak_rss_mb"] = float("nan"), rss_tree_mb()
    return res


def child(args: argparse.Namespace) -> dict:
    name = args.case
    if name == "io":
        return case_io(args)
    if name == "bound":
        return case_bound(args)
    if name == "memory":
        return case_memory(args)
    if name.startswith("five-mice"):
        return case_five_mice(args, int(name[-1]))
    kind, workers = name.split("-w")
    return case_loader(args, kind, int(workers))


# --------------------------------------------------------------------------------------
# The parent: cases in order, cold and warm, then the report
# --------------------------------------------------------------------------------------


def five_stores(store: Path, out: Path, n: int = 4) -> None:
    """Hard-linked copies of ``store`` under other mouse names (only the root metadata differs)."""
    for k in range(n):
        copy = out / f"mouse-{k}.zarr"
        if copy.exists():
            continue
        subprocess.run(["cp", "-al", str(store), str(copy)], check=True)
        meta = copy / "zarr.json"
        doc = json.loads(meta.read_text())
        meta.unlink()  # break the hard link before writing
        doc["attributes"]["mouse"] = f"{doc['attributes']['mouse']}-copy{k}"
        meta.write_text(json.dumps(doc))


def run_case(args: argparse.Namespace, name: str, cold: bool) -> dict:
    cmd = [sys.executable, __file__, "--case", name, "--tree", str(args.tree),
           "--store", str(args.store), "--out", str(args.out), "--clips", str(args.clips),
           "--batch", str(args.batch), "--frames", str(args.frames), "--seed", str(args.seed)]
    if not cold:
        cmd.append("--warm")
    dropped = drop_caches() if cold else False
    load = os.getloadavg()[0]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        msg = f"case {name} failed:\n{out.stderr[-3000:]}"
        raise RuntimeError(msg)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(case=name, load_before=load)
    res.setdefault("cache", "cold" if dropped else "warm")  # the io case drops it itself
    print(f"{name:>12} {res['cache']:>4}: {res['clips_per_s']:9.1f} clips/s, "
          f"peak {res['peak_rss_mb']:7.0f} MB", flush=True)
    return res


def report(results: list[dict], args: argparse.Namespace) -> str:
    def get(case: str, cache: str) -> dict:
        return next(r for r in results if r["case"] == case and r["cache"] == cache)

    lines = ["| case | cache | clips/s | first batch (s) | peak RSS, summed over the process "
             "tree (MB) | PSS of the tree at the end (MB) |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        first = f"{r['first_batch_s']:.2f}" if "first_batch_s" in r else ""
        pss = f"{r['pss_mb']:.0f}" if "pss_mb" in r else ""
        lines.append(f"| {r['case']} | {r['cache']} | {r['clips_per_s']:.1f} | {first} | "
                     f"{r['peak_rss_mb']:.0f} | {pss} |")
    ratios = []
    for cache in ("cold", "warm"):
        for w in ("0", "2"):
            try:
                z, n = get(f"zarr-w{w}", cache), get(f"npy-w{w}", cache)
            except StopIteration:
                continue
            ratios.append(f"- zarr / npy, {w} workers, {cache}: "
                          f"{z['clips_per_s'] / n['clips_per_s']:.1f}x")
    try:
        m, b = get("memory", "warm"), get("bound", "warm")
        ratios.append(f"- in memory / bound: {m['clips_per_s'] / b['clips_per_s']:.2f} "
                      f"(load of the tier {m['load_s']:.0f} s)")
    except StopIteration:
        pass
    machine = (f"{platform.node()}, {os.cpu_count()} CPUs, "
               f"{psutil.virtual_memory().total / 1e9:.0f} GB, Python {platform.python_version()}")
    return "\n".join([f"Machine: {machine}", "", *lines, "", *ratios])


def io_report(r: dict) -> str:
    return "\n".join([
        f"Cold reads, per clip ({r['clips']} clips, page cache {r['cache']}):",
        f"- chunk files read in turn: {r['mb_per_clip']:.2f} MB; open {r['open_ms']:.2f} ms, "
        f"read {r['read_ms']:.2f} ms, decode {r['decode_ms']:.2f} ms",
        f"- posix_fadvise(WILLNEED) of a batch's files first: the advice "
        f"{r['fadvise_ms']:.2f} ms, then the reads {r['read_after_fadvise_ms']:.2f} ms",
        f"- read by 4 threads: {r['threads_read_ms']:.2f} ms",
        f"- whole-trial .npy files: {r['npy_mb_per_clip']:.2f} MB read in "
        f"{r['npy_read_ms']:.2f} ms",
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", type=Path, required=True, help="the recording's file tree")
    p.add_argument("--store", type=Path, help="its zarr store (default: <tree>.zarr)")
    p.add_argument("--out", type=Path, default=Path("/tmp/loaderbench"))
    p.add_argument("--clips", type=int, default=320, help="clips per case (default 320)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", nargs="*", default=None,
                   help=f"subset of {(*CASES, 'five-mice-w0', 'five-mice-w2', 'io')}")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.store = args.store or args.tree.with_name(args.tree.name + ".zarr")
    if args.case:
        print(json.dumps(child(args)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    five_stores(args.store, args.out)
    plan: list[tuple[str, bool]] = []
    for name in args.cases or CASES:
        if name in ("bound", "memory", "io"):
            plan.append((name, False))
        elif name.startswith("five-mice"):
            plan.append((name, True))
        else:
            plan += [(name, True), (name, False)]
    if not args.cases:
        plan += [("five-mice-w0", True), ("five-mice-w2", True), ("io", False)]
    results = [run_case(args, name, cold) for name, cold in plan]
    text = report([r for r in results if r["case"] != "io"], args)
    for r in results:
        if r["case"] == "io":
            text += "\n\n" + io_report(r)
    print(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "report.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
