"""The 2022 models on the static twin: SOTA against LN, SENSORIUM+ against SENSORIUM, with the
behaviour gain of the twin on and off, scored against the twin's known ceiling.

Simulates the ``static2022`` preset twice (``behavior_gain`` on and off, same seed: the same
images, neurons and behaviour), converts the recordings, trains the runs below with the 2022
recipe (``docs/recipes/sota_2022.toml``: Adam 0.009, Poisson times sqrt(trials / batch),
plateau 0.3 / 5 with four early-stopping rounds on the validation tier, one batch of each
mouse per step) and scores every tier but train with the leaderboard's metrics
(:func:`sensorium_models.evaluate`, official scale). The ceiling of each metric is the score
of the twin's noise-free expected responses (``rates``) on the same trials. On the tiers with
repeats (test, final_test) :func:`~sensorium_models.scoring2022.twin_feve` gives FEVE as a
fraction of the twin's known explainable variance: ``feve_known`` (of the rates' variance, image
and behaviour; the rates score 1) and ``feve_known_image`` (of the image's share, the known
counterpart of the website's FEVE; the rates score ``feve_known_image_rates``), means over the
neurons whose known explainable fraction reaches 0.15 (``*_median``: medians). Writes under
``--out``::

    trees-gain/, trees-nogain/     the simulated recordings (gain on, off)
    stores-gain/, stores-nogain/   their stores
    runs/<run>/                    one run directory per run (an interrupted one is resumed)
    twin_2022.json                 per run, mouse and tier: the metrics, the ceilings, timings
    report.md                      the table

Runs (``--runs`` picks some): ``sota``, ``ln`` (SENSORIUM track, gain on), ``sota_plus``
(SENSORIUM+, gain on), ``sota_nogain``, ``sota_plus_nogain`` (gain off).

Usage::

    nice -n 10 python benchmarks/twin_2022.py --out /tmp/i22models/twin --scale 1 --epochs 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

RUNS = {  # name: (model, track, twin with behaviour gain)
    "sota": ("sota_2022", "sensorium", True),
    "ln": ("ln_2022", "sensorium", True),
    "sota_plus": ("sota_2022", "sensorium+", True),
    "sota_nogain": ("sota_2022", "sensorium", False),
    "sota_plus_nogain": ("sota_2022", "sensorium+", False),
}
METRICS = ("single_trial_correlation", "correlation_to_average", "feve")
RECIPE = Path(__file__).parents[1] / "docs" / "recipes" / "sota_2022.toml"


def twin(out: Path, gain: bool, seed: int, scale: float) -> list[Path]:
    """The stores of the twin with the behaviour gain on or off (simulated once)."""
    from sensorium_data import convert, simulate

    kind = "gain" if gain else "nogain"
    trees = out / f"trees-{kind}"
    folders = (sorted(p for p in trees.iterdir() if not p.name.startswith("."))
               if trees.exists() else [])
    if not folders:
        folders = simulate(trees, preset="static2022", seed=seed, scale=scale,
                           image_scale=0.25, behavior_gain=gain, progress=False)
    stores = []
    for folder in folders:
        store = out / f"stores-{kind}" / f"{folder.name}.zarr"
        if not store.exists():
            convert(folder, store, progress=False)
        stores.append(store)
    return stores


def ceilings(stores: list[Path]) -> Any:
    """The leaderboard table of the twin's rates (the noise-free expected responses)."""
    import xarray as xr

    import sensorium_data as sd
    import sensorium_models as sm

    datasets = {}
    predictions = {}
    for store in stores:
        ds = sd.open_mouse(store)
        name = str(ds.attrs["mouse"])
        scored = ~ds["tier"].isin(["train", "none"])
        rates = ds["rates"].where(scored, drop=True)
        datasets[name] = ds
        predictions[name] = xr.DataArray(rates.values, dims=("trial", "neuron"),
                                         coords={"trial": rates["trial"].values})
    return sm.evaluate(predictions, datasets, scale="official")


