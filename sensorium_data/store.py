"""Convert a recording's file tree (folder or zip) once into a zarr v3 store.

The store is what :func:`sensorium_data.open_mouse` reads, lazily. Its layout::

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
mapped layout of :mod:`sensorium_data.layout`): the training loader maps a clip as one
contiguous slice, and xarray reads the dims above unchanged.

A 2022 (static image) recording has ``images`` (trial, height, width) instead of videos and no
frame axis; :mod:`sensorium_data.static` draws its layout. Both record ``competition`` in the
store's attributes.

Conversion is atomic (written under a temporary name, renamed when complete, so a killed
conversion never leaves a store that opens) and locked (a second process converting the same
recording waits, then opens the finished store).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import zarr
from filelock import FileLock
from tqdm.auto import tqdm
from zarr.codecs import BloscCodec, ZstdCodec

from sensorium_data import paths
from sensorium_data.errors import RecordingFormatError, StoreError
from sensorium_data.layout import mapped_encoding
from sensorium_data.remote import RemotePath, convert_to_url, is_url
from sensorium_data.tree import STATISTICS, FileTree, open_tree, valid_frames

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""Version of the store layout; a store of another version is converted again.

2: responses, rates and videos in the mapped layout (:mod:`sensorium_data.layout`);
1: the same arrays in Blosc/zstd chunks (still read; :func:`sensorium_data.upgrade`)."""
READABLE_SCHEMAS = (1, SCHEMA_VERSION)
"""Schema versions :func:`sensorium_data.open_mouse` opens."""
BEHAVIOR_VARIABLES = ("pupil_dilation", "running_speed", "pupil_x", "pupil_y")
LICENSE_2023 = "CC BY-NC-ND 4.0 (SENSORIUM 2023 data, gin.g-node.org/pollytur)"

# Chunking and codecs, measured in docs/storage.md: responses, rates and videos one raw,
# time-major chunk per trial (sensorium_data.layout), so the training loader maps a clip as one
# contiguous slice; behaviour 64 trials per chunk (the loader holds it in memory). 2022
# responses (one number per trial and neuron) stay compressed. Every chunk is written, even
# one of fill values only (a withheld trial's): a missing chunk is then always damage
# (sensorium_data.chunks).
BEHAVIOR_TRIALS = 64
RESPONSE_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=4)
CODEC = ZstdCodec(level=3)
CONVERT_THREADS = 4


@contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence zarr's notices about consolidated metadata and string dtypes in v3 (known)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


