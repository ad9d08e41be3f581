"""``sensorium demo --track 2022``: the 2022 path on the static twin, on the CPU.

Simulate the ``static2022`` preset (three mice of flashed images, images stored at the starter
kit's 36 x 64), convert it, train a narrowed ``sota_2022`` and ``ln_2022`` on the SENSORIUM
track with the 2022 recipe's optimizer and schedule, and print the 2022 leaderboard table
(single-trial correlation, correlation to average, FEVE) of the test tier beside the twin's
ceiling (its noise-free rates scored like a model)::

    OUT/
    ├── trees/static2022-A, -B, -C    the simulated recordings (2022 file format)
    ├── stores/static2022-?.zarr      their stores
    ├── runs/sota_2022/, runs/ln_2022/
    └── results.json                  per model, mouse and tier: the table's rows
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sensorium_models.demo import Echo, _clear, _Clock, claim

# The recipe of docs/recipes/sota_2022.toml, narrowed for two CPU cores: 16 channels instead
# of 64, batches of 32 instead of 128 (more steps in the few epochs), a fixed epoch budget.
RECIPE: dict[str, Any] = {
    "track": "sensorium", "image_scale": 1.0, "normalize": "official",
    "val_tier": "validation", "optimizer": "adam", "lr": 0.009, "weight_decay": 0.0,
    "drop_last": False, "factor": 0.3, "patience": 5, "lr_decay_steps": 4,
    "min_lr": 1e-4, "threshold": 1e-6,
}
FULL = {"scale": 0.3, "epochs": 6, "batch_size": 32, "channels": 16}
QUICK = {"scale": 0.1, "epochs": 1, "batch_size": 32, "channels": 4}
MODELS = ("sota_2022", "ln_2022")
SHOWN = ("single_trial_correlation", "correlation_to_average", "feve")


def run_demo_2022(out: str | os.PathLike[str] | None = None, *, seed: int = 0,
                  quick: bool = False, echo: Echo = print) -> Path:
    """Run the 2022 demo into ``out`` (default: a new temporary folder); return ``out``."""
    import pandas as pd

    import sensorium_data as sd
    from sensorium_models.training import TrainConfig, train

    plan = QUICK if quick else FULL
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="sensorium-demo-2022-"))
    claim(folder)
    clock = _Clock()
    echo(f"sensorium demo --track 2022: the static twin, on the CPU, into {folder}")
    echo(f"1/4 simulating the 'static2022' preset (scale {plan['scale']}, images 36 x 64)")
    trees = sd.simulate(folder / "trees", preset="static2022", seed=seed, scale=plan["scale"],
                        image_scale=0.25, overwrite=True, progress=False)
    echo(f"    {len(trees)} recordings {clock.lap()}")
    echo("2/4 converting them into zarr stores")
    stores = [sd.convert(tree, folder / "stores" / f"{tree.name}.zarr", overwrite=True,
                         progress=False) for tree in trees]
    echo(f"    done {clock.lap()}")
    tables = {}
    for k, model in enumerate(MODELS):
        echo(f"{3 + k}/4 training {model} (hidden_channels {plan['channels']}, batches of "
             f"{plan['batch_size']}, {plan['epochs']} epochs; the published core has 64 "
             "channels)")
        run = folder / "runs" / model
        _clear(run)
        config = TrainConfig(model=model, mice=tuple(str(s) for s in stores), seed=seed,
                             out=str(run), device="cpu", progress=False,
                             batch_size=int(plan["batch_size"]), max_epochs=int(plan["epochs"]),
                             model_config={"hidden_channels": plan["channels"]},
                             ).with_overrides(RECIPE)
        train(config)
        tables[model] = pd.read_csv(run / "scores.csv")
        best = pd.read_csv(run / "metrics.csv")["validation_correlation"].max()
        echo(f"    best validation correlation {best:.3f} {clock.lap()}")
    echo("\ntest tier, per mouse (official scale; ceiling: the twin's noise-free rates):\n")
    echo(side_by_side(tables))
    summary = {"preset": "static2022", "seed": seed, **plan,
               "results": {m: t.to_dict("records") for m, t in tables.items()}}
    (folder / "results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    echo(f"\nresults: {folder / 'results.json'}")
    echo(f"done in {clock.total():.0f} s")
    return folder


def side_by_side(tables: dict[str, Any]) -> str:
    """The test tier's metrics of each model and the ceiling, one row per mouse."""
    first = next(iter(tables.values()))
    test = first[first["tier"] == "test"]
    lines = ["mouse         metric                      " + "  ".join(
        f"{m:>9}" for m in tables) + "    ceiling"]
    for mouse in test["mouse"]:
        for metric in SHOWN:
            values = []
            for table in tables.values():
                row = table[(table["mouse"] == mouse) & (table["tier"] == "test")]
                values.append(f"{float(row[metric].iloc[0]):9.3f}")
            ceiling = test[test["mouse"] == mouse].get(f"{metric}_ceiling")
            top = "        -" if ceiling is None else f"{float(ceiling.iloc[0]):9.3f}"
            lines.append(f"{mouse:13} {metric:27} " + "  ".join(values) + f"  {top}")
    return "\n".join(lines)
