"""The data verbs of the ``sensorium`` command line: ``list | info | fetch | convert | simulate``.

The ``sensorium`` console script is :mod:`sensorium_models.cli`, which adds these verbs to its
own (``demo``, ``train``, ``evaluate``, ``predict``, ``submit``); ``python -m sensorium_data.cli``
runs the data verbs alone, without the model package. Every command has ``--help``. The
library logs; the command lines are the only places that print.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from sensorium_data.tree import TIER_ORDER

if TYPE_CHECKING:
    from sensorium_data.catalog import Recording

log = logging.getLogger("sensorium")

EPILOG = """\
examples:
  sensorium list --competition 2023    the ten 2023 recordings (letters A-J)
  sensorium fetch F                    download and extract mouse F into the cache
  sensorium info F                     open mouse F (downloading it on first use) and summarise it
  sensorium convert path/to/recording  convert a file tree or zip into a zarr store
  sensorium simulate sim/              simulated recordings with known ground truth

The cache folder is $SENSORIUM_DATA_DIR (default: the OS cache, e.g. ~/.cache/sensorium).
"""
CACHE = "The cache folder is $SENSORIUM_DATA_DIR (default: the OS cache, e.g. ~/.cache/sensorium)."
Adder = Callable[..., argparse.ArgumentParser]
WIDE = 44  # an example command longer than this gets its description on the next line


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


def in_cache(name: str, root: Path) -> str:
    """What the cache ``root`` holds of recording ``name``: ``store`` (converted), ``files``
    (unpacked), ``zip`` (downloaded), else ``-``."""
    return cached(name, root)[0]


def cached(name: str, root: Path) -> tuple[str, Path | None]:
    """What the cache ``root`` holds of recording ``name`` (see :func:`in_cache`) and where."""
    from sensorium_data import paths

    for label, path in (("store", paths.stores_dir(root) / f"{name}.zarr"),
                        ("files", paths.trees_dir(root) / name),
                        ("zip", paths.downloads_dir(root) / f"{name}.zip")):
        if path.exists():
            return label, path
    return "-", None


def disk_bytes(path: Path) -> int:
    """Bytes of the file ``path``, or of every file under the folder ``path``."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def gigabytes(n: int | None, approximate: bool = False) -> str:
    """``n`` bytes in decimal gigabytes for a table, ``-`` for None."""
    if n is None:
        return "-"
    return f"{'~' if approximate else ''}{n / 1e9:.1f} GB"


