"""Checkpoints of a run (``best.pt``, ``last.pt``) and loading a run's model back."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from sensorium_models.training.config import TrainConfig

if TYPE_CHECKING:
    from torch import nn

    from sensorium_models.models import MouseSpec

log = logging.getLogger(__name__)

FORMAT = 1
CONFIG = "config.json"
BEST, LAST = "best.pt", "last.pt"


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
    p = Path(path)
    if not p.is_file():
        msg = (f"no checkpoint at {p}; a run directory holds last.pt from its start and best.pt "
               "after its first epoch (continue an interrupted run with sensorium train "
               "--resume RUN).")
        raise FileNotFoundError(msg)
    payload = torch.load(p, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        msg = f"{p} is not a sensorium checkpoint of format {FORMAT}."
        raise ValueError(msg)
    return payload


def build(payload: Mapping[str, Any]) -> nn.Module:
    """The model of a checkpoint, with its weights, in eval mode on the CPU."""
    from sensorium_models.models import MouseSpec, create_model
    from sensorium_models.training.config import resolve_model_config

    options = resolve_model_config(payload["model"], payload["model_config"])
    mice = {m: MouseSpec(n_neurons=int(v["n_neurons"]), coords=v["coords"].numpy())
            for m, v in payload["mice"].items()}
    model = create_model(payload["model"], mice=mice, in_channels=int(payload["in_channels"]),
                         **options)
    model.load_state_dict(payload["state_dict"])
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
    >>> import sensorium_models as sm  # doctest: +SKIP
    >>> model = sm.load_run("runs/factorized_baseline-20261122-101500")  # doctest: +SKIP
    >>> model.burn_in, model.mice  # doctest: +SKIP
    (18, ['dynamic29515-10-12-Video-...', ...])
    """
    if checkpoint not in ("best", "last"):
        msg = f"checkpoint={checkpoint!r}; choose 'best' or 'last'."
        raise ValueError(msg)
    folder = _run_dir(run)
    if checkpoint == "best":
        return build(load(folder / BEST)).to(device)
    return build(load(folder / LAST)["model"]).to(device)  # last.pt also holds the optimizer


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
