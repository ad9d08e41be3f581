"""Training throughput on a GPU: fp32 eager against bf16 autocast with ``torch.compile``.

Two measurements, at the real scale of the 2023 benchmark (five mice of ``--neurons`` neurons,
batches of ``--batch`` clips per mouse, one optimizer step per five batches; each model gets
its own recipe's input, :data:`INPUTS`: the baselines 80 frames of video, dilation and running;
ViV1T 140 frames and Dynamic-V1FM 30 frames, each with the pupil position as two more
channels; DwiseNeuro 5 channels x 16
frames at step 2 on a 64 x 64 canvas; ``--frames`` overrides the frames):

* **step**: the trainer's own epoch function (``train_epoch``) on batches already on the
  device, for each model of ``--models`` and each mode of ``--modes`` (``fp32``: eager float32;
  ``bf16``: eager under bf16 autocast; ``bf16-compile``: bf16 autocast and ``torch.compile``).
  Clips per second over ``--steps`` optimizer steps after ``--warmup`` steps (compilation
  happens there and is timed apart), and the peak GPU memory the steps allocated.
* **loader**: the same epoch function fed by the trainer's ``DataLoader`` from zarr stores
  (five hard-linked copies of one synthetic recording of real size, ``benchmarks/convert.py``'s
  generator, ``--trials`` trials, in the mapped layout ``convert`` writes), for each
  ``--workers`` count, in the fastest mode. The trainer's path in full: batches written in
  place by ``ClipDataset``, pinned by the DataLoader on CUDA, and copied to the GPU by
  ``train_epoch``'s ``on_device`` while the batch before trains. If its clips per second match
  the step's, the loader keeps the GPU busy.

* **attention**: for ViV1T, which of SDPA's kernels (flash, memory-efficient, math) accept its
  attention (11 heads x 48 dims over 435 spatial tokens) in fp32 and bf16.

Results print as markdown and go to ``<out>/gpu.json``.

Usage, on the GPU machine (the packages its image lacks: ``bash
../shared/tools/device-wheels.sh psutil``, then the install line it prints)::

    python benchmarks/gpu.py --out /tmp/gpubench
    python benchmarks/gpu.py --out /tmp/gpubench --models factorized_baseline --skip-loader
    python benchmarks/gpu.py --out /tmp/gpubench --models factorized_baseline viv1t \
        --batch 6 --skip-loader

On a CPU, a seconds-long check that the script runs::

    python benchmarks/gpu.py --device cpu --neurons 50 --batch 2 --frames 20 --steps 1 \\
        --warmup 1 --modes fp32 --models ln --trials 16 --workers 0 --width 0.125
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("fp32", "bf16", "bf16-compile")
MICE = 5
#: Input of a model that does not take the baselines' clips: channels, frames (--frames
#: overrides them), frame height and width, and the loader options that make them.
DWISENEURO_INPUT: dict[str, Any] = {
    "channels": 5, "frames": 16, "size": (64, 64),
    "loader": {"frame_step": 2, "canvas": 64, "pupil_channels": True, "normalize": None,
               "relu_responses": True}}
VIV1T_INPUT: dict[str, Any] = {"channels": 5, "frames": 140, "size": (36, 64),
                               "loader": {"normalize": "official", "pupil_channels": True}}
INPUTS: dict[str, dict[str, Any]] = {"dwiseneuro": DWISENEURO_INPUT,
                                     "dwiseneuro_distilled": DWISENEURO_INPUT,
                                     "viv1t": VIV1T_INPUT,
                                     "dynamic_v1fm": {**VIV1T_INPUT, "frames": 30}}
BASELINE_INPUT: dict[str, Any] = {"channels": 3, "frames": 80, "size": (36, 64),
                                  "loader": {"normalize": "official"}}


def model_input(model: str, frames: int | None) -> dict[str, Any]:
    """The clip shape (channels, frames, height, width) and loader options of ``model``."""
    spec = INPUTS.get(model, BASELINE_INPUT)
    return {**spec, "frames": frames or spec["frames"]}


def widths(model: str, factor: float) -> dict[str, Any]:
    """Model options that narrow a model's channels by ``factor`` (1: the published widths)."""
    if factor == 1:
        return {}
    import sensorium_models as sm

    config: Any = sm.model_config(model)
    if model == "factorized_baseline":
        return {"hidden_channels": [max(1, round(c * factor)) for c in config.hidden_channels]}
    if model == "dynamic_v1fm":  # channels a multiple of 2 x heads (the patch's 2 frames)
        step = 2 * config.num_heads
        return {"emb_dim": max(step, round(config.emb_dim * factor / step) * step),
                "mlp_dim": max(1, round(config.mlp_dim * factor))}
    if model == "gru_baseline":
        return {"channels": max(1, round(config.channels * factor)),
                "gru_channels": max(1, round(config.gru_channels * factor))}
    if model == "viv1t":  # narrower tokens and MLPs, fewer heads of the same width
        return {"embed_dim": max(1, round(config.embed_dim * factor)),
                "heads": max(1, round(config.heads * factor)),
                "mlp_dim": max(1, round(config.mlp_dim * factor))}
    if model.startswith("dwiseneuro"):  # cortex widths stay multiples of its groups
        def narrow(c: int) -> int:
            return max(1, round(c * factor))

        def even(c: int) -> int:
            return max(config.cortex_groups, round(c * factor / config.cortex_groups)
                       * config.cortex_groups)

        return {"stem_channels": narrow(config.stem_channels),
                "channels": [*map(narrow, config.channels[:-1]), even(config.channels[-1])],
                "cortex": [even(c) for c in config.cortex]}
    return {"channels": max(1, round(config.channels * factor))}


