"""Submission files in the SENSORIUM 2023 competition's own format.

One brotli-compressed parquet file per test tier, one row per trial::

    mouse          str        the recording's folder name (dynamic29515-10-12-Video-...)
    trial_indices  int64      the trial's file index (data/*/<trial>.npy)
    prediction     list<list<float32>>   neurons x (n_frames - 50): frames 50..n_frames-1
    neuron_ids     list<uint32>          the recording's unit ids, in the order of the rows

named as the competition asked (main track: both files in one zip; bonus track: one zip
each)::

    main   predictions_live_main.parquet.brotli             tier live_test_main
           predictions_final_main.parquet.brotli            tier final_test_main
    bonus  predictions_live_test_bonus_ood.parquet.brotli   tier live_test_bonus
           predictions_final_test_bonus_ood.parquet.brotli  tier final_test_bonus

Needs ``pyarrow`` (``pip install 'sensorium[submission]'``).

This module holds those facts (names, columns, frames) and the paths they give; the
package's other modules write, read and score the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

SKIP = 50  # the competition scores frames 50 to 299 and wants predictions from frame 50 on
MAX_FRAMES = 300
FILES = {
    "main": {
        "live_test_main": "predictions_live_main.parquet.brotli",
        "final_test_main": "predictions_final_main.parquet.brotli",
    },
    "bonus": {
        "live_test_bonus": "predictions_live_test_bonus_ood.parquet.brotli",
        "final_test_bonus": "predictions_final_test_bonus_ood.parquet.brotli",
    },
}
TIER_OF = {name: tier for files in FILES.values() for tier, name in files.items()}
COLUMNS = ("mouse", "trial_indices", "prediction", "neuron_ids")
ROWS_PER_GROUP = 8


def pyarrow_modules() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        msg = (
            "submission files are parquet: install pyarrow (pip install 'sensorium[submission]' "
            "or pip install pyarrow)."
        )
        raise ImportError(msg) from e
    return pa, pq


def zips(track: str) -> dict[str, list[str]]:
    files = list(FILES[track].values())
    if track == "main":
        return {"submission_main.zip": files}
    return {name.removesuffix(".parquet.brotli") + ".zip": [name] for name in files}


def submission_paths(path: str | os.PathLike[str], track: Literal["main", "bonus"] = "main",
                     *, archive: bool = True) -> list[Path]:
    """The files :func:`write_submission` writes into the folder ``path``: the parquet files,
    then the zips."""
    if track not in FILES:
        msg = f"track must be 'main' or 'bonus'; got {track!r}."
        raise ValueError(msg)
    folder = Path(path)
    names = list(FILES[track].values()) + (list(zips(track)) if archive else [])
    return [folder / name for name in names]


def hidden(member: str) -> bool:
    """Zip members a Mac adds: ``__MACOSX/...`` and ``._name``."""
    return member.startswith("__MACOSX/") or Path(member).name.startswith("._")
