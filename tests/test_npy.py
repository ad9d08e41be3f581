"""meta/ files are read without running code stored in them (sensorium_data.npy)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.npy import load_npy


class _Payload:
    """An object whose unpickling would run a shell command (the attack of issue 15)."""

    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_unicode_string_array_as_the_releases_write_it():
    # tiers.npy of the releases: a '<U' array (lRomul loads it with allow_pickle=False)
    tiers = np.array(["train", "oracle", "none", "live_test_main"])
    assert tiers.dtype.kind == "U"
    assert load_npy(npy_bytes(tiers), "tiers.npy").tolist() == tiers.tolist()


def test_object_string_array_is_read_without_unpickling_code():
    tiers = np.array(["train", "oracle", "final_test_bonus"], dtype=object)
    out = load_npy(npy_bytes(tiers), "tiers.npy")
    assert out.tolist() == ["train", "oracle", "final_test_bonus"]


def test_object_array_of_numbers_and_strings():
    values = np.array([1, "a", 2.5], dtype=object)
    assert load_npy(npy_bytes(values), "x.npy").tolist() == [1, "a", 2.5]


@pytest.mark.parametrize("rel", ["trials/tiers", "trials/video_id", "neurons/unit_ids",
                                 "statistics/responses/all/std"])
def test_crafted_meta_file_runs_nothing_and_is_refused(make_tree, tmp_path, rel):
    tree = make_tree()
    flag = tmp_path / "pwned"
    n = len(np.load(tree / "meta/trials/tiers.npy"))
    payload = np.empty(n, dtype=object)
    payload[:] = "train"
    payload[0] = _Payload(flag)
    np.save(tree / "meta" / f"{rel}.npy", payload, allow_pickle=True)
    with pytest.raises(sd.RecordingFormatError, match=r"posix\.system|os\.system|never does"):
        sd.convert(tree, tmp_path / "x.zarr", progress=False)
    assert not flag.exists()
    assert not (tmp_path / "x.zarr").exists()


def test_pickle_of_another_object_is_refused():
    data = npy_bytes(np.array([{"a": 1}], dtype=object))
    with pytest.raises(sd.RecordingFormatError, match="not an array of strings and numbers"):
        load_npy(data, "meta/trials/tiers.npy")


def test_damaged_npy_names_the_file():
    data = npy_bytes(np.array(["train"], dtype=object))[:-5]
    with pytest.raises(sd.RecordingFormatError,
                       match=r"meta/trials/tiers\.npy holds a pickle .*not a pickle.*damaged"):
        load_npy(data, "meta/trials/tiers.npy")


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_object_arrays_of_every_pickle_protocol_are_read_without_the_pickle_module(
        monkeypatch, protocol):
    import pickle

    values = np.array([["train", "oracle", "train"], ["x" * 300, "none", "train"]], dtype=object)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": values.shape})
    pickle.dump(np.asfortranarray(values), buf, protocol=protocol)

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert load_npy(buf.getvalue(), "tiers.npy").tolist() == values.tolist()
