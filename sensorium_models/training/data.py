"""What a run reads: the recordings, the training clips, the validation trials, batches."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sensorium_data.errors import Fix, Message

if TYPE_CHECKING:
    import xarray as xr

    from sensorium_data import ClipDataset, TrialDataset
    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)


def open_run_mice(run: str | os.PathLike[str],
                  data_dir: str | os.PathLike[str] | None = None) -> dict[str, xr.Dataset]:
    """The recordings a run was trained on, opened again without downloading (``data_dir``,
    if given, instead of the run's)."""
    import dataclasses

    from sensorium_models.training.checkpoint import read_config

    config = dataclasses.replace(read_config(run), download=False, progress=False)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=str(data_dir))
    return open_mice(config)


def open_mice(config: TrainConfig) -> dict[str, xr.Dataset]:
    """Open every recording of ``config.mice``, by recording name (``ds.attrs["mouse"]``)."""
    from sensorium_data import open_mouse

    if not config.mice:
        msg: str = Message(
            "no mice to train on: pass ", Fix("mice=", "--mice"), " (letters such as F G H I J, "
            "recording names, or paths to stores or file trees), or set mice = [...] in the "
            "config.",
        )
        raise ValueError(msg)
    out: dict[str, xr.Dataset] = {}
    for mouse in config.mice:
        ds = open_mouse(mouse, data_dir=config.data_dir, download=config.download,
                        progress=config.progress)
        name = str(ds.attrs["mouse"])
        if name in out:
            msg = f"mouse {mouse!r} is {name}, which is already in mice={list(config.mice)}."
            raise ValueError(msg)
        out[name] = ds
    return out


def loader_options(config: TrainConfig) -> dict[str, Any]:
    """Keyword arguments shared by the run's ClipDataset and TrialDataset."""
    return {
        "normalize": None if config.normalize == "none" else config.normalize,
        "behavior_channels": config.behavior_channels,
        "pupil_channels": config.pupil_channels,
        "canvas": config.canvas,
        "relu_responses": config.relu_responses,
    }


def clips(config: TrainConfig, datasets: Mapping[str, xr.Dataset],
          tier: str | list[str] | None = None) -> ClipDataset:
    """The training clips of ``tier`` (default ``config.train_tier``)."""
    from sensorium_data import ClipDataset

    tier = config.train_tier if tier is None else tier
    return ClipDataset(list(datasets.values()), tier=tier, frames=config.frames,
                       in_memory=config.in_memory, seed=config.seed,
                       frame_step=config.frame_step, **loader_options(config))


def trials(datasets: Mapping[str, xr.Dataset] | Sequence[xr.Dataset], tier: str | list[str],
           options: Mapping[str, Any]) -> TrialDataset:
    from sensorium_data import TrialDataset

    values = list(datasets.values()) if isinstance(datasets, Mapping) else list(datasets)
    return TrialDataset(values, tier=tier, **options)


def batches_by_mouse(dataset: ClipDataset, batch_size: int) -> list[list[int]]:
    """Index batches that never mix mice, in dataset order (for evaluation)."""
    out = []
    for indices in dataset.indices_by_mouse().values():
        out += [indices[b:b + batch_size].tolist() for b in range(0, len(indices), batch_size)]
    return out


def interleaved_batches(dataset: ClipDataset, batch_size: int, limit: int) -> list[list[int]]:
    """At most ``limit`` index batches of one mouse each, the mice in turn (so a limit that
    cuts the list short leaves out no mouse), in dataset order within a mouse."""
    per_mouse = [[indices[b:b + batch_size].tolist() for b in range(0, len(indices), batch_size)]
                 for indices in dataset.indices_by_mouse().values()]
    out = [b for group in itertools.zip_longest(*per_mouse) for b in group if b is not None]
    return out[:limit]


def loader(dataset: Any, batch_sampler: Any, num_workers: int) -> torch.utils.data.DataLoader:
    from sensorium_data import collate
    from sensorium_models.training.images import collate_as_clips, is_image_dataset

    # 2022 images go to the loop as one-frame clips
    collate_fn = collate_as_clips if is_image_dataset(dataset) else collate
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate_fn,
                                       num_workers=num_workers,
                                       persistent_workers=num_workers > 0,
                                       pin_memory=torch.cuda.is_available())


def mean_responses(config: TrainConfig, datasets: Mapping[str, xr.Dataset],
                   batch_size: int = 8, tier: str | list[str] | None = None
                   ) -> dict[str, np.ndarray]:
    """Per mouse, each neuron's mean normalized response over the valid frames of ``tier``
    (default the training tier) in ``datasets``: the trials the run trains on, where the
    readouts' bias starts and the calibration aims."""
    tier = config.train_tier if tier is None else tier
    dataset = trials(datasets, tier, loader_options(config))
    sums = {m: np.zeros(n) for m, n in dataset.n_neurons.items()}
    counts = dict.fromkeys(sums, 0)
    for batch in iterate(dataset, batch_size, config.num_workers):
        responses = batch["responses"].numpy()  # (B, N, F), NaN past each trial's length
        sums[batch["mouse"]] += np.nansum(responses, axis=(0, 2))
        counts[batch["mouse"]] += int(batch["length"].sum())
    return {m: (sums[m] / max(counts[m], 1)).astype(np.float32) for m in sums}


def iterate(dataset: ClipDataset, batch_size: int, num_workers: int = 0
            ) -> Iterator[dict[str, Any]]:
    """Batches of one mouse each, every item once, in dataset order."""
    yield from loader(dataset, batches_by_mouse(dataset, batch_size), num_workers)
