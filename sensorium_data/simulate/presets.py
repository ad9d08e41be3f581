"""What each preset simulates: mice, neurons, trials, tiers, stimuli and repeats.

``tiny``
    Three mice (80, 100 and 120 neurons), 54 trials each: 16 train trials, repeated videos in
    oracle and the main test tiers, and each mouse's bonus tiers showing three of the five
    out-of-domain types (all five across the three mice), as the real mice do. Trials are
    shorter than real ones (150-180 frames), long enough to drop 50 frames and train on
    80-frame clips. Mouse A has trial indices without files (tier ``none``), like mice A-E.
    ``scale`` multiplies neurons, train trials, videos per repeated tier and repeats (at
    least 2 train trials, 1 video and 2 repeats); above 1 it grows the preset.
``sensorium2023``
    The ten real recordings' structure from the catalog: trial ids, tiers, valid frames,
    stimulus type and repeat group per trial, padded length, unit ids and cortical
    coordinates. ``scale`` < 1 keeps that share of the neurons, of the train trials and of
    the repeated videos of each tier and stimulus type (with all their repeats); the dropped
    trial indices become ``none``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sensorium_data.errors import Fix, Message
from sensorium_data.tree import TIERS

if TYPE_CHECKING:
    import pandas as pd

PRESETS: dict[str, str] = {
    "tiny": "3 mice, 300 neurons, 54 short trials each, every tier and stimulus type (seconds)",
    "sensorium2023": "the 10 real recordings' structure (78,853 neurons, ~7,150 trials)",
    "static2022": "3 mice of flashed natural-like images in the 2022 file format (SENSORIUM "
    "and SENSORIUM+; see sensorium_data.simulate.static2022)",
}


@dataclass(frozen=True)
class MousePlan:
    """Everything about one simulated recording except the twin's random draws."""

    name: str
    mimics: str | None
    """Folder name of the real recording whose structure this one copies."""
    unit_ids: np.ndarray
    coordinates: np.ndarray
    """(neurons, 3) cortical x, y, z in microns."""
    neuron_index: np.ndarray
    """Rows of ``coordinates`` kept (all of them at scale 1); the twin draws every row."""
    tiers: np.ndarray
    """Tier of every trial index, ``"none"`` where there are no files."""
    trials: np.ndarray
    """Trial indices that get files, ascending."""
    stimulus_type: np.ndarray
    video_id: np.ndarray
    valid_frames: np.ndarray
    """Per entry of :attr:`trials`."""
    frames: int
    """Padded length of every trial file."""

    def labels(self, values: np.ndarray) -> np.ndarray:
        """A per-trial array spread over every trial index (``"none"`` where no files)."""
        out = np.full(len(self.tiers), "none", dtype=object)
        out[self.trials] = values
        return out.astype(str)


def mouse_key(name: str) -> int:
    return zlib.crc32(name.encode())


# ---------------------------------------------------------------------------------- tiny

TINY_FRAMES = {
    "NaturalVideo": 150,
    "NaturalImages": 162,
    "Gabor": 150,  # 6 items of 25 frames
    "PinkNoise": 162,  # 6 x 27
    "RandomDots": 180,  # 3 x 60
    "GaussianDot": 153,  # 17 x 9
}
TINY_MICE = (
    # letter, neurons, live bonus type, final bonus types (as real mice A, B and C)
    ("A", 80, ("PinkNoise",), ("GaussianDot", "RandomDots")),
    ("B", 100, ("Gabor",), ("NaturalImages", "PinkNoise")),
    ("C", 120, ("RandomDots",), ("Gabor", "NaturalImages")),
)
TINY_TRAIN = 16
TINY_REPEATED = {  # tier -> (videos per stimulus type, repeats); scale multiplies both
    "oracle": (2, 4),
    "live_test_main": (2, 3),
    "final_test_main": (2, 3),
    "live_test_bonus": (2, 3),
    "final_test_bonus": (2, 3),
}


def tiny(seed: int, scale: float) -> list[MousePlan]:
    """The ``tiny`` preset (see the module docstring)."""
    return [_tiny_mouse(*mouse, seed=seed, scale=scale) for mouse in TINY_MICE]


