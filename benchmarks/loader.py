"""Training-loader benchmark: clips per second and peak memory, side by side with the peers.

On one real-size recording (the tree written by ``benchmarks/convert.py``'s generator: 8,000
neurons, 700 trials of 324 frames, float64 ``.npy`` as released), batches of ``--batch`` clips
of ``--frames`` frames from the train tier, official normalization and behaviour channels, each
case in a fresh interpreter, with 0 and 2 DataLoader workers (``-w0`` / ``-w2``):

* ``mapped`` (a): :class:`sensorium_data.ClipDataset` streaming from the store of today's
  schema (the mapped layout), not ``in_memory``;
* ``kit`` (b): the 2023 starter kit's chain, neuralpredictors' ``MovieFileTreeDataset`` with
  ``NeuroNormalizer``, ``Subsample``, ``CutVideos``, ``ChangeChannelsOrder``, ``Subsequence``,
  ``ExpandChannels``, ``AddBehaviorAsChannels`` and ``ToTensor``, in the order of the kit's
  ``mouse_video_loader`` (``use_cache=False``: its cache keeps every trial read in RAM);
  neuralpredictors is not a dependency: ``--neuralpredictors`` names a checkout (it needs
  ``h5py`` and ``scikit-image``);
* ``npy`` (c): bare ``np.load`` of the trial's four files (videos, responses, behavior,
  pupil_center), then the window, no normalization;
* ``bound`` (d): one copy of a clip's float32 bytes (videos with two behaviour channels,
  responses, behaviour) in memory, from 64 different sources so that it is not served from
  the CPU cache;
* ``zarr``: ``ClipDataset`` on a store of schema 1 (``--old-store``: Blosc/zstd chunks,
  decoded), the path of the previous version;
* ``memory``: ``ClipDataset(in_memory=True)`` (the tier loaded once; load time reported apart);
* ``five-mice``: one ``ClipDataset`` over five stores (hard-linked copies of ``--store`` with
  other mouse names), 0 and 2 workers: peak resident memory of the process tree.

Cases marked cold run right after dropping the page cache (``echo 3 >
/proc/sys/vm/drop_caches``, root only; the report says so where that was not allowed). Warm
cases read every clip of their plan once before timing it. Clip rates are steady-state: the
first batch (worker start-up, store opening) is timed apart.

Usage::

    python -c "import sys; sys.path.insert(0, 'benchmarks'); import convert, pathlib; \\
        convert.generate(pathlib.Path('/tmp/loaderbench'), 8000, 700, 324, 'float64', 0)"
    python -c "import sensorium_data as sd; sd.convert('/tmp/loaderbench/<tree>', \\
        '/tmp/loaderbench/v2.zarr')"
    python benchmarks/loader.py --tree /tmp/loaderbench/dynamic90000-1-1-Video-convbench \\
        --store /tmp/loaderbench/v2.zarr --old-store /tmp/loaderbench/v1.zarr \\
        --neuralpredictors /tmp/neuralpredictors --out /tmp/loaderbench/run1
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
CASES = ("bound", "mapped-w0", "mapped-w2", "kit-w0", "kit-w2", "npy-w0", "npy-w2")
EXTRA = ("zarr-w0", "zarr-w2", "memory", "five-mice-w0", "five-mice-w2", "interleaved")


# --------------------------------------------------------------------------------------
# The peers: bare whole-trial .npy files, and the starter kit's chain
# --------------------------------------------------------------------------------------


class NpyClips:
    """Clips cut from whole-trial ``.npy`` files, loaded bare (no normalization)."""

    def __init__(self, tree: Path, frames: int, seed: int):
        self.tree = tree
        self.frames = frames
        self.rng = np.random.default_rng(seed)  # a copy per worker, like Subsequence's draws
        tiers = np.load(tree / "meta/trials/tiers.npy")
        self.trials = np.flatnonzero(tiers == "train")

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, i: int) -> dict:
        import torch

        trial = int(self.trials[i])
        data = self.tree / "data"
        videos = np.load(data / "videos" / f"{trial}.npy")  # (36, 64, T)
        responses = np.load(data / "responses" / f"{trial}.npy")  # (N, T)
        behavior = np.load(data / "behavior" / f"{trial}.npy")  # (2, T)
        pupil = np.load(data / "pupil_center" / f"{trial}.npy")  # (2, T)
        length = int(np.argmax(np.isnan(videos[0, 0]))) or videos.shape[-1]
        start = int(self.rng.integers(0, length - self.frames + 1))
        window = slice(start, start + self.frames)
        return {
            "videos": torch.from_numpy(videos[..., window]),
            "responses": torch.from_numpy(responses[:, window]),
            "behavior": torch.from_numpy(np.concatenate([behavior[:, window], pupil[:, window]])),
            "trial": trial, "start": start,
        }


def kit_dataset(tree: Path, frames: int):
    """The 2023 starter kit's training dataset of one recording (``mouse_video_loader`` with
    behaviour, pupil centre, normalization, full resolution, no cache)."""
    from neuralpredictors.data.datasets import MovieFileTreeDataset
    from neuralpredictors.data.transforms import (
        AddBehaviorAsChannels,
        ChangeChannelsOrder,
        CutVideos,
        ExpandChannels,
        NeuroNormalizer,
        ScaleInputs,
        Subsample,
        Subsequence,
        ToTensor,
    )

    keys = ["videos", "responses", "behavior", "pupil_center"]
    dataset = MovieFileTreeDataset(str(tree), *keys, use_cache=False)
    neurons = np.arange(len(dataset.neurons.cell_motor_coordinates))
    dataset.transforms.extend([
        NeuroNormalizer(dataset, exclude=None, in_name="videos"),
        ScaleInputs(scale=1, in_name="videos", channel_axis=-1),
        Subsample(neurons, target_index=0),
        CutVideos(max_frame=None, frame_axis=dict.fromkeys(keys, -1), target_groups=keys),
        ChangeChannelsOrder((2, 0, 1), in_name="videos"),
        *(ChangeChannelsOrder((1, 0), in_name=k) for k in keys[1:]),
        Subsequence(frames=frames, channel_first=(), offset=-1),
        *(ChangeChannelsOrder((1, 0), in_name=k) for k in keys[1:]),
        ExpandChannels("videos"),
        AddBehaviorAsChannels("videos"),
        ToTensor(False),
    ])
    train = np.flatnonzero(dataset.trial_info.tiers == "train")
    return dataset, train


# --------------------------------------------------------------------------------------
# One case, in a child interpreter
# --------------------------------------------------------------------------------------


def _tree() -> list[psutil.Process]:
    proc = psutil.Process()
    return [proc, *proc.children(recursive=True)]


def rss_tree_mb(tree: list[psutil.Process] | None = None) -> float:
    """Resident memory of this process and its workers (``tree``, default: found now), summed
    (counts shared pages, such as torch's libraries, once per process)."""
    total = 0
    for proc in tree or _tree():
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
    tree = _tree()  # the workers are up; finding them scans /proc, too slow for every batch
    t1 = time.perf_counter()
    clips = 0
    for _ in range(batches - 1):
        batch = next(it)
        clips += len(batch["responses"] if isinstance(batch, dict) else batch.responses)
        peak = max(peak, rss_tree_mb(tree))
    rest = time.perf_counter() - t1
    return {"first_batch_s": first, "clips": clips, "seconds": rest,
            "clips_per_s": clips / rest, "peak_rss_mb": peak, "pss_mb": pss_tree_mb()}


def loader_for(dataset, args: argparse.Namespace, workers: int, indices=None, collate=None):
    """A shuffling DataLoader as the trainer (or the peer) builds it; the same order in the
    warm-up pass and the timed one."""
    import torch

    generator = torch.Generator().manual_seed(args.seed)
    sampler = None
    if indices is not None:  # the kit's way: a random sampler over the train trials
        sampler = torch.utils.data.SubsetRandomSampler(indices.tolist(), generator=generator)
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=sampler is None, sampler=sampler,
        num_workers=workers, collate_fn=collate, drop_last=True,
        generator=generator if sampler is None else None,
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
    from sensorium_data import ClipDataset, collate

    t0 = time.perf_counter()
    ds = ClipDataset(args.store, frames=args.frames, in_memory=True, seed=args.seed)
    load_s = time.perf_counter() - t0
    res = drain(loader_for(ds, args, 0, collate=collate), args.clips // args.batch)
    res["load_s"] = load_s
    return res


def case_loader(args: argparse.Namespace, kind: str, workers: int) -> dict:
    indices, collate = None, None
    if kind in ("mapped", "zarr"):
        from sensorium_data import ClipDataset
        from sensorium_data import collate as sd_collate

        store = args.store if kind == "mapped" else args.old_store
        dataset = ClipDataset(store, frames=args.frames, seed=args.seed)
        collate = sd_collate
    elif kind == "kit":
        sys.path.insert(0, str(args.neuralpredictors))
        dataset, indices = kit_dataset(args.tree, args.frames)
    else:
        dataset = NpyClips(args.tree, args.frames, args.seed)
    batches = args.clips // args.batch
    if args.warm:
        drain(loader_for(dataset, args, workers, indices, collate), batches)
    return drain(loader_for(dataset, args, workers, indices, collate), batches)


def case_five_mice(args: argparse.Namespace, workers: int) -> dict:
    from sensorium_data import ClipDataset, collate

    stores = [args.store, *sorted(args.out.glob("mouse-*.zarr"))]
    dataset = ClipDataset(stores, frames=args.frames, seed=args.seed)
    res = drain(loader_for(dataset, args, workers, collate=collate), args.clips // args.batch)
    res["mice"] = len(stores)
    return res


def case_interleaved(args: argparse.Namespace) -> dict:
    """(a), (b), (c) and (d) in one process, no workers, warm, one batch of each in turn for
    ``--clips / --batch`` turns: every reader sees the same load, which on a shared machine
    moves more between cases run one after the other than within a turn."""
    import torch

    from sensorium_data import ClipDataset, collate

    sys.path.insert(0, str(args.neuralpredictors))
    kit, kit_train = kit_dataset(args.tree, args.frames)
    mapped = ClipDataset(args.store, frames=args.frames, seed=args.seed)
    npy = NpyClips(args.tree, args.frames, args.seed)
    default_collate = torch.utils.data.default_collate
    neurons = mapped.n_neurons[mapped.mice[0]]
    size = args.frames * (neurons + 3 * HEIGHT * WIDTH + 4)
    sources = np.random.default_rng(0).random((64, size), dtype=np.float32)
    rng = np.random.default_rng(args.seed)

    def bound(_: np.ndarray) -> None:
        for _ in range(args.batch):
            np.copyto(np.empty(size, np.float32), sources[int(rng.integers(64))])

    readers = {
        "(a) mapped ClipDataset": lambda ix: collate(mapped.__getitems__(ix.tolist())),
        "(b) starter kit": lambda ix: default_collate([kit[int(kit_train[i % len(kit_train)])]
                                                       for i in ix]),
        "(c) bare np.load": lambda ix: default_collate([npy[int(i)] for i in ix]),
        "(d) bound": bound,
    }
    turns = args.clips // args.batch
    plan = rng.integers(0, len(npy), (turns + 1, args.batch))
    for fn in readers.values():  # warm the page cache and the code on the plan's trials
        for ix in plan:
            fn(ix)
    seconds: dict[str, list[float]] = {name: [] for name in readers}
    for ix in plan[1:]:
        for name, fn in readers.items():
            t0 = time.perf_counter()
            fn(ix)
            seconds[name].append(time.perf_counter() - t0)
    rates = {name: args.batch / float(np.median(s)) for name, s in seconds.items()}
    return {"clips_per_s": rates["(a) mapped ClipDataset"], "rates": rates, "turns": turns,
            "peak_rss_mb": rss_tree_mb()}


def child(args: argparse.Namespace) -> dict:
    name = args.case
    if name == "interleaved":
        return case_interleaved(args)
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


def run_case(args: argparse.Namespace, name: str, cold: bool) -> dict | None:
    """One case in a fresh interpreter; None (reported) if it fails or outlasts
    ``--case-timeout``."""
    cmd = [sys.executable, __file__, "--case", name, "--tree", str(args.tree),
           "--store", str(args.store), "--out", str(args.out), "--clips", str(args.clips),
           "--batch", str(args.batch), "--frames", str(args.frames), "--seed", str(args.seed)]
    if args.old_store:
        cmd += ["--old-store", str(args.old_store)]
    if args.neuralpredictors:
        cmd += ["--neuralpredictors", str(args.neuralpredictors)]
    if not cold:
        cmd.append("--warm")
    dropped = drop_caches() if cold else False
    load = os.getloadavg()[0]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        print(f"{name:>13}: stopped after {args.case_timeout} s, left out", flush=True)
        return None
    if out.returncode:
        print(f"{name:>13}: failed, left out:\n{out.stderr[-3000:]}", flush=True)
        return None
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(case=name, load_before=load, cache="cold" if dropped else "warm")
    print(f"{name:>13} {res['cache']:>4}: {res['clips_per_s']:9.1f} clips/s, "
          f"peak {res['peak_rss_mb']:7.0f} MB, load {load:.1f}", flush=True)
    return res


def median_rounds(runs: list[dict]) -> list[dict]:
    """One result per (case, cache), its numbers the medians over the rounds, in plan order."""
    keys = list(dict.fromkeys((r["case"], r["cache"]) for r in runs))
    out = []
    for case, cache in keys:
        same = [r for r in runs if (r["case"], r["cache"]) == (case, cache)]
        res = dict(same[0], rounds=len(same),
                   clips_per_s_all=[round(r["clips_per_s"], 1) for r in same])
        for key, value in same[0].items():
            if isinstance(value, float):
                res[key] = float(np.median([r[key] for r in same]))
        out.append(res)
    return out


def disk_mb(path: Path) -> float:
    """Bytes of the files under ``path`` (as stored: ``du``), in MB."""
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[0]) / MB


def ratios(results: list[dict], args: argparse.Namespace) -> list[str]:
    """The issue's targets, as ratios of cases of this run."""
    rate = {(r["case"], r["cache"]): r["clips_per_s"] for r in results}
    peak = {r["case"]: r["peak_rss_mb"] for r in results}
    lines = []

    def line(text: str, a: tuple[str, str], b: tuple[str, str], target: float) -> None:
        if a in rate and b in rate:
            x = rate[a] / rate[b]
            lines.append(f"- {text}: {x:.2f}x (target >= {target:g}x: "
                         f"{'met' if x >= target else 'MISSED'})")

    for w in ("0", "2"):
        line(f"(a) / (b), warm, {w} workers", (f"mapped-w{w}", "warm"), (f"kit-w{w}", "warm"), 20)
        line(f"(a) / (c), warm, {w} workers", (f"mapped-w{w}", "warm"), (f"npy-w{w}", "warm"), 3)
        line(f"(a) / (c), cold, {w} workers", (f"mapped-w{w}", "cold"), (f"npy-w{w}", "cold"), 5)
        line(f"(a) / (d), warm, {w} workers", (f"mapped-w{w}", "warm"), ("bound", "warm"), 0.3)
        line(f"(a) / schema 1 store, warm, {w} workers", (f"mapped-w{w}", "warm"),
             (f"zarr-w{w}", "warm"), 1)
    for cache in ("warm", "cold"):
        line(f"(a) 2 workers / 0 workers, {cache}", ("mapped-w2", cache), ("mapped-w0", cache),
             1.6)
    for w in ("0", "2"):
        if f"five-mice-w{w}" in peak:
            mb = peak[f"five-mice-w{w}"]
            lines.append(f"- five mice, {w} workers: peak RSS of the process tree {mb:.0f} MB "
                         f"(target < 1,000 MB: {'met' if mb < 1000 else 'MISSED'})")
    if args.old_store:
        new, old = disk_mb(args.store), disk_mb(args.old_store)
        verdict = "met" if new / old <= 1.5 else "MISSED"
        lines.append(f"- store on disk: {new:.0f} MB against {old:.0f} MB for schema 1: "
                     f"{new / old:.2f}x (target <= 1.5x: {verdict})")
    return lines


def interleaved_report(r: dict) -> str:
    rates = r["rates"]
    a = rates["(a) mapped ClipDataset"]
    lines = [f"Interleaved, one process, no workers, warm ({r['turns']} turns of one batch each; "
             "median batch):", "", "| reader | clips/s | (a) / it |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:.1f} | {a / rate:.2f} |" for name, rate in rates.items()]
    return "\n".join(lines)


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = ["| case | cache | clips/s (median) | each round | first batch (s) | peak RSS, "
             "summed over the process tree (MB) | PSS of the tree at the end (MB) | load "
             "average before |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in results:
        first = f"{r['first_batch_s']:.2f}" if "first_batch_s" in r else ""
        pss = f"{r['pss_mb']:.0f}" if "pss_mb" in r else ""
        each = ", ".join(f"{x:g}" for x in r["clips_per_s_all"])
        lines.append(f"| {r['case']} | {r['cache']} | {r['clips_per_s']:.1f} | {each} | {first} "
                     f"| {r['peak_rss_mb']:.0f} | {pss} | {r['load_before']:.1f} |")
    machine = (f"{platform.node()}, {os.cpu_count()} CPUs, "
               f"{psutil.virtual_memory().total / 1e9:.0f} GB, Python {platform.python_version()}")
    return "\n".join([f"Machine: {machine}", "", *lines, "", *ratios(results, args)])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", type=Path, required=True, help="the recording's file tree")
    p.add_argument("--store", type=Path, required=True, help="its store (today's schema)")
    p.add_argument("--old-store", type=Path, help="its store of schema 1, for the zarr cases")
    p.add_argument("--neuralpredictors", type=Path,
                   help="a checkout of sinzlab/neuralpredictors, for the kit cases")
    p.add_argument("--out", type=Path, default=Path("/tmp/loaderbench"))
    p.add_argument("--clips", type=int, default=320, help="clips per case (default 320)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1,
                   help="run the plan this many times in turn; the report gives medians "
                        "(on a shared machine every case then sees the same load)")
    p.add_argument("--case-timeout", type=float, default=900,
                   help="seconds after which a case is stopped and left out of the report")
    p.add_argument("--cases", nargs="*", default=None, help=f"subset of {CASES + EXTRA}")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(child(args)))
        return
    cases = args.cases or [*CASES, "five-mice-w0", "five-mice-w2",
                           *(["zarr-w0", "zarr-w2"] if args.old_store else [])]
    unknown = sorted(set(cases) - set(CASES + EXTRA))
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {CASES + EXTRA}")
    if any(c.startswith("kit") for c in cases) and not args.neuralpredictors:
        p.error("the kit cases need --neuralpredictors PATH (a checkout of sinzlab/"
                "neuralpredictors; pip install h5py scikit-image)")
    args.out.mkdir(parents=True, exist_ok=True)
    if any(c.startswith("five-mice") for c in cases):
        five_stores(args.store, args.out)
    plan: list[tuple[str, bool]] = []
    for name in cases:
        if name in ("bound", "memory", "interleaved"):
            plan.append((name, False))
        elif name.startswith("five-mice"):
            plan.append((name, True))
        else:
            plan += [(name, True), (name, False)]
    runs = [run_case(args, name, cold) for _ in range(args.rounds) for name, cold in plan]
    results = median_rounds([r for r in runs if r is not None])
    text = report(results, args)
    for r in results:
        if r["case"] == "interleaved":
            text += "\n\n" + interleaved_report(r)
    print(text)
    (args.out / "results.json").write_text(json.dumps({"runs": runs, "median": results},
                                                      indent=1))
    (args.out / "report.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
