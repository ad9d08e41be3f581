"""SENSORIUM 2023 (videos): the store of one recording.

Its layout (see :mod:`sensorium_data.store` for the whole)::

    <name>.zarr/                          zarr v3 group, consolidated metadata
    ├── videos        (trial, frame, height, width)   uint8 where lossless, else float32
    ├── responses     (trial, neuron, frame)          float32, NaN padded; withheld trials NaN
    ├── behavior      (trial, behavior_variable, frame)  float32: pupil_dilation, running_speed,
    │                                                    pupil_x, pupil_y
    ├── rates         (trial, neuron, frame)          simulator only: noise-free responses
    ├── trial, tier, stimulus_type, video_id, n_frames, labelled       per trial
    ├── neuron, x, y, z                                                 per neuron
    ├── time, behavior_variable
    └── statistics/   the shipped normalization statistics, per frame
        ├── videos    (statistic, frame, height, width)
        ├── responses (statistic, neuron, frame)
        └── behavior  (statistic, behavior_variable, frame)

Videos, responses and rates are stored one raw chunk per trial, frames first on disk (the
mapped layout of :mod:`sensorium_data.store.layout`): the training loader maps a clip as one
contiguous slice, and xarray reads the dims above unchanged. stimulus_type and video_id come
from the tree's own files, else the catalog (which must agree with the tree), else a hash of
the frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensorium_data.errors import RecordingFormatError
from sensorium_data.store.writer import (
    StoreWriter,
    as_uint8,
    content_hash,
    name_ids,
    stack_statistics,
    withheld,
)
from sensorium_data.tree import FPS, STATISTICS, FileTree, valid_frames

log = logging.getLogger(__name__)

BEHAVIOR_VARIABLES = ("pupil_dilation", "running_speed", "pupil_x", "pupil_y")
LICENSE_2023 = "CC BY-NC-ND 4.0 (SENSORIUM 2023 data, gin.g-node.org/pollytur)"
# Behaviour 64 trials per chunk (the loader holds it in memory; measured in docs/storage.md).
BEHAVIOR_TRIALS = 64


@dataclass
class _Labels:
    stimulus_type: np.ndarray
    video_id: np.ndarray
    source: str


def _catalog_labels(tree: FileTree) -> _Labels | None:
    from sensorium_data import catalog

    rec = catalog.find(tree.name)
    table = rec.trials() if rec is not None else None
    if table is None:
        return None
    missing = np.setdiff1d(tree.trials, table.index.to_numpy())
    if len(missing):
        msg = (
            f"{tree.location} is named like the published recording {tree.name} but has trial(s) "
            f"{missing[:10].tolist()} that the catalog does not list; it is not that recording. "
            "Rename the folder, or pass the published files."
        )
        raise RecordingFormatError(msg)
    rows = table.loc[tree.trials]
    bad = np.flatnonzero(rows["tier"].to_numpy().astype(str) != tree.tiers)
    if len(bad):
        t = int(tree.trials[bad[0]])
        msg = (
            f"{tree.location}: trial {t} has tier {tree.tiers[bad[0]]!r} in meta/trials/tiers.npy "
            f"but {rows['tier'].iloc[bad[0]]!r} in the catalog of {tree.name}; the tree is not "
            "the published recording. Rename the folder, or pass the published files."
        )
        raise RecordingFormatError(msg)
    return _Labels(
        rows["stimulus_type"].to_numpy().astype(str),
        rows["video_id"].to_numpy().astype(str),
        "catalog",
    )


def _labels(tree: FileTree, video_hashes: list[str]) -> _Labels:
    """stimulus_type and video_id: from the tree's own files, else the catalog, else derived."""
    stim, vid = tree.trial_labels("stimulus_type"), tree.trial_labels("video_id")
    if stim is not None and vid is not None:
        return _Labels(stim, vid, "tree")
    known = _catalog_labels(tree)
    if known is not None:
        return known
    derived = np.array(video_hashes)
    return _Labels(
        stim if stim is not None else np.full(len(tree.trials), "unknown"),
        vid if vid is not None else derived,
        "derived",
    )




