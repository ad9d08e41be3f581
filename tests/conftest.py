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


# SENSORIUM 2022: trial index -> tier (random order, as the real files; no gaps documented).
STATIC_TIERS = [
    "train", "test", "train", "validation", "final_test", "train", "test", "train",
    "final_test", "validation", "test", "train", "test", "final_test",
]
STATIC_TEST_TIERS = {"test", "final_test"}


def write_tiny_static_tree(
    path: Path,
    *,
    n_neurons: int = 6,
    height: int = 144,
    width: int = 256,
    dtype: type[np.floating] = np.float32,
    withheld: bool = True,
    junk: bool = True,
    integer_images: bool = True,
    image_ids: bool = True,
    hashed_trial_idx: bool = True,
    scalar_image_statistics: bool = True,
    seed: int = 0,
    tiers: list[str] | None = None,
) -> Path:
    """Write a tiny SENSORIUM 2022 (static image) recording with the quirks of the real data.

    Images (1, height, width), responses (neurons,), behavior (3,), pupil_center (2,) per trial;
    test and final_test trials repeat one of two images each (``meta/trials/frame_image_id``
    if ``image_ids``); their responses are exact zeros (withheld) if ``withheld``;
    ``trial_idx`` holds 32-hex hashes (the competition mice) if ``hashed_trial_idx``, else the
    presentation order; image mean/std are scalars (as ``NeuroNormalizer`` uses them) if
    ``scalar_image_statistics``; ``__MACOSX``/``._*``/stray files if ``junk``.
    """
    rng = np.random.default_rng(seed)
    tiers = list(tiers or STATIC_TIERS)
    n = len(tiers)
    repeated = {
        ("test", 0): 9001, ("test", 1): 9002, ("final_test", 0): 9101, ("final_test", 1): 9102,
    }
    frame_image_id = np.array([
        repeated.get((tier, trial % 2), 1000 + trial) for trial, tier in enumerate(tiers)
    ], dtype=np.int64)
    pictures = {i: rng.integers(0, 256, (1, height, width)).astype(float)
                for i in np.unique(frame_image_id)}
    if hashed_trial_idx:
        trial_idx = np.array([f"{rng.integers(0, 2**63):016x}{rng.integers(0, 2**63):016x}"
                              for _ in range(n)])
    else:
        trial_idx = rng.permutation(n).astype(np.int64)
    info: dict[str, np.ndarray] = {
        "trial_idx": trial_idx,
        "frame_image_class": np.array(["imagenet"] * n),
    }
    if image_ids:
        info["frame_image_id"] = frame_image_id
    writer = TreeWriter(
        path,
        tiers=tiers,
        unit_ids=np.sort(rng.choice(np.arange(1, 4 * n_neurons), n_neurons, replace=False)),
        coordinates=rng.integers(-1000, 1000, (n_neurons, 3)).astype(float),
        trial_info=info,
        dtype=dtype,
    )
    for trial, tier in enumerate(tiers):
        image = pictures[int(frame_image_id[trial])]
        if not integer_images:
            image = image + 0.25
        responses = rng.gamma(0.5, 2.0, n_neurons)
        if withheld and tier in STATIC_TEST_TIERS:
            responses = np.zeros(n_neurons)
        writer.write_trial(trial, images=image, responses=responses,
                           behavior=rng.normal(size=3), pupil_center=rng.normal(size=2))
    writer.close()
    if scalar_image_statistics:
        train = [np.load(path / f"data/images/{t}.npy") for t in range(n) if tiers[t] == "train"]
        folder = path / "meta" / "statistics" / "images" / "all"
        np.save(folder / "mean.npy", np.asarray(np.mean(train), dtype=dtype))
        np.save(folder / "std.npy", np.asarray(np.std(train), dtype=dtype))
    if junk:
        macosx = path / "__MACOSX" / "data" / "images"
        macosx.mkdir(parents=True)
        (macosx / "._0.npy").write_bytes(b"\x00\x05\x16\x07junk")
        (path / "data" / "responses" / "._1.npy").write_bytes(b"\x00\x05\x16\x07junk")
        (path / "data" / "responses" / "notes.txt").write_text("not a trial")
        (path / "data" / "images" / ".DS_Store").write_bytes(b"junk")
    return path


@pytest.fixture
def make_static_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_static_tree(name="toy2022", **options)`` writes a tiny 2022 recording
    (see :func:`write_tiny_static_tree`) under the test's tmp folder and returns its path."""
    counter = iter(range(1000))

    def make(name: str = "toy2022", **options: object) -> Path:
        return write_tiny_static_tree(tmp_path / f"static{next(counter)}" / name, **options)  # type: ignore[arg-type]

    return make


# --------------------------------------------------------------- training (simulated data)

TINY_FACTORIZED = {"hidden_channels": [4, 8, 8]}  # the factorized baseline, narrowed for CPU tests


@pytest.fixture(scope="session")
def simulated_stores(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Zarr stores of the simulator's three tiny mice at scale 0.3 (24-36 neurons, 17 trials
    of 150-180 frames each, every tier, with rates), shared by the whole session."""
    from sensorium_data import convert, simulate

    root = tmp_path_factory.mktemp("simulated")
    trees = simulate(root / "trees", preset="tiny", scale=0.3, progress=False)
    return [convert(t, root / "stores" / f"{t.name}.zarr", progress=False) for t in trees]


@pytest.fixture(scope="session")
def trained_run(simulated_stores: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory: a narrow factorized baseline trained 2 epochs on ``simulated_stores``.
    Shared: tests copy it before changing it."""
    import sensorium_models as sm

    config = sm.TrainConfig(
        model="factorized_baseline", mice=tuple(str(s) for s in simulated_stores),
        model_config=TINY_FACTORIZED, max_epochs=2, batch_size=4, device="cpu",
        progress=False, out=str(tmp_path_factory.mktemp("runs") / "factorized"),
    )
    return sm.train(config)


def shifted_copy(run: Path, folder: Path, by: float) -> Path:
    """A copy of the run directory ``run`` in ``folder`` whose readout biases are moved by
    ``by``: another model of the same recipe (an ensemble member, a run to compare)."""
    import shutil

    import torch

    copy = Path(shutil.copytree(run, folder))
    payload = torch.load(copy / "best.pt", weights_only=True)
    for key, value in payload["state_dict"].items():
        if key.startswith("readouts.") and key.endswith(".bias"):
            value += by
    torch.save(payload, copy / "best.pt")
    return copy
