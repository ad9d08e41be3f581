"""Speed, memory and realism of the simulator, ``sensorium_data.simulate``.

Three steps, each writing ``<out>/<step>.json`` and printing markdown tables:

``speed``
    ``tiny`` end to end (three runs), one full-size mouse of the ``sensorium2023`` preset
    (mouse H: 8,202 neurons, 711 trials) and the same mouse with a quarter of its trials,
    each in a fresh process: wall and CPU time, peak resident memory, bytes written.
``realism``
    The ``sensorium2023`` preset at ``--scale`` (and, with ``--full``, the full-size mouse the
    speed step wrote): per-neuron response statistics against the real recordings'
    (``shared/reference/sensorium2023/*/neurons.csv``), the ceilings (rates against responses)
    per stimulus type, and a linear-nonlinear model (ridge regression from the video and the
    behaviour, with a per-neuron output nonlinearity) fitted on the train tier and scored on
    the test tiers like the leaderboard (``sensorium_models.metrics``).
``figures``
    The figures of ``docs/simulator.md`` into ``--figures`` (default docs/figures/simulator).

Usage::

    python benchmarks/simulate.py speed --out /tmp/simbench
    python benchmarks/simulate.py realism --out /tmp/simbench --scale 0.1 \\
        --full /tmp/simbench/full/sensorium2023-H
    python benchmarks/simulate.py figures --out /tmp/simbench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "sensorium2023"
TYPES = ("NaturalVideo", "NaturalImages", "Gabor", "PinkNoise", "RandomDots", "GaussianDot")
LAGS = (0, 3, 6, 9, 12)
"""Frame lags of the linear model's video features (0-400 ms)."""
POOL = 2
"""The linear model sees the video pooled 2 x 2: 18 x 32 pixels per frame."""
LAMBDAS = (1e2, 1e3, 1e4, 1e5, 1e6)
NONLINEARITIES = ("identity", "relu", "squared relu")


# -------------------------------------------------------------------------------- speed

CHILD = r"""
import json, resource, sys, time
path, what, fraction = sys.argv[1], sys.argv[2], float(sys.argv[3])
start, cpu = time.perf_counter(), time.process_time()
if what == "tiny":
    from sensorium_data.simulate import simulate
    simulate(path, preset="tiny", progress=False)
    n_trials = 162
else:
    from dataclasses import replace
    from sensorium_data.simulate.presets import sensorium2023
    from sensorium_data.simulate.recording import write_mouse
    plan = next(p for p in sensorium2023(0, 1.0) if p.name == "sensorium2023-" + what)
    if fraction < 1:
        keep = slice(0, None, round(1 / fraction))
        plan = replace(plan, **{k: getattr(plan, k)[keep] for k in
                                ("trials", "stimulus_type", "video_id", "valid_frames")})
    write_mouse(plan, __import__("pathlib").Path(path) / plan.name, seed=0,
                params={"preset": "sensorium2023", "seed": 0, "scale": 1.0})
    n_trials = len(plan.trials)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                  "peak_rss_mb": peak / 1024, "trials": n_trials}))
"""


def _child(path: Path, what: str, fraction: float = 1.0) -> dict[str, float]:
    if path.exists():
        shutil.rmtree(path)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), what, str(fraction)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["disk_mb"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    return result


def speed(out: Path, mouse: str) -> dict[str, object]:
    tiny = [_child(out / "tiny", "tiny") for _ in range(3)]
    quarter = _child(out / "quarter", mouse, 0.25)
    full = _child(out / "full", mouse)
    result = {"machine": _machine(), "tiny": tiny, "mouse": mouse, "quarter": quarter, "full": full}
    print("| run | trials | wall s | CPU s | peak RSS MB | disk MB |\n|---|---|---|---|---|---|")
    for name, r in [
        *((f"tiny #{i + 1}", t) for i, t in enumerate(tiny)),
        (f"mouse {mouse}, 1/4 of trials", quarter),
        (f"mouse {mouse}", full),
    ]:
        print(
            f"| {name} | {r['trials']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['disk_mb']:.0f} |"
        )
    return result


def _machine() -> dict[str, object]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_before": load,
        "numpy": np.__version__,
    }


