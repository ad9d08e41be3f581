"""Conversion and evaluation on a dask.distributed LocalCluster of two workers: the results of
one process, exactly; a conversion that fails on a worker publishes no store."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import xarray as xr

import sensorium_data as sd
import sensorium_models as sm
from sensorium_data.cluster import convert_many, get_client
from sensorium_models.training.data import open_run_mice

pytest.importorskip("distributed")  # declared in the [test] extra


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """Two workers in this process (threads: fast to start, and a patch here reaches them)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _same_store(a, b) -> None:
    x, y = sd.load_mouse(a), sd.load_mouse(b)
    xr.testing.assert_identical(x.drop_attrs(deep=False), y.drop_attrs(deep=False))
    assert {k: v for k, v in x.attrs.items() if k != "store"} == {
        k: v for k, v in y.attrs.items() if k != "store"}


def test_two_workers_convert_two_recordings_as_one_process_does(client, make_tree, tmp_path):
    trees = [make_tree("rec-a", seed=1), make_tree("rec-b", seed=2)]
    here = convert_many(trees, [tmp_path / "one" / f"{t.name}.zarr" for t in trees])
    there = convert_many(trees, [tmp_path / "two" / f"{t.name}.zarr" for t in trees],
                         client=client)
    assert [p.name for p in there] == ["rec-a.zarr", "rec-b.zarr"]
    for a, b in zip(here, there, strict=True):
        _same_store(a, b)
    assert len(client.scheduler_info()["workers"]) == 2


def test_a_conversion_failing_on_a_worker_publishes_no_store(client, make_tree, tmp_path,
                                                              monkeypatch):
    from sensorium_data.store import video

    def lost(self, *args, **kwargs):
        raise RuntimeError("the worker lost its disk")

    tree = make_tree("rec-c", seed=3)
    target = tmp_path / "stores" / "rec-c.zarr"
    monkeypatch.setattr(video.VideoWriter, "_coords", lost)  # after the big arrays
    # a ClusterError: the library's error, which the CLI prints as a message, not a traceback
    with pytest.raises(sd.ClusterError, match=r"converting rec-c failed on the cluster "
                       r"\(RuntimeError: the worker lost its disk\); nothing of it was "
                       r"published"):
        convert_many([tree], [target], client=client)
    assert not target.exists()
    with pytest.raises(FileNotFoundError):
        sd.open_mouse(target)
    monkeypatch.undo()
    (done,) = convert_many([tree], [target], client=client)  # the leftovers go, then it works
    assert done == target and [p.name for p in target.parent.iterdir()] in (
        ["rec-c.zarr", "rec-c.zarr.lock"], ["rec-c.zarr.lock", "rec-c.zarr"])


def test_the_leaderboard_tables_on_two_workers_equal_one_process_to_the_last_digit(
        client, trained_run, tmp_path):
    from tests.conftest import shifted_copy

    runs = [trained_run, shifted_copy(trained_run, tmp_path / "shifted", 0.25)]
    tiers = ["oracle", "live_test_main", "final_test_main"]
    there = sm.evaluate_runs(runs, tiers=tiers, client=client)
    for run in runs:
        datasets = open_run_mice(run)
        one = sm.evaluate(sm.predict(run, datasets, tiers=tiers, device="cpu"), datasets,
                          scale="official")
        pd.testing.assert_frame_equal(there[str(run)], one, check_exact=True)
    assert not there[str(runs[0])].equals(there[str(runs[1])])


def test_a_client_and_a_scheduler_address_together_are_refused(client):
    with pytest.raises(ValueError, match=r"pass one of them"):
        get_client(client, "tcp://127.0.0.1:8786")


def test_a_scheduler_that_does_not_answer_is_named():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError, match=rf"no dask scheduler answers at 'tcp://127.0.0.1:{port}'"):
        get_client(scheduler=f"tcp://127.0.0.1:{port}", timeout="2s")


def test_stores_and_trees_of_different_lengths_are_refused(make_tree, tmp_path):
    with pytest.raises(ValueError, match=r"1 trees and 2 stores; pass one store per tree"):
        convert_many([make_tree()], [tmp_path / "a.zarr", tmp_path / "b.zarr"])


def test_sensorium_convert_of_two_trees_on_a_scheduler(client, make_tree, tmp_path, capsys):
    from sensorium_models.cli import main

    trees = [make_tree("rec-d", seed=4), make_tree("rec-e", seed=5)]
    address = client.scheduler.address  # type: ignore[attr-defined]
    assert main(["convert", *map(str, trees), "--scheduler", address, "--data-dir",
                 str(tmp_path)]) == 0
    stores = capsys.readouterr().out.split()
    assert [p.split("/")[-1].split("-")[:2] for p in stores] == [["rec", "d"], ["rec", "e"]]
    for tree, store in zip(trees, stores, strict=True):
        assert store.startswith(str(tmp_path / "stores"))
        _same_store(store, sd.convert(tree, tmp_path / "one" / "x.zarr", overwrite=True))
    assert main(["convert", *map(str, trees), "--store", str(tmp_path / "s.zarr")]) == 2
    assert "--store" in capsys.readouterr().err


def _die_when_writing_coordinates() -> int:
    """Run on a worker: its next conversion kills the worker process after the big arrays."""
    import os

    from sensorium_data.store import video

    def die(self, *args, **kwargs):
        os._exit(1)

    video.VideoWriter._coords = die  # type: ignore[method-assign]
    return os.getpid()


def _pid() -> int:
    import os

    return os.getpid()


def test_workers_killed_mid_conversion_publish_no_half_store(make_tree, tmp_path):
    import sys

    import cloudpickle
    from distributed import Client, LocalCluster

    trees = [make_tree("rec-f", seed=6), make_tree("rec-g", seed=7)]
    targets = [tmp_path / "stores" / f"{t.name}.zarr" for t in trees]
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the poison, to the workers
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            before = set(client.run(_die_when_writing_coordinates).values())
            stores = convert_many(trees, targets, client=client)  # each first try kills
            after = set(client.run(_pid).values())
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert before and not before & after  # both workers died and were restarted
    for tree, store in zip(trees, stores, strict=True):
        _same_store(store, sd.convert(tree, tmp_path / "here" / f"{tree.name}.zarr"))
    assert sorted(p.name for p in (tmp_path / "stores").iterdir()) == [
        "rec-f.zarr", "rec-f.zarr.lock", "rec-g.zarr", "rec-g.zarr.lock"]  # no leftovers


def test_sensorium_compare_on_a_scheduler_prints_the_one_process_table(
        client, trained_run, tmp_path, capsys):
    from sensorium_models.cli import main
    from tests.conftest import shifted_copy

    runs = [str(trained_run), str(shifted_copy(trained_run, tmp_path / "b", 0.25))]
    args = ["compare", *runs, "--tiers", "oracle", "live_test_main", "--device", "cpu",
            "--no-cache"]
    assert main(args) == 0
    here = capsys.readouterr().out
    assert main([*args, "--scheduler", client.scheduler.address]) == 0  # type: ignore[attr-defined]
    assert capsys.readouterr().out == here and "oracle" in here
