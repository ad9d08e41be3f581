"""``sensorium demo``: the whole path on simulated data, on the CPU, in a few minutes.

Simulate the ``tiny`` preset (three mice), convert it to zarr stores, open the stores lazily,
train a reduced factorized baseline and the linear-nonlinear (LN) model, score both against
the simulator's ceiling, and write ``results.json`` and figures::

    OUT/
    ├── trees/tiny-A, tiny-B, tiny-C     the simulated recordings (competition format)
    ├── stores/tiny-?.zarr               their zarr stores
    ├── runs/factorized_baseline/, runs/ln/   run directories (see docs/training.md)
    ├── results.json                     per model, tier and stimulus type: the metrics, ceilings
    ├── learning_curves.png
    ├── traces.png                       recorded, predicted and true traces of the best neurons
    └── receptive_fields.png             learned against true receptive-field centres
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Echo = Callable[[str], Any]
LABELS = {"factorized_baseline": "baseline", "ln": "LN"}
SCALES: tuple[Literal["raw", "official"], ...] = ("raw", "official")
MARKER = ".sensorium-demo"


@dataclass(frozen=True)
class DemoPlan:
    """What the demo trains: the simulation's scale and, per model, the config overrides."""

    scale: float
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""


# Two CPU cores train the published baseline (32-64-128 channels) at about 19 s per batch of
# eight 80-frame clips of 80 neurons (benchmarks/gpu.py --device cpu, docs/benchmarks.md); the
# demo narrows it and trains a few minutes. With 16 train trials
# per mouse the competition's per-frame response statistics are noisy (a frame that no
# train trial of a neuron fires in gets a 100x precision), so the demo normalizes per neuron.
# The LN model has no normalization after its filters and diverges at lr 5e-3: it gets 5e-4.
FULL = DemoPlan(
    scale=1.0,
    models={
        "factorized_baseline": {
            "normalize": "per_neuron", "batch_size": 4, "max_epochs": 8,
            "model_config": {"hidden_channels": [8, 16, 16], "init_sigma": 0.1,
                             "momentum": 0.1},
        },
        "ln": {
            "normalize": "per_neuron", "batch_size": 4, "max_epochs": 3, "lr": 5e-4,
            "model_config": {"spatial_kernel": 9, "temporal_kernel": 7},
        },
    },
    note="reduced for the CPU; the published baseline has 32-64-128 channels",
)
QUICK = DemoPlan(
    scale=0.3,
    models={
        "factorized_baseline": {
            "normalize": "per_neuron", "batch_size": 4, "max_epochs": 1,
            "model_config": {"hidden_channels": [4, 4, 4]},
        },
        "ln": {
            "normalize": "per_neuron", "batch_size": 4, "max_epochs": 1, "lr": 5e-4,
            "model_config": {"channels": 2, "spatial_kernel": 5, "temporal_kernel": 3},
        },
    },
    note="quick test run: one epoch each, not meant to learn",
)


