"""Compute the extracted size of each 2023 recording from its format, and write it into
``sensorium2023.toml`` as the generated key ``extracted_bytes``.

Usage::

    python catalogs/sizes.py            rewrite the extracted_bytes lines
    python catalogs/sizes.py --check    exit non-zero where the file disagrees

No size of any zip or extraction is published (only "148 GB" for the ten mice extracted,
lRomul/sensorium's README), so the size is computed from what is known exactly and the one
inference below, as the sum of the ``.npy`` files of the extracted folder::

    data/{videos,responses,behavior,pupil_center}/<trial>.npy   n_trials files each, of
        (36, 64, T), (N, T), (2, T), (2, T)   T = frames (padded), N = n_neurons
    meta/statistics/<stream>/all/{mean,std,min,max}.npy          one trial's shape each
    meta/neurons/unit_ids.npy (N,) int64, cell_motor_coordinates.npy (N, 3) float64
    meta/trials/tiers.npy (last trial index + 1,) <U16            ('final_test_bonus': 16)

each with its ``.npy`` header (format 1.0: padded to a multiple of 64 bytes). The inference:
the arrays are float32 in the A-E release and float64 in the F-J release (notes
``sensorium2023_format.md`` 4.1: anaflom's per-neuron maxima are float32-representable for A-E
and never for F-J; the split reproduces the 148 GB). The statistics' dtype and the meta
files' dtypes are assumptions; they are under 1 % of a recording. Only the standard library
is used, like ``build.py``.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOML = HERE / "sensorium2023.toml"
HEIGHT, WIDTH = 36, 64
STATISTICS = ("mean", "std", "min", "max")
ITEMSIZE = {"released": 4, "scored": 8}  # A-E float32, F-J float64 (inferred; see above)


def npy_bytes(shape: tuple[int, ...], descr: str, itemsize: int) -> int:
    """Bytes of a C-order ``.npy`` file (format 1.0) of ``shape``: header and data."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    # magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes
    return math.ceil((10 + len(header) + 1) / 64) * 64 + math.prod(shape) * itemsize


def extracted_bytes(rec: dict, n_indices: int) -> int:
    """The extracted size of the recording ``rec`` (a ``[[recording]]`` table) whose
    ``tiers.npy`` has ``n_indices`` entries."""
    size = ITEMSIZE[rec["set"]]
    descr = f"<f{size}"
    t, n = rec["frames"], rec["n_neurons"]
    trial = [(HEIGHT, WIDTH, t), (n, t), (2, t), (2, t)]  # videos, responses, behavior, pupil
    per_trial = sum(npy_bytes(shape, descr, size) for shape in trial)
    meta = (npy_bytes((n,), "<i8", 8) + npy_bytes((n, 3), "<f8", 8)
            + npy_bytes((n_indices,), "<U16", 4 * 16))
    return (rec["n_trials"] + len(STATISTICS)) * per_trial + meta


def n_indices(name: str) -> int:
    """Entries of ``tiers.npy``: the last trial index + 1 (tier ``none`` has no files)."""
    with (HERE / "sensorium2023" / f"{name}.trials.csv").open(newline="") as f:
        return max(int(row["trial"]) for row in csv.DictReader(f)) + 1


def sizes() -> dict[str, int]:
    """Recording name -> computed ``extracted_bytes``, for every 2023 recording."""
    with TOML.open("rb") as f:
        catalog = tomllib.load(f)["recording"]
    return {rec["name"]: extracted_bytes(rec, n_indices(rec["name"])) for rec in catalog}


def rewrite(text: str, computed: dict[str, int]) -> str:
    """``text`` with an ``extracted_bytes`` line after each recording's ``frames`` line."""
    text = re.sub(r"^extracted_bytes = .*\n", "", text, flags=re.M)
    out, name = [], None
    for line in text.splitlines(keepends=True):
        out.append(line)
        if line.startswith("name = "):
            name = tomllib.loads(line)["name"]
        elif line.startswith("frames = ") and name is not None:
            out.append(f"extracted_bytes = {computed[name]}\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    computed = sizes()
    text = TOML.read_text(encoding="utf-8")
    new = rewrite(text, computed)
    for name, size in computed.items():
        print(f"{size / 1e9:6.2f} GB  {name}")
    print(f"{sum(computed.values()) / 1e9:6.2f} GB  in all")
    if args.check:
        if new != text:
            print(f"{TOML.name}: extracted_bytes differ; run python catalogs/sizes.py",
                  file=sys.stderr)
            return 1
        return 0
    TOML.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