def specs(neurons: int, seed: int, mice: int = MICE) -> dict[str, Any]:
    import sensorium_models as sm

    rng = np.random.default_rng(seed)
    return {f"mouse-{k}": sm.MouseSpec(n_neurons=neurons, coords=rng.uniform(0, 1000, (neurons, 2)),
                                       mean_response=np.full(neurons, 0.5, np.float32))
            for k in range(mice)}


def synthetic_batches(mice: dict[str, Any], args: argparse.Namespace, device: Any,
                      model: str = "factorized_baseline") -> list[dict[str, Any]]:
    """One batch per mouse, on the device, in the loader's layout (videos, behavior, responses)."""
    import torch

    g = torch.Generator().manual_seed(args.seed)
    shape = model_input(model, args.frames)
    out = []
    for name, spec in mice.items():
        b, f = args.batch, shape["frames"]
        out.append({
            "mouse": name,
            "videos": torch.randn(b, shape["channels"], f, *shape["size"], generator=g).to(device),
            "behavior": torch.randn(b, 4, f, generator=g).to(device),
            "responses": torch.rand(b, spec.n_neurons, f, generator=g).to(device),
        })
    return out


def build(model_name: str, mice: dict[str, Any], args: argparse.Namespace, device: Any,
          mode: str, in_channels: int = 3) -> tuple[Any, Any, Any, Any]:
    import torch

    import sensorium_models as sm
    from sensorium_models.training.compiling import compile_model
    from sensorium_models.training.predict import autocast_for

    torch.manual_seed(args.seed)
    model = sm.create_model(model_name, mice=mice, in_channels=in_channels,
                            **widths(model_name, args.width)).to(device)
    compiled = mode == "bf16-compile" and device.type == "cuda"  # as the trainer does
    forward = compile_model(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    autocast = autocast_for(device, amp=mode != "fp32")
    return model, forward, optimizer, autocast


def run_steps(model: Any, forward: Any, optimizer: Any, autocast: Any, batches: Any,
              steps: int, device: Any) -> float:
    """Seconds for ``steps`` optimizer steps of ``train_epoch`` over ``batches`` (an iterator
    of one batch per mouse, in mouse order)."""
    import torch

    from sensorium_models.training.loop import train_epoch

    scale = dict.fromkeys(model.mice, 1.0)
    n_mice = len(model.mice)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    train_epoch(model, forward, itertools.islice(batches, steps * n_mice), optimizer,
                loss_scale=scale, batches_per_step=n_mice, device=device, autocast=autocast)
    sync()
    return time.perf_counter() - t0


def measure_step(model_name: str, mode: str, args: argparse.Namespace, device: Any
                 ) -> dict[str, Any]:
    import torch

    mice = specs(args.neurons, args.seed, args.mice)
    shape = model_input(model_name, args.frames)
    model, forward, optimizer, autocast = build(model_name, mice, args, device, mode,
                                                shape["channels"])
    batches = synthetic_batches(mice, args, device, model_name)
    warmup = run_steps(model, forward, optimizer, autocast, itertools.cycle(batches),
                       args.warmup, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = run_steps(model, forward, optimizer, autocast, itertools.cycle(batches),
                        args.steps, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    clips = args.steps * args.mice * args.batch
    return {"model": model_name, "mode": mode, "frames": shape["frames"],
            "channels": shape["channels"], "warmup_s": warmup, "seconds": seconds,
            "clips_per_s": clips / seconds, "peak_gib": peak,
            "parameters": sum(p.numel() for p in model.parameters())}


def stores(args: argparse.Namespace) -> list[Path]:
    """Five zarr stores of one synthetic recording of real size (generated once under out)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from convert import NAME, generate
    from loader import five_stores

    import sensorium_data as sd

    tree = args.out / NAME
    if not tree.is_dir():
        t0 = time.perf_counter()
        generate(args.out, args.neurons, args.trials, 324, "float32", args.seed)
        print(f"generated a tree of {args.trials} trials x {args.neurons} neurons in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    store = sd.convert(tree, args.out / f"{NAME}.zarr", progress=False)
    copies = args.out / "copies"
    copies.mkdir(exist_ok=True)
    five_stores(store, copies, args.mice - 1)
    return [store, *sorted(copies.glob("mouse-*.zarr"))]


def measure_loader(model_name: str, mode: str, workers: int, paths: list[Path],
                   args: argparse.Namespace, device: Any) -> dict[str, Any]:
    import sensorium_data as sd
    import sensorium_models as sm
    from sensorium_models.training import data

    datasets = {}
    for path in paths:
        ds = sd.open_mouse(path)
        datasets[str(ds.attrs["mouse"])] = ds
    shape = model_input(model_name, args.frames)
    clips = sd.ClipDataset(list(datasets.values()), tier="train", frames=shape["frames"],
                           seed=args.seed, **shape["loader"])
    sampler = sd.MouseBatchSampler(clips, args.batch, mode="per_mouse", drop_last=True,
                                   seed=args.seed)
    mice = sm.mouse_specs(datasets)
    model, forward, optimizer, autocast = build(model_name, mice, args, device, mode,
                                                in_channels=clips.in_channels)
    loader = data.loader(clips, sampler, workers)  # persistent workers: started once

    def batches() -> Any:
        for epoch in itertools.count():
            clips.set_epoch(epoch)
            sampler.set_epoch(epoch)
            yield from loader

    stream = batches()
    warmup = run_steps(model, forward, optimizer, autocast, stream, args.warmup, device)
    seconds = run_steps(model, forward, optimizer, autocast, stream, args.steps, device)
    return {"model": model_name, "mode": mode, "workers": workers, "warmup_s": warmup,
            "seconds": seconds, "clips_per_s": args.steps * args.mice * args.batch / seconds,
            "pin_memory": loader.pin_memory}


def attention_kernels(device: Any, heads: int = 11, head_dim: int = 48, tokens: int = 435
                      ) -> list[dict[str, Any]]:
    """Which SDPA kernels take attention of this shape, per dtype: each kernel alone, forward
    and backward; an error means PyTorch would not pick it."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = []
    kernels = {"flash": SDPBackend.FLASH_ATTENTION, "memory-efficient":
               SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    for dtype, (name, kernel) in itertools.product((torch.float32, torch.bfloat16),
                                                   kernels.items()):
        q = torch.randn(8, heads, tokens, head_dim, device=device, dtype=dtype,
                        requires_grad=True)
        try:
            with sdpa_kernel(kernel):
                F.scaled_dot_product_attention(q, q, q).sum().backward()
            works, reason = True, ""
        except RuntimeError as e:
            works, reason = False, str(e).splitlines()[0][:120]
        out.append({"dtype": str(dtype).removeprefix("torch."), "kernel": name,
                    "works": works, "reason": reason})
    return out


def machine(device: Any) -> str:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (f"{name}; {platform.node()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} CPU threads")


def report(results: dict[str, Any]) -> str:
    lines = [f"Machine: {results['machine']}", f"Setting: {results['setting']}", "",
             "| model | clip (frames x channels) | mode | clips / s | peak GPU memory, GiB | "
             "warm-up (compile), s |",
             "|---|---|---|---:|---:|---:|"]
    for r in results["step"]:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(f"| {r['model']} | {r['frames']} x {r['channels']} | {r['mode']} | "
                     f"{r['clips_per_s']:.1f} | {peak} | {r['warmup_s']:.0f} |")
    for r in results.get("failed", []):
        lines.append(f"| {r['model']} | - | {r['mode']} | failed: {r['error'][:80]} | - | - |")
    if results["loader"]:
        lines += ["", "| model | mode | loader workers | clips / s from the stores | "
                      "against batches on the device |", "|---|---|---:|---:|---:|"]
        best = {(r["model"], r["mode"]): r["clips_per_s"] for r in results["step"]}
        for r in results["loader"]:
            ref = best.get((r["model"], r["mode"]))
            ratio = "-" if ref is None else f"{r['clips_per_s'] / ref:.2f}"
            lines.append(f"| {r['model']} | {r['mode']} | {r['workers']} | "
                         f"{r['clips_per_s']:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/gpubench"))
    p.add_argument("--device", default="auto", help="'auto' (CUDA if there is one), 'cuda', 'cpu'")
    p.add_argument("--models", nargs="+", default=["factorized_baseline", "gru_baseline"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--neurons", type=int, default=8000, help="neurons per mouse")
    p.add_argument("--mice", type=int, default=MICE, help="mice (one batch each per step)")
    p.add_argument("--batch", type=int, default=8, help="clips per batch (one mouse each)")
    p.add_argument("--frames", type=int, default=None,
                   help="frames per clip (default: the model's recipe, 80 or ViV1T's 140)")
    p.add_argument("--width", type=float, default=1.0,
                   help="channels as a fraction of the published widths (1: published)")
    p.add_argument("--warmup", type=int, default=3, help="optimizer steps before timing")
    p.add_argument("--steps", type=int, default=10, help="optimizer steps timed")
    p.add_argument("--skip-loader", action="store_true", help="only the step measurement")
    p.add_argument("--trials", type=int, default=120,
                   help="trials of the synthetic recording the loader reads")
    p.add_argument("--workers", nargs="+", type=int, default=[4, 8],
                   help="DataLoader worker counts to try")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from sensorium_models.training.predict import resolve_device

    device = resolve_device(args.device)
    if device.type != "cuda" and any(m != "fp32" for m in args.modes):
        print(f"note: on {device} bf16 autocast and compile are not applied (the trainer does "
              "neither off CUDA): every mode runs fp32 eager", flush=True)
    results: dict[str, Any] = {
        "machine": machine(device),
        "setting": f"{args.mice} mice x {args.neurons} neurons, batches of {args.batch} clips "
                   f"of {args.frames or 'each model' + chr(39) + 's'} frames, widths x "
                   f"{args.width:g}, {args.steps} steps timed "
                   f"after {args.warmup}",
        "step": [], "loader": [], "failed": [],
    }
    path = args.out / "gpu.json"
    if "viv1t" in args.models and device.type == "cuda":
        results["attention"] = attention_kernels(device)
    for model, mode in itertools.product(args.models, args.modes):
        print(f"step: {model} {mode}", flush=True)
        try:
            results["step"].append(measure_step(model, mode, args, device))
        except Exception as e:  # one failure (a compile error, say) must not cost the rest
            print(f"step: {model} {mode} failed: {type(e).__name__}: {e}", flush=True)
            results["failed"].append({"model": model, "mode": mode,
                                      "error": f"{type(e).__name__}: {str(e)[:300]}"})
        path.write_text(json.dumps(results, indent=1))
    if not args.skip_loader:
        paths = stores(args)
        for model in args.models:
            rows = [r for r in results["step"] if r["model"] == model]
            if not rows:  # every mode of it failed
                continue
            mode = max(rows, key=lambda r: r["clips_per_s"])["mode"]
            for workers in args.workers:
                print(f"loader: {model} {mode}, {workers} workers", flush=True)
                results["loader"].append(
                    measure_loader(model, mode, workers, paths, args, device))
                path.write_text(json.dumps(results, indent=1))
    print(report(results))


if __name__ == "__main__":
    main()
