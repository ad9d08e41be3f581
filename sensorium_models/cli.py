"""The ``sensorium`` command line: every verb, the data ones and the model ones.

``sensorium demo | simulate | fetch | convert | info | list | train | evaluate | predict |
submit``. The data verbs come from :mod:`sensorium_data.cli`; this module adds the demo and
the verbs that need models. Every command has ``--help`` with examples. The library logs;
this module prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorium_data.catalog import short_name
from sensorium_data.cli import Adder, add_data_commands, add_verbose, run, subcommand_adder

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from sensorium_models.training import TrainConfig

EPILOG = """\
examples:
  sensorium demo --out demo/           the whole path on simulated data, on the CPU (minutes)
  sensorium list --competition 2023    the ten 2023 recordings (letters A-J)
  sensorium fetch F G H I J            download the five scored mice into the cache
  sensorium train --model factorized_baseline --mice F G H I J --out runs/fact
  sensorium evaluate runs/fact         the leaderboard table of the trained model
  sensorium plot runs/fact             figures of what it learned, in runs/fact/figures/
  sensorium compare runs/fact runs/ln  two runs' tables side by side
  sensorium submit runs/fact --out submission/   the competition's files

The cache folder is $SENSORIUM_DATA_DIR (default: the OS cache, e.g. ~/.cache/sensorium).
Each command's --help says more.
"""
TABLE_COLUMNS = {
    "mouse": "mouse", "tier": "tier", "stimulus_type": "stimulus", "n_trials": "trials",
    "single_trial_correlation": "single_trial", "single_trial_correlation_ceiling": "ceiling",
    "single_trial_correlation_fraction": "fraction", "correlation_to_average": "to_average",
    "correlation_to_average_ceiling": "to_avg_ceiling",
    "correlation_to_average_fraction": "to_avg_fraction", "calibration": "calibration",
}


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, else an error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: pass a positive integer")
    return value


def format_table(table: pd.DataFrame) -> str:
    """The leaderboard table, compact: short column names, three decimals."""
    columns = [c for c in TABLE_COLUMNS if c in table.columns]
    shown = table[columns].rename(columns=TABLE_COLUMNS)
    shown["mouse"] = [short_name(m) for m in shown["mouse"]]
    return shown.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config of ``sensorium train``: the run's (``--resume``) or a file's or the
    defaults, then the flags."""
    from sensorium_models.training import TrainConfig, read_config
    from sensorium_models.training.options import parse_assignment

    if args.config:
        config = TrainConfig.from_file(args.config)
    elif args.resume:
        config = read_config(args.resume)
    else:
        config = TrainConfig()
    overrides: dict[str, Any] = dict(parse_assignment(text) for text in args.set or [])
    for key, value in (("model", args.model), ("mice", args.mice), ("out", args.out),
                       ("device", args.device), ("max_epochs", args.max_epochs),
                       ("fold", args.fold)):
        if value is not None:
            overrides[key] = value
    if getattr(args, "track", None):  # 2022: SENSORIUM+ adds behaviour channels and shifter
        overrides["track"] = args.track
        overrides.setdefault("model_config.shifter", args.track == "sensorium+")
    return config.with_overrides(overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from sensorium_models.leaderboard import flagged
    from sensorium_models.training import distributed, train

    world = distributed.from_environment()
    if args.ensemble and (args.nproc > 1 or world.active):
        msg = (f"--ensemble {args.ensemble} on several processes: an ensemble trains its members "
               "one after another; drop --nproc (and torchrun), or train each member with it.")
        raise ValueError(msg)
    if args.nproc > 1:
        return distributed.launch(args.nproc, distributed.train_arguments(args))
    if args.ensemble and args.resume:
        msg = ("--ensemble with --resume: run the same `sensorium train --ensemble ...` command "
               "again (same --out); it keeps finished members and resumes the interrupted one.")
        raise ValueError(msg)
    config = train_config(args)
    if args.ensemble:
        return _train_ensemble(config, args.ensemble)
    if args.resume and args.out and Path(args.out) != Path(args.resume):
        msg = f"--out {args.out} and --resume {args.resume}: a resumed run stays in its folder."
        raise ValueError(msg)
    run_dir = train(config, resume=args.resume)
    if not world.main:  # rank 0 reports
        return 0
    metrics = pd.read_csv(run_dir / "metrics.csv")
    best = metrics.loc[metrics["validation_correlation"].idxmax()]
    print(f"run directory: {run_dir}")
    print(f"{len(metrics)} epochs; best {config.val_tier} correlation "
          f"{best['validation_correlation']:.4f} at epoch {int(best['epoch'])}")
    if (run_dir / "scores.csv").exists():
        print("\nleaderboard table of the best model (official scale; calibration: predicted "
              "mean / recorded mean, raw):")
        scores = pd.read_csv(run_dir / "scores.csv")
        print(format_table(scores))
        for line in flagged(scores):
            print(f"warning: {line}")
    print(f"\nfigures of what it learned: sensorium plot {run_dir}")
    return 0


def _train_ensemble(config: TrainConfig, strategy: str) -> int:
    from sensorium_models.training.ensembles import train_ensemble

    runs = train_ensemble(config, strategy)
    print(f"{len(runs)} members in {runs[0].parent}")
    print(f"the ensemble's table: sensorium evaluate {runs[0].parent}/*/")
    return 0


def run_datasets(run_dir: str, data_dir: str | None) -> dict[str, xr.Dataset]:
    """The recordings a run was trained on, opened again (no download)."""
    from sensorium_models.training.data import open_run_mice

    return open_run_mice(run_dir, data_dir)


def _predict(args: argparse.Namespace, run: str | Sequence[str],
             datasets: dict[str, xr.Dataset], tiers: Sequence[str] | None
             ) -> dict[str, xr.DataArray]:
    """One run's predictions, from its cache unless --no-cache; an ensemble's, predicted."""
    from sensorium_models.predictions import predict_cached
    from sensorium_models.training import predict

    runs = [run] if isinstance(run, str) else list(run)
    if len(runs) == 1:
        return predict_cached(runs[0], datasets, tiers=tiers, device=args.device,
                              batch_size=args.batch_size, progress=sys.stderr.isatty(),
                              cache=not args.no_cache)
    return predict(runs, datasets, tiers=tiers, device=args.device,
                   batch_size=args.batch_size, progress=sys.stderr.isatty())


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from sensorium_models.leaderboard import evaluate
    from sensorium_models.scoring_inputs import scored_tiers

    if args.out and Path(args.out).exists() and not args.overwrite:
        msg = f"--out {args.out} exists; pass a new path, or --overwrite to replace it."
        raise FileExistsError(msg)
    datasets = run_datasets(args.run[0], args.data_dir)
    predictions = _predict(args, args.run, datasets, args.tiers or scored_tiers(datasets))
    table = evaluate(predictions, datasets, scale=args.scale)
    print(f"leaderboard table ({args.scale} scale; calibration: predicted mean / recorded mean, "
          "raw)\n")
    print(format_table(table))
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"\nwritten to {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from sensorium_models.predictions import compare
    from sensorium_models.tables import format_side_by_side

    if args.out and Path(args.out).exists() and not args.overwrite:
        msg = f"--out {args.out} exists; pass a new path, or --overwrite to replace it."
        raise FileExistsError(msg)
    table, mice = compare(args.run, tiers=args.tiers, scale=args.scale,
                          data_dir=args.data_dir, device=args.device,
                          batch_size=args.batch_size, progress=sys.stderr.isatty(),
                          cache=not args.no_cache, scheduler=args.scheduler)
    labels = list(mice)
    print(f"single-trial correlation and correlation to average ({args.scale} scale), neurons "
          "of each run's mice pooled\n")
    print(format_side_by_side(table))
    first = labels[0]
    if any(m != mice[first] for m in mice.values()):
        print(f"\nnote: the runs were trained on different recordings; each is scored on its "
              f"own, and the ceiling is {first}'s.")
    if args.out:
        flat = table.copy()
        flat.columns = [c if isinstance(c, str) else f"{c[0]}:{c[1]}" for c in table.columns]
        flat.to_csv(args.out, index=False)
        print(f"\nwritten to {args.out}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from sensorium_models.figures import check_figures_free, plot_run
    from sensorium_models.training import read_config

    config = read_config(args.run)  # a clear error for a folder that is not a run
    folder = Path(args.out) if args.out else Path(args.run) / "figures"
    check_figures_free(folder, args.overwrite)  # before predicting
    datasets = run_datasets(args.run, args.data_dir)
    predictions = _predict(args, args.run, datasets, [args.tier or config.val_tier])
    for path in plot_run(args.run, datasets, predictions=predictions, out=args.out,
                         mouse=args.mouse, tier=args.tier, overwrite=args.overwrite):
        print(path)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from sensorium_models.predictions import write_predictions

    if Path(args.out).exists():
        msg = f"--out {args.out} exists; pass a new path (predictions are never written over)."
        raise FileExistsError(msg)
    if Path(args.out).suffix not in (".zarr", ".nc"):
        msg = (f"--out {args.out}: end it in .zarr (a zarr store) or .nc (netCDF, needs "
               "h5netcdf), e.g. --out predictions.zarr.")
        raise ValueError(msg)
    predictions = _predict(args, args.run, run_datasets(args.run[0], args.data_dir),
                           args.tiers)
    path = write_predictions(predictions, args.out)
    print(path)
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from sensorium_models.submission import FILES, check_free, submission_paths, write_submission

    if args.track in ("sensorium", "sensorium+"):  # 2022: the starter kit's CSV files
        from sensorium_models.training.submit2022 import submit_2022

        for path in submit_2022(args.run, args.out, track=args.track, device=args.device,
                                batch_size=args.batch_size, data_dir=args.data_dir,
                                overwrite=args.overwrite):
            print(path)
        return 0
    check_free(submission_paths(args.out, args.track), args.overwrite)  # before predicting
    datasets = run_datasets(args.run[0], args.data_dir)
    predictions = _predict(args, args.run, datasets, list(FILES[args.track]))
    for path in write_submission(predictions, datasets, args.out, track=args.track,
                                 scale="official", overwrite=args.overwrite):
        print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sensorium_models.demo import run_demo

    if args.track == "2022":
        from sensorium_models.demo.static2022 import run_demo_2022

        run_demo_2022(args.out, seed=args.seed, quick=args.quick, echo=print)
        return 0
    run_demo(args.out, seed=args.seed, quick=args.quick, echo=print)
    return 0


class RegistryHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills ``{models}`` in an option's help with the registered models, read from the
    registry only when that help is shown: listing them imports every model file (and torch),
    which ``sensorium --help`` and the other commands need not wait for."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{models}" in text:
            from sensorium_models.models import list_models

            text = text.replace("{models}", ", ".join(list_models()))
        return text


def add_model_commands(add: Adder) -> None:
    """Register ``train``, ``evaluate``, ``compare``, ``plot``, ``predict`` and ``submit``."""
    one = "a run directory written by `sensorium train`"
    ensembled = f"{one}; several are ensembled (their mean prediction)"

    def common(p: argparse.ArgumentParser, runs: str = ensembled) -> None:
        p.add_argument("run", help=runs, nargs=None if runs == one else "+")
        p.add_argument("--device", default="auto", help="auto (default: CUDA if available), "
                       "cpu, cuda, cuda:1, ...")
        p.add_argument("--batch-size", type=positive_int, default=8, help="trials per "
                       "forward pass (default 8)")
        p.add_argument("--data-dir", help="cache folder holding the run's recordings (default: "
                       "the run's, else $SENSORIUM_DATA_DIR or the OS cache)")
        p.add_argument("--no-cache", action="store_true", help="predict again, not reading "
                       "the predictions cached in RUN/predictions/ (one run's are cached there "
                       "by training and by each command)")

    p = add("train", "train a model on recordings; writes a run directory",
            examples=[
                ("sensorium train --model factorized_baseline --mice F G H I J --out runs/fact",
                 ""),
                ("sensorium train --config fact.toml --set lr=0.001 --set max_epochs=50", ""),
                ("sensorium train --mice sim/tiny-A sim/tiny-B sim/tiny-C --max-epochs 8 "
                 "--set normalize=per_neuron \\\n"
                 "      --set batch_size=4 --set 'model_config.hidden_channels=[8,16,16]'",
                 "simulated data (sensorium simulate sim/ --preset tiny)"),
                ("sensorium train --resume runs/fact", "continue an interrupted run"),
            ],
            notes="The run directory holds config.json (the resolved config), metrics.csv (one "
                  "row per epoch),\nbest.pt, last.pt and scores.csv (the leaderboard table of "
                  "the best model). A config\nfile (TOML or JSON) holds TrainConfig's keys and a "
                  "[model_config] table of the model's\noptions; --set overrides any of them. "
                  "See docs/training.md.")
    p.formatter_class = RegistryHelpFormatter
    p.add_argument("--model", help="one of {models} (docs/models.md; default "
                   "factorized_baseline)")
    p.add_argument("--mice", nargs="+", help="letters (F G H I J), recording names, or paths "
                   "to stores or file trees")
    p.add_argument("--config", help="a TOML or JSON file of TrainConfig keys")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set lr=0.001, --set "
                   "'model_config.hidden_channels=[16,32]' (repeatable; values are TOML; "
                   "the keys: docs/training.md)")
    p.add_argument("--out", help="the run directory (default runs/<model>-<date>-<time>)")
    p.add_argument("--fold", type=int, metavar="K", help="validate on fold K of the trials "
                   "grouped by video (of folds, default 7), train on the others")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last.pt; the config "
                   "must be the run's (max_epochs, device, amp, precision, compile, "
                   "num_workers, in_memory, progress, data_dir, download and score may change; "
                   "max_epochs not with schedule=warmup_cosine)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--max-epochs", type=int, help="stop after this many epochs at the latest")
    p.add_argument("--nproc", type=positive_int, default=1, metavar="K", help="train on K local "
                   "processes (torchrun, DistributedDataParallel; batch_size is split over them)")
    p.add_argument("--track", choices=["sensorium", "sensorium+"], help="2022 recordings: "
                   "sensorium (images only, no shifter) or sensorium+ (behaviour as image "
                   "channels, the pupil shifter on); docs/training.md, '2022'")
    p.add_argument("--ensemble", choices=["v1fm31", "folds7"], help="train a named ensemble "
                   "member by member under --out (v1fm31: Dynamic-V1FM's 31 readout variants; "
                   "folds7: one run per fold of 7 by video, DwiseNeuro's; a --set "
                   "teacher=runs/x/fold-{fold} distills each fold from its own); run it again "
                   "to continue")
    p.set_defaults(func=_cmd_train)

    p = add("evaluate", "print the leaderboard table of a trained run",
            examples=[("sensorium evaluate runs/fact", "every labelled tier but train"),
                      ("sensorium evaluate runs/fact --tiers oracle", "the oracle tier only"),
                      ("sensorium evaluate runs/fact --out scores.csv", "also save the table"),
                      ("sensorium evaluate runs/seed0 runs/seed1 runs/seed2",
                       "an ensemble: the mean prediction of three runs")],
            notes="Single-trial correlation and correlation to average per mouse, tier and "
                  "stimulus type,\non the official scale (--scale raw: the recorded units); "
                  "with simulated data, the ceiling\n(the noise-free rates) and the fraction of "
                  "it reached; calibration: predicted mean / recorded\nmean (raw; near 1 when "
                  "the scale is right), and a warning for predictions off in scale.")
    common(p)
    p.add_argument("--tiers", nargs="+", help="tiers to score (default: every labelled tier "
                   "but train)")
    p.add_argument("--scale", choices=["official", "raw"], default="official",
                   help="official (default: the leaderboard's per-frame precision) or raw")
    p.add_argument("--out", help="also write the table as CSV (a new file)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_evaluate)

    p = add("compare", "the leaderboard tables of several runs side by side",
            examples=[("sensorium compare runs/fact runs/gru runs/ln", "every labelled tier "
                       "but train"),
                      ("sensorium compare runs/a runs/b --tiers oracle --out compare.csv", "")],
            notes="Per tier and stimulus type, each run's single-trial correlation and "
                  "correlation to average\n(neurons of its mice pooled, as the leaderboard "
                  "does), with the ceiling on simulated data.\nEach run is scored on its own "
                  "recordings. To average runs into one model: sensorium evaluate\nRUN RUN ...")
    common(p, runs="run directories written by `sensorium train`, each scored on its own")
    p.add_argument("--tiers", nargs="+", help="tiers to score (default: every labelled tier "
                   "but train)")
    p.add_argument("--scale", choices=["official", "raw"], default="official",
                   help="official (default: the leaderboard's) or raw response units")
    p.add_argument("--out", help="also write the table as CSV (a new file)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--scheduler", metavar="ADDRESS", help="score the runs on this dask "
                   "cluster (tcp://host:8786), one task per run")
    p.set_defaults(func=_cmd_compare)

    p = add("plot", "draw what a trained run learned: learning curves, traces, readout positions",
            examples=[("sensorium plot runs/fact", "into runs/fact/figures/"),
                      ("sensorium plot runs/fact --mouse G --out figs/", "traces of mouse G"),
                      ("sensorium plot runs/fact --tier train --overwrite",
                       "on the training trials, replacing the earlier figures")],
            notes="Writes learning_curves.png (validation correlation, LR decays, train loss), "
                  "traces.png\n(recorded against predicted responses of the three neurons "
                  "predicted best), correlations.png\n(per-neuron single-trial correlations), "
                  "readout_positions.png (each neuron's position in the\nvideo, coloured by "
                  "its cortical position) and, on simulated recordings, "
                  "receptive_fields.png\n(learned against true). Predicts one tier of one "
                  "mouse (sensorium_models.plot_run).")
    common(p, runs=one)
    p.add_argument("--out", help="folder of the figures (default RUN/figures)")
    p.add_argument("--mouse", help="the recording of the traces and correlations: a letter, "
                   "short or folder name (default: the run's first)")
    p.add_argument("--tier", help="the tier they are drawn from (default: the run's "
                   "validation tier, oracle)")
    p.add_argument("--overwrite", action="store_true", help="replace figures already in the "
                   "folder (without it they are an error)")
    p.set_defaults(func=_cmd_plot)

    p = add("predict", "write a trained run's whole-trial predictions (raw response units)",
            examples=[("sensorium predict runs/fact --out preds.zarr", "every tier but train"),
                      ("sensorium predict runs/fact --out preds.zarr --tiers oracle", ""),
                      ("sensorium predict runs/fact --out preds.nc", "netCDF (needs h5netcdf)")],
            notes="One group per mouse, a DataArray `predictions` (trial, neuron, frame), NaN "
                  "on the model's\nburn-in frames and past each trial's end; read one back "
                  "with\nxarray.open_zarr('preds.zarr', group=MOUSE)['predictions'].")
    common(p)
    p.add_argument("--out", required=True, help="the file to write: .zarr or .nc")
    p.add_argument("--tiers", nargs="+", help="tiers to predict (default: every tier but train)")
    p.set_defaults(func=_cmd_predict)

    p = add("submit", "write the competition's submission files of a trained run",
            examples=[("sensorium submit runs/fact --out submission/", "main track"),
                      ("sensorium submit runs/fact --out submission/ --track bonus",
                       "bonus track (out-of-domain stimuli)"),
                      ("sensorium submit runs/seed0 runs/seed1 --out submission/",
                       "an ensemble's files")],
            notes="Predicts the track's live and final test tiers, writes them on the "
                  "official scale as\nbrotli parquet files and the zips to upload "
                  "(sensorium_models.write_submission).")
    common(p)
    p.add_argument("--out", required=True, help="folder to write the files into")
    p.add_argument("--track", choices=["main", "bonus", "sensorium", "sensorium+"],
                   default="main", help="2023: main (default) or bonus; 2022: sensorium or "
                   "sensorium+ (the CSV files of the live and final test)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier "
                   "submission in --out (without it they are an error)")
    p.set_defaults(func=_cmd_submit)


def add_demo(add: Adder) -> None:
    p = add("demo", "the whole path on simulated data: simulate, convert, open, train, score, "
            "plot",
            examples=[("sensorium demo", "into a new temporary folder"),
                      ("sensorium demo --out demo/", "keep everything in demo/")],
            notes="Trains a reduced factorized baseline and the LN model on the CPU (a few "
                  "minutes on 2 cores),\nprints the leaderboard table against the simulator's "
                  "ceiling, and writes results.json and\nfigures (learning curves, traces, "
                  "receptive fields) into the folder. See docs/training.md.")
    p.add_argument("--out", help="folder for everything the demo writes: new, empty, or an "
                   "earlier demo's, which is rewritten (default: a new temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.add_argument("--track", choices=["2023", "2022"], default="2023", help="2023 (default: "
                   "videos, the tiny preset) or 2022 (static images: the static2022 twin, "
                   "sota_2022 against ln_2022)")
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tests: seconds
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorium",
        description="The SENSORIUM benchmarks: lazy, labelled recordings, models, training, "
                    "scores and submissions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbose(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = subcommand_adder(sub)
    add_demo(add)
    add_data_commands(add)
    add_model_commands(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv, errors=(ImportError,))


if __name__ == "__main__":
    sys.exit(main())
