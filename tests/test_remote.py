"""Stores on object storage: a real S3 server (moto's standalone server on loopback, s3fs as
the client): convert to it, open from it, read clips, evaluate, pull to the cache, and the
faults (endpoint, bucket, prefix, an upload that stopped, a store deleted while open)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sensorium_data as sd
import sensorium_models as sm
from sensorium_data.cli import command_words
from sensorium_data.errors import StoreError
from sensorium_data.remote import RemotePath, publish, pull
from sensorium_models import cli
from sensorium_models.training.data import open_run_mice

pytest.importorskip("moto")  # declared in the [test] extra: present wherever ./dev test runs
pytest.importorskip("s3fs")

KEY = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict]:
    """An S3 server on 127.0.0.1 (moto's, in a thread of this process) with a bucket "lab";
    yields the storage_options that reach it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="lab")
    yield {**KEY, "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    server.stop()


@pytest.fixture(scope="module")
def remote_stores(s3, simulated_stores) -> list[str]:
    """The simulated stores, uploaded to s3://lab/stores/."""
    urls = [f"s3://lab/stores/{p.name}" for p in simulated_stores]
    for local, url in zip(simulated_stores, urls, strict=True):
        publish(local, url, storage_options=s3)
    return urls


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))
    assert {k: v for k, v in a.attrs.items() if k != "store"} == {
        k: v for k, v in b.attrs.items() if k != "store"}


def test_a_tree_converted_to_s3_opens_lazily_as_the_local_store(s3, make_tree, tmp_path):
    tree = make_tree("toy")
    url = "s3://lab/converted/toy.zarr"
    assert sd.convert(tree, url, storage_options=s3, progress=False) == RemotePath(url, s3)
    remote = sd.open_mouse(url, storage_options=s3)
    assert remote.attrs["store"] == url and remote["videos"].chunks is not None  # lazy
    assert remote.sensorium.store == RemotePath(url)
    _same(remote.load(), sd.load_mouse(sd.convert(tree, tmp_path / "toy.zarr", progress=False)))
    with pytest.raises(FileExistsError, match=r"s3://lab/converted/toy.zarr already holds files; "
                       r"pass overwrite=True to replace"):
        sd.convert(tree, url, storage_options=s3, progress=False)
    sd.convert(tree, url, storage_options=s3, progress=False, overwrite=True)
    _same(sd.load_mouse(url, storage_options=s3), remote.load())


def test_the_clip_loader_reads_a_remote_store_through_zarr_and_says_so(
        remote_stores, simulated_stores, s3, caplog):
    local = sd.ClipDataset([str(simulated_stores[0])], frames=30, seed=3)
    with caplog.at_level(logging.WARNING):
        remote = sd.ClipDataset([sd.open_mouse(remote_stores[0], storage_options=s3)],
                                frames=30, seed=3)
    assert "read through zarr over the network (the slow path)" in caplog.text
    assert ("sensorium_data.remote.pull('s3://lab/stores/tiny-A.zarr', "
            "<cache>/stores/tiny-A.zarr) copies it") in caplog.text
    record = next(r for r in caplog.records if "slow path" in r.getMessage())
    assert command_words(record)  # as the command line logs it
    assert "`sensorium cache pull s3://lab/stores/tiny-A.zarr` copies it" in record.getMessage()
    assert len(remote) == len(local)
    for i in (0, len(local) - 1):
        a, b = local[i], remote[i]
        for key in ("videos", "responses", "behavior"):
            np.testing.assert_array_equal(b[key], a[key])


def test_the_leaderboard_table_from_s3_and_from_dask_equal_the_local_one_exactly(
        trained_run, remote_stores, s3):
    local = open_run_mice(trained_run)
    remote = {m: sd.open_mouse(u, storage_options=s3)
              for m, u in zip(local, remote_stores, strict=True)}
    tiers = ["oracle", "live_test_main"]
    table = sm.evaluate(sm.predict(trained_run, local, tiers=tiers), local, scale="official")
    from_s3 = sm.evaluate(sm.predict(trained_run, remote, tiers=tiers), remote,
                          scale="official")
    pd.testing.assert_frame_equal(from_s3, table, check_exact=True)
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        on_dask = sm.evaluate_runs([trained_run], tiers=tiers, client=client)
    pd.testing.assert_frame_equal(on_dask[str(trained_run)], table, check_exact=True)


