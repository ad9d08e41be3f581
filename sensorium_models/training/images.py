"""The trainer on 2022 (static image) recordings: the same loop, images as one-frame clips.

:func:`~sensorium_models.training.run.train` picks this path when the recordings are 2022
ones: the training and validation trials come from :class:`sensorium_data.ImageDataset`
(scale ``config.image_scale``, behaviour channels and normalization per ``config.track``),
:func:`collate_as_clips` turns a batch of images into the (B, C, 1, H, W) clips, (B, 4, 1)
behaviour and (B, N, 1) responses that :func:`~.loop.train_epoch` and every model of the zoo
take, and :func:`validate` scores single-trial correlation over trials (a trial is one
image; there is no frame window). The starter kit's recipe is configuration
(``docs/recipes/sota_2022.toml``): Adam at 0.009, the Poisson loss times
sqrt(trials / batch), ReduceLROnPlateau 0.3 / 5 with four early-stopping rounds on the
validation tier, batches of 128, one batch of each mouse per optimizer step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from sensorium_models.training.config import ConfigError
from sensorium_models.training.predict import Autocast, evaluating

if TYPE_CHECKING:
    from pathlib import Path

    import xarray as xr
    from torch import nn

    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)

TRACKS = ("sensorium", "sensorium+")


def is_static(datasets: Mapping[str, xr.Dataset]) -> bool:
    """True if every recording is a 2022 one (images), False if every one is a 2023 one
    (videos); a mix is a ConfigError naming both kinds."""
    static = {m: "images" in ds and "frame" not in ds.dims for m, ds in datasets.items()}
    if len(set(static.values())) > 1:
        images = sorted(m for m, s in static.items() if s)
        videos = sorted(m for m, s in static.items() if not s)
        msg = (f"mice {images} are 2022 (static image) recordings and {videos} 2023 (video) "
               "ones; a model trains on one kind. Pass the recordings of one competition.")
        raise ConfigError(msg)
    return all(static.values())


def image_set(config: TrainConfig, datasets: Mapping[str, xr.Dataset],
              tier: str | list[str]) -> Any:
    """The :class:`sensorium_data.ImageDataset` of ``tier`` for the run's track and scale."""
    from sensorium_data import ImageDataset

    if config.normalize not in ("official", "none"):
        msg = (f"normalize={config.normalize!r} is a 2023 option; 2022 recordings take "
               "'official' (the starter kit's normalization with the shipped statistics) or "
               "'none'.")
        raise ValueError(msg)
    track: Literal["sensorium", "sensorium+"] = (
        "sensorium+" if config.track == "sensorium+" else "sensorium")  # checked by config
    return ImageDataset(list(datasets.values()), tier=tier, scale=config.image_scale,
                        track=track,
                        normalize=None if config.normalize == "none" else "official")


