"""How long ``sensorium --help`` takes, this checkout against an earlier one, side by side.

Each run is a fresh interpreter doing what the console script does (``main(["--help"])``),
from a neutral folder with ``PYTHONPATH`` naming the checkout, the two checkouts alternating
so that the load of a shared machine falls on both. Prints each one's wall times (median, min,
max), whether torch was imported, and the ratio of the medians.

The earlier checkout is a folder holding its ``sensorium_data`` and ``sensorium_models``,
e.g. ``git archive 5b2a51f sensorium_data sensorium_models | tar -x -C /tmp/before``.

Usage::

    python benchmarks/cli_help.py --before /tmp/before --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CODE = ("import sys\nfrom sensorium_models.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")


def once(checkout: Path, cwd: str) -> tuple[float, bool]:
    """Seconds of one ``--help`` in a new interpreter, and whether it imported torch."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CODE], cwd=cwd, capture_output=True,
                          text=True, check=True, env={"PYTHONPATH": str(checkout),
                                                      "PATH": "/usr/bin:/bin"})
    seconds = time.perf_counter() - start
    return seconds, done.stderr.strip().splitlines()[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="folder holding the earlier sensorium_data and sensorium_models")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": HERE}
    times: dict[str, list[float]] = {name: [] for name in checkouts}
    torch: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for checkout in checkouts.values():  # one warm-up each: the page cache
            once(checkout, cwd)
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():
                seconds, torch[name] = once(checkout, cwd)
                times[name].append(seconds)
    for name, values in times.items():
        print(f"{name:6s} median {statistics.median(values):.2f} s, min {min(values):.2f}, "
              f"max {max(values):.2f} ({len(values)} runs; imports torch: {torch[name]})")
    ratio = statistics.median(times["before"]) / statistics.median(times["after"])
    print(f"before / after (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
