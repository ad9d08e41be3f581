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


def test_gpu_benchmark_gives_dwiseneuro_its_own_input(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--device", "cpu", "--neurons", "20", "--batch", "1",
            "--mice", "1", "--steps", "1", "--warmup", "1", "--modes", "fp32",
            "--models", "dwiseneuro", "--trials", "8", "--workers", "0", "--width", "0.0625"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "gpu.json").read_text())
    (step,) = results["step"]
    (loaded,) = results["loader"]  # clips of 16 frames at step 2 on the 64 x 64 canvas
    assert step["model"] == loaded["model"] == "dwiseneuro"
    assert step["clips_per_s"] > 0 and loaded["clips_per_s"] > 0
    assert results["setting"].startswith("1 mice x 20 neurons")


def test_gpu_benchmark_runs_viv1t_with_its_own_clips(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--device", "cpu", "--neurons", "20", "--batch", "1",
            "--frames", "26", "--steps", "1", "--warmup", "1", "--modes", "fp32",
            "--models", "viv1t", "--skip-loader", "--width", "0.125"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    (step,) = json.loads((tmp_path / "gpu.json").read_text())["step"]
    # five channels (pupil x, y too), 0.125 of the published width: 14-wide tokens, 1 head
    assert (step["model"], step["frames"], step["channels"]) == ("viv1t", 26, 5)
    assert step["clips_per_s"] > 0 and step["parameters"] < 200_000
    assert "| viv1t | 26 x 5 | fp32 |" in out.stdout


def test_the_attention_kernel_check_runs() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from gpu import attention_kernels

    rows = attention_kernels(torch.device("cpu"), heads=2, head_dim=8, tokens=5)
    assert {(r["dtype"], r["kernel"]) for r in rows} >= {("float32", "math"), ("bfloat16", "flash")}
    assert all(r["works"] for r in rows if r["kernel"] == "math")


def test_gpu_benchmark_runs_dynamic_v1fm_with_its_input(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--device", "cpu", "--neurons", "20", "--batch", "1",
            "--steps", "1", "--warmup", "1", "--modes", "fp32", "--models", "dynamic_v1fm",
            "--trials", "12", "--workers", "0", "--width", "0.04"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "gpu.json").read_text())
    (step,) = results["step"]
    (loaded,) = results["loader"]
    assert (step["model"], step["frames"]) == ("dynamic_v1fm", 30)
    assert step["parameters"] < 60_000  # narrowed: 8 channels (0.04 x 224), 20 in the MLP
    assert step["clips_per_s"] > 0 and loaded["clips_per_s"] > 0
    assert "| dynamic_v1fm | 30 x 5 | fp32 |" in out.stdout


def test_a_failing_measurement_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--device", "cpu", "--neurons", "20", "--batch", "1",
            "--steps", "1", "--warmup", "1", "--modes", "fp32", "--models", "no_such_model",
            "ln", "--frames", "20", "--skip-loader", "--width", "0.125"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["model"] for r in results["step"]] == ["ln"]
    (failed,) = results["failed"]
    assert failed["model"] == "no_such_model" and "unknown model" in failed["error"]
    assert "| no_such_model | - | fp32 | failed: " in out.stdout
