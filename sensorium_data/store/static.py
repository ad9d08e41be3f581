"""SENSORIUM 2022 (static images): the store of one recording.

:func:`sensorium_data.open_tree` recognises a 2022 recording by its ``data/images`` folder and
:func:`sensorium_data.convert` hands it to :class:`StaticWriter`. One recording as published::

    <folder>/                      static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6
    ├── data/                          trial = file index (random order, not time order; no gaps)
    │   ├── images/<trial>.npy         (1, 144, 256)  grayscale
    │   ├── responses/<trial>.npy      (neurons,)     deconvolved calcium activity
    │   ├── behavior/<trial>.npy       (3,)           pupil dilation, its derivative, running speed
    │   └── pupil_center/<trial>.npy   (2,)           horizontal, vertical eye position
    └── meta/
        ├── neurons/unit_ids.npy, cell_motor_coordinates.npy          (neurons,), (neurons, 3)
        ├── trials/tiers.npy, frame_image_id.npy, trial_idx.npy, ...  one entry per trial
        └── statistics/<stream>/all/{mean,std,min,max}.npy            (images: may be scalars)

Its store (same schema version as a 2023 store; ``attrs["competition"] == "2022"``)::

    <name>.zarr/
    ├── images      (trial, height, width)       uint8 where lossless, else float32
    ├── responses   (trial, neuron)              float32; withheld trials NaN
    ├── behavior    (trial, behavior_variable)   float32: pupil_dilation,
    │                                            pupil_dilation_derivative, running_speed,
    │                                            pupil_x, pupil_y
    ├── trial, tier, image_id, [trial_idx], labelled      per trial
    ├── neuron, x, y, z, behavior_variable
    └── statistics/  the shipped statistics, broadcast to one trial's shape
        ├── images    (statistic, height, width)
        ├── responses (statistic, neuron)
        └── behavior  (statistic, behavior_variable)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sensorium_data.errors import RecordingFormatError
from sensorium_data.store.layout import RESPONSE_CODEC
from sensorium_data.store.writer import (
    StoreWriter,
    as_uint8,
    content_hash,
    name_ids,
    stack_statistics,
    withheld,
)
from sensorium_data.tree import STATIC_TIERS, FileTree

log = logging.getLogger(__name__)

BEHAVIOR_VARIABLES = (
    "pupil_dilation",
    "pupil_dilation_derivative",
    "running_speed",
    "pupil_x",
    "pupil_y",
)
LICENSE_2022 = "see the LICENSE of gin.g-node.org/cajal/Sensorium2022 (SENSORIUM 2022 data)"

# Trials per chunk of images and responses (~0.5 MB each at full size): a whole recording loads
# in a few hundred chunk reads, one trial in one chunk. Behaviour is small: one chunk.
STATIC_TRIALS = 16
STATIC_BEHAVIOR_TRIALS = 8192


def _ids(values: np.ndarray) -> np.ndarray:
    """Per-trial ids as strings; integral floats lose their ``.0``."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.isfinite(values).all() and (values % 1 == 0).all():
        values = values.astype(np.int64)
    return values.astype(str)


def _trial_meta(tree: FileTree, name: str) -> np.ndarray | None:
    """``meta/trials/<name>.npy`` for the tree's trials, as strings; None if missing."""
    values = tree.meta(f"trials/{name}", required=False)
    if values is None:
        return None
    n = len(np.asarray(tree.meta("trials/tiers")))
    if np.shape(values) != (n,):
        msg = (
            f"{tree.location}: meta/trials/{name}.npy has shape {np.shape(values)} but "
            f"meta/trials/tiers.npy has {n} entries; they must have one entry per trial. "
            "The file is from another recording; replace it with the published one."
        )
        raise RecordingFormatError(msg)
    return _ids(values)[tree.trials]


def _recording_attrs(tree: FileTree) -> dict[str, object]:
    from sensorium_data import catalog

    attrs: dict[str, object] = {"mouse": tree.name, "competition": "2022"}
    attrs.update(name_ids(tree.name))
    rec = catalog.find(tree.name)
    if rec is None:
        return attrs
    if rec.competition != "2022":
        msg = (
            f"{tree.location} is named like the SENSORIUM {rec.competition} recording "
            f"{rec.name} but holds data/images (a 2022 recording); it is not that recording. "
            "Rename the folder, or pass the published files."
        )
        raise RecordingFormatError(msg)
    attrs.update(role=rec.role, data_key=rec.short_name, source_url=rec.url,
                 license=LICENSE_2022)
    return attrs


