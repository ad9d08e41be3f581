import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sensorium_data import fetch
from sensorium_data.archive import CorruptArchiveError, UnsafeArchiveError
from sensorium_data.fetch import DownloadError, HashMismatchError, download, fetch_mouse


@dataclass(frozen=True)
class Rec:
    name: str
    url: str
    sha256: str | None = None


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def recording_members(name: str) -> dict[str, bytes]:
    """A tiny recording in the published layout, with the junk macOS zip tools add."""
    rng = np.random.default_rng(0)
    members = {}
    for trial in (0, 2):
        members[f"{name}/data/videos/{trial}.npy"] = npy(rng.random((6, 8, 5), dtype="float32"))
        members[f"{name}/data/responses/{trial}.npy"] = npy(rng.random((3, 5)))
        members[f"{name}/data/behavior/{trial}.npy"] = npy(rng.random((2, 5)))
    members[f"{name}/meta/neurons/unit_ids.npy"] = npy(np.arange(3))
    members[f"{name}/meta/trials/tiers.npy"] = npy(np.array(["train", "none", "oracle"]))
    members[f"__MACOSX/{name}/data/videos/._0.npy"] = b"resource fork"
    members[f"{name}/data/._responses"] = b"resource fork"
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _fast_and_isolated(monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 0)
    monkeypatch.setattr(fetch, "TIMEOUT", 10.0)
    monkeypatch.delenv("SENSORIUM_MIRROR", raising=False)
    monkeypatch.delenv("SENSORIUM_DATA_DIR", raising=False)


