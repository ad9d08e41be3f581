import logging
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest

from sensorium_data.archive import (
    CorruptArchiveError,
    UnsafeArchiveError,
    check_members,
    extract,
    zip_root,
)
from sensorium_data.errors import RecordingFormatError

NAME = "dynamic00000-1-1-Video-0123456789abcdef0123456789abcdef"
RECORDING = {
    f"{NAME}/data/videos/0.npy": b"video 0",
    f"{NAME}/data/videos/1.npy": b"video 1",
    f"{NAME}/data/responses/0.npy": b"responses 0",
    f"{NAME}/meta/trials/tiers.npy": b"tiers",
    f"{NAME}/meta/statistics/videos/all/mean.npy": b"mean",
}
JUNK = {
    f"__MACOSX/{NAME}/data/videos/._0.npy": b"resource fork",
    f"{NAME}/data/videos/._1.npy": b"resource fork",
}


def write_zip(path: Path, members: dict[str, bytes], *, stored: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_extract_strips_the_top_folder_and_skips_junk(tmp_path):
    zip_path = write_zip(tmp_path / f"{NAME}.zip", RECORDING | JUNK)
    with zipfile.ZipFile(zip_path, "a") as zf:
        zf.mkdir(f"{NAME}/data/pupil_center")  # directory entries are recreated
    root = extract(zip_path, tmp_path / "trees" / NAME)
    assert root == tmp_path / "trees" / NAME
    expected = {name.removeprefix(f"{NAME}/"): data for name, data in RECORDING.items()}
    assert all_files(root) == set(expected)
    for rel, data in expected.items():
        assert (root / rel).read_bytes() == data
    assert (root / "data" / "pupil_center").is_dir()
    assert os.listdir(tmp_path / "trees") == [NAME]  # no temporary folder left


def test_extract_a_zip_without_top_folder(tmp_path):
    zip_path = write_zip(tmp_path / "flat.zip", {"data/videos/0.npy": b"v", "meta/x.npy": b"m"})
    root = extract(zip_path, tmp_path / "out")
    assert all_files(root) == {"data/videos/0.npy", "meta/x.npy"}


def test_extract_skips_members_outside_the_recording(tmp_path, caplog):
    zip_path = write_zip(tmp_path / "r.zip", RECORDING | {"README.txt": b"hello"})
    with caplog.at_level(logging.WARNING, logger="sensorium_data.archive"):
        root = extract(zip_path, tmp_path / "out")
    assert "README.txt" not in all_files(root)
    assert "skipped 1 member(s) outside the recording's data/ and meta/ folders" in caplog.text


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.npy", "'..' component"),
        (f"{NAME}/data/../../../evil.npy", "'..' component"),
        ("..\\evil.npy", "'..' component"),
        ("/tmp/evil.npy", "absolute path"),
        ("C:/evil.npy", "absolute path"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, member, reason):
    zip_path = write_zip(tmp_path / "a" / "b" / "evil.zip", RECORDING | {member: b"evil"})
    before = zip_path.read_bytes()
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(
        UnsafeArchiveError,
        match=rf"refusing to extract .*evil\.zip: 1 member\(s\) would be written outside the "
        rf"target folder: '.*evil\.npy' \({re.escape(reason)}\)\. Nothing was extracted",
    ):
        extract(zip_path, target)
    assert all_files(tmp_path) == {"a/b/evil.zip"}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "evil.zip"]
    assert zip_path.read_bytes() == before


