"""Checkpoints of a run (``best.pt``, ``last.pt``) and loading a run's model back."""

from __future__ import annotations

import csv
import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from sensorium_data.errors import Fix, Message
from sensorium_models.training.config import TrainConfig

COLUMNS = ("epoch", "lr", "train_loss", "validation_correlation", "seconds")
"""The columns of metrics.csv."""

if TYPE_CHECKING:
    from torch import nn

    from sensorium_models.models import MouseSpec

log = logging.getLogger(__name__)

FORMAT = 1
CONFIG = "config.json"
BEST, LAST = "best.pt", "last.pt"
MODEL_KEYS = ("model", "model_config", "in_channels", "mice", "state_dict")
# What each file must hold: best.pt a model payload, last.pt everything a resume needs.
REQUIRED = {BEST: MODEL_KEYS,
            LAST: ("model", "optimizer", "scheduler", "stopping", "history", "epoch", "rng")}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, is not a sensorium checkpoint, or does not fit the
    recordings or the model of its run."""


def model_payload(model: nn.Module, specs: Mapping[str, MouseSpec], in_channels: int
                  ) -> dict[str, Any]:
    """What rebuilds the model without the data: name, options, per-mouse sizes, weights."""
    return {
        "format": FORMAT,
        "model": model.name,
        "model_config": _plain(model.config),
        "in_channels": in_channels,
        "mice": {m: {"n_neurons": s.n_neurons, "coords": torch.as_tensor(np.asarray(s.coords))}
                 for m, s in specs.items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` atomically: a crash leaves the previous file intact."""
    partial = path.with_name(path.name + ".partial")
    torch.save(dict(payload), partial)
    partial.replace(path)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The payload of a checkpoint file, checked (tensors only: nothing is unpickled).

    Raises FileNotFoundError where there is no file, and CheckpointError naming the file
    where it cannot be read (empty, truncated, damaged) or is not a sensorium checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        msg: str = Message(
            f"no checkpoint at {p}; a run directory holds last.pt from its start and best.pt "
            "after its first epoch (continue an interrupted run with ",
            Fix("train(config, resume=RUN)", "sensorium train --resume RUN"), ").",
        )
        raise FileNotFoundError(msg)
    fix = ("copy it again from where the run was trained, or train a new run; sensorium "
           "train writes each checkpoint whole or not at all, so this file was changed "
           "after it was written")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes): {fix}.")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        msg = f"{p} cannot be read as a checkpoint, it is truncated or damaged ({detail}): {fix}."
        raise CheckpointError(msg) from e
    if not isinstance(payload, dict) or "format" not in payload:
        what = "a dict without 'format'" if isinstance(payload, dict) else (
            f"a {type(payload).__name__}")
        msg = (f"{p} holds {what}, not a sensorium checkpoint (a dict of format {FORMAT} that "
               f"sensorium train writes as {BEST} and {LAST}): {fix}.")
        raise CheckpointError(msg)
    if payload["format"] != FORMAT:
        msg = (f"{p} is a checkpoint of format {payload['format']!r}; this version of "
               f"sensorium_models reads format {FORMAT}: load it with the version that wrote "
               "it, or train a new run.")
        raise CheckpointError(msg)
    missing = [k for k in REQUIRED.get(p.name, ()) if k not in payload]
    if missing:
        msg = (f"{p} lacks {missing}, which a {p.name} holds (is it another file renamed?): "
               f"{fix}.")
        raise CheckpointError(msg)
    return payload