def known_feve(run: Path, stores: list[Path]) -> dict[tuple[str, str], dict[str, float]]:
    """Per mouse and scored tier with repeats (test, final_test): :func:`~sensorium_models.
    scoring2022.twin_feve` of the run's predictions, the fraction of the twin's known
    explainable variance that they explain (and the rates' own values beside them)."""
    import xarray as xr

    import sensorium_data as sd
    import sensorium_models as sm
    from sensorium_models.scoring2022 import twin_feve
    from sensorium_models.training import images
    from sensorium_models.training.predict import no_autocast

    model, config = sm.load_run(run), sm.read_config(run)
    out = {}
    for store in stores:
        ds = sd.open_mouse(store)
        mouse = str(ds.attrs["mouse"])
        for tier in ("test", "final_test"):
            if tier not in set(ds["tier"].values.astype(str)):
                continue
            dataset = images.image_set(config, {mouse: ds}, tier)
            predicted = images.predict_items(model, dataset, batch_size=128,
                                             device=torch.device("cpu"),
                                             autocast=no_autocast)[mouse]
            values = xr.DataArray(predicted["predictions"], dims=("trial", "neuron"),
                                  coords={"trial": predicted["trial"]})
            scored = twin_feve(values, ds, tier=tier, units="official")
            rates = ds["rates"].where(ds["tier"] == tier, drop=True)
            ceiling = twin_feve(xr.DataArray(rates.values, dims=("trial", "neuron"),
                                             coords={"trial": rates["trial"].values}),
                                ds, tier=tier, units="raw")
            out[mouse, tier] = {**scored, "feve_known_image_rates": ceiling["feve_known_image"]}
    return out


def train(name: str, stores: list[Path], out: Path, epochs: int, channels: int | None,
          batch_size: int, seed: int) -> Path:
    import sensorium_models as sm

    model, track, _ = RUNS[name]
    config = sm.TrainConfig.from_file(RECIPE)
    folder = out / "runs" / name
    options: dict[str, Any] = {"shifter": track == "sensorium+"}
    if channels is not None:
        options["hidden_channels"] = channels
    # the twin stores its images at the starter kit's 36 x 64 already (image_scale 0.25 of the
    # release's 144 x 256): read them as stored
    overrides = {"model": model, "mice": tuple(str(s) for s in stores), "track": track,
                 "image_scale": 1.0,
                 "max_epochs": epochs, "batch_size": batch_size, "device": "cpu",
                 "progress": False, "out": str(folder), "model_config": options,
                 "seed": seed}
    config = config.with_overrides(overrides)
    if (folder / "scores.csv").exists():
        return folder
    if (folder / "last.pt").exists():
        return sm.train(sm.read_config(folder), resume=folder)
    return sm.train(config)


def markdown(table: Any) -> str:
    """A pandas table as a Markdown table, numbers to three decimals."""
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="the preset's scale (neurons and trials)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40, help="max_epochs of every run")
    parser.add_argument("--channels", type=int, default=None,
                        help="hidden_channels of the core (default: the published 64)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prepare", action="store_true",
                        help="only simulate and convert (then run --runs in parallel processes, "
                        "and once more without --prepare to collect the table)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": f"{platform.node()} {platform.processor()} "
                               f"{os.cpu_count()} CPUs, torch {torch.__version__}",
                               "args": {k: str(v) for k, v in vars(args).items()},
                               "runs": {}}
    stores = {gain: twin(args.out, gain, args.seed, args.scale)
              for gain in sorted({RUNS[r][2] for r in args.runs})}
    if args.prepare:
        return
    ceiling = {gain: ceilings(s) for gain, s in stores.items()}
    rows = []
    for name in args.runs:
        gain = RUNS[name][2]
        start = time.perf_counter()
        run = train(name, stores[gain], args.out, args.epochs, args.channels, args.batch_size,
                    args.seed)
        seconds = time.perf_counter() - start
        scores = pd.read_csv(run / "scores.csv")
        metrics = pd.read_csv(run / "metrics.csv")
        table = scores.merge(ceiling[gain][["mouse", "tier", *METRICS]], on=["mouse", "tier"],
                             suffixes=("", "_rates"))
        table = table[table["n_trials"] > 0]
        known = known_feve(run, stores[gain])
        for row in table.to_dict("records"):
            test = known.get((row["mouse"], row["tier"]), {})
            rows.append({"run": name, "model": RUNS[name][0], "track": RUNS[name][1],
                         "gain": gain, **{k: row[k] for k in ("mouse", "tier", "n_trials")},
                         **{m: row[m] for m in METRICS},
                         **{f"{m}_rates": row[f"{m}_rates"] for m in METRICS},
                         **{k: test.get(k, float("nan"))
                            for k in ("feve_known", "feve_known_image",
                                      "feve_known_image_rates", "feve_known_median",
                                      "feve_known_image_median")}})
        results["runs"][name] = {"epochs": len(metrics), "seconds": round(seconds, 1),
                                 "best_validation": float(
                                     metrics["validation_correlation"].max())}
    results["rows"] = rows
    (args.out / "twin_2022.json").write_text(json.dumps(results, indent=2) + "\n")
    report = pd.DataFrame(rows)
    report["feve / ceiling"] = report["feve"] / report["feve_rates"]
    text = markdown(report)
    (args.out / "report.md").write_text(text + "\n")
    print(text)
    print(json.dumps(results["runs"], indent=2))


if __name__ == "__main__":
    main()
