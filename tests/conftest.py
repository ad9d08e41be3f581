"""Shared fixtures: tiny recordings in the real file-tree format, built by a factory."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from sensorium_data.tree import TreeWriter

# Trial index -> tier. Indices 3 and 9 are tier "none" and have no files (as in mice A-E).
TIERS = [
    "train", "train", "train", "none", "train", "oracle", "oracle", "oracle",
    "live_test_main", "none", "live_test_main", "final_test_main", "final_test_main",
    "live_test_bonus", "final_test_bonus", "final_test_bonus",
]
TEST_TIERS = {"live_test_main", "final_test_main", "live_test_bonus", "final_test_bonus"}


def write_tiny_tree(
    path: Path,
    *,
    n_neurons: int = 7,
    frames: int = 40,
    dtype: type[np.floating] = np.float32,
    withheld: bool = True,
    junk: bool = True,
    integer_videos: bool = True,
    seed: int = 0,
    tiers: list[str] | None = None,
) -> Path:
    """Write a tiny recording with every quirk of the real data; return its folder.

    Gaps in the trial indices (tier ``none`` has no files), NaN padding after each trial's
    valid frames (lengths vary), repeated videos (oracle and test trials show one of two
    videos), withheld test responses (exact zeros, no NaN, as in mice F-J) if ``withheld``,
    and ``__MACOSX``/``._*``/stray files if ``junk``.
    """
    rng = np.random.default_rng(seed)
    tiers = list(tiers or TIERS)
    writer = TreeWriter(
        path,
        tiers=tiers,
        unit_ids=np.sort(rng.choice(np.arange(1, 4 * n_neurons), n_neurons, replace=False)),
        coordinates=rng.integers(-1000, 1000, (n_neurons, 3)).astype(float),
        dtype=dtype,
    )
    repeated = [rng.integers(0, 256, (36, 64, frames)).astype(float) for _ in range(2)]
    repeated_valid = [frames - 3, frames]
    for trial, tier in enumerate(tiers):
        if tier == "none":
            continue
        if tier == "train":
            valid = frames - int(rng.integers(0, frames // 4))
            video = rng.integers(0, 256, (36, 64, frames)).astype(float)
        else:
            valid = repeated_valid[trial % 2]
            video = repeated[trial % 2].copy()
        if not integer_videos:
            video = video + 0.25
        video[..., valid:] = np.nan
        responses = rng.gamma(0.5, 2.0, (n_neurons, frames))
        responses[:, valid:] = np.nan
        if withheld and tier in TEST_TIERS:
            responses = np.zeros((n_neurons, frames))
        behavior = rng.normal(size=(2, frames))
        behavior[:, valid:] = np.nan
        pupil = rng.normal(size=(2, frames))
        pupil[:, valid:] = np.nan
        writer.write_trial(trial, videos=video, responses=responses, behavior=behavior,
                           pupil_center=pupil)
    writer.close()
    if junk:
        macosx = path / "__MACOSX" / "data" / "responses"
        macosx.mkdir(parents=True)
        (macosx / "._0.npy").write_bytes(b"\x00\x05\x16\x07junk")
        (path / "data" / "responses" / "._1.npy").write_bytes(b"\x00\x05\x16\x07junk")
        (path / "data" / "responses" / "notes.txt").write_text("not a trial")
        (path / "data" / "videos" / ".DS_Store").write_bytes(b"junk")
    return path


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_tree(name="toy", **options)`` writes a tiny recording (see
    :func:`write_tiny_tree`) under the test's tmp folder and returns its path."""
    counter = iter(range(1000))

    def make(name: str = "toy", **options: object) -> Path:
        return write_tiny_tree(tmp_path / f"src{next(counter)}" / name, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder, set as SENSORIUM_DATA_DIR for the test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(root))
    return root


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self):
        with self.server.lock:
            self.server.hits[self.path] += 1
        time.sleep(self.server.delays.get(self.path, 0.0))
        super().do_GET()

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    lock: threading.Lock
    hits: Counter
    delays: dict[str, float]


@dataclass
class Loopback:
    root: Path
    base_url: str
    server: _Server

    def hits(self, file_name: str, folder: str = "") -> int:
        return self.server.hits[f"/{folder}{file_name}"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    """A loopback HTTP server (127.0.0.1) serving a tmp folder, counting requests."""
    root = tmp_path_factory.mktemp("www")
    httpd = _Server(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    httpd.lock, httpd.hits, httpd.delays = threading.Lock(), Counter(), {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Loopback(root, f"http://127.0.0.1:{httpd.server_address[1]}/", httpd)
    httpd.shutdown()
    httpd.server_close()
    thread.join()