def default_store(tree: FileTree, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`convert` puts a store: ``<data_dir>/stores/<name>-<fingerprint>.zarr``."""
    return paths.stores_dir(paths.data_dir(data_dir)) / f"{tree.name}-{tree.fingerprint}.zarr"


def is_complete(store: Path) -> bool:
    """True if ``store`` is a finished store of this schema version."""
    try:
        attrs = _read_attrs(store)
    except StoreError:
        return False
    return attrs.get("schema_version") == SCHEMA_VERSION and bool(attrs.get("complete"))


def _read_attrs(store: Path) -> dict:
    if not (store / "zarr.json").is_file():
        msg = f"{store} is not a zarr store (no zarr.json)."
        raise StoreError(msg)
    with quiet_zarr():
        try:
            group = zarr.open_group(store, mode="r")
        except Exception as e:  # zarr raises several types for damaged metadata
            msg = f"{store} is not a readable zarr store ({e})."
            raise StoreError(msg) from e
        return dict(group.attrs)


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


def check_identity(tree: FileTree) -> None:
    """Refuse a tree named like a catalogued recording whose neuron or trial count differs.

    The catalog's counts are checked whatever the tree's source (a folder, a zip, a mirror):
    a name alone does not make a recording.

    Raises
    ------
    RecordingFormatError
        If the counts differ from the catalog's.

    Examples
    --------
    >>> from sensorium_data import open_tree
    >>> check_identity(open_tree("dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"))
    ... # doctest: +SKIP
    """
    from sensorium_data import catalog

    rec = catalog.find(tree.name)
    if rec is None:
        return
    n_neurons = tree.header("responses", int(tree.trials[0]))[0][0]
    found = {"neurons": (n_neurons, rec.n_neurons), "trial files": (len(tree.trials), rec.n_trials)}
    for what, (have, expected) in found.items():
        if expected is not None and have != expected:
            msg = (
                f"{tree.location} is named like the published recording {rec.name} "
                f"({rec.letter or rec.short_name}) but has {have} {what}; the catalog says "
                f"{expected}. It is not that recording (a renamed folder, or a wrong mirror). "
                "Rename it, or download the published file (sensorium_data.fetch_mouse)."
            )
            raise RecordingFormatError(msg)


def _names(name: str) -> dict[str, object]:
    """animal_id, session and scan_idx from a folder name such as dynamic29515-10-12-Video-..."""
    m = re.match(r"(dynamic|static)(\d+)-(\d+)-(\d+)", name)
    if not m:
        return {}
    return {"animal_id": int(m[2]), "session": int(m[3]), "scan_idx": int(m[4])}


def _recording_attrs(tree: FileTree) -> dict[str, object]:
    from sensorium_data import catalog

    attrs: dict[str, object] = {"mouse": tree.name, "competition": "2023", "fps": 30.0}
    attrs.update(_names(tree.name))
    rec = catalog.find(tree.name)
    if rec is not None:
        attrs.update(
            competition=rec.competition,
            letter=rec.letter or "",
            set=rec.role,
            source_url=rec.url,
            license=LICENSE_2023,
            fps=float(rec.fps or 30.0),
        )
    return attrs


def _as_uint8(frames: np.ndarray, n_frames: int) -> np.ndarray | None:
    """The video as uint8 (padding 0) if that is exact: integers in 0-255, NaN padding only."""
    valid = frames[:n_frames]
    with np.errstate(invalid="ignore"):
        as8 = valid.astype(np.uint8)
    if not np.array_equal(as8, valid) or not np.isnan(frames[n_frames:]).all():
        return None
    out = np.zeros(frames.shape, np.uint8)
    out[:n_frames] = as8
    return out


def _video_hash(valid: np.ndarray) -> str:
    """Trials that showed identical frames get the same id."""
    return "h" + hashlib.blake2b(np.ascontiguousarray(valid).tobytes(), digest_size=6).hexdigest()


def _withheld(tier: str, responses: np.ndarray) -> bool:
    """Test-tier responses that are exactly zero wherever they are not NaN were withheld."""
    if "test" not in tier:
        return False
    finite = responses[~np.isnan(responses)]
    return finite.size > 0 and not finite.any()


class _BaseWriter:
    """Writes one store under a temporary name, then renames it into place (:meth:`run`).

    Subclasses (one per competition) check the tree's shapes in ``__init__`` and write the
    arrays in :meth:`_write`, which returns the recording's attributes.
    """

    def __init__(self, tree: FileTree, target: Path, progress: bool,
                 shapes: dict[str, tuple[tuple[int, ...], np.dtype]]):
        check_identity(tree)
        self.tree = tree
        self.target = target
        self.tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        self.progress = progress
        self.source_dtypes = {s: str(dt) for s, (_, dt) in shapes.items()}

    def _write(self) -> dict[str, object]:
        raise NotImplementedError

    def run(self) -> Path:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        tree = self.tree
        with quiet_zarr():
            self.group = zarr.open_group(self.tmp, mode="w", zarr_format=3)
            attrs = self._write()
            attrs.update(
                schema_version=SCHEMA_VERSION,
                source=tree.location,
                source_fingerprint=tree.fingerprint,
                source_modified=tree.modified,
                source_dtypes=self.source_dtypes,
                n_trials=len(tree.trials),
                all_chunks_written=True,  # a missing chunk is damage (sensorium_data.chunks)
                complete=True,
            )
            self.group.attrs.update(attrs)  # type: ignore[arg-type]
            zarr.consolidate_metadata(self.tmp)
        if self.target.exists():  # a store to replace (checked by convert): aside, then swap
            old = self.target.with_name(f"{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
            os.replace(self.tmp, self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.target)
        return self.target

    def _array(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str,
               dims: tuple[str, ...], fill: float | int, codec: object = CODEC,
               mapped: bool = False) -> zarr.Array:
        """A new array, compressed with ``codec``, or in the mapped layout (one raw trial per
        chunk)."""
        # every chunk written, even one of fill values only: a missing chunk is then an error
        # when read (sensorium_data.chunks), except where a write is skipped
        encoding = (mapped_encoding(name) if mapped
                    else {"compressors": [codec], "config": {"write_empty_chunks": True}})
        return self.group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, dimension_names=dims,
            fill_value=fill, **encoding,
        )

    def _each_trial(self, fn: Callable[[int], None], desc: str, step: int = 1) -> None:
        """Run ``fn(i)`` for every ``step``-th trial position on a few threads, with a progress
        bar; ``fn(i)`` handles positions ``i`` to ``i + step`` (one chunk: no two threads write
        the same chunk)."""
        n = len(self.tree.trials)
        bar = tqdm(total=n, desc=f"{self.tree.name[:24]} {desc}", unit="trial",
                   disable=not self.progress, leave=False)
        starts = range(0, n, step)
        with ThreadPoolExecutor(CONVERT_THREADS) as pool, bar:
            for i, _ in zip(starts, pool.map(fn, starts), strict=True):
                bar.update(min(step, n - i))

    def _small(self, name: str, values: np.ndarray, dims: tuple[str, ...]) -> None:
        dtype = "str" if values.dtype == object else values.dtype
        arr = self.group.create_array(name, shape=values.shape, dtype=dtype,
                                      chunks=values.shape or (1,), dimension_names=dims,
                                      config={"write_empty_chunks": True})
        arr[:] = values

    def _neurons(self, n_neurons: int) -> None:
        """``neuron`` (unit ids) and ``x``, ``y``, ``z`` from ``meta/neurons``."""
        tree = self.tree
        unit_ids = np.asarray(tree.numbers("neurons/unit_ids")).astype(np.int64)
        if unit_ids.shape != (n_neurons,):
            msg = (
                f"{tree.location}: meta/neurons/unit_ids.npy has shape {unit_ids.shape} but the "
                f"responses have {n_neurons} neurons."
            )
            raise RecordingFormatError(msg)
        ids, counts = np.unique(unit_ids, return_counts=True)
        if (counts > 1).any():
            msg = (
                f"{tree.location}: meta/neurons/unit_ids.npy repeats unit id(s) "
                f"{ids[counts > 1][:10].tolist()}; every neuron has its own id. The file is "
                "damaged; replace it with the published one."
            )
            raise RecordingFormatError(msg)
        xyz = tree.numbers("neurons/cell_motor_coordinates", required=False)
        if xyz is None:
            log.warning("%s: no meta/neurons/cell_motor_coordinates.npy; x, y, z are NaN",
                        tree.name)
            xyz = np.full((n_neurons, 3), np.nan)
        xyz = np.asarray(xyz, dtype=np.float64)
        if xyz.shape != (n_neurons, 3):
            msg = (
                f"{tree.location}: meta/neurons/cell_motor_coordinates.npy has shape {xyz.shape}; "
                f"expected ({n_neurons}, 3)."
            )
            raise RecordingFormatError(msg)
        self._small("neuron", unit_ids, ("neuron",))
        for axis, name in enumerate("xyz"):
            self._small(name, xyz[:, axis], ("neuron",))

    def _statistics_group(self, arrays: list[tuple[str, np.ndarray, tuple[str, ...]]]) -> None:
        """Write ``statistics/<name>`` (statistic, ...) for each of ``arrays``."""
        group = self.group.create_group("statistics")
        for name, values, dims in arrays:
            arr = group.create_array(name, shape=values.shape, dtype="float32", chunks=values.shape,
                                     dimension_names=dims, compressors=[CODEC],
                                     fill_value=float("nan"),
                                     config={"write_empty_chunks": True})
            arr[:] = values
        arr = group.create_array("statistic", shape=(len(STATISTICS),), dtype="str",
                                 chunks=(len(STATISTICS),), dimension_names=("statistic",),
                                 config={"write_empty_chunks": True})
        arr[:] = np.array(STATISTICS, dtype=object)


def stack_statistics(tree: FileTree, stream: str, shape: tuple[int, ...],
                     stats: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The shipped statistics of ``stream`` as one (statistic, *shape) float32 array.

    A statistic that is missing is NaN; one of another shape is broadcast to ``shape`` (a
    scalar image mean, say), or refused if it cannot be.
    """
    stats = tree.statistics(stream) if stats is None else stats
    out = np.full((len(STATISTICS), *shape), np.nan, np.float32)
    for k, stat in enumerate(STATISTICS):
        value = stats.get(stat)
        if value is None:
            continue
        try:
            out[k] = np.broadcast_to(np.asarray(value, np.float32), shape)
        except ValueError as e:
            msg = (
                f"{tree.location}: meta/statistics/{stream}/all/{stat}.npy has shape "
                f"{np.shape(value)}, which does not fit one trial of data/{stream} {shape}. "
                "The statistics are from another recording; replace them with the published ones."
            )
            raise RecordingFormatError(msg) from e
    return out


class _Writer(_BaseWriter):
    """Writes the store of a 2023 (video) recording."""

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

    def _write(self) -> dict[str, object]:
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
        arr = self._array("videos", shape, chunks, dtype, ("trial", "frame", "height", "width"),
                          fill, mapped=True)
        n_frames = np.zeros(n, np.int32)
        hashes = [""] * n
        lossless = np.ones(n, bool)

        def convert(i: int) -> None:
            video = tree.read("videos", int(tree.trials[i]))
            n_frames[i] = valid_frames(video)
            frames = np.moveaxis(video, -1, 0)  # (frame, height, width)
            if dtype == "uint8":
                exact = _as_uint8(frames, int(n_frames[i]))
                lossless[i] = exact is not None
                if exact is None:
                    return  # the pass is done again in float32
                data = exact
            else:
                data = frames.astype(np.float32)
                holes[i] = bool(np.isnan(data[: n_frames[i]]).any())
            hashes[i] = _video_hash(data[: n_frames[i]])
            arr[i] = data

        holes = np.zeros(n, bool)
        self._each_trial(convert, "videos")
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
        arrays = {s: self._array(s, shape, chunks, "float32", dims, float("nan"), mapped=True)
                  for s in streams}
        labelled = np.ones(n, bool)

        def convert(i: int) -> None:
            trial = int(tree.trials[i])
            for stream in streams:
                data = tree.read(stream, trial)
                if stream == "responses" and _withheld(str(tree.tiers[i]), data):
                    labelled[i] = False
                    continue  # never written: the fill value (NaN) stands for "unknown"
                arrays[stream][i] = data.astype(np.float32)

        self._each_trial(convert, "responses")
        return labelled

    def _behavior(self) -> None:
        tree, n = self.tree, len(self.tree.trials)
        out = np.empty((n, 4, self.frames), np.float32)
        for i, trial in enumerate(tree.trials):
            out[i, :2] = tree.read("behavior", int(trial))
            out[i, 2:] = tree.read("pupil_center", int(trial))
        chunks = (min(n, BEHAVIOR_TRIALS), 4, self.frames)
        arr = self._array("behavior", out.shape, chunks, "float32",
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
            self._small(name, values, ("trial",))
        self._neurons(self.n_neurons)
        self._small("time", np.arange(self.frames) / 30.0, ("frame",))
        self._small("behavior_variable", np.array(BEHAVIOR_VARIABLES, dtype=object),
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
        self._statistics_group([
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


@overload
def convert(tree: str | os.PathLike[str], store: os.PathLike[str] | None = None, *,
            data_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
            progress: bool = True, storage_options: dict | None = None) -> Path: ...


@overload
def convert(tree: str | os.PathLike[str], store: str, *,
            data_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
            progress: bool = True, storage_options: dict | None = None
            ) -> Path | RemotePath: ...


def convert(
    tree: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    storage_options: dict | None = None,
) -> Path | RemotePath:
    """Convert a recording's file tree (folder or zip) into a zarr v3 store; return its path.

    Reads the tree in place (nothing is written next to it) and writes the store atomically
    under a lock: if another process is converting the same recording, this call waits and
    returns the finished store. A complete store of the current schema is returned as is.

    Parameters
    ----------
    tree
        A recording's folder (holding ``data/`` and ``meta/``), or its zip: a 2023 (video)
        recording, or a 2022 (static image) one, whose layout is in :mod:`sensorium_data.static`.
    store
        Where to write the store. Default: ``<data_dir>/stores/<name>-<fingerprint>.zarr``.
        An fsspec URL (``s3://bucket/prefix/F.zarr``): converted locally, then uploaded, its
        root metadata last (:func:`sensorium_data.remote.publish`); ``storage_options`` are
        fsspec's (default: the usual fsspec/botocore configuration).
    data_dir
        The cache folder (default ``$SENSORIUM_DATA_DIR``, else the OS cache).
    overwrite
        Convert again even if a complete store exists at ``store``.
    progress
        Show progress bars.

    Examples
    --------
    >>> import sensorium_data as sd
    >>> tree = "~/data/dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"
    >>> store = sd.convert(tree)  # doctest: +SKIP
    """
    if is_url(store):
        return convert_to_url(tree, str(store), storage_options=storage_options,
                              overwrite=overwrite, progress=progress)
    source = open_tree(tree)
    target = Path(store).expanduser() if store is not None else default_store(source, data_dir)
    return convert_tree(source, target, overwrite=overwrite, progress=progress)


def convert_tree(source: FileTree, target: Path, *, overwrite: bool = False,
                 progress: bool = True) -> Path:
    """:func:`convert` for an opened tree and an explicit store path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock")
    if lock.is_locked:
        log.info("waiting for another process converting %s", target.name)
    with lock:
        for stale in _leftovers(target):  # no conversion into target runs: we hold its lock
            log.info("removing %s left by an interrupted conversion", stale.name)
            shutil.rmtree(stale, ignore_errors=True)
        if _reusable(source, target, overwrite):
            return target
        log.info("converting %s into %s", source.location, target)
        if source.competition == "2022":
            from sensorium_data.static import StaticWriter

            return StaticWriter(source, target, progress).run()
        return _Writer(source, target, progress).run()


def _leftovers(target: Path) -> list[Path]:
    """Folders a killed conversion into ``target`` leaves: ``<store>.tmp-<pid>`` (the store
    being written) and ``<store>.old-<pid>`` (the store being replaced)."""
    pattern = re.compile(re.escape(target.name) + r"\.(tmp|old)-[0-9]+")
    return [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]


def _reusable(source: FileTree, target: Path, overwrite: bool) -> bool:
    """Whether ``target`` is a finished store of ``source`` to return as is; raises if it is
    something that must not be replaced (anything but a store this library completed, or a
    store of another recording without ``overwrite``)."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return False
    try:
        attrs = _read_attrs(target) if target.is_dir() else {}
    except StoreError:
        attrs = {}
    ours = bool(attrs.get("complete")) and "source_fingerprint" in attrs
    if not ours:
        msg = (
            f"{target} exists and is not a store that sensorium_data completed; it will not be "
            "overwritten or removed, even with overwrite=True. Choose another store path."
        )
        raise StoreError(msg)
    same = attrs["source_fingerprint"] == source.fingerprint
    if overwrite:
        return False
    if not same:
        msg = (
            f"{target} is the store of {attrs.get('source')} (fingerprint "
            f"{attrs['source_fingerprint']}), not of {source.location} (fingerprint "
            f"{source.fingerprint}: file names and sizes differ). Choose another store path, "
            "or pass overwrite=True to replace it."
        )
        raise StoreError(msg)
    if attrs.get("schema_version") != SCHEMA_VERSION:
        log.info("%s is of schema version %s; converting it again", target,
                 attrs.get("schema_version"))
        return False
    # an extraction is newer than the zip it was converted from: compare the same source only
    changed = source.modified - float(attrs.get("source_modified", source.modified))
    if changed > 0 and attrs.get("source") == source.location:
        log.warning(
            "%s has files modified after %s was converted from it (names and sizes unchanged); "
            "the store keeps the old values. Convert again with "
            "sensorium_data.convert(%r, %r, overwrite=True) to take the changes.",
            source.location, target, source.location, str(target),
        )
    return True