@pytest.fixture
def served(server, request):
    """Serve a tiny recording zip under a name unique to the test; return (Rec, zip bytes)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")
    name = f"dynamic00000-1-1-Video-{slug}"
    data = write_zip(server.root / f"{name}.zip", recording_members(name))
    return Rec(name, f"{server.base_url}{name}.zip"), data


def known_hashes(data_dir: Path) -> dict[str, str]:
    return json.loads((data_dir / "known_hashes.json").read_text())


def test_fetch_mouse_end_to_end(served, server, tmp_path, monkeypatch):
    rec, data = served
    root = fetch_mouse(rec, data_dir=tmp_path, progress=False)
    assert root == tmp_path / "trees" / rec.name
    assert (tmp_path / "downloads" / f"{rec.name}.zip").read_bytes() == data
    assert known_hashes(tmp_path) == {rec.name: sha256(data)}
    expected = {
        member.removeprefix(f"{rec.name}/"): content
        for member, content in recording_members(rec.name).items()
        if not member.startswith("__MACOSX/") and "/._" not in member
    }
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files == set(expected)
    for rel, content in expected.items():
        assert (root / rel).read_bytes() == content
    assert np.array_equal(np.load(root / "meta" / "neurons" / "unit_ids.npy"), np.arange(3))

    # The second call neither downloads, nor calls pooch, nor hashes the zip.
    monkeypatch.setattr("pooch.create", pytest.fail)
    monkeypatch.setattr(fetch, "_sha256", pytest.fail)
    assert fetch_mouse(rec, data_dir=tmp_path, progress=False) == root
    assert server.hits(f"{rec.name}.zip") == 1


def test_fetch_mouse_resolves_names_through_the_catalog(served, tmp_path, monkeypatch):
    rec, _ = served
    monkeypatch.setattr("sensorium_data.catalog.lookup", {"Z": rec}.__getitem__)
    assert fetch_mouse("Z", data_dir=tmp_path, progress=False) == tmp_path / "trees" / rec.name


def test_data_dir_from_the_environment(served, tmp_path, monkeypatch):
    rec, _ = served
    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(tmp_path / "env"))
    assert download(rec, progress=False) == tmp_path / "env" / "downloads" / f"{rec.name}.zip"


def test_a_verified_zip_is_not_downloaded_again(served, server, tmp_path):
    rec, _ = served
    first = download(rec, data_dir=tmp_path, progress=True)  # with a progress bar, once
    assert download(rec, data_dir=tmp_path, progress=False) == first
    assert server.hits(f"{rec.name}.zip") == 1
    assert sorted(p.name for p in first.parent.iterdir() if not p.name.endswith(".lock")) == [
        first.name
    ]


def test_changed_upstream_file_fails_against_the_recorded_hash(served, server, tmp_path):
    rec, old = served
    zip_path = download(rec, data_dir=tmp_path, progress=False)
    zip_path.unlink()
    new = write_zip(server.root / f"{rec.name}.zip", {f"{rec.name}/data/x": b"changed"})
    known = tmp_path / "known_hashes.json"
    with pytest.raises(
        HashMismatchError,
        match=rf"sha256 of {re.escape(zip_path.name)} \(downloaded from {re.escape(rec.url)}\) "
        rf"does not match: expected {sha256(old)} from {re.escape(str(known))} \(recorded at "
        rf"the first download\), got {sha256(new)}\. The file was deleted; run again to download "
        rf"it afresh; if the file changed upstream on purpose, remove the entry '{rec.name}'",
    ):
        download(rec, data_dir=tmp_path, progress=False)
    assert [p.name for p in zip_path.parent.glob(f"{rec.name}.zip*")] == [f"{rec.name}.zip.lock"]
    assert known_hashes(tmp_path) == {rec.name: sha256(old)}


def test_wrong_catalog_hash(served, tmp_path):
    rec, data = served
    rec = Rec(rec.name, rec.url, sha256="0" * 64)
    with pytest.raises(
        HashMismatchError,
        match=rf"expected 0{{64}} from the catalog, got {sha256(data)}\. The file was deleted; "
        r"run again to download it afresh; if it fails again, the catalog's hash",
    ):
        fetch_mouse(rec, data_dir=tmp_path, progress=False)
    assert not (tmp_path / "downloads" / f"{rec.name}.zip").exists()
    assert not (tmp_path / "downloads" / f"{rec.name}.zip.part").exists()
    assert not (tmp_path / "known_hashes.json").exists()
    assert not (tmp_path / "trees" / rec.name).exists()


def test_the_catalog_hash_wins_over_the_recorded_one(served, tmp_path):
    rec, data = served
    (tmp_path / "known_hashes.json").write_text(json.dumps({rec.name: "f" * 64}))
    right = Rec(rec.name, rec.url, sha256=sha256(data).upper())
    assert download(right, data_dir=tmp_path, progress=False).read_bytes() == data
    assert known_hashes(tmp_path) == {rec.name: "f" * 64}  # left alone

    (tmp_path / "known_hashes.json").write_text(json.dumps({rec.name: sha256(data)}))
    wrong = Rec(rec.name, rec.url, sha256="e" * 64)
    with pytest.raises(HashMismatchError, match=r"found at .*\) does not match: expected e{64}"):
        download(wrong, data_dir=tmp_path, progress=False)


def test_a_zip_placed_by_hand_is_verified_not_downloaded(served, server, tmp_path):
    rec, data = served
    zip_path = tmp_path / "downloads" / f"{rec.name}.zip"
    zip_path.parent.mkdir()
    zip_path.write_bytes(data)
    assert download(rec, data_dir=tmp_path, progress=False) == zip_path
    assert known_hashes(tmp_path) == {rec.name: sha256(data)}
    assert server.hits(f"{rec.name}.zip") == 0

    zip_path.write_bytes(b"half a zip")
    with pytest.raises(
        HashMismatchError,
        match=rf"{re.escape(zip_path.name)} \(found at {re.escape(str(zip_path))}\) does not "
        rf"match: expected {sha256(data)} .* got {sha256(b'half a zip')}",
    ):
        download(rec, data_dir=tmp_path, progress=False)
    assert not zip_path.exists()


def test_stale_partial_files_are_replaced(served, tmp_path):
    rec, data = served
    part = tmp_path / "downloads" / f"{rec.name}.zip.part"
    part.parent.mkdir()
    part.write_bytes(b"left by a killed download")
    stale_tree = tmp_path / "trees" / f".{rec.name}.partial-abc"
    (stale_tree / "data").mkdir(parents=True)
    root = fetch_mouse(rec, data_dir=tmp_path, progress=False)
    assert (tmp_path / "downloads" / f"{rec.name}.zip").read_bytes() == data
    assert not part.exists()
    assert sorted(p.name for p in root.parent.iterdir() if not p.name.endswith(".lock")) == [
        rec.name
    ]


def test_the_mirror_replaces_the_catalog_host(served, server, tmp_path, monkeypatch):
    rec, _ = served
    (server.root / "mirror").mkdir(exist_ok=True)
    data = write_zip(server.root / "mirror" / f"{rec.name}.zip", recording_members(rec.name))
    monkeypatch.setenv("SENSORIUM_MIRROR", f"{server.base_url}mirror")
    elsewhere = Rec(rec.name, f"http://192.0.2.1/raw/master/{rec.name}.zip")
    assert fetch.source_url(elsewhere) == f"{server.base_url}mirror/{rec.name}.zip"
    assert download(elsewhere, data_dir=tmp_path, progress=False).read_bytes() == data
    assert server.hits(f"{rec.name}.zip", folder="mirror/") == 1
    assert server.hits(f"{rec.name}.zip") == 0


def test_a_mirror_must_be_http(monkeypatch):
    monkeypatch.setenv("SENSORIUM_MIRROR", "/mnt/shared/sensorium")
    with pytest.raises(ValueError, match=r"SENSORIUM_MIRROR='/mnt/shared/sensorium' is not an"):
        fetch.source_url(Rec("r", "https://gin.g-node.org/u/r/raw/master/r.zip"))


def test_missing_file_gives_a_clear_error(server, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 1)  # pooch waits one second before the retry
    rec = Rec("dynamic-missing", f"{server.base_url}nowhere/dynamic-missing.zip")
    zip_path = tmp_path / "downloads" / "dynamic-missing.zip"
    with pytest.raises(
        DownloadError,
        match=rf"could not download dynamic-missing from {re.escape(rec.url)}: 404 .*Check the "
        rf"connection and try again; or place the zip there by hand at "
        rf"{re.escape(str(zip_path))} \(it is verified on the next call\), or set "
        r"SENSORIUM_MIRROR",
    ):
        fetch_mouse(rec, data_dir=tmp_path, progress=False)
    assert server.hits("dynamic-missing.zip", folder="nowhere/") == 2
    assert not (tmp_path / "trees" / "dynamic-missing").exists()


def test_a_server_sending_no_zip(server, tmp_path):
    (server.root / "dynamic-html.zip").write_text("<html>annex content not found</html>")
    rec = Rec("dynamic-html", f"{server.base_url}dynamic-html.zip")
    with pytest.raises(DownloadError, match=r"did not send a zip file for dynamic-html"):
        download(rec, data_dir=tmp_path, progress=False)
    assert not (tmp_path / "known_hashes.json").exists()


def test_a_damaged_download_is_deleted_with_its_recorded_hash(served, server, tmp_path):
    rec, data = served
    raw = bytearray(data)
    raw[raw.index(b"\x93NUMPY") + 200] ^= 0xFF  # inside the first member's data: bad CRC
    (server.root / f"{rec.name}.zip").write_bytes(bytes(raw))
    zip_path = tmp_path / "downloads" / f"{rec.name}.zip"
    with pytest.raises(
        CorruptArchiveError,
        match=rf"{re.escape(str(zip_path))} is damaged or truncated \(Bad CRC-32 .*\); the cached "
        rf"download was deleted\. Call fetch_mouse\('{rec.name}'\) again",
    ):
        fetch_mouse(rec, data_dir=tmp_path, progress=False)
    assert not zip_path.exists()
    assert known_hashes(tmp_path) == {}
    assert [p.name for p in (tmp_path / "trees").iterdir()] == [f"{rec.name}.lock"]


def test_an_unsafe_zip_writes_nothing(server, tmp_path):
    name = "dynamic-evil"
    write_zip(server.root / f"{name}.zip", recording_members(name) | {"../../evil.npy": b"x"})
    rec = Rec(name, f"{server.base_url}{name}.zip")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./\.\./evil\.npy' \('\.\.' component\)"):
        fetch_mouse(rec, data_dir=tmp_path / "a" / "b", progress=False)
    assert not list(tmp_path.rglob("evil.npy"))
    assert [p.name for p in (tmp_path / "a" / "b" / "trees").iterdir()] == [f"{name}.lock"]


def test_bad_recording_name(tmp_path):
    with pytest.raises(ValueError, match=r"recording name '\.\./x' is not a folder name"):
        download(Rec("../x", "http://127.0.0.1/x.zip"), data_dir=tmp_path)


def test_concurrent_threads_download_once(served, server, tmp_path):
    rec, _ = served
    server.server.delays[f"/{rec.name}.zip"] = 0.5
    barrier = threading.Barrier(4)
    results, errors = [], []

    def work():
        barrier.wait()
        try:
            results.append(fetch_mouse(rec, data_dir=tmp_path, progress=False))
        except Exception as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [tmp_path / "trees" / rec.name] * 4
    assert server.hits(f"{rec.name}.zip") == 1


def test_concurrent_processes_download_once(served, server, tmp_path):
    rec, _ = served
    server.server.delays[f"/{rec.name}.zip"] = 1.0
    code = (
        "import sys, types; from sensorium_data.fetch import fetch_mouse; "
        "rec = types.SimpleNamespace(name=sys.argv[1], url=sys.argv[2], sha256=None); "
        "print(fetch_mouse(rec, data_dir=sys.argv[3], progress=False))"
    )
    args = [sys.executable, "-c", code, rec.name, rec.url, str(tmp_path)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(tmp_path / "trees" / rec.name)] * 2
    assert server.hits(f"{rec.name}.zip") == 1


def test_a_mirror_serving_another_recording_under_a_catalog_name(server, tmp_path, monkeypatch):
    from sensorium_data import catalog
    from sensorium_data.errors import RecordingFormatError
    from tests.conftest import write_tiny_tree
    from tests.test_tree import zip_folder

    rec = catalog.lookup("F")
    crafted = write_tiny_tree(tmp_path / "crafted" / rec.name, n_neurons=3, junk=False)
    zip_folder(crafted, server.root / "mirror" / f"{rec.name}.zip")
    monkeypatch.setenv("SENSORIUM_MIRROR", f"{server.base_url}mirror")
    with pytest.raises(RecordingFormatError, match=r"named like the published recording .* but "
                                                   r"has 3 neurons; the catalog says 7863.*The "
                                                   r"download was deleted"):
        fetch_mouse("F", data_dir=tmp_path, progress=False)
    assert not (tmp_path / "trees" / rec.name).exists()
    assert not (tmp_path / "downloads" / f"{rec.name}.zip").exists()
    # from the CLI the wrapped message keeps the command's words of the inner fix
    from sensorium_data.errors import cli_message

    with pytest.raises(RecordingFormatError) as caught:
        fetch_mouse("F", data_dir=tmp_path, progress=False)
    said = cli_message(caught.value)
    assert "download the published file (sensorium fetch). The download was deleted" in said
    assert "fetch_mouse" not in said