def free_bytes(folder: Path) -> int:
    """Free bytes on the disk of ``folder``, or of its nearest existing parent."""
    import shutil

    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _cmd_list(args: argparse.Namespace) -> int:
    from sensorium_data import catalog, paths

    root = paths.data_dir(args.data_dir)

    rows = []
    for r in catalog.recordings(args.competition):
        label, path = cached(r.name, root)
        rows.append({
            "competition": r.competition,
            "letter": r.letter or "",
            "short name": r.short_name,
            "neurons": r.n_neurons,
            "set": r.role,
            "extracted": gigabytes(r.extracted_bytes, approximate=True),
            "in cache": label,
            "cached": gigabytes(None if path is None else disk_bytes(path)),
            "folder": r.name,
        })
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"\ncache: {root} (store: converted, files: unpacked, zip: downloaded; cached: its "
          "size on disk)")
    print("extracted: the size of the unpacked files, computed from the format (catalogs/"
          "sizes.py);\nno zip or folder size is published, and 2022's are not known (-)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from sensorium_data import open_mouse

    ds = open_mouse(args.mouse, data_dir=args.data_dir, download=not args.no_download)
    print(describe(ds))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from sensorium_data import catalog, fetch_mouse, paths

    root = paths.data_dir(args.data_dir)
    for mouse in args.mice:
        rec = catalog.lookup(mouse)
        if cached(rec.name, root)[0] in ("-", "zip"):  # the extraction is still to come
            check_space(rec, root, args.force)
        print(fetch_mouse(mouse, data_dir=args.data_dir))
    return 0


def check_space(rec: Recording, root: Path, force: bool) -> None:
    """Say how large ``rec`` is and how much space ``root`` has; refuse if it cannot fit."""
    from sensorium_data.errors import NotEnoughSpaceError

    free = free_bytes(root)
    name = rec.letter or rec.short_name
    if rec.extracted_bytes is None:
        print(f"{name}: size not known (no size is published); {gigabytes(free)} free in {root}",
              flush=True)
        return
    print(f"{name}: {gigabytes(rec.extracted_bytes, approximate=True)} extracted (computed "
          f"from the format; the zip, kept beside the files, comes on top: its size is not "
          f"published), {gigabytes(free)} free in {root}", flush=True)
    if free < rec.extracted_bytes and not force:
        msg = (f"{name} needs at least {gigabytes(rec.extracted_bytes, approximate=True)} for "
               f"its extracted files (its zip, kept beside them, comes on top), but {root} has "
               f"{gigabytes(free)} free. Free some "
               "space, fetch into a cache on a larger disk (--data-dir DIR or "
               "$SENSORIUM_DATA_DIR), or pass --force to try anyway.")
        raise NotEnoughSpaceError(msg)


def _cmd_convert(args: argparse.Namespace) -> int:
    from sensorium_data import convert, upgrade

    if args.upgrade:
        if args.store or args.overwrite:
            msg = ("--upgrade rewrites the store given in place; it takes no --store or "
                   "--overwrite. Run: sensorium convert --upgrade STORE")
            raise ValueError(msg)
        for tree in args.tree:
            print(upgrade(tree))
        return 0
    if len(args.tree) == 1 and args.scheduler is None:
        print(convert(args.tree[0], args.store, data_dir=args.data_dir,
                      overwrite=args.overwrite))
        return 0
    from sensorium_data.cluster import convert_many

    if args.store is not None and len(args.tree) > 1:
        msg = (f"--store {args.store} with {len(args.tree)} recordings: --store names one store; "
               "leave it out (each goes into the cache, or --data-dir) or convert one by one.")
        raise ValueError(msg)
    stores = None if args.store is None else [args.store]
    for store in convert_many(args.tree, stores, scheduler=args.scheduler,
                              overwrite=args.overwrite, data_dir=args.data_dir):
        print(store)
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from sensorium_data import paths
    from sensorium_data.remote import is_url, pull

    if not is_url(args.url):
        msg = (f"{args.url!r} is not a URL; pass the store's fsspec URL, e.g. "
               "s3://bucket/prefix/F.zarr (local stores need no pull).")
        raise ValueError(msg)
    name = args.url.rstrip("/").rsplit("/", 1)[-1]
    local = paths.stores_dir(paths.data_dir(args.data_dir)) / name
    print(pull(args.url, local, overwrite=args.overwrite))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sensorium_data import simulate

    static = {"image_scale": args.image_scale, "behavior_gain": args.behavior_gain}
    extra = {k: v for k, v in static.items() if v is not None}
    for path in simulate(args.out, preset=args.preset, seed=args.seed, scale=args.scale,
                         overwrite=args.overwrite, **extra):
        print(path)
    return 0


def subcommand_adder(sub: argparse._SubParsersAction) -> Adder:
    """``add(name, help, examples=..., notes=...)``: a subcommand whose ``--help`` has a
    description and an epilog of examples."""

    def add(name: str, help: str, *, examples: Sequence[tuple[str, str]] = (),
            notes: str = "") -> argparse.ArgumentParser:
        width = max((len(c) for c, _ in examples if len(c) <= WIDE), default=0) + 2
        lines = ["examples:"] if examples else []
        for command, what in examples:
            if not what:
                lines.append(f"  {command}")
            elif len(command) > WIDE:
                lines += [f"  {command}", f"  {'':<{width}}{what}"]
            else:
                lines.append(f"  {command:<{width}}{what}")
        if notes:
            lines += ["", notes]
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                              epilog="\n".join(lines) or None,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    return add


def add_data_commands(add: Adder) -> None:
    """Register ``simulate``, ``fetch``, ``convert``, ``info`` and ``list``."""

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="cache folder (default: $SENSORIUM_DATA_DIR or the OS "
                       "cache)")

    p = add("simulate", "write simulated recordings (ground-truth digital twin) as file trees",
            examples=[("sensorium simulate sim/", "3 tiny mice (tiny-A..C) in seconds"),
                      ("sensorium simulate sim/ --scale 3", "the tiny preset, 3x the neurons "
                       "and trials"),
                      ("sensorium simulate sim/ --preset sensorium2023 --scale 0.1",
                       "the ten real recordings' structure, a tenth of the size"),
                      ("sensorium simulate sim22/ --preset static2022 --image-scale 0.25",
                       "3 mice of flashed images in the 2022 format (36 x 64 images)"),
                      ("sensorium simulate sim22/ --preset static2022 --no-behavior-gain",
                       "the same, responses independent of behaviour"),
                      ("sensorium info sim/tiny-A", "then open one")],
            notes="The trees hold the noise-free rates too: the ceiling of every metric.")
    p.add_argument("out", help="folder to write one file tree per simulated mouse into")
    p.add_argument("--preset", default="tiny", choices=["tiny", "sensorium2023", "static2022"],
                   help="tiny (default: 3 mice, seconds), sensorium2023 (the ten real "
                   "recordings' structure) or static2022 (flashed images, 2022 format)")
    p.add_argument("--image-scale", type=float, default=None,
                   help="static2022: stored image size as a fraction of 144 x 256 (default 1)")
    p.add_argument("--behavior-gain", action=argparse.BooleanOptionalAction, default=None,
                   help="static2022: behaviour modulates the responses (default) or not")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="shrink neurons and trials (scale > 0, default 1; at most 1 for "
                   "sensorium2023)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace recordings already in OUT")
    p.set_defaults(func=_cmd_simulate)

    p = add("fetch", "download and extract recordings into the cache",
            examples=[("sensorium fetch F", "mouse F of 2023 (~18.9 GB extracted)"),
                      ("sensorium fetch F G H I J", "the five scored mice"),
                      ("sensorium fetch 26872-17-20", "a 2022 recording, by short name")],
            notes="Each recording's size (computed from the format: no size is published) and "
                  "the free space\nare printed before its download; a disk too small is "
                  "refused (--force: try anyway).\n" + CACHE)
    p.add_argument("mice", nargs="+", help="letters, short names or folder names")
    p.add_argument("--force", action="store_true", help="download even where the disk has "
                   "less free space than the recording's computed size")
    data_dir(p)
    p.set_defaults(func=_cmd_fetch)

    p = add("convert", "convert a recording's file tree or zip into a zarr store",
            examples=[("sensorium convert path/to/recording", "into the cache"),
                      ("sensorium convert trees/* --scheduler tcp://host:8786",
                       "one task per recording on a dask cluster"),
                      ("sensorium convert rec.zip --store rec.zarr", "into rec.zarr"),
                      ("sensorium convert --upgrade rec.zarr",
                       "rewrite a store of an earlier schema in place, from itself")],
            notes="open_mouse converts on first use by itself; this verb converts ahead.")
    p.add_argument("tree", nargs="+", help="the recording's folder (holding data/ and meta/) "
                   "or its zip; several: one after another, or on --scheduler")
    p.add_argument("--scheduler", metavar="ADDRESS", help="convert on the dask cluster of this "
                   "scheduler (tcp://host:8786), one task per recording")
    p.add_argument("--store", "--out", dest="store", help="where to write the store (default: "
                   "in the cache); an fsspec URL (s3://bucket/prefix/F.zarr) uploads it there")
    p.add_argument("--overwrite", action="store_true", help="convert again if the store exists")
    p.add_argument("--upgrade", action="store_true",
                   help="TREE is a store of an earlier schema: rewrite it into the current one "
                        "(the old store stays whole until the new one is complete)")
    data_dir(p)
    p.set_defaults(func=_cmd_convert)

    p = add("cache", "copy a store from object storage into the local cache",
            examples=[("sensorium cache pull s3://lab/stores/F.zarr",
                       "into <cache>/stores/F.zarr, for fast training")],
            notes="Credentials and the endpoint come from fsspec/botocore's configuration "
                  "(AWS_* variables, ~/.aws). " + CACHE)
    p.add_argument("action", choices=["pull"], help="pull: copy the store at URL here")
    p.add_argument("url", help="the store's fsspec URL (s3://bucket/prefix/F.zarr)")
    p.add_argument("--overwrite", action="store_true", help="replace a local copy")
    data_dir(p)
    p.set_defaults(func=_cmd_cache)

    p = add("info", "open a recording (downloading and converting it on first use) and "
            "summarise it",
            examples=[("sensorium info F", "mouse F: the Dataset, trials per tier and type"),
                      ("sensorium info sim/tiny-A", "a simulated recording (a path)"),
                      ("sensorium info F --no-download", "only if it is in the cache")],
            notes=CACHE)
    p.add_argument("mouse", help="letter (F), short name (29515-10-12), folder name, or a path "
                   "to a file tree, zip or .zarr store")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    data_dir(p)
    p.set_defaults(func=_cmd_info)

    p = add("list", "list the recordings of the catalogs",
            examples=[("sensorium list", "all 17 recordings"),
                      ("sensorium list --competition 2023", "the ten 2023 recordings (A-J)")],
            notes="extracted: a recording's unpacked size, computed from the format (no size "
                  "is published;\ncatalogs/README.md, 'Sizes'); in cache and cached: what the "
                  "cache holds of it, and its size\non disk.")
    p.add_argument("--competition", choices=["2022", "2023"], help="only this competition")
    p.add_argument("--data-dir", help="the cache folder (default $SENSORIUM_DATA_DIR or the OS "
                   "cache)")
    p.set_defaults(func=_cmd_list)