def test_symbolic_links_are_refused(tmp_path):
    zip_path = tmp_path / "link.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name, data in RECORDING.items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo(f"{NAME}/data/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=r"'.*/data/link' \(symbolic link\)"):
        extract(zip_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_check_members_returns_members_without_junk(tmp_path):
    zip_path = write_zip(tmp_path / "r.zip", RECORDING | JUNK)
    with zipfile.ZipFile(zip_path) as zf:
        kept = check_members(zf, zip_path)
    assert [m.filename for m in kept] == list(RECORDING)


def test_zip_root(tmp_path):
    with zipfile.ZipFile(write_zip(tmp_path / "r.zip", JUNK | RECORDING)) as zf:
        assert zip_root(zf) == f"{NAME}/"
    with zipfile.ZipFile(write_zip(tmp_path / "f.zip", {"data/a": b"", "meta/b": b""})) as zf:
        assert zip_root(zf) == ""


def test_zip_root_of_something_else(tmp_path):
    with zipfile.ZipFile(write_zip(tmp_path / "x.zip", {"x/data/a.npy": b"", **JUNK})) as zf:
        with pytest.raises(
            RecordingFormatError, match=r"x\.zip holds no folder with both data/ and meta/"
        ):
            zip_root(zf)
    two = {"a/data/x": b"", "a/meta/x": b"", "b/data/x": b"", "b/meta/x": b""}
    with zipfile.ZipFile(write_zip(tmp_path / "two.zip", two)) as zf:
        with pytest.raises(RecordingFormatError, match=r"holds several recordings \(a/, b/\)"):
            zip_root(zf)


def test_truncated_zip(tmp_path):
    zip_path = write_zip(tmp_path / "r.zip", RECORDING)
    zip_path.write_bytes(zip_path.read_bytes()[:-40])
    before = zip_path.read_bytes()
    with pytest.raises(
        CorruptArchiveError, match=r"r\.zip is damaged or truncated \(.*\); nothing was extracted"
    ):
        extract(zip_path, tmp_path / "trees" / "out")
    assert zip_path.read_bytes() == before  # a zip passed by path is never touched
    assert not (tmp_path / "trees" / "out").exists()


def test_bad_crc_leaves_no_partial_tree(tmp_path):
    members = RECORDING | {f"{NAME}/data/videos/2.npy": b"PAYLOAD" * 100}
    zip_path = write_zip(tmp_path / "r.zip", members, stored=True)
    raw = bytearray(zip_path.read_bytes())
    raw[raw.index(b"PAYLOAD") + 3] ^= 0xFF
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError, match=r"damaged or truncated \(Bad CRC-32"):
        extract(zip_path, tmp_path / "trees" / "out")
    assert os.listdir(tmp_path / "trees") == []


def test_extract_refuses_an_existing_target(tmp_path):
    zip_path = write_zip(tmp_path / "r.zip", RECORDING)
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match=r"into .*out: it exists already; remove it first"):
        extract(zip_path, tmp_path / "out")


def test_stray_member_inside_the_recording_is_not_written(tmp_path, caplog):
    stray = {f"{NAME}/data/videos/movie.bin": b"x" * 1000, f"{NAME}/blob": b"y" * 1000}
    zip_path = write_zip(tmp_path / "r.zip", RECORDING | stray)
    with caplog.at_level(logging.WARNING, logger="sensorium_data.archive"):
        root = extract(zip_path, tmp_path / "out")
    assert "data/videos/movie.bin" not in all_files(root) and "blob" not in all_files(root)
    assert "skipped 2 member(s)" in caplog.text


def test_size_and_ratio_limits(tmp_path, monkeypatch):
    from sensorium_data import archive

    big = {f"{NAME}/data/videos/0.npy": b"\0" * 5000}
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in (RECORDING | big).items():
            zf.writestr(member, data)
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 4000)
    with pytest.raises(UnsafeArchiveError, match=r"member '.*data/videos/0\.npy' would be "
                                                  r"5,000 bytes, over the limit of 4,000 "
                                                  r"\(sensorium_data\.archive\.MAX_MEMBER_BYTES\)"):
        extract(zip_path, tmp_path / "out")
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1 << 30)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 4000)
    with pytest.raises(UnsafeArchiveError, match=r"would write [0-9,]+ bytes from [0-9,]+ "
                                                  r"\(ratio [0-9]+\); the limits are 4,000"):
        extract(zip_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
