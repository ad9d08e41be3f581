"""Leaderboard tables of several models side by side, per tier and stimulus type with the
neurons of all mice pooled (``sensorium compare``, the demo, ``benchmarks/twin.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("single_trial_correlation", "correlation_to_average")
POOLED = "all"


def by_stimulus(table: pd.DataFrame) -> pd.DataFrame:
    """Per (tier, stimulus type) over all mice: the mean of the per-mouse values weighted by
    their neurons (the leaderboard pools neurons), then each tier's pooled row.

    Columns: tier, stimulus_type, n_neurons, the metrics and their ``*_ceiling``, and
    ``calibration`` (predicted mean / recorded mean) where the table has it.
    """
    import pandas as pd

    columns = [c for m in METRICS for c in (m, f"{m}_ceiling") if c in table.columns]
    columns += [c for c in ("calibration",) if c in table.columns]
    per_mouse = table[(table["mouse"] != POOLED) & (table["stimulus_type"] != POOLED)]
    rows = []
    for (tier, kind), group in per_mouse.groupby(["tier", "stimulus_type"], sort=False):
        weights = group["n_neurons"].to_numpy(float)
        row: dict[str, Any] = {"tier": tier, "stimulus_type": kind,
                               "n_neurons": int(weights.sum())}
        for c in columns:
            values = group[c].to_numpy(float)
            ok = np.isfinite(values)
            row[c] = float(np.average(values[ok], weights=weights[ok])) if ok.any() else np.nan
        rows.append(row)
    kinds_per_tier = per_mouse.groupby("tier")["stimulus_type"].nunique()
    for _, r in table[table["mouse"] == POOLED].iterrows():
        if r["stimulus_type"] == POOLED and kinds_per_tier.get(r["tier"], 0) == 1:
            continue  # the tier's only stimulus type says it already
        rows.append({"tier": r["tier"], "stimulus_type": r["stimulus_type"],
                     "n_neurons": int(r["n_neurons"]), **{c: float(r[c]) for c in columns}})
    return _ordered(pd.DataFrame(rows))


def _ordered(out: pd.DataFrame) -> pd.DataFrame:
    """Tiers in the leaderboard's order; in each, stimulus types by name, pooled rows last."""
    from sensorium_models.leaderboard import _tier_rank

    keys = [(_tier_rank(t), k in (POOLED, "out_of_domain"), k)
            for t, k in zip(out["tier"], out["stimulus_type"], strict=True)]
    order = sorted(range(len(out)), key=keys.__getitem__)
    return out.iloc[order].reset_index(drop=True)


def side_by_side(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (tier, stimulus type): each model's single-trial correlation, the
    ceiling, then the same for the correlation to average."""
    merged: pd.DataFrame | None = None
    for model, table in tables.items():
        part = by_stimulus(table)
        keep = part[["tier", "stimulus_type"]].copy()
        for m in METRICS:
            keep[(m, model)] = part[m]
            if f"{m}_ceiling" in part:
                keep[(m, "ceiling")] = part[f"{m}_ceiling"]
        merged = keep if merged is None else merged.merge(
            keep.drop(columns=[c for c in keep.columns if c[1:] == ("ceiling",)]),
            on=["tier", "stimulus_type"], how="outer", sort=False)
    assert merged is not None
    order: list[Any] = ["tier", "stimulus_type"]
    for m in METRICS:
        order += [(m, model) for model in tables] + [(m, "ceiling")]
    return _ordered(merged[[c for c in order if c in merged.columns]])


def format_side_by_side(table: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """Two header lines: the metric, then the model (``labels`` may rename them) or ceiling."""
    short = {"single_trial_correlation": "single-trial", "correlation_to_average": "to average"}
    labels = labels or {}
    head1, head2, cells = ["tier", "stimulus"], ["", ""], []
    for c in table.columns[2:]:
        head1.append(short[c[0]])
        head2.append(labels.get(c[1], c[1]))
    for _, row in table.iterrows():
        cells.append([str(row["tier"]), str(row["stimulus_type"]),
                      *(f"{v:.3f}" if np.isfinite(v) else "-" for v in row.iloc[2:])])
    widths = [max(len(x) for x in col) for col in zip(head1, head2, *cells, strict=True)]
    previous = None
    lines = []
    for line in (head1, head2, *cells):
        texts = []
        for i, (x, w) in enumerate(zip(line, widths, strict=True)):
            if line is head1 and i >= 2 and x == previous:
                x = ""  # the metric's name once, over its first column
            elif line is head1 and i >= 2:
                previous = x
            texts.append(x.ljust(w) if i < 2 else x.rjust(w))
        lines.append("  ".join(texts))
    return "\n".join(lines)
