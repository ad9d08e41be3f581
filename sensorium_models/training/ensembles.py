"""Ensembles by strategy: train a named set of members one after another, resumably.

A strategy names its members and each member's model options; ``train_ensemble`` trains them
as separate runs under one folder, and the members' run directories together are the
ensemble (``sensorium evaluate ROOT/*/`` averages them with :class:`~sensorium_models.Ensemble`)::

    runs/v1fm31/
    ├── ensemble.json        the strategy, the base config, the members finished so far
    ├── mean-2_4_8_16/       one run directory per member (config.json, best.pt, ...)
    ├── ...
    └── adaptive-0/

Running it again continues: finished members are kept, an interrupted one resumes from its
``last.pt``, the rest are trained.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sensorium_data.errors import Fix, Message
from sensorium_models.training.config import ConfigError, TrainConfig
from sensorium_models.training.run import train

log = logging.getLogger(__name__)

MANIFEST = "ensemble.json"


def v1fm31() -> dict[str, dict[str, Any]]:
    """Dynamic-V1FM's 31 members: the readout's 15 level combinations with "mean" fusion
    (all but level 1 alone) and all 16 with "adaptive" fusion (notes/winning_models.md 2.3)."""
    from sensorium_models.models.hierarchical_gaussian import COMBINATIONS

    members = {f"mean-{c}": {"fusion": "mean", "levels": c} for c in COMBINATIONS if c != "0"}
    members.update({f"adaptive-{c}": {"fusion": "adaptive", "levels": c} for c in COMBINATIONS})
    return members


def folds7() -> dict[str, dict[str, Any]]:
    """DwiseNeuro's fold ensemble: one member per fold of 7 by video
    (:mod:`~sensorium_models.training.folds`; notes/winning_models.md 1.3), for any model."""
    return {f"fold-{k}": {"fold": k, "folds": 7} for k in range(7)}


#: Strategy name -> (the model it is for, None for any; its members: name -> options; what
#: the options set: the model's options ("model_config") or the run's config keys ("config")).
STRATEGIES = {"v1fm31": ("dynamic_v1fm", v1fm31, "model_config"),
              "folds7": (None, folds7, "config")}


def ensemble_members(strategy: str) -> dict[str, dict[str, Any]]:
    """The members of ``strategy``: name -> the model options that make it.

    Examples
    --------
    >>> members = ensemble_members("v1fm31")
    >>> len(members), members["adaptive-2_8"]
    (31, {'fusion': 'adaptive', 'levels': '2_8'})
    """
    if strategy not in STRATEGIES:
        msg = f"unknown ensemble {strategy!r}; choose one of {', '.join(STRATEGIES)}."
        raise ValueError(msg)
    return STRATEGIES[strategy][1]()


def train_ensemble(config: TrainConfig, strategy: str, *,
                   members: Sequence[str] | None = None) -> list[Path]:
    """Train the members of ``strategy`` one after another under ``config.out``.

    Parameters
    ----------
    config
        The base config: every member trains with it, updated by the member's options (its
        ``model_config`` for ``"v1fm31"``, its fold for ``"folds7"``; a ``teacher`` holding
        ``{fold}`` becomes the member's fold, so that each fold distills from its own
        stage-1 run). ``config.model`` must be the strategy's model; ``config.out`` is the
        ensemble's folder (default ``runs/<strategy>``).
    strategy
        A name of :data:`STRATEGIES` (``"v1fm31"``, ``"folds7"``).
    members
        Only these members (names of :func:`ensemble_members`), in the strategy's order;
        default all.

    Returns
    -------
    list of pathlib.Path
        The run directories of the finished members: pass them together to
        ``sensorium evaluate``, ``predict`` or ``submit`` for the ensemble's mean.

    Examples
    --------
    The first fold of ``"folds7"``, the smallest model one epoch on the simulated tiny mice
    (``tiny``), then the mean prediction of the members:

    >>> import sensorium_models as sm
    >>> config = sm.TrainConfig(model="ln", mice=tiny, max_epochs=1, batch_size=2,
    ...                         device="cpu", progress=False, score=False, out="runs/folds7")
    >>> runs = train_ensemble(config, "folds7", members=["fold-0"])
    >>> runs
    [PosixPath('runs/folds7/fold-0')]
    >>> predictions = sm.predict(runs, datasets, tiers="oracle")

    The 31 members of DynamicV1FM on mice F and G (hours on a GPU):

    >>> config = sm.TrainConfig(model="dynamic_v1fm", mice=("F", "G"), out="runs/v1fm31")
    >>> runs = train_ensemble(config, "v1fm31")  # doctest: +SKIP
    """
    every = ensemble_members(strategy)
    model, _, sets = STRATEGIES[strategy]
    if model is not None and config.model != model:
        msg: str = Message(f"ensemble {strategy!r} is made of {model} models, but the config's "
                      f"model is {config.model!r}; pass ",
                      Fix(f"model={model!r}", f"--model {model}"), ".")
        raise ConfigError(msg)
    chosen = list(every) if members is None else list(members)
    unknown = [m for m in chosen if m not in every]
    if unknown:
        msg = f"unknown member {unknown[0]!r} of {strategy!r}; its members: {', '.join(every)}."
        raise ValueError(msg)
    root = Path(config.out or Path("runs") / strategy)
    done = _open_manifest(root, strategy, config)
    folders = []
    for name in (m for m in every if m in chosen):
        folder = root / name
        member = _member_config(config, folder, every[name], sets)
        if name not in done:
            started = (folder / "config.json").exists()
            log.info("ensemble %s: %s member %s", strategy, "resuming" if started else "training",
                     name)
            train(member, resume=folder if started else None)
            done.append(name)
            _write_manifest(root, strategy, config, done)
        folders.append(folder)
    return folders


def _member_config(config: TrainConfig, folder: Path, options: dict[str, Any], sets: str
                   ) -> TrainConfig:
    """The base ``config`` with a member's options, its output in ``folder``."""
    if sets == "model_config":
        return dataclasses.replace(config, out=str(folder),
                                   model_config={**config.model_config, **options})
    teacher = config.teacher
    if teacher is not None and "{fold}" in teacher:
        teacher = teacher.replace("{fold}", str(options["fold"]))
    return dataclasses.replace(config, out=str(folder), teacher=teacher, **options)


