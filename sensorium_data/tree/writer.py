"""Writing a recording in the competition's file-tree format, one trial at a time.

Shared by the test fixtures and the simulator, so both produce exactly what the real data looks
like (the format is drawn in :mod:`sensorium_data.tree.formats`).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sensorium_data.tree.formats import KNOWN_STREAMS


def check_streams(streams: Mapping[str, object], where: str) -> None:
    """Refuse stream names that no recording has (a typo would write a folder no reader reads).

    Examples
    --------
    >>> check_streams({"videos": None, "responses": None}, "write_trial")
    >>> check_streams({"video": None}, "write_trial")
    Traceback (most recent call last):
    ...
    ValueError: write_trial got unknown stream 'video' (did you mean 'videos'?); the streams \
of a recording are videos, responses, behavior, pupil_center, images, rates.
    """
    for stream in streams:
        if stream not in KNOWN_STREAMS:
            close = difflib.get_close_matches(stream, KNOWN_STREAMS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = (
                f"{where} got unknown stream {stream!r}{hint}; the streams of a recording are "
                f"{', '.join(KNOWN_STREAMS)}."
            )
            raise ValueError(msg)


class _RunningStats:
    """Per-element mean, std, min and max over trials, ignoring NaN (float64 sums)."""

    def __init__(self) -> None:
        self.n: np.ndarray | None = None
        self.sum: np.ndarray
        self.sumsq: np.ndarray
        self.min: np.ndarray
        self.max: np.ndarray

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        ok = ~np.isnan(x)
        if self.n is None:
            self.n = np.zeros(x.shape, np.int64)
            self.sum = np.zeros(x.shape)
            self.sumsq = np.zeros(x.shape)
            self.min = np.full(x.shape, np.inf)
            self.max = np.full(x.shape, -np.inf)
        v = np.where(ok, x, 0.0)
        self.n += ok
        self.sum += v
        self.sumsq += v * v
        np.fmin(self.min, x, out=self.min)
        np.fmax(self.max, x, out=self.max)

    def result(self) -> dict[str, np.ndarray]:
        assert self.n is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            n = np.where(self.n > 0, self.n, np.nan)
            mean = self.sum / n
            var = np.maximum(self.sumsq / n - mean * mean, 0.0)
        empty = self.n == 0
        return {
            "mean": mean,
            "std": np.sqrt(var),
            "min": np.where(empty, np.nan, self.min),
            "max": np.where(empty, np.nan, self.max),
        }


class TreeWriter:
    """Write a recording in the competition's file-tree format, one trial at a time.

    Used by the test fixtures and the simulator, so both produce exactly what the real data
    looks like. Statistics (``meta/statistics/<stream>/all``) are computed per element over the
    train-tier trials (all trials if there are none), ignoring NaN, unless given to
    :meth:`close`.

    Parameters
    ----------
    path
        The recording's folder (its name is the recording's name). It must not exist yet or be
        empty: nothing a user has is overwritten.
    tiers
        Tier of every trial index (``"none"`` for indices without files), written as
        ``meta/trials/tiers.npy``.
    unit_ids, coordinates
        ``meta/neurons/unit_ids.npy`` (neurons,) and ``cell_motor_coordinates.npy`` (neurons, 3).
    trial_info
        Extra per-trial arrays for ``meta/trials/<name>.npy`` (e.g. ``stimulus_type``).
    dtype
        Dtype of the data files (the real releases use float32 or float64).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "toy"
    >>> with TreeWriter(root, tiers=["train"], unit_ids=[1, 2], coordinates=np.zeros((2, 3))) as w:
    ...     w.write_trial(0, videos=np.zeros((36, 64, 5)), responses=np.ones((2, 5)),
    ...                   behavior=np.ones((2, 5)), pupil_center=np.ones((2, 5)))
    >>> sorted(p.name for p in (root / "data").iterdir())
    ['behavior', 'pupil_center', 'responses', 'videos']

    A 2022 (static image) recording is written the same way, with its own streams; its
    statistics then have one trial's shape too (images (1, H, W), responses (neurons,), ...):

    >>> root = pathlib.Path(tempfile.mkdtemp()) / "toy2022"
    >>> with TreeWriter(root, tiers=["train"], unit_ids=[1, 2], coordinates=np.zeros((2, 3)),
    ...                 trial_info={"frame_image_id": [7]}) as w:
    ...     w.write_trial(0, images=np.zeros((1, 144, 256)), responses=np.ones(2),
    ...                   behavior=np.ones(3), pupil_center=np.ones(2))
    >>> np.load(root / "meta/statistics/images/all/mean.npy").shape
    (1, 144, 256)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tiers: np.ndarray | list[str],
        unit_ids: np.ndarray | list[int],
        coordinates: np.ndarray,
        trial_info: Mapping[str, np.ndarray | list[str]] | None = None,
        dtype: type[np.floating] | np.dtype = np.float32,
    ):
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()):
            msg = (
                f"{self.path} already exists and is not empty; the writer never overwrites. "
                "Choose a new folder or remove this one first."
            )
            raise FileExistsError(msg)
        self.tiers = np.asarray(tiers).astype(str)
        self.unit_ids = np.asarray(unit_ids)
        self.coordinates = np.asarray(coordinates)
        if self.coordinates.shape != (len(self.unit_ids), 3):
            msg = (
                f"coordinates have shape {self.coordinates.shape}; expected "
                f"({len(self.unit_ids)}, 3), one (x, y, z) per unit id."
            )
            raise ValueError(msg)
        self.trial_info = {k: np.asarray(v) for k, v in (trial_info or {}).items()}
        self.dtype = np.dtype(dtype)
        self._has_train = bool((self.tiers == "train").any())
        self._stats: dict[str, _RunningStats] = {}  # over train trials, or all without any
        self._written: set[int] = set()
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()

    def write_trial(self, trial: int, **streams: np.ndarray) -> None:
        """Write ``data/<stream>/<trial>.npy`` for each stream given (real-format axes)."""
        if not 0 <= trial < len(self.tiers):
            msg = f"trial {trial} is outside the {len(self.tiers)} entries of tiers."
            raise ValueError(msg)
        check_streams(streams, "write_trial")
        for stream, array in streams.items():
            folder = self.path / "data" / stream
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{trial}.npy", np.asarray(array, dtype=self.dtype))
            if self.tiers[trial] == "train" or not self._has_train:
                self._stats.setdefault(stream, _RunningStats()).add(array)
        self._written.add(trial)

    def close(self, statistics: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Path:
        """Write ``meta/`` (neurons, trials, statistics) and return the recording's folder."""
        meta = self.path / "meta"
        (meta / "neurons").mkdir(parents=True, exist_ok=True)
        (meta / "trials").mkdir(parents=True, exist_ok=True)
        np.save(meta / "neurons" / "unit_ids.npy", self.unit_ids)
        np.save(meta / "neurons" / "cell_motor_coordinates.npy", self.coordinates)
        np.save(meta / "trials" / "tiers.npy", self.tiers)
        for name, values in self.trial_info.items():
            np.save(meta / "trials" / f"{name}.npy", values)
        if statistics is None:
            statistics = {stream: s.result() for stream, s in self._stats.items()}
        check_streams(statistics, "close(statistics=...)")
        for stream, stats in statistics.items():
            folder = meta / "statistics" / stream / "all"
            folder.mkdir(parents=True, exist_ok=True)
            for stat, value in stats.items():
                np.save(folder / f"{stat}.npy", np.asarray(value, dtype=self.dtype))
        return self.path

    def write_json(self, rel: str, content: object) -> None:
        """Write a JSON file into the tree (e.g. ``meta/simulation.json``)."""
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content, indent=2, sort_keys=True))
