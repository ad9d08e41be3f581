"""The base of the store writers, and what every writer shares.

:class:`StoreWriter` writes one store atomically; one subclass per competition
(:class:`sensorium_data.store.video.VideoWriter` for 2023,
:class:`sensorium_data.store.static.StaticWriter` for 2022) writes its arrays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import zarr
from tqdm.auto import tqdm

from sensorium_data.errors import Fix, Message, RecordingFormatError
from sensorium_data.store.layout import CODEC, SCHEMA_VERSION, mapped_encoding, quiet_zarr
from sensorium_data.tree import STATISTICS, FileTree

log = logging.getLogger(__name__)

CONVERT_THREADS = 4


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
    >>> check_identity(open_tree(tiny[0]))  # a simulated recording: no catalog entry to match
    """
    from sensorium_data import catalog

    rec = catalog.find(tree.name)
    if rec is None:
        return
    n_neurons = tree.header("responses", int(tree.trials[0]))[0][0]
    found = {"neurons": (n_neurons, rec.n_neurons), "trial files": (len(tree.trials), rec.n_trials)}
    for what, (have, expected) in found.items():
        if expected is not None and have != expected:
            msg = Message(
                f"{tree.location} is named like the published recording {rec.name} "
                f"({rec.letter or rec.short_name}) but has {have} {what}; the catalog says "
                f"{expected}. It is not that recording (a renamed folder, or a wrong mirror). "
                "Rename it, or download the published file (",
                Fix("sensorium_data.fetch_mouse", "sensorium fetch"), ").",
            )
            raise RecordingFormatError(msg)




def name_ids(name: str) -> dict[str, object]:
    """animal_id, session and scan_idx from a folder name such as dynamic29515-10-12-Video-..."""
    m = re.match(r"(dynamic|static)(\d+)-(\d+)-(\d+)", name)
    if not m:
        return {}
    return {"animal_id": int(m[2]), "session": int(m[3]), "scan_idx": int(m[4])}




def as_uint8(frames: np.ndarray, n_frames: int) -> np.ndarray | None:
    """The video as uint8 (padding 0) if that is exact: integers in 0-255, NaN padding only."""
    valid = frames[:n_frames]
    with np.errstate(invalid="ignore"):
        as8 = valid.astype(np.uint8)
    if not np.array_equal(as8, valid) or not np.isnan(frames[n_frames:]).all():
        return None
    out = np.zeros(frames.shape, np.uint8)
    out[:n_frames] = as8
    return out


def content_hash(valid: np.ndarray) -> str:
    """An id of ``valid`` (frames or an image): trials that showed the same frames get the same
    id."""
    return "h" + hashlib.blake2b(np.ascontiguousarray(valid).tobytes(), digest_size=6).hexdigest()


def withheld(tier: str, responses: np.ndarray) -> bool:
    """Test-tier responses that are exactly zero wherever they are not NaN were withheld."""
    if "test" not in tier:
        return False
    finite = responses[~np.isnan(responses)]
    return finite.size > 0 and not finite.any()




class StoreWriter:
    """Writes one store under a temporary name, then renames it into place (:meth:`run`).

    The interface of a writer, one subclass per competition (:data:`competition` names it):
    ``__init__`` checks the tree's shapes (passing them on as ``shapes``), :meth:`write` writes
    the arrays into :attr:`group` with the helpers below and returns the recording's
    attributes; :meth:`run` adds the attributes every store has and swaps the store in.
    :func:`sensorium_data.convert` picks the writer by the tree's ``competition``.
    """

    competition: ClassVar[str]
    """The competition whose trees this writer converts ("2023", "2022")."""
    group: zarr.Group
    """The store being written (under its temporary name), during :meth:`run`."""

    def __init__(self, tree: FileTree, target: Path, progress: bool,
                 shapes: dict[str, tuple[tuple[int, ...], np.dtype]]):
        check_identity(tree)
        self.tree = tree
        self.target = target
        self.tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        self.progress = progress
        self.source_dtypes = {s: str(dt) for s, (_, dt) in shapes.items()}

    def write(self) -> dict[str, object]:
        """Write the recording's arrays into :attr:`group`; return its attributes."""
        raise NotImplementedError

    def run(self) -> Path:
        """Write the store under a temporary name, then put it at the target; return the
        target."""
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        tree = self.tree
        with quiet_zarr():
            self.group = zarr.open_group(self.tmp, mode="w", zarr_format=3)
            attrs = self.write()
            attrs.update(
                schema_version=SCHEMA_VERSION,
                source=tree.location,
                source_fingerprint=tree.fingerprint,
                source_modified=tree.modified,
                source_dtypes=self.source_dtypes,
                n_trials=len(tree.trials),
                all_chunks_written=True,  # a missing chunk is damage (sensorium_data.store.chunks)
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

    def create_array(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str,
               dims: tuple[str, ...], fill: float | int, codec: object = CODEC,
               mapped: bool = False) -> zarr.Array:
        """A new array, compressed with ``codec``, or in the mapped layout (one raw trial per
        chunk)."""
        # every chunk written, even one of fill values only: a missing chunk is then an error
        # when read (sensorium_data.store.chunks), except where a write is skipped
        encoding = (mapped_encoding(name) if mapped
                    else {"compressors": [codec], "config": {"write_empty_chunks": True}})
        return self.group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, dimension_names=dims,
            fill_value=fill, **encoding,
        )

    def each_trial(self, fn: Callable[[int], None], desc: str, step: int = 1) -> None:
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

    def write_small(self, name: str, values: np.ndarray, dims: tuple[str, ...]) -> None:
        dtype = "str" if values.dtype == object else values.dtype
        arr = self.group.create_array(name, shape=values.shape, dtype=dtype,
                                      chunks=values.shape or (1,), dimension_names=dims,
                                      config={"write_empty_chunks": True})
        arr[:] = values

    def write_neurons(self, n_neurons: int) -> None:
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
        self.write_small("neuron", unit_ids, ("neuron",))
        for axis, name in enumerate("xyz"):
            self.write_small(name, xyz[:, axis], ("neuron",))

    def write_statistics(self, arrays: list[tuple[str, np.ndarray, tuple[str, ...]]]) -> None:
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