def _tiny_mouse(
    letter: str,
    n_neurons: int,
    live_bonus: tuple[str, ...],
    final_bonus: tuple[str, ...],
    *,
    seed: int,
    scale: float,
) -> MousePlan:
    name = f"tiny-{letter}"
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, mouse_key(name)]))
    n = max(1, round(n_neurons * scale))
    unit_ids = np.cumsum(1 + rng.geometric(0.8, n))
    xy = rng.uniform(-300, 300, (n, 2)) + np.array([-900.0, -350.0])
    z = rng.choice(np.arange(200, 426, 25), n)
    coordinates = np.column_stack([np.rint(xy), z]).astype(np.float64)

    types = {
        "oracle": ("NaturalVideo",),
        "live_test_main": ("NaturalVideo",),
        "final_test_main": ("NaturalVideo",),
        "live_test_bonus": live_bonus,
        "final_test_bonus": final_bonus,
    }
    n_videos = max(2, round(TINY_TRAIN * scale)) + sum(
        len(types[tier]) * max(1, round(videos * scale))
        for tier, (videos, _) in TINY_REPEATED.items()
    )
    ids = iter(f"v{i}" for i in rng.choice(np.arange(100000, 1000000), n_videos, replace=False))
    rows = [("train", "NaturalVideo", next(ids)) for _ in range(max(2, round(TINY_TRAIN * scale)))]
    for tier, (videos, repeats) in TINY_REPEATED.items():
        for stimulus in types[tier]:
            for _ in range(max(1, round(videos * scale))):
                vid = next(ids)
                rows.extend((tier, stimulus, vid) for _ in range(max(2, round(repeats * scale))))

    gaps = 3 if letter == "A" else 0  # indices without files, as in mice A-E
    order = rng.permutation(len(rows) + gaps)
    tiers = np.full(len(rows) + gaps, "none", dtype=object)
    labels = np.empty((len(rows) + gaps, 2), dtype=object)
    for row, index in zip(rows, order[: len(rows)], strict=True):
        tiers[index] = row[0]
        labels[index] = row[1:]
    trials = np.sort(order[: len(rows)])
    stimulus = labels[trials, 0].astype(str)
    valid = np.array([TINY_FRAMES[s] for s in stimulus], dtype=np.int64)
    return MousePlan(
        name=name,
        mimics=None,
        unit_ids=unit_ids,
        coordinates=coordinates,
        neuron_index=np.arange(n),
        tiers=tiers.astype(str),
        trials=trials,
        stimulus_type=stimulus,
        video_id=labels[trials, 1].astype(str),
        valid_frames=valid,
        frames=int(valid.max()),
    )


# ------------------------------------------------------------------------- sensorium2023


def sensorium2023(seed: int, scale: float) -> list[MousePlan]:
    """The ``sensorium2023`` preset (see the module docstring); ``scale`` in (0, 1]."""
    if scale > 1:
        msg: str = Message(
            Fix(f"scale={scale}", f"--scale {scale}"), " is too large for the sensorium2023 "
            "preset: it copies the real recordings and can only shrink them; pass a scale in "
            "(0, 1], or use the tiny preset to grow a synthetic layout.",
        )
        raise ValueError(msg)
    from sensorium_data.catalog import recordings

    plans = []
    for rec in recordings("2023"):
        trials = rec.trials()
        neurons = rec.neurons()
        if trials is None or neurons is None or rec.frames is None:
            msg = f"the catalog has no trial or neuron table for {rec.name}; reinstall the package"
            raise RuntimeError(msg)
        name = f"sensorium2023-{rec.letter}"
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2, mouse_key(name)]))
        n_all = len(neurons)
        if scale < 1:
            n = max(1, round(n_all * scale))
            neuron_index = np.sort(rng.choice(n_all, n, replace=False))
        else:
            neuron_index = np.arange(n_all)
        keep = _keep_trials(trials, scale, rng) if scale < 1 else trials.index.to_numpy()
        kept = trials.loc[np.sort(keep)]
        tiers = np.full(int(trials.index.max()) + 1, "none", dtype=object)
        tiers[kept.index.to_numpy()] = kept["tier"].to_numpy()
        unknown = sorted(set(kept["tier"]) - set(TIERS))
        if unknown:
            msg = f"the catalog of {rec.name} has unknown tiers {unknown}"
            raise RuntimeError(msg)
        plans.append(
            MousePlan(
                name=name,
                mimics=rec.name,
                unit_ids=neurons.index.to_numpy()[neuron_index],
                coordinates=neurons[["x", "y", "z"]].to_numpy(dtype=np.float64),
                neuron_index=neuron_index,
                tiers=tiers.astype(str),
                trials=kept.index.to_numpy(dtype=np.int64),
                stimulus_type=kept["stimulus_type"].to_numpy(dtype=str),
                video_id=kept["video_id"].to_numpy(dtype=str),
                valid_frames=kept["valid_frames"].to_numpy(dtype=np.int64),
                frames=max(int(rec.frames), int(kept["valid_frames"].max())),
            )
        )
    return plans


def _keep_trials(trials: pd.DataFrame, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Trial indices kept at ``scale``: a share of train trials and of each group's videos."""
    keep: list[int] = []
    train = trials.index[trials["tier"] == "train"].to_numpy()
    keep.extend(rng.choice(train, max(1, round(len(train) * scale)), replace=False).tolist())
    repeated = trials[trials["tier"] != "train"]
    for _, group in repeated.groupby(["tier", "stimulus_type"], sort=True):
        videos = np.unique(group["video_id"].to_numpy())
        chosen = rng.choice(videos, max(1, round(len(videos) * scale)), replace=False)
        keep.extend(group.index[group["video_id"].isin(chosen)].tolist())
    return np.asarray(keep, dtype=np.int64)


BUILDERS: dict[str, Callable[[int, float], list[MousePlan]]] = {
    "tiny": tiny,
    "sensorium2023": sensorium2023,
}
