"""The competition's file-tree format: what a recording holds, its tiers, its frame rate.

One recording of SENSORIUM 2023 as published (one zip per recording, holding this folder)::

    <folder>/                          dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20
    ├── data/
    │   ├── videos/<trial>.npy         (height, width, frames)  grayscale 0-255, NaN-padded
    │   ├── responses/<trial>.npy      (neurons, frames)        deconvolved calcium activity
    │   ├── behavior/<trial>.npy       (2, frames)              pupil dilation, running speed
    │   ├── pupil_center/<trial>.npy   (2, frames)              horizontal, vertical eye position
    │   └── rates/<trial>.npy          (neurons, frames)        simulator only: noise-free rates
    └── meta/
        ├── neurons/unit_ids.npy, cell_motor_coordinates.npy   (neurons,), (neurons, 3)
        ├── trials/tiers.npy                                   (trial indices,) str
        │         [stimulus_type.npy, video_id.npy]            simulator only, same length
        └── statistics/<stream>/all/{mean,std,min,max}.npy     one trial's shape (per frame)

A SENSORIUM 2022 recording (``static<animal>-<session>-<scan>-GrayImageNet-<hash>``) has
``data/images/<trial>.npy`` (1, 144, 256) instead of videos and one value per trial in the other
streams (responses (neurons,), behavior (3,), pupil_center (2,)); :func:`open_tree` recognises it
by its ``data/images`` folder (``FileTree.competition == "2022"``) and
:mod:`sensorium_data.store.static` converts it.

Trial indices are the file names; they have gaps (tier ``none`` has no files). Every trial file
of a recording has the same number of frames; shorter trials are NaN-padded. The reader takes
a folder or a zip (read in place, never extracted or written to); the writer is shared by the
test fixtures and the simulator.

These facts are read by the tree's reader (:mod:`sensorium_data.tree.reader`) and writer
(:mod:`sensorium_data.tree.writer`), the store writers and the simulator; ``sensorium_models``
imports them from here.
"""

from __future__ import annotations

import numpy as np

STREAMS = ("videos", "responses", "behavior", "pupil_center")
"""The streams every 2023 recording has, in ``data/<stream>/<trial>.npy``."""
STATIC_STREAMS = ("images", "responses", "behavior", "pupil_center")
"""The streams every 2022 (static image) recording has; see :mod:`sensorium_data.store.static`."""
OPTIONAL_STREAMS = ("rates",)
"""Streams a recording may have besides its competition's (the simulator's noise-free rates)."""
KNOWN_STREAMS = (*STREAMS, "images", *OPTIONAL_STREAMS)
"""Every stream name of either competition: ``data/<stream>/`` of any other name is unknown."""
TIERS = (
    "train",
    "oracle",
    "live_test_main",
    "live_test_bonus",
    "final_test_main",
    "final_test_bonus",
)
"""The 2023 tiers, in ``meta/trials/tiers.npy`` (``"none"`` marks an index without files)."""
STATIC_TIERS = ("train", "validation", "test", "final_test")
"""The 2022 tiers (a 2022 tree with others converts, with a warning)."""
TIER_ORDER = (
    "train", "oracle", "validation", "live_test_main", "final_test_main",
    "live_test_bonus", "final_test_bonus", "test", "final_test",
)  # fmt: skip
"""The order tiers are listed in (tables, summaries): the 2023 tiers, main before bonus, with
the 2022 ones (validation, test, final_test) in their places."""
STATISTICS = ("mean", "std", "min", "max")
"""The statistics shipped in ``meta/statistics/<stream>/all/<statistic>.npy``."""
FPS = 30.0
"""Frames per second of the 2023 recordings (videos, responses and behaviour alike)."""


def valid_frames(trial: np.ndarray) -> int:
    """The valid frames of one trial: the index of its first all-NaN frame (time is the last
    axis), or all of them. Works on a video (height, width, frame) as on responses (neuron,
    frame): padding frames are NaN throughout.

    Examples
    --------
    >>> responses = np.ones((2, 5))
    >>> responses[:, 3:] = np.nan
    >>> valid_frames(responses)
    3
    >>> valid_frames(np.ones((36, 64, 4)))
    4
    """
    flat = trial.reshape(-1, trial.shape[-1])
    # Only frames whose first element is NaN can be all-NaN: test those columns alone.
    for frame in np.flatnonzero(np.isnan(flat[0])):
        if np.isnan(flat[:, frame]).all():
            return int(frame)
    return int(trial.shape[-1])