# ------------------------------------------------------------------------------ realism


def realism(out: Path, scale: float, full: Path | None) -> dict[str, object]:
    from sensorium_data.simulate import simulate

    root = out / f"sensorium2023-{scale:g}"
    start = time.perf_counter()
    folders = simulate(root, preset="sensorium2023", scale=scale, overwrite=True, progress=False)
    elapsed = time.perf_counter() - start
    mice = {f.name: analyse(f) for f in folders}
    result: dict[str, object] = {
        "scale": scale,
        "simulate_s": elapsed,
        "mice": mice,
        "pooled": pool(mice),
        "real": real_statistics(),
    }
    if full is not None:
        result["full"] = analyse(full)
        result["full_path"] = str(full)
    _print_realism(result)
    return result


def analyse(folder: Path) -> dict[str, object]:
    """Statistics, ceilings and the linear-nonlinear fit of one simulated recording."""
    from sensorium_data.tree import open_tree, valid_frames

    tree = open_tree(folder)
    labels = tree.trial_labels("stimulus_type")
    video_ids = tree.trial_labels("video_id")
    assert labels is not None and video_ids is not None
    trials = [
        (int(t), str(tier), str(s), str(v))
        for t, tier, s, v in zip(tree.trials, tree.tiers, labels, video_ids, strict=True)
    ]
    stats = _Stats()
    features = _Features(tree)
    n = len(tree.meta("neurons/unit_ids"))
    xtx = np.zeros((features.size, features.size))
    xty = np.zeros((features.size, n))
    for trial, tier, _, _ in trials:
        video = tree.read("videos", trial)
        valid = valid_frames(video)
        responses = tree.read("responses", trial)[:, :valid].astype(np.float64)
        stats.add(responses)
        if tier == "train":
            x = features(trial, valid)
            xtx += x.T @ x
            xty += x.T @ responses.T
    weights = _ridge(xtx, xty)
    choice = _choose(tree, trials, features, weights)
    scores = _score(tree, trials, features, weights, choice)
    truth = json.loads((folder / "meta" / "simulation_neurons.json").read_text())
    per_neuron = scores.pop("per_neuron")
    return {
        "neurons": n,
        "trials": len(trials),
        **stats.result(),
        **scores,
        "by_class": _by_class(per_neuron, truth),
        "natural_per_neuron": {k: v.tolist() for k, v in per_neuron.items()},
    }


class _Stats:
    """Per-neuron mean, std and max over all valid frames of all trials."""

    def __init__(self) -> None:
        self.n = 0
        self.sum: np.ndarray | float = 0.0
        self.sumsq: np.ndarray | float = 0.0
        self.max: np.ndarray | float = -np.inf

    def add(self, x: np.ndarray) -> None:
        self.n += x.shape[1]
        self.sum = self.sum + x.sum(axis=1)
        self.sumsq = self.sumsq + (x * x).sum(axis=1)
        self.max = np.maximum(self.max, x.max(axis=1))

    def result(self) -> dict[str, object]:
        mean = np.asarray(self.sum) / self.n
        std = np.sqrt(np.maximum(np.asarray(self.sumsq) / self.n - mean**2, 0))
        cv, peak = std / mean, np.asarray(self.max) / std
        return {
            "frames": self.n,
            "mean_median": float(np.median(mean)),
            "std_median": float(np.median(std)),
            "std_over_mean": _quantiles(cv),
            "max_over_std": _quantiles(peak),
            "per_neuron": {"std_over_mean": cv.tolist(), "max_over_std": peak.tolist()},
        }


