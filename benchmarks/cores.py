"""The LN core's 3D convolution three ways: PyTorch's conv3d, stacked frames through conv2d,
and the FFT the core uses on the CPU.

Forward and backward of one batch, side by side in one process, alternating, on the CPU, with
the same weights; it also checks that all three give the same numbers. ``LinearCore.forward``
convolves through the FFT (``fft_conv3d``); the stacked-frames conv2d (each output frame's
input frames stacked as channels) was its earlier method and stays here for comparison.
``--forward-only`` times the forward pass without gradients, as prediction runs it (whole
trials: ``--frames 180`` is the demo's trial length, 300 the real one).

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
    conv = core.conv
    x = torch.randn(args.batch, 3, args.frames, 36, 64)

    def conv3d() -> torch.Tensor:
        return F.conv3d(x, conv.weight, conv.bias, padding=conv.padding)

    def stacked() -> torch.Tensor:
        b, c, t, h, w = x.shape
        windows = x.unfold(2, temporal, 1).permute(0, 2, 1, 5, 3, 4)  # (B, T', C, k, H, W)
        frames = windows.reshape(-1, c * temporal, h, w)
        out = F.conv2d(frames, conv.weight.flatten(1, 2), conv.bias, padding=conv.padding[1:])
        return out.view(b, t - temporal + 1, -1, h, w).transpose(1, 2)

    def fft() -> torch.Tensor:
        return core(x)  # LinearCore.forward: fft_conv3d on the CPU

    methods = {"conv3d": conv3d, "stacked conv2d": stacked, "fft (the core)": fft}
    with torch.no_grad():
        outputs = {name: f() for name, f in methods.items()}
    reference = outputs["conv3d"]
    print(f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; batch {args.batch} x {args.frames} frames, "
          f"kernel {temporal} frames x {spatial} x {spatial} px, 3 -> 8 channels")
    for name in ("stacked conv2d", "fft (the core)"):
        print(f"{name} against conv3d: largest difference "
              f"{float((outputs[name] - reference).abs().max()):.2e} (largest value "
              f"{float(reference.abs().max()):.2e})")
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, f in methods.items():
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
    best = {name: min(values) for name, values in times.items()}
    for name in ("conv3d", "stacked conv2d"):
        print(f"fft is {best[name] / best['fft (the core)']:.1f}x faster than {name} "
              f"(best of {args.rounds} each)")


if __name__ == "__main__":
    main()
