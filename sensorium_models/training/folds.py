"""Cross-validation folds by video: every trial that showed one video, in any mouse, lands in
the same fold, so a repeat of a validation video is never trained on.

The fold of a trial is a hash of its ``video_id`` modulo the number of folds. ``video_id``
is the recordings' own repeat group: from the catalog for the real mice (one id per video
across all ten mice) or, for a file tree without labels, a hash of the trial's frames
(identical frames, identical id), so it groups by content as DwiseNeuro's perceptual hash of
five frames does, without reading a video at start-up. It differs from that hash only for
videos that are near but not exact copies, which the catalog's ids already group. The hash
(BLAKE2b) is the same on every machine and Python run, unlike ``hash()``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from sensorium_data.errors import Fix, Message

if TYPE_CHECKING:
    import xarray as xr


def video_folds(video_ids: Iterable[str], folds: int = 7) -> np.ndarray:
    """The fold of each video id: ``blake2b(id) % folds``.

    Examples
    --------
    >>> video_folds(["v668306", "v585061", "v668306"]).tolist()
    [4, 5, 4]
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        msg = f"folds={folds!r}; cross-validation needs an int of at least 2 (DwiseNeuro: 7)."
        raise ValueError(msg)
    return np.array([int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(),
                                    "little") % folds for v in video_ids], dtype=np.int64)


def check_fold(fold: int, folds: int) -> None:
    """Raise ValueError unless ``0 <= fold < folds``."""
    if not 0 <= fold < folds:
        msg = Message(f"unknown fold {fold}; with folds={folds} the folds are 0 to "
                      f"{folds - 1}. Pass ", Fix("fold=K", "--fold K"),
                      " with K in that range (one model per fold).")
        raise ValueError(msg)


def split_by_fold(datasets: Mapping[str, xr.Dataset], tiers: list[str], fold: int,
                  folds: int = 7) -> tuple[dict[str, xr.Dataset], dict[str, xr.Dataset]]:
    """The trials of ``tiers`` split into training (every fold but ``fold``) and validation
    (``fold``), per mouse; a mouse without validation trials is left out of validation.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(coords={"trial": [0, 1, 2, 3],
    ...                         "tier": ("trial", ["train", "train", "oracle", "oracle"]),
    ...                         "video_id": ("trial", ["a", "b", "a", "d"]),
    ...                         "n_frames": ("trial", [300, 300, 300, 300])})
    >>> video_folds(["a", "b", "d"]).tolist()
    [4, 0, 4]
    >>> train, val = split_by_fold({"F": ds}, ["train", "oracle"], fold=4)
    >>> train["F"].trial.values.tolist(), val["F"].trial.values.tolist()
    ([1], [0, 2, 3])
    """
    check_fold(fold, folds)
    train, validation = {}, {}
    for mouse, ds in datasets.items():
        chosen = np.isin(ds["tier"].values.astype(str), tiers) & (ds["n_frames"].values > 0)
        held_out = video_folds(ds["video_id"].values.astype(str), folds) == fold
        train[mouse] = ds.isel(trial=np.flatnonzero(chosen & ~held_out))
        if (chosen & held_out).any():
            validation[mouse] = ds.isel(trial=np.flatnonzero(chosen & held_out))
    if not validation:
        msg = (f"fold {fold} of {folds} holds no trial of tiers {tiers} in any mouse; use fewer "
               "folds or another fold.")
        raise ValueError(msg)
    return train, validation
