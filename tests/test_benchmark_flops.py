"""benchmarks/flops.py counts a training step's FLOPs per clip on the meta device."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from flops import flops_per_clip, main


def test_flops_are_per_clip_and_grow_with_the_clip(capsys):
    one = flops_per_clip("factorized_baseline", 30, 24, 1)
    assert one > 0
    two = flops_per_clip("factorized_baseline", 30, 24, 2)
    assert abs(two - one) < 1e-3 * one  # per clip, not per batch
    assert flops_per_clip("factorized_baseline", 30, 48, 1) > 1.5 * one  # twice the frames
    main(["--models", "factorized_baseline", "--neurons", "30", "--frames", "24",
          "--batch", "1", "--loader-rate", "100"])
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| factorized_baseline"))
    gflop, clips, cores = (float(c.replace(",", "")) for c in row.strip("| ").split(" | ")[1:])
    assert abs(gflop - one / 1e9) < 0.05
    assert abs(clips - 989e12 * 0.3 / one) / clips < 0.01 and abs(cores - clips / 100) < 0.1
