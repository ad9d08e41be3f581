"""The demo's results.json: per model, tier and stimulus type, the metrics and ceilings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_models.tables import by_stimulus

if TYPE_CHECKING:
    import pandas as pd


def results(tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Per model, tier and stimulus type: the metrics and their ceilings (pooled over mice)."""
    out: dict[str, Any] = {}
    for model, table in tables.items():
        part = by_stimulus(table)
        tiers: dict[str, Any] = {}
        for _, row in part.iterrows():
            values = {k: _number(row[k]) for k in part.columns if k not in ("tier",
                                                                            "stimulus_type")}
            tiers.setdefault(str(row["tier"]), {})[str(row["stimulus_type"])] = values
        out[model] = tiers
    return out


def _number(value: Any) -> float | int | None:
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return round(value, 5) if np.isfinite(value) else None
