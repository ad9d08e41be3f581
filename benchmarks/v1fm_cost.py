"""Dynamic-V1FM's cost on the CPU beside the factorized baseline, in one process.

For each model at its published width and its published input (Dynamic-V1FM: 30-frame clips
of 5 channels; the baseline: 80-frame clips of 3), one mouse of ``--neurons`` neurons:

* FLOPs of one clip's forward pass (``torch.utils.flop_counter.FlopCounterMode``: matmuls,
  convolutions and attention), core and readout apart;
* seconds per forward + backward of a batch of ``--batch`` clips, the two models alternating
  for ``--rounds`` rounds (median), so both see the same machine load;
* the process's peak resident memory after each model's rounds (``ru_maxrss``, cumulative).

Usage::

    python benchmarks/v1fm_cost.py --batch 1 --rounds 3
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

INPUTS = {"dynamic_v1fm": (5, 30), "factorized_baseline": (3, 80)}


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    import sensorium_models as sm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--neurons", type=int, default=7863, help="mouse F's neurons")
    p.add_argument("--flops-only", action="store_true", help="skip the timing")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    mice = {"F": sm.MouseSpec(n_neurons=args.neurons,
                              coords=rng.uniform(0, 1000, (args.neurons, 2)))}
    models, inputs = {}, {}
    for name, (channels, frames) in INPUTS.items():
        torch.manual_seed(0)
        models[name] = sm.create_model(name, mice=mice, in_channels=channels)
        inputs[name] = (torch.randn(args.batch, channels, frames, 36, 64),
                        torch.randn(args.batch, 4, frames))
    print(f"CPU, {platform.node()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; batch {args.batch}, {args.neurons} neurons")
    print("\n| model | clip | parameters | GFLOPs per clip (core / readout) |")
    print("|---|---|---:|---:|")
    for name, model in models.items():
        videos, behavior = (t[:1] for t in inputs[name])
        # The math backend of attention runs as matmuls the counter sees (it does not count
        # the CPU's fused attention kernel).
        with (torch.no_grad(), sdpa_kernel([SDPBackend.MATH]),
              FlopCounterMode(display=False) as counter):
            model.eval()(videos, mouse="F", behavior=behavior)
        flops = counter.get_flop_counts()
        total = sum(flops["Global"].values()) / 1e9
        core = sum(sum(v.values()) for k, v in flops.items() if k.endswith(".core")) / 1e9
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {videos.shape[2]} x {videos.shape[1]} ch | {params / 1e6:.2f} M | "
              f"{total:.1f} ({core:.1f} / {total - core:.2f}) |")
    if args.flops_only:
        return
    times: dict[str, list[float]] = {name: [] for name in models}
    peak = {}
    for _ in range(args.rounds):
        for name, model in models.items():
            model.train()
            videos, behavior = inputs[name]
            t0 = time.perf_counter()
            model(videos, mouse="F", behavior=behavior).sum().backward()
            times[name].append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
            peak[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("\n| model | forward + backward, s per batch (median) | against the baseline | "
          "peak RSS so far, GiB |")
    print("|---|---:|---:|---:|")
    base = statistics.median(times["factorized_baseline"])
    for name in models:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.2f} | {median / base:.2f} | {peak[name]:.2f} |")


if __name__ == "__main__":
    main()
