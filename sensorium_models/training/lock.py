"""One process at a time trains into a run directory: its lock, and claiming a new one.

A process that trains into a run directory holds ``RUN/.lock`` (an OS file lock, released
when the process ends, however it ends) from before it reads ``last.pt`` or writes
``config.json`` until training ends. A second ``sensorium train --out RUN`` or
``--resume RUN`` meanwhile is refused at once, and writes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sensorium_data.errors import Fix, Message
from sensorium_models.training.checkpoint import CONFIG

if TYPE_CHECKING:
    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)

LOCK = ".lock"


def resume_fix(folder: Path) -> Fix:
    """How to continue the run in ``folder``."""
    return Fix(f"train(read_config({str(folder)!r}), resume={str(folder)!r})",
               f"sensorium train --resume {folder}")


def check_free(folder: Path) -> None:
    """Refuse a new run in ``folder`` if it holds a run or anything else (but the lock)."""
    if (folder / CONFIG).exists():
        msg: str = Message(
            f"{folder} already holds a run; continue it with ", resume_fix(folder),
            ", or pass another ", Fix("out folder", "--out"), ".",
        )
        raise FileExistsError(msg)
    if folder.is_dir() and any(p.name != LOCK for p in folder.iterdir()):
        msg = f"{folder} is not empty; pass a new or empty folder as the run directory."
        raise FileExistsError(msg)


@contextlib.contextmanager
def claim(folder: Path, *, new: bool, numbered: bool = False) -> Iterator[Path]:
    """Hold the lock of the run directory ``folder`` while training into it; yield the folder.

    For a ``new`` run the folder is made here; a ``numbered`` (default) name that another
    process made meanwhile moves on to ``<name>-1``, ``<name>-2``... If the body fails before
    anything but the lock is in the folder, what was made here is removed again.
    """
    from filelock import FileLock, Timeout

    made: list[Path] = []  # folders made here, deepest last
    if new:
        folder = _make(folder, numbered, made)
    lock_path = folder / LOCK
    had_lock_file = lock_path.exists()
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _undo(folder, made, had_lock_file=True)
        then = ("" if new else
                Message(" (then ", resume_fix(folder), " continues from its last epoch)"))
        msg = Message(
            f"another process is training into {folder} (it holds {lock_path}); wait for it "
            "to end", then, ", or pass another ", Fix("out folder", "--out"), ".",
        )
        raise FileExistsError(msg) from None
    try:
        if new:
            check_free(folder)  # another process may have trained here since the first check
        yield folder
    except BaseException:
        _undo(folder, made, had_lock_file)
        raise
    finally:
        lock.release()


def _make(folder: Path, numbered: bool, made: list[Path]) -> Path:
    """Make ``folder`` (the next free number of a ``numbered`` name); add what was made to
    ``made``, outermost first."""
    made += reversed([p for p in folder.parents if not p.exists()])
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not numbered:
        if not folder.exists():
            made.append(folder)
        folder.mkdir(exist_ok=True)
        return folder
    name, k = folder.name, 0
    while True:  # mkdir is atomic: of two processes naming a run in the same second, one wins
        try:
            folder.mkdir()
        except FileExistsError:
            k += 1
            folder = folder.with_name(f"{name}-{k}")
            continue
        made.append(folder)
        return folder


def _undo(folder: Path, made: list[Path], had_lock_file: bool) -> None:
    """Remove the lock file and the folders made here, if nothing else was written there."""
    lock_path = folder / LOCK
    if not had_lock_file and [p.name for p in folder.iterdir()] == [LOCK]:
        lock_path.unlink(missing_ok=True)
    for path in reversed(made):
        with contextlib.suppress(OSError):  # not empty: something else is there; keep it
            path.rmdir()


def new_run_dir(config: TrainConfig) -> Path:
    """``config.out`` (empty or missing), else ``runs/<model>-<date>-<time>`` (not created
    here; :func:`~sensorium_models.training.lock.claim` numbers it ``-1``, ``-2``... if
    taken)."""
    if config.out:
        folder = Path(config.out)
        check_free(folder)
        return folder
    return Path("runs") / f"{config.model}-{datetime.now():%Y%m%d-%H%M%S}"
