"""What the trainer's recipe options cost per batch: CutMix, the moving average of the
weights, batches that mix mice, against the baselines' plain per-mouse batches.

The trainer's own epoch function (``train_epoch``, with the hooks ``train`` gives it) on
synthetic batches already in memory, so only the training step is timed; the variants run
side by side in one process, alternating round by round, on the same model size and batches
(three mice, one batch of each per round). Each variant's median seconds per batch and its
ratio to the plain step are printed.

Usage::

    python benchmarks/recipe.py --hidden 8 16 16 --neurons 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    import torch

    import sensorium_models as sm
    from sensorium_models.training.ema import WeightAverage
    from sensorium_models.training.loop import train_epoch
    from sensorium_models.training.predict import no_autocast

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", nargs="+", type=int, default=[8, 16, 16],
                   help="hidden channels of the factorized baseline (published: 32 64 128)")
    p.add_argument("--neurons", type=int, default=1000, help="neurons per mouse")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    names = ["A", "B", "C"]
    mice = {m: sm.MouseSpec(n_neurons=args.neurons, coords=rng.normal(size=(args.neurons, 2)))
            for m in names}
    model = sm.create_model("factorized_baseline", mice=mice, hidden_channels=args.hidden)
    cpu = torch.device("cpu")

    def batch(mouse: str | list[str]) -> dict:
        n, f = args.batch, args.frames
        return {"mouse": mouse, "videos": torch.randn(n, 3, f, 36, 64),
                "behavior": torch.randn(n, 4, f),
                "responses": (torch.rand(n, args.neurons, f) if isinstance(mouse, str)
                              else [torch.rand(args.neurons, f) for _ in mouse])}

    per_mouse = [batch(m) for m in names]
    mixed = [batch([names[(b + k) % 3] for k in range(args.batch)]) for b in range(3)]
    average = WeightAverage(model, 0.999)
    variants = {
        "plain (one mouse per batch)": {"batches": per_mouse, "per_step": 3},
        "cutmix = 0.5": {"batches": per_mouse, "per_step": 3, "cutmix": 0.5},
        "ema = 0.999": {"batches": per_mouse, "per_step": 3,
                        "on_step": lambda: average.update(model)},
        "mixed_mice = true": {"batches": mixed, "per_step": 1},
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, v in variants.items():
            start = time.perf_counter()
            train_epoch(model, model, v["batches"], optimizer, loss_scale=dict.fromkeys(names, 1.0),
                        batches_per_step=v["per_step"], device=cpu, autocast=no_autocast,
                        on_step=v.get("on_step"), cutmix=v.get("cutmix", 0.0))
            seconds[name].append((time.perf_counter() - start) / len(v["batches"]))
    print(f"factorized baseline {args.hidden}, {args.neurons} neurons x 3 mice, batches of "
          f"{args.batch} clips of {args.frames} frames; {args.rounds} rounds; torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads")
    plain = statistics.median(seconds["plain (one mouse per batch)"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:<30} {median:7.3f} s per batch   x{median / plain:.2f}")


if __name__ == "__main__":
    main()