def _quantiles(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    return {
        "median": float(np.median(x)),
        "q10": float(np.quantile(x, 0.1)),
        "q90": float(np.quantile(x, 0.9)),
    }


class _Features:
    """The linear model's inputs per frame: pooled, lagged video and standardized behaviour."""

    def __init__(self, tree: object) -> None:
        self.tree = tree
        stats = {k: tree.statistics(k) for k in ("behavior", "pupil_center")}  # type: ignore[attr-defined]
        self.mean = np.concatenate([np.nanmean(stats[k]["mean"], axis=1) for k in stats])
        self.std = np.concatenate([np.nanmean(stats[k]["std"], axis=1) for k in stats])
        self.pixels = (36 // POOL) * (64 // POOL)
        self.size = self.pixels * len(LAGS) + 4 + 1

    def __call__(self, trial: int, valid: int) -> np.ndarray:
        tree = self.tree
        video = tree.read("videos", trial)[..., :valid]  # type: ignore[attr-defined]
        frames = video.transpose(2, 0, 1).reshape(valid, 36 // POOL, POOL, 64 // POOL, POOL)
        pooled = (frames.mean(axis=(2, 4)).reshape(valid, -1) - 128.0) / 64.0
        lagged = np.zeros((valid, self.pixels * len(LAGS)))
        for i, lag in enumerate(LAGS):
            lagged[lag:, i * self.pixels : (i + 1) * self.pixels] = pooled[: valid - lag]
        behaviour = np.concatenate(
            [tree.read("behavior", trial), tree.read("pupil_center", trial)]  # type: ignore[attr-defined]
        )[:, :valid]
        behaviour = (behaviour.T - self.mean) / self.std
        return np.concatenate([lagged, behaviour, np.ones((valid, 1))], axis=1)


def _ridge(xtx: np.ndarray, xty: np.ndarray) -> list[np.ndarray]:
    """Ridge weights for every lambda of LAMBDAS (the bias is penalized too, weakly enough)."""
    evals, evecs = np.linalg.eigh(xtx)
    rotated = evecs.T @ xty
    return [evecs @ (rotated / (evals + lam)[:, None]) for lam in LAMBDAS]


def _nonlinear(u: np.ndarray, which: str) -> np.ndarray:
    if which == "identity":
        return u
    if which == "relu":
        return np.maximum(u, 0)
    return np.maximum(u, 0) ** 2


def _choose(tree, trials, features, weights) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per neuron, the lambda and the output nonlinearity that score best on the oracle tier."""
    from sensorium_data.tree import valid_frames
    from sensorium_models.metrics import RunningSingleTrialCorrelation

    accs = [[RunningSingleTrialCorrelation() for _ in NONLINEARITIES] for _ in LAMBDAS]
    for trial, tier, _, _ in trials:
        if tier != "oracle":
            continue
        video = tree.read("videos", trial)
        valid = valid_frames(video)
        x = features(trial, valid)
        responses = tree.read("responses", trial)[None, :, :valid]
        for i, w in enumerate(weights):
            u = (x @ w).T[None]
            for j, which in enumerate(NONLINEARITIES):
                accs[i][j].update(responses, _nonlinear(u, which))
    scores = np.array([[a.compute(per_neuron=True) for a in row] for row in accs])
    return scores.reshape(-1, scores.shape[-1]).argmax(axis=0)  # (neurons,) flat index


def _score(tree, trials, features, weights, choice) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Ceilings and the linear-nonlinear model's scores on the test tiers, per stimulus type."""
    from sensorium_data.tree import valid_frames
    from sensorium_models.metrics import (
        RunningCorrelationToAverage,
        RunningSingleTrialCorrelation,
    )

    lam_index, nl_index = np.divmod(choice, len(NONLINEARITIES))
    accs: dict[tuple[str, str, str], object] = {}
    for trial, tier, stimulus, video_id in trials:
        if tier in ("train", "oracle"):
            continue
        video = tree.read("videos", trial)
        valid = valid_frames(video)
        responses = tree.read("responses", trial)[None, :, :valid]
        rates = tree.read("rates", trial)[None, :, :valid]
        x = features(trial, valid)
        ln = np.empty_like(responses)
        for i, w in enumerate(weights):
            for j, which in enumerate(NONLINEARITIES):
                mine = (lam_index == i) & (nl_index == j)
                if mine.any():
                    ln[0, mine] = _nonlinear(x @ w[:, mine], which).T
        for model, prediction in (("ceiling", rates), ("ln", ln)):
            key_st, key_avg = (stimulus, model, "single"), (stimulus, model, "average")
            accs.setdefault(key_st, RunningSingleTrialCorrelation())
            accs.setdefault(key_avg, RunningCorrelationToAverage())
            accs[key_st].update(responses, prediction)  # type: ignore[attr-defined]
            accs[key_avg].update(responses, prediction, [video_id])  # type: ignore[attr-defined]
    table: dict[str, dict[str, float]] = defaultdict(dict)
    per_neuron: dict[str, np.ndarray] = {}
    for (stimulus, model, metric), acc in accs.items():
        try:
            values = acc.compute(per_neuron=True)  # type: ignore[attr-defined]
        except ValueError:  # a scaled-down recording may keep no repeated video of a type
            continue
        table[stimulus][f"{model}_{metric}"] = float(np.mean(values))
        if stimulus == "NaturalVideo" and metric == "single":
            per_neuron[model] = values
    return {"scores": dict(table), "per_neuron": per_neuron}


def _by_class(
    per_neuron: dict[str, np.ndarray], truth: dict[str, list[float]]
) -> dict[str, object]:
    """The linear-nonlinear model against the ceiling by ground-truth neuron class."""
    ceiling, ln = per_neuron["ceiling"], per_neuron["ln"]
    complexity = np.asarray(truth["complexity"])
    direction = np.asarray(truth["direction"])
    running = np.abs(np.asarray(truth["running_gain"]))
    groups = {
        "simple, not direction selective": (complexity < 0.5) & (direction < 0.5),
        "simple, direction selective": (complexity < 0.5) & (direction >= 0.5),
        "complex, not direction selective": (complexity >= 0.5) & (direction < 0.5),
        "complex, direction selective": (complexity >= 0.5) & (direction >= 0.5),
        "weak running gain (|log gain| < 0.3)": running < 0.3,
        "strong running gain (|log gain| > 0.8)": running > 0.8,
    }
    return {
        name: {
            "neurons": int(mask.sum()),
            "ceiling": float(ceiling[mask].mean()),
            "ln": float(ln[mask].mean()),
        }
        for name, mask in groups.items()
        if mask.any()
    }


def pool(mice: dict[str, dict[str, object]]) -> dict[str, dict[str, float]]:
    """Neuron-weighted means over mice of every score (as the leaderboard pools mice)."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    weights: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for m in mice.values():
        for stimulus, scores in m["scores"].items():  # type: ignore[attr-defined]
            for key, value in scores.items():
                sums[stimulus][key] += value * m["neurons"]  # type: ignore[operator]
                weights[stimulus][key] += m["neurons"]  # type: ignore[operator]
    return {s: {k: sums[s][k] / weights[s][k] for k in sums[s]} for s in TYPES if s in sums}


def real_statistics() -> dict[str, object]:
    """The reference tables' per-neuron std/mean and max/std, per recording."""
    import pandas as pd

    out = {}
    for folder in sorted(REFERENCE.glob("dynamic*")):
        table = pd.read_csv(folder / "neurons.csv")
        std, mean, peak = table.std_activation, table.mean_activation, table.max_activation
        out[folder.name] = {
            "std_over_mean": _quantiles((std / mean).to_numpy()),
            "max_over_std": _quantiles((peak / std).to_numpy()),
            "mean_median": float(mean.median()),
            "std_median": float(std.median()),
        }
    return out


def _print_realism(result: dict[str, object]) -> None:
    print(f"simulated the preset at scale {result['scale']} in {result['simulate_s']:.0f} s\n")
    print("| mouse | neurons | frames | std/mean (median) | max/std (median) |")
    print("|---|---|---|---|---|")
    rows = dict(result["mice"])  # type: ignore[call-overload]
    if "full" in result:
        rows["full-size mouse"] = result["full"]
    for name, m in rows.items():
        print(
            f"| {name} | {m['neurons']} | {m['frames']} | {m['std_over_mean']['median']:.2f} | "
            f"{m['max_over_std']['median']:.1f} |"
        )
    print("\n| stimulus | ceiling single | ceiling to-average | LN single | LN to-average |")
    print("|---|---|---|---|---|")
    for stimulus, s in result["pooled"].items():  # type: ignore[attr-defined]
        print(
            f"| {stimulus} | {s['ceiling_single']:.3f} | {s['ceiling_average']:.3f} | "
            f"{s['ln_single']:.3f} | {s['ln_average']:.3f} |"
        )


# ------------------------------------------------------------------------------ figures


def figures(out: Path, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "figure.dpi": 90})
    target.mkdir(parents=True, exist_ok=True)
    result = json.loads((out / "realism.json").read_text())
    mouse = Path(result["full_path"]) if result.get("full_path") else None
    mouse = mouse or out / f"sensorium2023-{result['scale']:g}" / "sensorium2023-H"
    for name, draw in (
        ("stimuli", lambda: _fig_stimuli(plt)),
        ("receptive_fields", lambda: _fig_receptive_fields(plt, mouse)),
        ("responses", lambda: _fig_responses(plt, mouse)),
        ("ceilings", lambda: _fig_ceilings(plt, result)),
        ("statistics", lambda: _fig_statistics(plt, result)),
        ("ln_vs_ceiling", lambda: _fig_ln_vs_ceiling(plt, result, mouse)),
    ):
        fig = draw()
        path = target / f"{name}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")


def _fig_stimuli(plt):  # type: ignore[no-untyped-def]
    from sensorium_data.simulate.stimuli import make_video, video_seed

    fig, axes = plt.subplots(len(TYPES), 5, figsize=(7.2, 5.6))
    for row, stimulus in enumerate(TYPES):
        video = make_video(stimulus, np.random.default_rng(video_seed(0, stimulus, "example")))
        for col, frame in enumerate(np.linspace(10, len(video) - 10, 5).astype(int)):
            ax = axes[row, col]
            ax.imshow(video[frame], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"frame {frame}", fontsize=6, pad=2)
            if col == 0:
                ax.set_ylabel(stimulus, fontsize=7)
    fig.suptitle("The six stimulus types (36 x 64 pixels, 30 Hz)", y=0.995)
    fig.tight_layout(pad=0.3)
    return fig


def _population(mouse: Path):  # type: ignore[no-untyped-def]
    from sensorium_data.simulate.neurons import Population

    truth = json.loads((mouse / "meta" / "simulation_neurons.json").read_text())
    fields = {k: np.asarray(v) for k, v in truth.items() if k != "unit_id"}
    return Population(**fields)  # type: ignore[arg-type]


def _fig_receptive_fields(plt, mouse: Path):  # type: ignore[no-untyped-def]
    pop = _population(mouse)
    coords = np.load(mouse / "meta" / "neurons" / "cell_motor_coordinates.npy")
    examples = _examples(pop)
    fig = plt.figure(figsize=(7.2, 3.3))
    grid = fig.add_gridspec(2, 6, height_ratios=[1.5, 1])
    shown = np.random.default_rng(0).permutation(pop.n)[:2000]
    for i, (axis, label) in enumerate(((0, "cortical x"), (1, "cortical y"))):
        ax = fig.add_subplot(grid[0, 3 * i : 3 * i + 3])
        sc = ax.scatter(
            pop.rf_col[shown], pop.rf_row[shown], c=coords[shown, axis], s=1.5, cmap="viridis"
        )
        ax.set_xlim(0, 64), ax.set_ylim(36, 0), ax.set_aspect("equal")
        ax.set_title(f"RF centres on the screen (px), colour: {label} (um)")
        fig.colorbar(sc, ax=ax, fraction=0.03, pad=0.02)
    even, _ = pop.filters()
    for k, (index, label) in enumerate(examples):
        ax = fig.add_subplot(grid[1, k])
        rf = even[:, index].reshape(36, 64)
        lim = np.abs(rf).max()
        r0, c0 = round(pop.rf_row[index]), round(pop.rf_col[index])
        patch = rf[max(r0 - 9, 0) : r0 + 10, max(c0 - 9, 0) : c0 + 10]
        ax.imshow(patch, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(label, fontsize=6)
    fig.suptitle(f"{mouse.name}: retinotopy, and receptive fields (even Gabor, 19 x 19 px)")
    fig.tight_layout(pad=0.3)
    return fig


def _examples(pop) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    out = []
    for name, mask in (
        ("simple", pop.complexity < 0.2),
        ("simple, DS", (pop.complexity < 0.2) & (pop.direction > 0.6)),
        ("complex", pop.complexity > 0.8),
        ("complex, DS", (pop.complexity > 0.8) & (pop.direction > 0.6)),
        ("fine", pop.rf_period < 7),
        ("coarse", pop.rf_period > 16),
    ):
        candidates = np.flatnonzero(mask & (pop.rf_row > 10) & (pop.rf_row < 26))
        if len(candidates):
            i = int(candidates[0])
            out.append((i, f"{name}\n{np.degrees(pop.orientation[i]):.0f} deg"))
    return out


def _fig_responses(plt, mouse: Path):  # type: ignore[no-untyped-def]
    from sensorium_data.tree import open_tree, valid_frames

    tree = open_tree(mouse)
    labels = tree.trial_labels("stimulus_type")
    trial = int(tree.trials[(tree.tiers == "live_test_main") & (labels == "NaturalVideo")][0])
    video = tree.read("videos", trial)
    valid = valid_frames(video)
    responses = tree.read("responses", trial)[:, :valid]
    rates = tree.read("rates", trial)[:, :valid]
    behavior = tree.read("behavior", trial)[:, :valid]
    pupil = tree.read("pupil_center", trial)[:, :valid]
    t = np.arange(valid) / 30
    order = np.argsort(rates.std(axis=1))[::-1]
    # neurons at the 1st, 10th, 25th and 50th percentile of rate variability
    picked = order[[len(order) // 100, len(order) // 10, len(order) // 4, len(order) // 2]]
    fig, axes = plt.subplots(
        3 + len(picked),
        1,
        figsize=(7.2, 6.4),
        sharex=True,
        gridspec_kw={"height_ratios": [1.2, 0.6, 0.6] + [1] * len(picked)},
    )
    strip = np.concatenate([video[:, :, f] for f in np.linspace(0, valid - 1, 8).astype(int)], 1)
    axes[0].imshow(
        strip, cmap="gray", vmin=0, vmax=255, extent=(0, valid / 30, 0, 1), aspect="auto"
    )
    axes[0].set_yticks([]), axes[0].set_title(f"{mouse.name}, trial {trial} (NaturalVideo)")
    axes[1].plot(t, behavior[1], "C2"), axes[1].set_ylabel("run\n(cm/s)")
    ax = axes[1].twinx()
    ax.plot(t, behavior[0], "C1"), ax.set_ylabel("pupil", color="C1")
    axes[2].plot(t, pupil[0] - np.median(pupil[0]), "C4"), axes[2].set_ylabel("eye x\n(px)")
    for ax, n in zip(axes[3:], picked, strict=True):
        ax.plot(t, responses[n], color="0.6", lw=0.8, label="response")
        ax.plot(t, rates[n], "k", lw=1.2, label="rate")
        ax.set_ylabel(f"neuron\n{n}")
    axes[3].legend(loc="upper right", frameon=False, ncol=2)
    axes[-1].set_xlabel("time (s); 30 Hz frames, activity generated at 8 Hz")
    fig.tight_layout(pad=0.3)
    return fig


def _fig_ceilings(plt, result):  # type: ignore[no-untyped-def]
    pooled = result["pooled"]
    names = [s for s in TYPES if s in pooled]
    keys = (
        ("ceiling_single", "ceiling, single trial"),
        ("ceiling_average", "ceiling, to average"),
        ("ln_single", "LN model, single trial"),
        ("ln_average", "LN model, to average"),
    )
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    width = 0.2
    for k, (key, label) in enumerate(keys):
        values = [pooled[s].get(key, np.nan) for s in names]
        ax.bar(
            np.arange(len(names)) + (k - 1.5) * width,
            values,
            width,
            label=label,
            color=("0.2", "0.55", "C0", "C9")[k],
        )
    full = result.get("full")
    if full is not None:  # the full-size mouse: the real amount of training data
        for k, (key, _) in enumerate(keys):
            values = [full["scores"].get(s, {}).get(key, np.nan) for s in names]
            ax.plot(
                np.arange(len(names)) + (k - 1.5) * width,
                values,
                "k_" if k < 2 else "r_",
                ms=9,
                mew=2,
                label={0: "ceilings, mouse H full size", 2: "LN, mouse H full size"}.get(k),
            )
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("correlation")
    ax.axhline(0.29, color="C3", lw=0.8, ls="--")
    ax.text(
        len(names) - 0.5,
        0.30,
        "best 2023 model, real data, single trial",
        color="C3",
        ha="right",
        va="bottom",
        fontsize=6,
    )
    ax.legend(frameon=False, ncol=3, fontsize=6, loc="upper left")
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"Test tiers. Bars: the sensorium2023 preset at scale {result['scale']:g}, "
        "neuron-weighted over the ten mice; marks: the full-size mouse H"
    )
    fig.tight_layout(pad=0.3)
    return fig


def _fig_statistics(plt, result):  # type: ignore[no-untyped-def]
    import pandas as pd

    real = pd.concat([pd.read_csv(f / "neurons.csv") for f in sorted(REFERENCE.glob("dynamic*"))])
    twin = result.get("full") or next(iter(result["mice"].values()))
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.4))
    pairs = (
        ("std_over_mean", real.std_activation / real.mean_activation, np.linspace(0, 15, 61)),
        ("max_over_std", real.max_activation / real.std_activation, np.linspace(0, 120, 61)),
    )
    for ax, (key, real_values, bins) in zip(axes, pairs, strict=True):
        ax.hist(real_values, bins=bins, density=True, alpha=0.5, label="real (10 mice)")
        ax.hist(twin["per_neuron"][key], bins=bins, density=True, alpha=0.5, label="twin")
        ax.set_xlabel(key.replace("_over_", " / ")), ax.set_yticks([])
    axes[0].legend(frameon=False)
    fig.suptitle(
        f"Per-neuron response statistics ({twin['neurons']} twin neurons, "
        f"{twin['frames']} frames each)"
    )
    fig.tight_layout(pad=0.3)
    return fig


def _fig_ln_vs_ceiling(plt, result, mouse: Path):  # type: ignore[no-untyped-def]
    source = result.get("full") or result["mice"][mouse.name]
    ceiling = np.asarray(source["natural_per_neuron"]["ceiling"])
    ln = np.asarray(source["natural_per_neuron"]["ln"])
    pop = _population(mouse)
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    sc = ax.scatter(ceiling, ln, c=pop.complexity, s=2, cmap="coolwarm", vmin=0, vmax=1)
    ax.plot([0, 1], [0, 1], "k", lw=0.6)
    ax.set_xlim(-0.05, 1), ax.set_ylim(-0.05, 1), ax.set_aspect("equal")
    ax.set_xlabel("ceiling (rates), single trial"), ax.set_ylabel("LN model, single trial")
    fig.colorbar(sc, ax=ax, fraction=0.04, label="complexity (0 simple, 1 complex)")
    ax.set_title(f"Natural videos, {mouse.name}")
    fig.tight_layout(pad=0.3)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("speed", "realism", "figures"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/simbench"))
    parser.add_argument("--mouse", default="H", help="letter of the full-size mouse (speed)")
    parser.add_argument("--scale", type=float, default=0.1, help="preset scale (realism)")
    parser.add_argument("--full", type=Path, help="a full-size simulated mouse (realism)")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "figures" / "simulator")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "figures":
        figures(args.out, args.figures)
        return
    if args.step == "speed":
        result = speed(args.out, args.mouse)
    else:
        result = realism(args.out, args.scale, args.full)
    (args.out / f"{args.step}.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