def _recording_attrs(tree: FileTree) -> dict[str, object]:
    from sensorium_data import catalog

    attrs: dict[str, object] = {"mouse": tree.name, "competition": "2023", "fps": FPS}
    attrs.update(name_ids(tree.name))
    rec = catalog.find(tree.name)
    if rec is not None:
        attrs.update(
            competition=rec.competition,
            letter=rec.letter or "",
            set=rec.role,
            source_url=rec.url,
            license=LICENSE_2023,
            fps=float(rec.fps or FPS),
        )
    return attrs




class VideoWriter(StoreWriter):
    """Writes the store of a 2023 (video) recording; see the module's docstring."""

    competition = "2023"

    def __init__(self, tree: FileTree, target: Path, progress: bool):
        shapes = tree.check_shapes()
        super().__init__(tree, target, progress, shapes)
        n_neurons, self.frames = shapes["responses"][0]
        self.height, self.width, _ = shapes["videos"][0]
        self.n_neurons = n_neurons
        for stream, (shape, _) in shapes.items():
            if shape[-1] != self.frames:
                msg = (
                    f"{tree.location}: data/{stream} trials have {shape[-1]} frames but "
                    f"data/responses trials have {self.frames}; all streams of a recording share "
                    "one padded length."
                )
                raise RecordingFormatError(msg)
        for stream in ("behavior", "pupil_center"):
            if shapes[stream][0][0] != 2:
                msg = (
                    f"{tree.location}: data/{stream} trials have shape {shapes[stream][0]}; "
                    "expected (2, frames)."
                )
                raise RecordingFormatError(msg)
        if "rates" in shapes and shapes["rates"][0] != shapes["responses"][0]:
            msg = f"{tree.location}: data/rates trials do not have the shape of data/responses."
            raise RecordingFormatError(msg)

    def write(self) -> dict[str, object]:
        n_frames, hashes, video_dtype = self._videos()
        labelled = self._responses(n_frames)
        self._behavior()
        self._coords(n_frames, labelled, hashes)
        self._statistics()
        attrs = _recording_attrs(self.tree)
        attrs["videos_dtype"] = video_dtype
        return attrs

    def _videos(self) -> tuple[np.ndarray, list[str], str]:
        n_frames, hashes, lossless = self._video_pass("uint8")
        if not lossless.all():
            bad = int(self.tree.trials[np.flatnonzero(~lossless)[0]])
            log.info("%s: videos of trial %d are not 8-bit integers; storing float32",
                     self.tree.name, bad)
            del self.group["videos"]
            n_frames, hashes, _ = self._video_pass("float32")
            return n_frames, hashes, "float32"
        return n_frames, hashes, "uint8"

    def _video_pass(self, dtype: str) -> tuple[np.ndarray, list[str], np.ndarray]:
        tree, n = self.tree, len(self.tree.trials)
        shape = (n, self.frames, self.height, self.width)
        chunks = (1, self.frames, self.height, self.width)
        fill = 0 if dtype == "uint8" else float("nan")
        arr = self.create_array("videos", shape, chunks, dtype,
                                ("trial", "frame", "height", "width"), fill, mapped=True)
        n_frames = np.zeros(n, np.int32)
        hashes = [""] * n
        lossless = np.ones(n, bool)

        def convert(i: int) -> None:
            video = tree.read("videos", int(tree.trials[i]))
            n_frames[i] = valid_frames(video)
            frames = np.moveaxis(video, -1, 0)  # (frame, height, width)
            if dtype == "uint8":
                exact = as_uint8(frames, int(n_frames[i]))
                lossless[i] = exact is not None
                if exact is None:
                    return  # the pass is done again in float32
                data = exact
            else:
                data = frames.astype(np.float32)
                holes[i] = bool(np.isnan(data[: n_frames[i]]).any())
            hashes[i] = content_hash(data[: n_frames[i]])
            arr[i] = data

        holes = np.zeros(n, bool)
        self.each_trial(convert, "videos")
        if holes.any():
            log.warning(
                "%s: the videos of %d trial(s) (first: trial %d) have NaN pixels within their "
                "frames; the store keeps them, the training loaders read them as the mean "
                "(0 after normalization). Check the source files.",
                tree.name, holes.sum(), int(tree.trials[np.flatnonzero(holes)[0]]),
            )
        return n_frames, hashes, lossless

    def _responses(self, n_frames: np.ndarray) -> np.ndarray:
        tree, n = self.tree, len(self.tree.trials)
        shape = (n, self.n_neurons, self.frames)
        chunks = (1, self.n_neurons, self.frames)
        dims = ("trial", "neuron", "frame")
        streams = ["responses", *(["rates"] if "rates" in tree.streams else [])]
        arrays = {s: self.create_array(s, shape, chunks, "float32", dims, float("nan"), mapped=True)
                  for s in streams}
        labelled = np.ones(n, bool)

        def convert(i: int) -> None:
            trial = int(tree.trials[i])
            for stream in streams:
                data = tree.read(stream, trial)
                if stream == "responses" and withheld(str(tree.tiers[i]), data):
                    labelled[i] = False
                    continue  # never written: the fill value (NaN) stands for "unknown"
                arrays[stream][i] = data.astype(np.float32)

        self.each_trial(convert, "responses")
        return labelled

    def _behavior(self) -> None:
        tree, n = self.tree, len(self.tree.trials)
        out = np.empty((n, 4, self.frames), np.float32)
        for i, trial in enumerate(tree.trials):
            out[i, :2] = tree.read("behavior", int(trial))
            out[i, 2:] = tree.read("pupil_center", int(trial))
        chunks = (min(n, BEHAVIOR_TRIALS), 4, self.frames)
        arr = self.create_array("behavior", out.shape, chunks, "float32",
                          ("trial", "behavior_variable", "frame"), float("nan"))
        arr[:] = out

    def _coords(self, n_frames: np.ndarray, labelled: np.ndarray, hashes: list[str]) -> None:
        tree = self.tree
        labels = _labels(tree, hashes)
        per_trial: dict[str, np.ndarray] = {
            "trial": tree.trials.astype(np.int64),
            "tier": tree.tiers.astype(object),
            "stimulus_type": labels.stimulus_type.astype(object),
            "video_id": labels.video_id.astype(object),
            "n_frames": n_frames.astype(np.int32),
            "labelled": labelled,
        }
        for name, values in per_trial.items():
            self.write_small(name, values, ("trial",))
        self.write_neurons(self.n_neurons)
        self.write_small("time", np.arange(self.frames) / FPS, ("frame",))
        self.write_small("behavior_variable", np.array(BEHAVIOR_VARIABLES, dtype=object),
                    ("behavior_variable",))
        self.group.attrs["labels_source"] = labels.source

    def _statistics(self) -> None:
        tree = self.tree
        videos = np.moveaxis(
            stack_statistics(tree, "videos", (self.height, self.width, self.frames)), -1, 1
        )
        _warn_constant_pixels(tree.name, videos[STATISTICS.index("std")])
        responses = stack_statistics(tree, "responses", (self.n_neurons, self.frames))
        behavior = np.concatenate(
            [stack_statistics(tree, "behavior", (2, self.frames)),
             stack_statistics(tree, "pupil_center", (2, self.frames))], axis=1
        )
        self.write_statistics([
            ("videos", videos, ("statistic", "frame", "height", "width")),
            ("responses", responses, ("statistic", "neuron", "frame")),
            ("behavior", behavior, ("statistic", "behavior_variable", "frame")),
        ])



def _warn_constant_pixels(name: str, std: np.ndarray) -> None:
    """Warn about pixels whose shipped std (frame, height, width) is 0 in every frame: constant
    in the train trials; the loaders floor their std. Frames where every std is 0 or NaN (one
    train trial or none reaches them) do not count."""
    covered = (np.nan_to_num(std, nan=0.0) > 0).any(axis=(1, 2))
    constant = (std[covered] == 0).all(axis=0) if covered.any() else np.zeros(1, bool)
    if constant.any():
        log.warning(
            "%s: %d pixel(s) have a video std of 0 in meta/statistics (constant in every train "
            "trial); normalizing floors their std at 1 %% of the mean std, as for responses.",
            name, int(constant.sum()),
        )