def _open_manifest(root: Path, strategy: str, config: TrainConfig) -> list[str]:
    """The members already finished in ``root``, after checking it holds this ensemble."""
    path = root / MANIFEST
    if not path.exists():
        if root.is_dir() and any(root.iterdir()):
            msg = Message(f"{root} is not empty and holds no {MANIFEST}; pass a new or empty "
                          "folder as the ensemble's ", Fix("out folder", "--out"), ".")
            raise FileExistsError(msg)
        root.mkdir(parents=True, exist_ok=True)
        _write_manifest(root, strategy, config, [])
        return []
    saved = json.loads(path.read_text())
    if saved["strategy"] != strategy:
        msg = Message(f"{root} holds ensemble {saved['strategy']!r}, not {strategy!r}; pass "
                      "another ", Fix("out folder", "--out"), ".")
        raise ConfigError(msg)
    differing = TrainConfig.from_dict(saved["config"]).differences(config)
    if differing:
        msg = Message(f"{root} was started with another config (differing: "
                      f"{', '.join(differing)}); continue it with the same options, or pass "
                      "another ", Fix("out folder", "--out"), ".")
        raise ConfigError(msg)
    return list(saved["done"])


def _write_manifest(root: Path, strategy: str, config: TrainConfig, done: list[str]) -> None:
    partial = root / (MANIFEST + ".partial")
    manifest = {"strategy": strategy, "config": config.to_dict(), "done": done}
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, root / MANIFEST)