def build_parser() -> argparse.ArgumentParser:
    """The data verbs alone (``python -m sensorium_data.cli``)."""
    parser = argparse.ArgumentParser(
        prog="sensorium",
        description="The SENSORIUM benchmarks as lazy, labelled xarray Datasets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbose(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_data_commands(subcommand_adder(sub))
    return parser


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens, and show tracebacks of errors")


ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, FileExistsError, KeyError,
                                           ValueError)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
        errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse ``argv`` and run the command; expected errors become one line on stderr (exit
    code 2) naming the fix as a command (:class:`~sensorium_data.errors.Message`), with the
    traceback only under ``--verbose``."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from sensorium_data.errors import SensoriumDataError, cli_message

    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(command_words)
    try:
        return int(args.func(args))
    except (SensoriumDataError, *ERRORS, *errors) as e:  # type: ignore[misc]
        if args.verbose:
            raise
        print(f"sensorium {args.command}: error: {cli_message(e)}", file=sys.stderr)
        return 2
    finally:
        for handler in handlers:
            handler.removeFilter(command_words)


def command_words(record: logging.LogRecord) -> bool:
    """A logging filter: the library's log messages (and their arguments) that are
    :class:`~sensorium_data.errors.Message` name their fixes as commands."""
    from sensorium_data.errors import Message

    if isinstance(record.msg, Message):
        record.msg = record.msg.cli
    if isinstance(record.args, tuple):
        record.args = tuple(a.cli if isinstance(a, Message) else a for a in record.args)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
