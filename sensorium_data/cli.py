"""The ``sensorium`` command line: ``sensorium demo | list | info | fetch | convert | simulate``.

Every command has ``--help``. The library logs; this module is the only place that prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from sensorium_data.tree import TIERS

log = logging.getLogger("sensorium")

# the 2023 tiers, with the 2022 ones (validation, test, final_test) in their places
TIER_ORDER = (TIERS[0], "validation", *TIERS[1:], "test", "final_test")

EPILOG = """\
examples:
  sensorium demo                       simulate a tiny recording, convert it, open it, summarise it
  sensorium list --competition 2023    the ten 2023 recordings (letters A-J)
  sensorium fetch F                    download and extract mouse F into the cache
  sensorium info F                     open mouse F (downloading it on first use) and summarise it
  sensorium convert path/to/recording  convert a file tree or zip into a zarr store

The cache folder is $SENSORIUM_DATA_DIR (default: the OS cache, e.g. ~/.cache/sensorium).
"""


def trial_table(ds: xr.Dataset) -> pd.DataFrame:
    """Trials per tier (rows) and stimulus type (columns; 2022: one column), with totals."""
    n = ds.sizes["trial"]
    kind = ds.stimulus_type.values if "stimulus_type" in ds.coords else ["image"] * n
    frame = pd.DataFrame({"tier": ds.tier.values, "stimulus_type": kind})
    table = pd.crosstab(frame["tier"], frame["stimulus_type"], margins=True, margins_name="all")
    order = [t for t in TIER_ORDER if t in table.index]
    order = [*order, *sorted(set(table.index) - {*order, "all"}), "all"]
    return table.loc[order]


def describe(ds: xr.Dataset, *, dataset: bool = True) -> str:
    """A printable summary of one recording: the Dataset, then its trials per tier and type."""
    unlabelled = int((~ds.labelled).sum())
    lines = [
        *([str(ds), ""] if dataset else []),
        f"{ds.attrs.get('mouse')} ({ds.attrs.get('competition')}): {ds.sizes['trial']} trials, "
        f"{ds.sizes['neuron']} neurons, "
        + (f"{ds.sizes['frame']} frames per trial (padded), " if "frame" in ds.dims else "")
        + f"{unlabelled} trials with withheld responses",
        "",
        "trials per tier and stimulus type:",
        trial_table(ds).to_string(),
    ]
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from sensorium_data import catalog

    rows = [
        {
            "competition": r.competition,
            "letter": r.letter or "",
            "short name": r.short_name,
            "neurons": r.n_neurons,
            "set": r.role,
            "folder": r.name,
        }
        for r in catalog.recordings(args.competition)
    ]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from sensorium_data import open_mouse

    ds = open_mouse(args.mouse, data_dir=args.data_dir, download=not args.no_download)
    print(describe(ds))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from sensorium_data import fetch_mouse

    for mouse in args.mice:
        print(fetch_mouse(mouse, data_dir=args.data_dir))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from sensorium_data import convert

    print(convert(args.tree, args.store, data_dir=args.data_dir, overwrite=args.overwrite))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sensorium_data import simulate

    for path in simulate(args.out, preset=args.preset, seed=args.seed, scale=args.scale,
                         overwrite=args.overwrite):
        print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sensorium_data import convert, open_mouse, simulate

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="sensorium-demo-"))
    start = time.perf_counter()
    print(f"1/3 simulating the 'tiny' preset into {out / 'trees'}")
    trees = simulate(out / "trees", preset="tiny", seed=args.seed, overwrite=True)
    print(f"2/3 converting {len(trees)} recording(s) into zarr stores under {out / 'stores'}")
    stores = [convert(tree, out / "stores" / f"{tree.name}.zarr", overwrite=True)
              for tree in trees]
    print("3/3 opening them lazily\n")
    for i, store in enumerate(stores):
        ds = open_mouse(store)
        print(describe(ds) if i == 0 else describe(ds, dataset=False))
        print()
    print(f"done in {time.perf_counter() - start:.1f} s; open them again with "
          f"sensorium_data.open_mouse({str(stores[0])!r})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorium",
        description="The SENSORIUM benchmarks as lazy, labelled xarray Datasets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens, and show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="cache folder (default: $SENSORIUM_DATA_DIR or the OS "
                       "cache)")

    p = add("demo", "simulate a tiny recording set, convert it, open it and summarise it")
    p.add_argument("--out", help="folder for the simulated trees and stores (default: a new "
                   "temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.set_defaults(func=_cmd_demo)

    p = add("list", "list the recordings of the catalogs")
    p.add_argument("--competition", choices=["2022", "2023"], help="only this competition")
    p.set_defaults(func=_cmd_list)

    p = add("info", "open a recording (downloading and converting it on first use) and "
            "summarise it")
    p.add_argument("mouse", help="letter (F), short name (29515-10-12), folder name, or a path "
                   "to a file tree, zip or .zarr store")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    data_dir(p)
    p.set_defaults(func=_cmd_info)

    p = add("fetch", "download and extract recordings into the cache")
    p.add_argument("mice", nargs="+", help="letters, short names or folder names")
    data_dir(p)
    p.set_defaults(func=_cmd_fetch)

    p = add("convert", "convert a recording's file tree or zip into a zarr store")
    p.add_argument("tree", help="the recording's folder (holding data/ and meta/) or its zip")
    p.add_argument("--store", help="where to write the store (default: in the cache)")
    p.add_argument("--overwrite", action="store_true", help="convert again if the store exists")
    data_dir(p)
    p.set_defaults(func=_cmd_convert)

    p = add("simulate", "write simulated recordings (ground-truth digital twin) as file trees")
    p.add_argument("out", help="folder to write one file tree per simulated mouse into")
    p.add_argument("--preset", default="tiny", choices=["tiny", "sensorium2023"],
                   help="tiny (default: 3 mice, seconds) or sensorium2023 (the ten real "
                   "recordings' structure)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="shrink neurons and trials (scale > 0, default 1; at most 1 for "
                   "sensorium2023)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace recordings already in OUT")
    p.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from sensorium_data.errors import SensoriumDataError

    try:
        return int(args.func(args))
    except (SensoriumDataError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        if args.verbose:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"sensorium {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