def run_demo(out: str | os.PathLike[str] | None = None, *, seed: int = 0, quick: bool = False,
             echo: Echo = print) -> Path:
    """Run the demo into ``out`` (default: a new temporary folder); return ``out``.

    ``echo`` receives the lines to show (the CLI prints them); ``quick`` runs a seconds-long
    version for the tests.
    """
    import pandas as pd

    import sensorium_data as sd
    from sensorium_data.cli import describe
    from sensorium_models.demo.results import results
    from sensorium_models.leaderboard import evaluate
    from sensorium_models.tables import format_side_by_side, side_by_side
    from sensorium_models.training import TrainConfig, load_run, predict, train

    plan = QUICK if quick else FULL
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="sensorium-demo-"))
    claim(folder)
    clock = _Clock()
    echo(f"sensorium demo: the whole path on simulated data, on the CPU, into {folder}")
    echo(f"1/6 simulating the 'tiny' preset (scale {plan.scale}) into {folder / 'trees'}")
    trees = sd.simulate(folder / "trees", preset="tiny", seed=seed, scale=plan.scale,
                        overwrite=True, progress=False)
    echo(f"    {len(trees)} recordings {clock.lap()}")
    echo(f"2/6 converting them into zarr stores under {folder / 'stores'}")
    stores = [sd.convert(tree, folder / "stores" / f"{tree.name}.zarr", overwrite=True,
                         progress=False) for tree in trees]
    echo(f"    done {clock.lap()}")
    echo("3/6 opening them lazily")
    datasets = {}
    for store in stores:
        ds = sd.open_mouse(store)
        datasets[str(ds.attrs["mouse"])] = ds
    echo(_indent(describe(next(iter(datasets.values())), dataset=False)))
    for name, ds in list(datasets.items())[1:]:
        echo(f"    {name}: {ds.sizes['neuron']} neurons, {ds.sizes['trial']} trials")
    echo(f"    {clock.lap()}")

    metrics, predictions, runs = {}, {}, {}
    tables: dict[str, dict[str, pd.DataFrame]] = {"raw": {}, "official": {}}
    for k, (model, overrides) in enumerate(plan.models.items()):
        echo(f"{4 + k}/6 training {model} ({_describe(overrides)}; {plan.note})")
        run = folder / "runs" / model
        _clear(run)
        config = TrainConfig(model=model, mice=tuple(str(s) for s in stores), seed=seed,
                             out=str(run), device="cpu", progress=not quick,
                             score=False).with_overrides(overrides)
        runs[model] = train(config)
        metrics[model] = pd.read_csv(run / "metrics.csv")
        predictions[model] = predict(run, datasets)
        for scale in SCALES:
            tables[scale][model] = evaluate(predictions[model], datasets, scale=scale)
        tables["official"][model].to_csv(run / "scores.csv", index=False)
        best = metrics[model]["validation_correlation"].max()
        echo(f"    {len(metrics[model])} epochs, best oracle correlation {best:.3f} "
             f"{clock.lap()}")

    echo("6/6 scores: single-trial correlation and correlation to average (frames 50-300, "
         "neurons of all mice pooled)\n")
    echo(format_side_by_side(side_by_side(tables["raw"]), LABELS))
    echo("\ncalibration (predicted mean / recorded mean, raw, oracle tier, all mice): "
         + ", ".join(f"{LABELS.get(m, m)} {_calibration(t):.2f}" for m, t in tables["raw"].items()))
    echo("\nbaseline: the factorized baseline (reduced); LN: the linear-nonlinear floor; ceiling: "
         "the simulator's\nnoise-free rates scored like a model. Raw scale: with the tiny "
         "preset's few train trials the\nofficial per-frame scale inflates the scores "
         "(results.json has both).")
    summary = {
        "preset": "tiny", "scale": plan.scale, "seed": seed, "note": plan.note,
        "models": {m: {"config": json.loads((r / "config.json").read_text()),
                       "epochs": len(metrics[m])} for m, r in runs.items()},
        "results": {scale: results(t) for scale, t in tables.items()},
    }
    (folder / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    echo(f"\nresults: {folder / 'results.json'}")
    figures = _figures(folder, datasets, predictions, metrics,
                       {m: load_run(r) for m, r in runs.items()})
    for path in figures:
        echo(f"figure:  {path}")
    echo(f"done in {clock.total():.0f} s")
    return folder


def _figures(folder: Path, datasets: dict, predictions: dict, metrics: dict,
             models: dict) -> list[Path]:
    from sensorium_models import figures

    paths = [figures.learning_curves(metrics, folder / "learning_curves.png", val_tier="oracle")]
    mouse = next(iter(datasets))
    best_model = max(metrics, key=lambda m: metrics[m]["validation_correlation"].max())
    paths.append(figures.traces(datasets[mouse], {m: p[mouse] for m, p in predictions.items()},
                                folder / "traces.png", best_model=best_model))
    model = "factorized_baseline"
    if model in models:
        shape = (datasets[mouse].sizes["height"], datasets[mouse].sizes["width"])
        learned, truth = {}, {}
        for name, ds in datasets.items():
            true = figures.true_receptive_fields(ds)
            if true is not None:
                truth[name] = true
                learned[name] = figures.readout_pixels(models[model], name, shape)
        if truth:
            paths.append(figures.receptive_fields(learned, truth,
                                                  folder / "receptive_fields.png", model=model,
                                                  video_shape=shape))
    return paths


def _calibration(table: Any) -> float:
    """The oracle tier's pooled calibration of a leaderboard table."""
    pooled = table[(table["mouse"] == "all") & (table["tier"] == "oracle")]
    return float(pooled["calibration"].iloc[0]) if len(pooled) else float("nan")


def _describe(overrides: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in overrides.items() if k != "model_config"]
    parts += [f"{k}={v}" for k, v in overrides.get("model_config", {}).items()]
    return ", ".join(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def claim(folder: Path) -> None:
    """Make ``folder`` the demo's: new, empty, or written by an earlier demo (its marker file);
    anything else is an error, so that the demo never writes over a user's files."""
    marker = folder / MARKER
    if folder.is_dir() and not marker.exists():
        found = sorted(p.name for p in folder.iterdir())
        if found:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            msg = (f"{folder} holds files the demo did not write ({shown}); pass a new or "
                   "empty folder, or one an earlier sensorium demo wrote (it is rewritten).")
            raise FileExistsError(msg)
    elif folder.exists() and not folder.is_dir():
        msg = f"{folder} is a file; pass a folder for the demo to write into."
        raise FileExistsError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by `sensorium demo`; a later demo into this folder rewrites it\n")


def _clear(run: Path) -> None:
    """Remove an earlier demo's run folder (the demo's folder is its own, see claim)."""
    if run.is_dir():
        shutil.rmtree(run)


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def lap(self) -> str:
        now = time.perf_counter()
        text = f"({now - self.last:.1f} s)"
        self.last = now
        return text

    def total(self) -> float:
        return time.perf_counter() - self.start
