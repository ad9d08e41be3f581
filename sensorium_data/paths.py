"""Where the library keeps what it downloads and converts.

Everything lives below one cache folder, ``SENSORIUM_DATA_DIR`` (default
``pooch.os_cache("sensorium")``, e.g. ``~/.cache/sensorium`` on Linux)::

    <data_dir>/
    ├── downloads/<folder>.zip      archives as published, verified by sha256
    ├── known_hashes.json           sha256 recorded at first download (trust on first use)
    ├── trees/<folder>/             extracted file trees (data/, meta/)
    └── stores/<folder>.zarr        converted zarr v3 stores, what `open_mouse` reads
"""

from __future__ import annotations

import os
from pathlib import Path

from sensorium_data.errors import Fix, Message

ENV_DATA_DIR = "SENSORIUM_DATA_DIR"


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache folder: ``path`` if given, else ``$SENSORIUM_DATA_DIR``, else the OS cache.

    The folder is not created here; the functions that write into it create what they need.
    A URL (a shared cache on object storage) is refused here: only
    :func:`sensorium_data.open_mouse` reads from one (:func:`remote_cache`).
    """
    chosen = str(path) if path is not None else os.environ.get(ENV_DATA_DIR)
    if chosen and remote_cache(chosen) is not None:
        msg = Message(
            f"the cache {chosen} is a URL: open_mouse reads the stores there "
            f"({chosen.rstrip('/')}/stores/<recording>.zarr), but downloading, converting "
            "and writing need a local folder; pass ",
            Fix("data_dir= a local folder (or convert(tree, URL)",
                "--data-dir a local folder (sensorium train: --set data_dir=FOLDER; or convert "
                "with --out URL"),
            " to publish a store there).",
        )
        raise ValueError(msg)
    if path is not None:
        return Path(path).expanduser()
    if chosen:
        return Path(chosen).expanduser()
    import pooch

    return Path(pooch.os_cache("sensorium"))


def remote_cache(path: str | os.PathLike[str] | None = None) -> str | None:
    """The cache's URL when ``path`` (else ``$SENSORIUM_DATA_DIR``) is an fsspec URL."""
    from sensorium_data.remote import is_url

    chosen = str(path) if path is not None else os.environ.get(ENV_DATA_DIR)
    return chosen.rstrip("/") if chosen and is_url(chosen) else None


def downloads_dir(root: Path) -> Path:
    return root / "downloads"


def trees_dir(root: Path) -> Path:
    return root / "trees"


def stores_dir(root: Path) -> Path:
    return root / "stores"


def known_hashes_file(root: Path) -> Path:
    return root / "known_hashes.json"
