"""What a model costs at its published width: parameters, FLOPs per clip, CPU seconds per batch.

For each model of ``--models``, with its own recipe's clip (frames, input channels; see
``CLIPS``):

* **parameters** at the real neuron counts of the ten 2023 mice (the catalog), built on the
  meta device (no memory);
* **FLOPs** of one forward pass of one clip and of one whole 300-frame trial through one
  readout of ``--neurons`` neurons, counted by ``torch.utils.flop_counter.FlopCounterMode``
  on the meta device (matrix products and convolutions, as the notes count them);
* **CPU seconds** of forward + backward of a batch of ``--batch`` clips, every model in the
  same process, alternating, best of ``--rounds``: wall-clock seconds and the process's CPU
  time (all threads; on a machine shared with other work the wall clock stretches, the CPU
  time much less).

Usage::

    python benchmarks/model_costs.py --models factorized_baseline viv1t --batch 1 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

#: (frames per training clip, input channels) of each model's recipe; others: the baselines'.
CLIPS: dict[str, tuple[int, int]] = {"viv1t": (140, 5)}
BASELINE_CLIP = (80, 3)
TRIAL = 300


def clip_of(model: str) -> tuple[int, int]:
    return CLIPS.get(model, BASELINE_CLIP)


def parameters(model: str) -> dict[str, int]:
    """Parameters of the core, the ten readouts and shifters, at the catalog's neuron counts."""
    import numpy as np
    import torch

    import sensorium_data as sd
    import sensorium_models as sm

    mice = {r.letter: sm.MouseSpec(n_neurons=r.n_neurons, coords=np.zeros((r.n_neurons, 2)))
            for r in sd.catalog.recordings("2023")}
    with torch.device("meta"):
        built = sm.create_model(model, mice=mice, in_channels=clip_of(model)[1])

    def count(module: Any) -> int:
        return 0 if module is None else sum(p.numel() for p in module.parameters())

    return {"core": count(built.core), "readouts": count(built.readouts),
            "shifters": count(built.shifters), "total": count(built)}


def flops(model: str, neurons: int, frames: int) -> int:
    """Forward FLOPs of one clip of ``frames`` frames through the core and one readout."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import sensorium_models as sm

    channels = clip_of(model)[1]
    mice = {"m": sm.MouseSpec(n_neurons=neurons, coords=np.zeros((neurons, 2)))}
    with torch.device("meta"):
        built = sm.create_model(model, mice=mice, in_channels=channels).eval()
        videos, behavior = torch.empty(1, channels, frames, 36, 64), torch.empty(1, 4, frames)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            built(videos, mouse="m", behavior=behavior)
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    import torch

    import sensorium_models as sm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["factorized_baseline", "viv1t"])
    p.add_argument("--neurons", type=int, default=8000, help="neurons of the one readout")
    p.add_argument("--batch", type=int, default=1, help="clips per timed batch")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--skip-timing", action="store_true", help="parameters and FLOPs only")
    args = p.parse_args(argv)
    print(f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; one readout of {args.neurons} neurons, "
          f"batches of {args.batch} clip(s)")
    print("\n| model | clip (frames x channels) | parameters, 10 mice (core + readouts + "
          "shifters) | GFLOPs forward per clip | GFLOPs forward per 300-frame trial |")
    print("|---|---|---|---:|---:|")
    for model in args.models:
        frames, channels = clip_of(model)
        n = parameters(model)
        print(f"| {model} | {frames} x {channels} | {n['total'] / 1e6:.2f} M ({n['core'] / 1e6:.2f}"
              f" + {n['readouts'] / 1e6:.2f} + {n['shifters']}) | "
              f"{flops(model, args.neurons, frames) / 1e9:.1f} | "
              f"{flops(model, args.neurons, TRIAL) / 1e9:.1f} |")
    if args.skip_timing:
        return
    rng = np.random.default_rng(0)
    mice = {"m": sm.MouseSpec(n_neurons=args.neurons, coords=rng.normal(size=(args.neurons, 2)))}
    built, inputs = {}, {}
    for model in args.models:
        frames, channels = clip_of(model)
        torch.manual_seed(0)
        built[model] = sm.create_model(model, mice=mice, in_channels=channels)
        inputs[model] = (torch.randn(args.batch, channels, frames, 36, 64),
                         torch.randn(args.batch, 4, frames))
    print("\n| model | round | wall s, forward + backward of the batch | CPU s (all threads) |")
    print("|---|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        for model in args.models:
            videos, behavior = inputs[model]
            built[model].zero_grad(set_to_none=True)
            t0, cpu0 = time.perf_counter(), time.process_time()
            built[model](videos, mouse="m", behavior=behavior).mean().backward()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            print(f"| {model} | {round_} | {wall:.1f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