def check_mice(payload: Mapping[str, Any], specs: Mapping[str, MouseSpec], path: Path,
               sources: Mapping[str, str]) -> None:
    """Refuse to continue from ``path`` (a model payload) on recordings other than its own.

    ``specs`` are the recordings the run's config opens now, ``sources`` what each was opened
    from (the config's ``mice`` entry): a store replaced under a run since it was trained
    shows as another recording name, another neuron count or other neuron coordinates.
    """
    saved = payload["mice"]
    fix = ("put the run's recordings back where its config.json points (mice), or train a "
           "new run on these")
    if set(saved) != set(specs):
        new = [f"{m} (opened from {sources.get(m, m)})" for m in specs if m not in saved]
        gone = [m for m in saved if m not in specs]
        msg = (f"{path} was trained on {sorted(saved)}; the run's mice now open as other "
               f"recordings: {', '.join(new)} instead of {', '.join(gone)}: {fix}.")
        raise CheckpointError(msg)
    for mouse, spec in specs.items():
        n = int(saved[mouse]["n_neurons"])
        where = f"mouse {mouse} (opened from {sources.get(mouse, mouse)})"
        if n != spec.n_neurons:
            msg = (f"{path} was trained with {n} neurons of {where}; its recording now has "
                   f"{spec.n_neurons}: {fix}.")
            raise CheckpointError(msg)
        coords = saved[mouse]["coords"].numpy()
        if not np.allclose(coords, np.asarray(spec.coords, dtype=coords.dtype), equal_nan=True):
            msg = (f"{path} was trained on other neurons of {where}: the {n} neurons' "
                   f"coordinates differ from the recording's now: {fix}.")
            raise CheckpointError(msg)


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """``model.load_state_dict``, with an error naming the file where the weights do not fit."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        msg = (f"the weights in {path} do not fit the model that its run's config builds "
               f"({detail[:300]}); was the file written by another version of "
               "sensorium_models, or copied from another run? Load it with the version and "
               "run that wrote it, or train a new run.")
        raise CheckpointError(msg) from e


def build(payload: Mapping[str, Any], path: Path) -> nn.Module:
    """The model of a checkpoint (``payload``, read from ``path``), with its weights, in eval
    mode on the CPU."""
    from sensorium_models.models import MouseSpec, create_model
    from sensorium_models.training.options import resolve_model_config

    options = resolve_model_config(payload["model"], payload["model_config"])
    mice = {m: MouseSpec(n_neurons=int(v["n_neurons"]), coords=v["coords"].numpy())
            for m, v in payload["mice"].items()}
    model = create_model(payload["model"], mice=mice, in_channels=int(payload["in_channels"]),
                         **options)
    load_weights(model, payload["state_dict"], path)
    return model.eval()


def load_run(run: str | os.PathLike[str], *, checkpoint: Literal["best", "last"] = "best",
             device: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a run directory, in eval mode.

    Parameters
    ----------
    run
        A run directory written by :func:`sensorium_models.train`.
    checkpoint
        ``"best"`` (the weights of the best validation epoch, which training ends with) or
        ``"last"`` (the latest epoch's).
    device
        Where to put the model.

    Examples
    --------
    >>> import sensorium_models as sm
    >>> model = sm.load_run(run)  # a run trained on the simulated tiny mice
    >>> model.burn_in, model.mice
    (..., ['tiny-A', 'tiny-B', 'tiny-C'])
    """
    if checkpoint not in ("best", "last"):
        msg = f"checkpoint={checkpoint!r}; choose 'best' or 'last'."
        raise ValueError(msg)
    folder = _run_dir(run)
    if checkpoint == "best":
        return build(load(folder / BEST), folder / BEST).to(device)
    # last.pt also holds the optimizer
    return build(load(folder / LAST)["model"], folder / LAST).to(device)


def read_config(run: str | os.PathLike[str]) -> TrainConfig:
    """The resolved config of a run directory (its ``config.json``)."""
    return TrainConfig.from_file(_run_dir(run) / CONFIG)


def _run_dir(run: str | os.PathLike[str]) -> Path:
    folder = Path(run)
    if not (folder / CONFIG).is_file():
        msg = (
            f"{folder} is not a run directory (no {CONFIG}); pass the folder that "
            "`sensorium train` printed (it holds config.json, metrics.csv, best.pt, last.pt)."
        )
        raise FileNotFoundError(msg)
    return folder


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(config: Any) -> dict[str, Any]:
    import dataclasses
    import json

    return json.loads(json.dumps(dataclasses.asdict(config)))


def write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    """Write the run's ``history`` (one row per epoch) as ``path`` (metrics.csv), atomically."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(history)
    partial.replace(path)
