"""On paper: how many clips per second a GPU trains on, and how many loader cores that needs.

Counts the FLOPs of one training step per clip (forward and backward, Poisson loss) of each
model of ``--models`` at the benchmark's scale (``--neurons`` per mouse, 80-frame clips, three
video channels) with ``torch.utils.flop_counter.FlopCounterMode``, on the ``meta`` device (no
arithmetic is done, so the count takes seconds). The GPU's clips per second are then
``--tflops`` (the GPU's dense bf16 throughput) x ``--utilisation`` / FLOPs per clip, and the
loader cores it needs are those clips per second over ``--loader-rate`` (clips per second one
core of the loader serves, measured with ``benchmarks/loader.py``).

The counter sees matrix multiplications and convolutions (its registered ops), not the
elementwise work (activations, normalization, the loss), which is small beside them here.

Usage::

    python benchmarks/flops.py --loader-rate 400
"""

from __future__ import annotations

import argparse

import numpy as np

H100_BF16_TFLOPS = 989.0  # H100 SXM, dense bf16 (NVIDIA's datasheet; 1,979 with sparsity)


def flops_per_clip(model_name: str, neurons: int, frames: int, batch: int) -> float:
    """FLOPs of one training step (forward + backward) divided by the clips of the batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import sensorium_models as sm

    rng = np.random.default_rng(0)
    mice = {"m": sm.MouseSpec(n_neurons=neurons, coords=rng.uniform(0, 1000, (neurons, 2)),
                              mean_response=np.full(neurons, 0.5, np.float32))}
    with torch.device("meta"):
        model = sm.create_model(model_name, mice=mice, in_channels=3)
        videos = torch.randn(batch, 3, frames, 36, 64)
        behavior = torch.randn(batch, 4, frames)
    with FlopCounterMode(display=False) as counter:
        out = model(videos, mouse="m", behavior=behavior)  # (B, N, T_out)
        (out - out.detach() * torch.log(out + 1e-8)).sum().backward()
    return counter.get_total_flops() / batch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["factorized_baseline", "gru_baseline"])
    p.add_argument("--neurons", type=int, default=8000)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tflops", type=float, default=H100_BF16_TFLOPS,
                   help="the GPU's dense bf16 TFLOP/s (default: H100 SXM)")
    p.add_argument("--utilisation", type=float, default=0.3,
                   help="the share of it a training step reaches (default 0.3)")
    p.add_argument("--loader-rate", type=float, required=True,
                   help="clips per second one loader core serves (benchmarks/loader.py)")
    args = p.parse_args(argv)
    rate = args.tflops * 1e12 * args.utilisation
    print(f"GPU: {args.tflops:g} TFLOP/s bf16 at {args.utilisation:.0%} utilisation; loader: "
          f"{args.loader_rate:g} clips/s per core\n")
    print("| model | GFLOP per clip (train step) | clips/s the GPU consumes | loader cores |")
    print("|---|---:|---:|---:|")
    for name in args.models:
        flops = flops_per_clip(name, args.neurons, args.frames, args.batch)
        clips = rate / flops
        print(f"| {name} | {flops / 1e9:.1f} | {clips:,.0f} | {clips / args.loader_rate:.1f} |")


if __name__ == "__main__":
    main()
