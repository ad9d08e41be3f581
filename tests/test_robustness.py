"""Property: whatever a recording's files hold, convert and open_mouse return the right values
or raise the library's own error (SensoriumDataError), never a bare numpy, zarr or blosc error
and never wrong values.

Random small trees in the real format get a random corruption of the source (a file deleted,
truncated, replaced by junk, by a pickle, by another dtype or shape; a meta file of the wrong
kind; stray files), are read as a folder or a zip, converted, opened and read whole; then a
random corruption of the store (a chunk file deleted or truncated) and a second full read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sensorium_data as sd
from sensorium_data.errors import SensoriumDataError
from tests.conftest import write_tiny_tree
from tests.test_store import assert_round_trip
from tests.test_tree import zip_folder

STREAMS = ("videos", "responses", "behavior", "pupil_center")
META = ("trials/tiers", "neurons/unit_ids", "neurons/cell_motor_coordinates",
        "statistics/videos/all/std", "statistics/responses/all/mean",
        "statistics/behavior/all/std")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sensorium-robustness-pwned",))


def _pickled(n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = "train"
    out[0] = _Payload()
    return out


def corrupt_file(path: Path, how: str, rng: np.random.Generator) -> None:
    """Damage one .npy file in place."""
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: int(rng.integers(0, len(data)))])
    elif how == "junk":
        path.write_bytes(rng.bytes(int(rng.integers(1, 300))))
    elif how == "pickle":
        np.save(path, _pickled(int(np.load(path).size) or 1), allow_pickle=True)
    elif how == "strings":
        np.save(path, np.full(np.load(path).shape or (1,), "x"))
    elif how == "integers":
        np.save(path, np.zeros(np.load(path).shape, np.int64))
    elif how == "shape":
        np.save(path, np.zeros((3, 5)))
    elif how == "scalar":
        np.save(path, np.float64(1.0))


SOURCE_DAMAGE = ("delete", "truncate", "junk", "pickle", "strings", "integers", "shape",
                 "scalar")


def damage_tree(root: Path, kind: str, how: str, rng: np.random.Generator) -> None:
    if kind == "none":
        return
    if kind == "stray":
        (root / "data/videos/08.npy").write_bytes((root / "data/videos/0.npy").read_bytes())
        return
    if kind == "extra":
        (root / "data/videos/readme.txt").write_text("not a trial")
        (root / "meta/trials/other.npy").write_bytes(b"junk")
        return
    if kind == "data":
        files = sorted((root / "data" / str(rng.choice(STREAMS))).glob("*.npy"))
        target = files[int(rng.integers(len(files)))]
    else:
        target = root / "meta" / f"{rng.choice(META)}.npy"
    corrupt_file(target, how, rng)


def damage_store(store: Path, how: str, rng: np.random.Generator) -> None:
    chunks = sorted(p for p in store.rglob("c/*") if p.is_file())
    chunks += sorted(p for p in store.rglob("c/*/*") if p.is_file())
    chunks += sorted(p for p in store.rglob("c/*/*/*") if p.is_file())
    if not chunks or how == "none":
        return
    target = chunks[int(rng.integers(len(chunks)))]
    if how == "delete":
        target.unlink()
    else:
        data = target.read_bytes()
        target.write_bytes(data[: int(rng.integers(0, max(len(data) - 1, 1)))])


def read_everything(store: Path) -> None:
    ds = sd.open_mouse(store)
    ds.load()


def check_values(folder: Path, store: Path) -> None:
    assert_round_trip(folder, store)
    ds = sd.open_mouse(store)
    tiers = np.load(folder / "meta/trials/tiers.npy").astype(str)
    assert ds.tier.values.tolist() == tiers[ds.trial.values].tolist()
    assert ds.neuron.values.tolist() == np.load(folder / "meta/neurons/unit_ids.npy").tolist()
    xyz = np.load(folder / "meta/neurons/cell_motor_coordinates.npy")
    np.testing.assert_array_equal(np.stack([ds.x, ds.y, ds.z], axis=1), xyz)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    n_neurons=st.integers(1, 6),
    frames=st.integers(4, 60),
    dtype=st.sampled_from([np.float32, np.float64]),
    kind=st.sampled_from(["none", "data", "meta", "stray", "extra"]),
    how=st.sampled_from(SOURCE_DAMAGE),
    as_zip=st.booleans(),
    store_damage=st.sampled_from(["none", "delete", "truncate"]),
)
def test_convert_and_open_return_right_values_or_the_librarys_error(
    seed, n_neurons, frames, dtype, kind, how, as_zip, store_damage
):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = write_tiny_tree(tmp_path / "rec", n_neurons=n_neurons, frames=frames,
                                 dtype=dtype, seed=seed, junk=bool(rng.integers(2)))
        damage_tree(folder, kind, how, rng)
        source = zip_folder(folder, tmp_path / "rec.zip") if as_zip else folder
        try:
            store = sd.convert(source, tmp_path / "rec.zarr", progress=False)
            read_everything(store)
        except SensoriumDataError:
            assert not (tmp_path / "rec.zarr").exists()  # a refused tree leaves no store
            return
        finally:
            assert not Path("/tmp/sensorium-robustness-pwned").exists()
        check_values(folder, store)
        damage_store(store, store_damage, rng)
        try:
            read_everything(store)
        except SensoriumDataError:
            return
        check_values(folder, store)

