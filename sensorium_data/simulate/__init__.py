"""Simulated recordings: a digital twin of mouse V1 with known ground truth.

:func:`simulate` writes one recording per simulated mouse, in the competition's own file-tree
format, plus what only a simulation can give: the noise-free rates and the twin's parameters::

    <path>/
    └── tiny-A/                              one folder per mouse (tiny-A..C, sensorium2023-A..J)
        ├── data/
        │   ├── videos/<trial>.npy           (36, 64, frames)  0-255, NaN past the valid frames
        │   ├── responses/<trial>.npy        (neurons, frames) simulated deconvolved activity
        │   ├── behavior/<trial>.npy         (2, frames)       pupil dilation, running speed
        │   ├── pupil_center/<trial>.npy     (2, frames)       eye position, camera pixels
        │   └── rates/<trial>.npy            (neurons, frames) expected responses (ceiling)
        └── meta/
            ├── neurons/unit_ids.npy, cell_motor_coordinates.npy
            ├── trials/tiers.npy, stimulus_type.npy, video_id.npy
            ├── statistics/<stream>/all/{mean,std,min,max}.npy   over train trials, per frame
            ├── simulation.json              preset, seed, scale, the twin's configuration
            └── simulation_neurons.json      every neuron's ground truth (RF, tuning, gains)

See ``docs/simulator.md`` for the model, its sources and how realistic it is.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import shutil
from pathlib import Path
from typing import Literal

from sensorium_data.errors import OVERWRITE, Message
from sensorium_data.simulate.presets import BUILDERS, PRESETS
from sensorium_data.simulate.recording import calibration_videos, write_mouse

__all__ = ["list_presets", "simulate"]

log = logging.getLogger(__name__)

Preset = Literal["tiny", "sensorium2023", "static2022"]


def list_presets() -> list[str]:
    """Names of the presets :func:`simulate` knows.

    Examples
    --------
    >>> list_presets()
    ['tiny', 'sensorium2023', 'static2022']
    """
    return list(PRESETS)


def simulate(
    path: str | os.PathLike[str],
    *,
    preset: Preset = "tiny",
    seed: int = 0,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
    image_scale: float = 1.0,
    behavior_gain: bool = True,
) -> list[Path]:
    """Write simulated recordings, one folder per mouse, in the competition's format.

    Parameters
    ----------
    path
        Folder to write into (created if needed). Each mouse goes to ``path/<mouse>``.
    preset
        ``"tiny"`` (3 mice, 300 neurons, 54 short trials each; seconds) or
        ``"sensorium2023"`` (the 10 real recordings' structure; see :func:`list_presets`) or
        ``"static2022"`` (three mice of flashed images in the 2022 format; see
        :mod:`sensorium_data.simulate.static2022`).
    seed
        Same seed, same bytes (on one platform).
    scale
        Shrinks (or, for ``tiny``, grows) the neurons and trials: 0.1 keeps a tenth of the
        neurons, of the train trials and of the repeated videos of every tier, at least one
        of each. ``sensorium2023`` keeps all repeats of a kept video and takes at most 1;
        ``tiny`` scales its repeats too (at least 2).
    overwrite
        Replace a recording already in ``path/<mouse>``. Without it such a folder is an error;
        a non-empty folder that is not a recording is never removed.
    progress
        Show a progress bar over trials (on stderr).
    image_scale
        ``static2022`` only: stored images are ``144 x 256`` times this (1, the release's
        size; 0.25 writes the starter kit's 36 x 64 directly and is 16x smaller).
    behavior_gain
        ``static2022`` only: running and pupil size multiply the rates and the eye position
        moves the receptive fields (what SENSORIUM+ models can use); False records the same
        behaviour but the responses ignore it.

    Returns
    -------
    list of Path
        The recordings' folders, one per mouse, ready for ``open_mouse``.

    Raises
    ------
    ValueError
        Unknown preset, a scale that is not a positive number (or above 1 for
        ``sensorium2023``), a negative or non-integer seed, ``image_scale`` not in (0, 1] or
        ``image_scale``/``behavior_gain`` given to another preset than ``static2022``.
    FileExistsError
        A target folder already holds a recording (and ``overwrite`` is False) or holds
        something else.

    Examples
    --------
    >>> import tempfile
    >>> folders = simulate(tempfile.mkdtemp(), preset="tiny", scale=0.2, progress=False)
    >>> [f.name for f in folders]
    ['tiny-A', 'tiny-B', 'tiny-C']
    """
    if preset not in PRESETS:
        msg = (
            f"unknown preset {preset!r}; choose one of "
            f"{', '.join(repr(p) for p in PRESETS)} (see sensorium_data.simulate.list_presets())"
        )
        raise ValueError(msg)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        msg = f"scale={scale!r} is not a number; pass a positive number such as 0.1 or 1.0"
        raise ValueError(msg)
    if scale <= 0:
        msg = f"scale={scale} must be > 0: it multiplies the neurons and trials (e.g. 0.1 or 1.0)"
        raise ValueError(msg)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        msg = f"seed={seed!r} must be a non-negative integer"
        raise ValueError(msg)
    seed = int(seed)
    scale = float(scale)
    if preset == "static2022":
        return _simulate_static(Path(path).expanduser(), seed, scale, image_scale,
                                bool(behavior_gain), overwrite=overwrite, progress=progress)
    if image_scale != 1.0 or behavior_gain is not True:
        msg = (f"image_scale and behavior_gain apply to the static2022 preset only; preset "
               f"{preset!r} simulates videos at 36 x 64 with its own behaviour model. Leave "
               "them out, or pass preset='static2022'.")
        raise ValueError(msg)
    plans = BUILDERS[preset](seed, scale)
    root = Path(path).expanduser()
    targets = [root / plan.name for plan in plans]
    for target in targets:  # check every target before writing anything
        _check_target(target, overwrite=overwrite)

    from tqdm.auto import tqdm

    total = sum(len(plan.trials) for plan in plans)
    params: dict[str, object] = {"preset": preset, "seed": seed, "scale": scale}
    calibration = calibration_videos(seed)
    written = []
    with tqdm(total=total, unit="trial", disable=not progress, desc=f"simulate {preset}") as bar:
        for plan, target in zip(plans, targets, strict=True):
            bar.set_postfix_str(plan.name)
            partial = root / f".{plan.name}.partial"
            if partial.exists():  # left by an interrupted run of ours
                shutil.rmtree(partial)
            write_mouse(
                plan,
                partial,
                seed=seed,
                params=params,
                calibration=calibration,
                on_trial=lambda: bar.update(1),
            )
            if target.exists():
                shutil.rmtree(target)
            partial.rename(target)
            written.append(target)
    return written


def _simulate_static(root: Path, seed: int, scale: float, image_scale: float,
                     behavior_gain: bool, *, overwrite: bool, progress: bool) -> list[Path]:
    """The static2022 preset (see :mod:`sensorium_data.simulate.static2022`)."""
    from tqdm.auto import tqdm

    from sensorium_data.simulate.static2022 import plans, write_static_mouse

    if (isinstance(image_scale, bool) or not isinstance(image_scale, numbers.Real)
            or not 0 < image_scale <= 1):
        msg = (f"image_scale={image_scale!r} must be in (0, 1]: 1 writes the release's "
               "144 x 256 images, 0.25 the starter kit's 36 x 64.")
        raise ValueError(msg)
    mice = plans(seed, scale)
    targets = [root / plan.name for plan in mice]
    for target in targets:
        _check_target(target, overwrite=overwrite)
    params: dict[str, object] = {"preset": "static2022", "seed": seed, "scale": scale,
                                 "image_scale": float(image_scale)}
    written = []
    total = sum(len(plan.tiers) for plan in mice)
    with tqdm(total=total, unit="trial", disable=not progress, desc="simulate static2022") as bar:
        for plan, target in zip(mice, targets, strict=True):
            partial = root / f".{plan.name}.partial"
            if partial.exists():  # left by an interrupted run of ours
                shutil.rmtree(partial)
            write_static_mouse(plan, partial, seed=seed, image_scale=float(image_scale),
                               behavior_gain=behavior_gain, params=params,
                               on_trial=lambda: bar.update(1))
            if target.exists():
                shutil.rmtree(target)
            partial.rename(target)
            written.append(target)
    return written


def _is_recording(folder: Path) -> bool:
    return (folder / "data").is_dir() and (folder / "meta").is_dir()


def _check_target(target: Path, *, overwrite: bool) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        msg = f"{target} exists and is not a folder; remove it or simulate into another path."
        raise FileExistsError(msg)
    if not any(target.iterdir()):
        return
    if not _is_recording(target):
        msg = Message(
            f"{target} is not empty and is not a recording (no data/ and meta/ folders); the "
            "simulator never removes it, even with ", OVERWRITE, ". Choose another path.",
        )
        raise FileExistsError(msg)
    if not overwrite:
        msg = Message(
            f"{target} already holds a recording; pass ", OVERWRITE, " to replace it, or "
            "simulate into another path.",
        )
        raise FileExistsError(msg)
    log.info("overwriting the recording in %s", target)