class StaticWriter(StoreWriter):
    """Writes the store of a 2022 (static image) recording; see the module's docstring."""

    competition = "2022"

    def __init__(self, tree: FileTree, target: Path, progress: bool):
        shapes = tree.check_shapes(integer_ok=("images",))
        super().__init__(tree, target, progress, shapes)
        image = shapes["images"][0]
        if len(image) not in (2, 3) or int(np.prod(image[:-2])) != 1:
            msg = (
                f"{tree.location}: data/images trials have shape {image}; expected "
                "(1, height, width), one grayscale image per trial (e.g. (1, 144, 256))."
            )
            raise RecordingFormatError(msg)
        self.height, self.width = image[-2:]
        responses = shapes["responses"][0]
        if len(responses) != 1:
            msg = (
                f"{tree.location}: data/responses trials have shape {responses}; a 2022 "
                "recording has one value per neuron and trial, (neurons,)."
            )
            raise RecordingFormatError(msg)
        self.n_neurons = responses[0]
        expected = {"behavior": (3,), "pupil_center": (2,), "rates": responses}
        for stream, shape in expected.items():
            if stream in shapes and shapes[stream][0] != shape:
                msg = (
                    f"{tree.location}: data/{stream} trials have shape {shapes[stream][0]}; "
                    f"a 2022 recording has {shape} per trial."
                )
                raise RecordingFormatError(msg)

    def write(self) -> dict[str, object]:
        images_dtype, hashes = self._images()
        labelled = self._responses()
        self._behavior()
        self._coords(labelled, hashes)
        self._statistics()
        attrs = _recording_attrs(self.tree)
        attrs["images_dtype"] = images_dtype
        return attrs

    def _images(self) -> tuple[str, list[str]]:
        hashes, lossless = self._image_pass("uint8")
        if not lossless:
            log.info("%s: images are not 8-bit integers; storing float32", self.tree.name)
            del self.group["images"]
            hashes, _ = self._image_pass("float32")
            return "float32", hashes
        return "uint8", hashes

    def _image_pass(self, dtype: str) -> tuple[list[str], bool]:
        """Write ``images`` in ``dtype``; the image hashes, and False if uint8 is not exact."""
        tree, n = self.tree, len(self.tree.trials)
        shape = (n, self.height, self.width)
        chunks = (min(n, STATIC_TRIALS), self.height, self.width)
        arr = self.create_array("images", shape, chunks, dtype, ("trial", "height", "width"),
                          0 if dtype == "uint8" else float("nan"))
        hashes = [""] * n
        lossless = np.ones(n, bool)

        def convert(start: int) -> None:
            stop = min(start + STATIC_TRIALS, n)
            block = np.empty((stop - start, self.height, self.width), dtype)
            for i in range(start, stop):
                image = tree.read("images", int(tree.trials[i])).reshape(self.height, self.width)
                if dtype == "uint8":
                    exact = as_uint8(image, len(image))
                    if exact is None:
                        lossless[i] = False
                        return  # the pass is done again in float32
                    block[i - start] = exact
                else:
                    block[i - start] = image
                hashes[i] = content_hash(block[i - start])
            arr[start:stop] = block

        self.each_trial(convert, "images", STATIC_TRIALS)
        return hashes, bool(lossless.all())

    def _responses(self) -> np.ndarray:
        tree, n = self.tree, len(self.tree.trials)
        shape = (n, self.n_neurons)
        chunks = (min(n, STATIC_TRIALS), self.n_neurons)
        streams = ["responses", *(["rates"] if "rates" in tree.streams else [])]
        arrays = {s: self.create_array(s, shape, chunks, "float32", ("trial", "neuron"),
                                       float("nan"), RESPONSE_CODEC) for s in streams}
        labelled = np.ones(n, bool)

        def convert(start: int) -> None:
            stop = min(start + STATIC_TRIALS, n)
            for stream in streams:
                block = np.empty((stop - start, self.n_neurons), np.float32)
                for i in range(start, stop):
                    data = tree.read(stream, int(tree.trials[i]))
                    if stream == "responses" and withheld(str(tree.tiers[i]), data):
                        labelled[i] = False
                        data = np.full_like(data, np.nan)  # unknown, not zero
                    block[i - start] = data
                arrays[stream][start:stop] = block

        self.each_trial(convert, "responses", STATIC_TRIALS)
        return labelled

    def _behavior(self) -> None:
        tree, n = self.tree, len(self.tree.trials)
        out = np.empty((n, len(BEHAVIOR_VARIABLES)), np.float32)
        for i, trial in enumerate(tree.trials):
            out[i, :3] = tree.read("behavior", int(trial))
            out[i, 3:] = tree.read("pupil_center", int(trial))
        chunks = (min(n, STATIC_BEHAVIOR_TRIALS), len(BEHAVIOR_VARIABLES))
        arr = self.create_array("behavior", out.shape, chunks, "float32",
                          ("trial", "behavior_variable"), float("nan"))
        arr[:] = out

    def _coords(self, labelled: np.ndarray, hashes: list[str]) -> None:
        tree = self.tree
        unknown = sorted(set(tree.tiers.tolist()) - set(STATIC_TIERS))
        if unknown:
            log.warning("%s: tier(s) %s are not among the 2022 tiers %s", tree.name, unknown,
                        STATIC_TIERS)
        frame_image_id = _trial_meta(tree, "frame_image_id")
        image_id = frame_image_id if frame_image_id is not None else np.array(hashes)
        per_trial: dict[str, np.ndarray] = {
            "trial": tree.trials.astype(np.int64),
            "tier": tree.tiers.astype(object),
            "image_id": image_id.astype(object),
            "labelled": labelled,
        }
        trial_idx = _trial_meta(tree, "trial_idx")
        if trial_idx is not None:
            per_trial["trial_idx"] = trial_idx.astype(object)
        for name, values in per_trial.items():
            self.write_small(name, values, ("trial",))
        self.write_neurons(self.n_neurons)
        self.write_small("behavior_variable", np.array(BEHAVIOR_VARIABLES, dtype=object),
                    ("behavior_variable",))
        self.group.attrs["labels_source"] = "tree" if frame_image_id is not None else "derived"

    def _statistics(self) -> None:
        tree = self.tree
        image = (self.height, self.width)
        # shipped as scalars or as one trial's (1, height, width): both broadcast to the image
        images = {k: v.reshape(image) if v.size == self.height * self.width else v
                  for k, v in tree.statistics("images").items()}
        behavior = np.concatenate(
            [stack_statistics(tree, "behavior", (3,)),
             stack_statistics(tree, "pupil_center", (2,))], axis=1
        )
        self.write_statistics([
            ("images", stack_statistics(tree, "images", image, images),
             ("statistic", "height", "width")),
            ("responses", stack_statistics(tree, "responses", (self.n_neurons,)),
             ("statistic", "neuron")),
            ("behavior", behavior, ("statistic", "behavior_variable")),
        ])
