"""benchmarks/cores.py, the LN core's three convolutions side by side, runs (at toy size)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cores_benchmark_runs_and_the_three_methods_agree() -> None:
    for extra in ([], ["--forward-only"]):
        args = ["--batch", "1", "--frames", "12", "--rounds", "1", "--kernels", "5", "3", *extra]
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cores.py"), *args],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        differences = re.findall(r"against conv3d: largest difference (\S+)", out.stdout)
        assert len(differences) == 2 and all(float(d) < 1e-4 for d in differences)
        assert out.stdout.count("fft is ") == 2