def test_cache_pull_copies_a_remote_store_into_the_cache(remote_stores, s3, tmp_path,
                                                         monkeypatch, capsys):
    # the usual botocore configuration: credentials and endpoint from the environment
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["client_kwargs"]["endpoint_url"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = remote_stores[1]
    assert cli.main(["cache", "pull", url, "--data-dir", str(tmp_path)]) == 0
    local = tmp_path / "stores" / "tiny-B.zarr"
    assert capsys.readouterr().out.strip() == str(local)
    _same(sd.load_mouse(local), sd.load_mouse(url, storage_options=s3))
    assert cli.main(["cache", "pull", url, "--data-dir", str(tmp_path)]) == 2
    assert f"{local} exists; pass --overwrite to replace it." in capsys.readouterr().err

    def lost(*args, **kwargs):
        raise ConnectionError("the network went away")

    fs = RemotePath(url, s3).fs  # fsspec's cached instance, the one pull uses
    before = sorted(p.relative_to(local) for p in local.rglob("*"))
    with monkeypatch.context() as m:
        m.setattr(fs, "get", lost)
        with pytest.raises(ConnectionError):
            pull(url, local, storage_options=s3, overwrite=True)
    # the download failed: the copy the user had is still there, whole
    assert sorted(p.relative_to(local) for p in local.rglob("*")) == before


def test_an_upload_that_stopped_before_its_metadata_never_opens(s3, simulated_stores,
                                                                monkeypatch):
    def lost(*args, **kwargs):
        raise ConnectionError("the network went away")

    url = "s3://lab/half/tiny-A.zarr"
    fs = RemotePath(url, s3).fs  # fsspec's cached instance, the one publish uses
    with monkeypatch.context() as m:
        m.setattr(fs, "put_file", lost)
        with pytest.raises(ConnectionError):
            publish(simulated_stores[0], url, storage_options=s3)
    assert fs.ls("lab/half/tiny-A.zarr")  # the chunks are there, the root metadata is not
    with pytest.raises(FileNotFoundError, match=r"no store at s3://lab/half/tiny-A.zarr: it has "
                       r"no zarr.json \(not a store, or its upload never finished\)"):
        sd.open_mouse(url, storage_options=s3)
    # a retry (a dask worker's, the user's) clears the stopped upload, no overwrite needed
    publish(simulated_stores[0], url, storage_options=s3)
    _same(sd.load_mouse(url, storage_options=s3), sd.load_mouse(simulated_stores[0]))
    assert not fs.exists("lab/half/tiny-A.zarr/.sensorium-uploading")
    # files that are not a stopped upload of this library are never removed without overwrite
    fs.pipe_file("lab/other/tiny-A.zarr/notes.txt", b"a user's file")
    with pytest.raises(FileExistsError, match=r"already holds files; pass overwrite=True"):
        publish(simulated_stores[0], "s3://lab/other/tiny-A.zarr", storage_options=s3)
    assert fs.cat_file("lab/other/tiny-A.zarr/notes.txt") == b"a user's file"


def test_a_bucket_that_does_not_exist_is_named(s3):
    with pytest.raises(FileNotFoundError, match=r"the bucket 'nope' of s3://nope/F.zarr does "
                       r"not exist"):
        sd.open_mouse("s3://nope/F.zarr", storage_options=s3)


def test_an_endpoint_that_does_not_answer_is_named():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = {**KEY, "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    with pytest.raises(StoreError, match=rf"cannot reach s3://lab/F.zarr .*check the endpoint "
                       rf"\(http://127.0.0.1:{port}\)"):
        sd.open_mouse("s3://lab/F.zarr", storage_options=options)


def test_a_store_deleted_on_the_server_while_open_is_an_error_not_nan(s3, simulated_stores):
    url = "s3://lab/doomed/tiny-C.zarr"
    publish(simulated_stores[2], url, storage_options=s3)
    ds = sd.open_mouse(url, storage_options=s3)
    fs = RemotePath(url, s3).fs
    fs.rm("lab/doomed/tiny-C.zarr", recursive=True)
    with pytest.raises(StoreError, match=r"the store s3://lab/doomed/tiny-C.zarr no longer "
                       r"exists \(deleted after it was opened\?\)"):
        ds["responses"].isel(trial=0).values  # noqa: B018


def test_storage_options_with_a_local_path_are_refused(simulated_stores):
    with pytest.raises(ValueError, match=r"storage_options with keys \['anon', 'secret'\] and "
                       r"the local path .*; they are for stores at fsspec URLs") as error:
        sd.open_mouse(simulated_stores[0], storage_options={"anon": True, "secret": "s3kr1t"})
    assert "s3kr1t" not in str(error.value)  # credentials are never printed


def test_a_local_path_is_not_a_url():
    from sensorium_data.remote import is_url

    assert is_url("s3://a/b") and is_url("memory://x") and not is_url("file:///tmp/x")
    assert not is_url("runs/x") and not is_url(Path("s3:/a"))


def test_wrong_credentials_are_named(s3, remote_stores):
    import urllib.request

    endpoint = s3["client_kwargs"]["endpoint_url"]

    def require_auth(count: str) -> None:  # moto's server checks credentials after `count`
        urllib.request.urlopen(urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"}), timeout=10)

    require_auth("0")
    try:
        with pytest.raises(StoreError, match=r"access to s3://lab/stores/tiny-A.zarr was denied "
                           r".*check the credentials: storage_options=\{'key'"):
            sd.open_mouse(remote_stores[0],
                          storage_options={**s3, "key": "wrong", "secret": "wrong"})
    finally:
        require_auth("inf")


def test_a_cache_at_a_url_opens_the_catalogs_mice_from_it(s3, simulated_stores, monkeypatch):
    from sensorium_data import catalog

    url = f"s3://lab/cache/stores/{catalog.lookup('F').name}.zarr"
    publish(simulated_stores[0], url, storage_options=s3)
    monkeypatch.setenv("SENSORIUM_DATA_DIR", "s3://lab/cache/")
    ds = sd.open_mouse("F", storage_options=s3)
    assert ds.attrs["store"] == url
    _same(ds.load(), sd.load_mouse(simulated_stores[0]))
    with pytest.raises(ValueError, match=r"the cache s3://lab/cache/ is a URL: open_mouse reads "
                       r"the stores there \(s3://lab/cache/stores/<recording>.zarr\), but "
                       r"downloading, converting and writing need a local folder"):
        sd.fetch_mouse("F")
