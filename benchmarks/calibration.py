"""A run's calibration per recording and tier, beside a predictor of each neuron's mean.

Calibration is the predictions' mean over the scored frames (50 onwards) divided by the
responses' (raw units), as the leaderboard table's ``calibration`` column. Beside it, the
same ratio for the *mean-only* predictor: each neuron's mean normalised response over the
train tier, taken back to raw units through the run's normalisation (with
``normalize="official"`` the per-frame precision of each scored frame). A run whose
calibration follows the mean-only predictor's has learned little beyond the mean, and its
scale differs from 1 because the tier's responses differ from the train tier's, not because
its scale is wrong. Also printed, with ``official``: the ratio in normalised units.

Usage::

    python benchmarks/calibration.py runs/ln --tiers train oracle live_test_bonus
"""

from __future__ import annotations

import argparse

import numpy as np

import sensorium_models as sm
from sensorium_data.scale import official_precision
from sensorium_models.training import read_config
from sensorium_models.training.data import open_run_mice

SKIPPED_FRAMES = 50  # as the metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run directory")
    parser.add_argument("--tiers", nargs="+", default=["train", "oracle"])
    parser.add_argument("--data-dir", help="the cache folder of the run's recordings")
    args = parser.parse_args()
    config = read_config(args.run)
    datasets = open_run_mice(args.run, args.data_dir)
    predictions = sm.predict(args.run, datasets, tiers=args.tiers, device="cpu")
    for tier in args.tiers:
        totals = np.zeros(3)
        for name, ds in datasets.items():
            p = predictions.get(name)
            if p is None or not (p["tier"].values.astype(str) == tier).any():
                continue
            rows = p["tier"].values.astype(str) == tier
            trials = p["trial"].values[rows]
            recorded = ds["responses"].sel(trial=trials).transpose(
                "trial", "neuron", "frame").values
            predicted = p.values[rows]
            frames = recorded.shape[-1]
            mean_only = mean_only_predictor(ds, config, frames)  # (N, F) raw
            valid = np.isfinite(predicted) & np.isfinite(recorded)
            valid[..., :SKIPPED_FRAMES] = False
            baseline = np.broadcast_to(mean_only[None], recorded.shape)
            sums = np.array([predicted[valid].sum(), baseline[valid].sum(),
                             recorded[valid].sum()])
            totals += sums
            print(f"{name:>12} {tier:>16}: calibration {sums[0] / sums[2]:.3f}, mean-only "
                  f"predictor {sums[1] / sums[2]:.3f} (recorded mean "
                  f"{recorded[valid].mean():.3g})")
        if totals[2]:
            print(f"{'pooled':>12} {tier:>16}: calibration {totals[0] / totals[2]:.3f}, "
                  f"mean-only predictor {totals[1] / totals[2]:.3f}")


def mean_only_predictor(ds, config, frames: int) -> np.ndarray:
    """(N, frames) raw predictions of each neuron's mean normalised train-tier response."""
    train = np.flatnonzero(ds["tier"].values.astype(str) == config.train_tier)
    responses = ds["responses"].isel(trial=train).transpose("trial", "neuron", "frame").values
    if config.normalize == "official":
        std = ds.sensorium.statistics["responses"].sel(statistic="std").values
        precision = official_precision(std)  # (N, F_stats)
        n = min(precision.shape[-1], responses.shape[-1], frames)
        mean = np.nanmean(responses[..., :n] * precision[None, :, :n], axis=(0, 2))  # (N,)
        out = np.full((responses.shape[1], frames), np.nan)
        out[:, :n] = mean[:, None] / precision[:, :n]
        return out
    # per_neuron and none scale each neuron by one number: the raw train mean itself
    return np.broadcast_to(np.nanmean(responses, axis=(0, 2))[:, None],
                           (responses.shape[1], frames)).copy()


if __name__ == "__main__":
    main()
