"""Rebuild the per-trial and per-neuron tables of the SENSORIUM 2023 catalog.

Usage::

    python catalogs/build.py /path/to/reference/sensorium2023 [--out DIR]

The input is the reference folder (one sub-folder per recording holding ``recording.json``,
``trials.csv`` and ``neurons.csv``; see ``catalogs/README.md`` for where it comes from). For each
recording this writes, into ``--out`` (default: ``catalogs/sensorium2023`` beside this script)::

    <name>.trials.csv    trial,tier,stimulus_type,video_id,valid_frames   sorted by trial
    <name>.neurons.csv   unit_id,x,y,z                                    in the source order

and then checks that ``sensorium2023.toml`` agrees with every ``recording.json`` (ids, neuron and
trial counts, padded frames). Only the standard library is used, so the output is byte-stable.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent

TRIAL_COLUMNS = {  # ours: theirs
    "trial": "trial",
    "tier": "trial_type",
    "stimulus_type": "label",
    "video_id": "video_ID",
    "valid_frames": "valid_frames",
}
NEURON_COLUMNS = {"unit_id": "ID", "x": "coord_x", "y": "coord_y", "z": "coord_z"}
INT_COLUMNS = {"trial", "valid_frames", "unit_id", "x", "y", "z"}

# recording.json key -> sensorium2023.toml key
TOML_FIELDS = {
    "animal_id": "animal_id",
    "session": "session",
    "scan_idx": "scan_idx",
    "n_trials": "n_trials",
    "samples_per_trial": "frames",
    "n_neurons": "n_neurons",
    "sampling_freq": "fps",
}


def _read(path: Path, columns: dict[str, str]) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = sorted(set(columns.values()) - set(rows[0] if rows else {}))
    if missing:
        msg = f"{path}: missing columns {missing}; expected {sorted(columns.values())}"
        raise ValueError(msg)
    table = []
    for row in rows:
        out = []
        for ours, theirs in columns.items():
            value = row[theirs].strip()
            if ours in INT_COLUMNS:
                value = _integer(value, f"{path}: column {theirs}")
            out.append(value)
        table.append(out)
    return table


def _integer(value: str, where: str) -> str:
    # written as plain integers even if a source writes "250.0"
    number = float(value)
    if not number.is_integer():
        msg = f"{where}: expected an integer, got {value!r}"
        raise ValueError(msg)
    return str(int(number))


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def build_tables(reference: Path, out: Path) -> list[str]:
    """Write the tables of every recording under ``reference`` into ``out``; return the names."""
    folders = sorted(p for p in reference.iterdir() if (p / "recording.json").is_file())
    if not folders:
        msg = f"no recording folders (with recording.json) under {reference}"
        raise FileNotFoundError(msg)
    out.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        trials = _read(folder / "trials.csv", TRIAL_COLUMNS)
        trials.sort(key=lambda row: int(row[0]))
        _write(out / f"{folder.name}.trials.csv", list(TRIAL_COLUMNS), trials)
        neurons = _read(folder / "neurons.csv", NEURON_COLUMNS)
        _write(out / f"{folder.name}.neurons.csv", list(NEURON_COLUMNS), neurons)
    return [folder.name for folder in folders]


def check_toml(reference: Path, toml_path: Path) -> list[str]:
    """Compare ``sensorium2023.toml`` with the reference ``recording.json`` files."""
    with toml_path.open("rb") as f:
        catalog = {rec["name"]: rec for rec in tomllib.load(f)["recording"]}
    problems = []
    for folder in sorted(p for p in reference.iterdir() if (p / "recording.json").is_file()):
        meta = json.loads((folder / "recording.json").read_text())
        rec = catalog.get(folder.name)
        if rec is None:
            problems.append(f"{folder.name}: not in {toml_path.name}")
            continue
        for theirs, ours in TOML_FIELDS.items():
            if float(meta[theirs]) != float(rec[ours]):
                problem = f"{ours} = {rec[ours]} but {theirs} = {meta[theirs]}"
                problems.append(f"{folder.name}: {problem}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="the reference sensorium2023 folder")
    parser.add_argument("--out", type=Path, default=HERE / "sensorium2023", help="output folder")
    args = parser.parse_args(argv)
    names = build_tables(args.reference, args.out)
    print(f"wrote the tables of {len(names)} recordings into {args.out}")
    problems = check_toml(args.reference, HERE / "sensorium2023.toml")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
