"""The LN core's 3D convolution as PyTorch's conv3d against the stacked-frames conv2d it uses.

Forward and backward of one batch, side by side in one process, alternating, on the CPU:
``LinearCore.forward`` stacks each output frame's input frames as channels and runs one 2D
convolution; this measures what that gains over ``torch.nn.functional.conv3d`` with the same
weights, and checks that both give the same numbers. ``--forward-only`` times the forward pass
without gradients, as prediction runs it (whole trials: ``--frames 300``).

Usage::

    python benchmarks/cores.py --batch 8 --frames 80 --rounds 3
    python benchmarks/cores.py --batch 8 --frames 180 --rounds 3 --forward-only
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def main(argv: list[str] | None = None) -> None:
    import torch
    import torch.nn.functional as F

    import sensorium_models as sm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--kernels", nargs=2, type=int, default=[11, 11],
                   metavar=("SPATIAL", "TEMPORAL"))
    p.add_argument("--forward-only", action="store_true",
                   help="time the forward pass without gradients (prediction)")
    args = p.parse_args(argv)
    spatial, temporal = args.kernels
    mice = {"A": sm.MouseSpec(n_neurons=2, coords=[[0.0, 0.0], [1.0, 1.0]])}
    core = sm.create_model("ln", mice=mice, spatial_kernel=spatial, temporal_kernel=temporal).core
    x = torch.randn(args.batch, 3, args.frames, 36, 64)

    def stacked() -> torch.Tensor:
        return core(x)

    def conv3d() -> torch.Tensor:
        return F.conv3d(x, core.conv.weight, core.conv.bias, padding=core.conv.padding)

    with torch.no_grad():
        a, b = stacked(), conv3d()
    print(f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; batch {args.batch} x {args.frames} frames, "
          f"kernel {temporal} frames x {spatial} x {spatial} px, 3 -> 8 channels")
    print(f"largest difference {float((a - b).abs().max()):.2e} (largest value "
          f"{float(b.abs().max()):.2e})")
    times: dict[str, list[float]] = {"conv3d": [], "stacked conv2d": []}
    for _ in range(args.rounds):
        for name, f in (("conv3d", conv3d), ("stacked conv2d", stacked)):
            core.zero_grad()
            t0 = time.perf_counter()
            if args.forward_only:
                with torch.no_grad():
                    f()
            else:
                f().square().mean().backward()
            times[name].append(time.perf_counter() - t0)
    timed = "forward" if args.forward_only else "forward + backward"
    for name, values in times.items():
        print(f"{name:>15}: " + ", ".join(f"{v:.2f}" for v in values) + f" s {timed}")
    ratio = min(times["conv3d"]) / min(times["stacked conv2d"])
    print(f"stacked conv2d is {ratio:.1f}x faster (best of {args.rounds} each)")


if __name__ == "__main__":
    main()
