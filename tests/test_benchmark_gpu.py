"""benchmarks/gpu.py, the prepared GPU check, runs end to end (on the CPU, at toy size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_on_the_cpu(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--device", "cpu", "--neurons", "20", "--batch", "1",
            "--frames", "20", "--steps", "1", "--warmup", "1", "--modes", "fp32",
            "--models", "ln", "--trials", "12", "--workers", "0", "--width", "0.125"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "gpu.json").read_text())
    (step,) = results["step"]
    (loaded,) = results["loader"]
    assert (step["model"], step["mode"], step["peak_gib"]) == ("ln", "fp32", None)
    assert (loaded["workers"], loaded["mode"], loaded["pin_memory"]) == (0, "fp32", False)
    assert step["clips_per_s"] > 0 and loaded["clips_per_s"] > 0
    assert "| ln | fp32 | 0 |" in out.stdout  # the loader's row of the printed report