def is_image_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` yields 2022 image items (it has an ``image_shape``)."""
    return hasattr(dataset, "image_shape")


def collate_as_clips(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Image items as a batch of one-frame clips, as the trainer's loop takes them.

    Parameters
    ----------
    items
        :class:`sensorium_data.ImageDataset` items: ``images`` (C, H, W), ``behavior`` (3,)
        (pupil dilation, its derivative, running speed), ``pupil_center`` (2,),
        ``responses`` (N,), ``mouse``.

    Returns
    -------
    dict
        ``videos`` (B, C, 1, H, W); ``behavior`` (B, 4, 1): pupil dilation, running speed,
        pupil x, pupil y (the 2023 rows: the shifter reads rows 2:4); ``responses``
        (B, N, 1), or a list of (N_i, 1) for items of several mice; ``mouse`` a str, or a
        list; ``length`` (B,) ones; ``trial`` (B,); ``image_id`` list of str.

    Examples
    --------
    >>> import torch
    >>> item = {"images": torch.zeros(4, 36, 64), "behavior": torch.tensor([1., 2., 3.]),
    ...         "pupil_center": torch.tensor([4., 5.]), "responses": torch.ones(7),
    ...         "mouse": "A", "trial": 0, "image_id": "9"}
    >>> batch = collate_as_clips([item, item])
    >>> batch["videos"].shape, batch["behavior"][0, :, 0].tolist(), batch["responses"].shape
    (torch.Size([2, 4, 1, 36, 64]), [1.0, 3.0, 4.0, 5.0], torch.Size([2, 7, 1]))
    """
    if not items:
        msg = "collate_as_clips got no items; a batch needs at least one."
        raise ValueError(msg)
    videos = torch.stack([item["images"] for item in items])[:, :, None]  # (B, C, 1, H, W)
    behavior = torch.stack([item["behavior"] for item in items])  # (B, 3)
    pupil = torch.stack([item["pupil_center"] for item in items])  # (B, 2)
    state = torch.cat([behavior[:, [0, 2]], pupil], 1)[:, :, None]  # (B, 4, 1)
    mice = [str(item["mouse"]) for item in items]
    responses = [item["responses"][:, None] for item in items]  # each (N, 1)
    batch: dict[str, Any] = {"videos": videos, "behavior": state}
    if len(set(mice)) == 1:
        batch["responses"], batch["mouse"] = torch.stack(responses), mice[0]  # (B, N, 1)
    else:  # mice differ in their number of neurons
        batch["responses"], batch["mouse"] = responses, mice
    batch["length"] = torch.ones(len(items), dtype=torch.long)
    batch["trial"] = torch.tensor([int(item["trial"]) for item in items], dtype=torch.long)
    batch["image_id"] = [str(item["image_id"]) for item in items]
    return batch


def iterate(dataset: Any, batch_size: int, num_workers: int = 0) -> Iterator[dict[str, Any]]:
    """Batches of one mouse each, every item once, in dataset order."""
    from sensorium_models.training import data

    yield from data.loader(dataset, data.batches_by_mouse(dataset, batch_size), num_workers)


def predict_items(model: nn.Module, dataset: Any, *, batch_size: int, device: torch.device,
                  autocast: Autocast, num_workers: int = 0) -> dict[str, dict[str, Any]]:
    """Per mouse: ``responses`` and ``predictions`` (trial, neuron) in dataset order, with
    ``trial`` and ``image_id`` of each row, the model in eval mode."""
    out: dict[str, dict[str, list[Any]]] = {}
    with evaluating(model), torch.no_grad():
        for batch in iterate(dataset, batch_size, num_workers):
            videos = batch["videos"].to(device)
            behavior = batch["behavior"].to(device)
            with autocast():
                predicted = model(videos, mouse=batch["mouse"], behavior=behavior)  # (B, N, 1)
            parts = out.setdefault(batch["mouse"], {k: [] for k in
                                                    ("responses", "predictions", "trial",
                                                     "image_id")})
            parts["responses"].append(batch["responses"][..., 0].numpy())
            parts["predictions"].append(predicted[..., 0].float().cpu().numpy())
            parts["trial"].append(batch["trial"].numpy())
            parts["image_id"].append(np.asarray(batch["image_id"]))
    return {m: {k: np.concatenate(v) for k, v in parts.items()} for m, parts in out.items()}


def correlation(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per neuron correlation over trials (ddof 0, + 1e-8 as the starter kit's ``corr``),
    trials with a missing (NaN) response left out; (trial, neuron) -> (neuron,)."""
    keep = np.isfinite(responses).all(1)
    r, p = responses[keep].astype(np.float64), predictions[keep].astype(np.float64)
    zr = (r - r.mean(0)) / (r.std(0) + 1e-8)
    zp = (p - p.mean(0)) / (p.std(0) + 1e-8)
    return (zr * zp).mean(0)


def validate(model: nn.Module, dataset: Any, *, batch_size: int, device: torch.device,
             autocast: Autocast, num_workers: int = 0) -> float:
    """Single-trial correlation per neuron over the tier's trials, averaged over all mice's
    neurons (the starter kit's early-stopping objective)."""
    predicted = predict_items(model, dataset, batch_size=batch_size, device=device,
                              autocast=autocast, num_workers=num_workers)
    per_neuron = [correlation(p["responses"], p["predictions"]) for p in predicted.values()
                  if np.isfinite(p["responses"]).all(1).sum() > 1]
    if not per_neuron:
        msg = "no validation tier trial has responses; nothing to validate on."
        raise ValueError(msg)
    return float(np.concatenate(per_neuron).mean())


def mean_responses(dataset: Any, batch_size: int = 128,
                   num_workers: int = 0) -> dict[str, np.ndarray]:
    """Per mouse, each neuron's mean (normalized) training response (the readouts' bias
    starts there)."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for batch in iterate(dataset, batch_size, num_workers):
        responses = batch["responses"][..., 0].numpy()  # (B, N)
        mouse = batch["mouse"]
        sums[mouse] = sums.get(mouse, 0) + np.nansum(responses, 0)
        counts[mouse] = counts.get(mouse, 0) + len(responses)
    return {m: (sums[m] / max(counts[m], 1)).astype(np.float32) for m in sums}


def score(model: nn.Module, datasets: Mapping[str, xr.Dataset], config: TrainConfig,
          path: Path, device: torch.device, autocast: Autocast) -> None:
    """Predict the 2022 tiers (validation, test, final_test) of each recording and write the
    2022 leaderboard table (:func:`sensorium_models.scoring2022.leaderboard_2022`: the
    website's single-trial correlation, correlation to average and FEVE on the official
    scale; on the twin their ceilings and fractions) to ``path``."""
    import xarray as xr

    from sensorium_models.scoring2022 import TIERS_2022, leaderboard_2022

    predictions = {}
    for mouse, ds in datasets.items():
        present = {str(t) for t in ds["tier"].values.astype(str)}
        tiers = [t for t in TIERS_2022 if t in present]
        if not tiers:
            continue
        dataset = image_set(config, {mouse: ds}, tiers)
        predicted = predict_items(model, dataset, batch_size=config.batch_size, device=device,
                                  autocast=autocast, num_workers=config.num_workers)[mouse]
        predictions[mouse] = xr.DataArray(predicted["predictions"], dims=("trial", "neuron"),
                                          coords={"trial": predicted["trial"]})
    if not predictions:
        log.warning("no validation or test tier to score: no %s", path.name)
        return
    # normalize="official" trains on the official scale; "none" on the raw units
    units: Literal["official", "raw"] = "official" if config.normalize == "official" else "raw"
    leaderboard_2022(predictions, datasets, units=units).to_csv(path, index=False)
    log.info("scores written to %s", path)
