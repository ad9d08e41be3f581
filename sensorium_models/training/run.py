"""``train(config)``: a whole run, from the recordings to the scored best model.

The run directory::

    runs/factorized_baseline-20261122-101500/
    ├── config.json     the resolved config (every key, the model's options too)
    ├── metrics.csv     one row per epoch: epoch, lr, train_loss, validation_correlation, seconds
    ├── best.pt         the weights of the best validation epoch (what the run ends with)
    ├── last.pt         the latest epoch: weights, optimizer, scheduler, early stopping, RNG
    └── scores.csv      the leaderboard table of the best model, every labelled tier but train
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sensorium_models.training import checkpoint, data, guards
from sensorium_models.training.batchnorm import recompute_batch_norm
from sensorium_models.training.config import (
    ConfigError,
    TrainConfig,
    default_lr,
    resolve_model_config,
)
from sensorium_models.training.loop import train_epoch, validate
from sensorium_models.training.predict import autocast_for, predict, resolve_device
from sensorium_models.training.stopping import EarlyStopping

if TYPE_CHECKING:
    import xarray as xr
    from torch import nn

    from sensorium_models.models import VideoEncoder

log = logging.getLogger(__name__)

METRICS, SCORES = "metrics.csv", "scores.csv"
COLUMNS = ("epoch", "lr", "train_loss", "validation_correlation", "seconds")
# Training batches whose statistics the batch norm layers keep for evaluation, taken after
# every epoch with the epoch's clip windows (docs/models.md, "Batch norm").
NORM_BATCHES = 64
# Below this many train trials a recording's per-frame statistics are too noisy for
# normalize="official" (the simulator's tiny preset has 16; real recordings hundreds).
FEW_TRAIN_TRIALS = 100


def train(config: TrainConfig | str | os.PathLike[str], *,
          resume: str | os.PathLike[str] | None = None) -> Path:
    """Train a model on recordings; return the run directory.

    AdamW with ReduceLROnPlateau and early stopping on the validation tier's single-trial
    correlation (see :class:`TrainConfig`); one optimizer step sums the Poisson losses of one
    batch of random clips of each mouse. Every epoch writes ``last.pt`` and ``metrics.csv``
    (and ``best.pt`` when the validation correlation improves); at the end the best model
    predicts every labelled tier but train, and ``scores.csv`` holds its leaderboard table
    (``sensorium_models.evaluate``, official scale).

    Parameters
    ----------
    config
        A :class:`TrainConfig`, or a path to a TOML or JSON file of one.
    resume
        A run directory to continue from its ``last.pt`` (weights, optimizer, scheduler,
        early stopping, RNG, epoch). ``config`` must equal the run's, except for the keys
        of where and how fast it runs and how long (``RUNTIME_KEYS``: ``max_epochs``,
        ``device``, ``amp``, ``compile``, ``num_workers``, ``in_memory``, ``progress``,
        ``data_dir``, ``download``, ``score``, ``out``).

    Returns
    -------
    pathlib.Path
        The run directory.

    Raises
    ------
    ConfigError
        Unknown model, model option or config value; a resume with a different config.
    sensorium_data.UnknownMouseError
        A mouse that is neither a known recording nor a path.

    Examples
    --------
    >>> import sensorium_models as sm
    >>> config = sm.TrainConfig(model="factorized_baseline", mice=("F", "G"))
    >>> run = sm.train(config)  # doctest: +SKIP
    >>> sm.train(sm.read_config(run), resume=run)  # after an interruption  # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_file(config)
    options = resolve_model_config(config.model, config.model_config)
    lr = config.lr if config.lr is not None else default_lr(config.model)
    config = dataclasses.replace(config, model_config=json.loads(json.dumps(options)), lr=lr)
    state = None
    if resume is not None:
        folder = Path(resume)
        saved = checkpoint.read_config(folder)
        differing = saved.differences(config)
        if differing:
            a, b = saved.to_dict(), config.to_dict()
            details = "; ".join(f"{k}: run {_get(a, k)!r}, now {_get(b, k)!r}" for k in differing)
            msg = (
                f"cannot resume {folder} with another config; differing keys: {details}. "
                "Resume with the run's own config (sensorium train --resume RUN, without other "
                "options) or start a new run."
            )
            raise ConfigError(msg)
        state = checkpoint.load(folder / checkpoint.LAST)
        done = finished(state, config.max_epochs)
        if done is not None:
            log.warning("%s is finished: %s; nothing to resume.", folder, done)
            return folder
    else:
        folder = new_run_dir(config)
    config = dataclasses.replace(config, out=str(folder))
    trainer = Trainer(config, options, folder, state)  # opens the data: fails before mkdir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / checkpoint.CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if state is None:
        trainer.save()  # epoch 0: a run stopped in its first epoch can be resumed too
    log.info("run directory %s", folder)
    trainer.fit()
    return folder


def finished(state: Mapping[str, Any], max_epochs: int) -> str | None:
    """Why a run whose ``last.pt`` holds ``state`` has no epoch left, or None."""
    epoch = int(state["epoch"])
    if state["stopping"].get("stopped"):
        return (f"early stopping ended it after epoch {epoch}; its best model is in best.pt "
                "(start a new run to train again)")
    if epoch >= max_epochs:
        return (f"it has run max_epochs={max_epochs} epochs; pass a larger --max-epochs "
                "(max_epochs) to train it longer")
    return None


def _get(values: Mapping[str, Any], key: str) -> Any:
    head, _, tail = key.partition(".")
    return values[head].get(tail) if tail else values.get(key)


def new_run_dir(config: TrainConfig) -> Path:
    """``config.out`` (empty or missing), else ``runs/<model>-<date>-<time>`` (not created
    here)."""
    if config.out:
        folder = Path(config.out)
        if (folder / checkpoint.CONFIG).exists():
            msg = (
                f"{folder} already holds a run; continue it with --resume {folder} "
                "(train(config, resume=...)), or pass another --out."
            )
            raise FileExistsError(msg)
        if folder.is_dir() and any(folder.iterdir()):
            msg = f"{folder} is not empty; pass a new or empty folder as the run directory."
            raise FileExistsError(msg)
    else:
        stem = f"{config.model}-{datetime.now():%Y%m%d-%H%M%S}"
        folder = Path("runs") / stem
        k = 1
        while folder.exists():
            folder, k = Path("runs") / f"{stem}-{k}", k + 1
    return folder


class Trainer:
    """The state of one run while it trains."""

    def __init__(self, config: TrainConfig, options: dict[str, Any], folder: Path,
                 state: dict[str, Any] | None):
        from sensorium_data import MouseBatchSampler
        from sensorium_models.models import create_model, mouse_specs

        self.config, self.folder = config, folder
        self.device = resolve_device(config.device)
        if config.amp and self.device.type != "cuda":
            log.info("amp=true is ignored on %s: bf16 autocast runs on CUDA devices only",
                     self.device)
        self.autocast = autocast_for(self.device, config.amp)
        torch.manual_seed(config.seed)
        self.datasets = data.open_mice(config)
        warn_few_train_trials(config, self.datasets)
        self.clips = data.clips(config, self.datasets)
        self.validation = data.trials(self.datasets, config.val_tier, data.loader_options(config))
        self.specs = mouse_specs(self.datasets)
        if state is None:
            means = data.mean_responses(config, self.datasets, config.batch_size)
            self.specs = {m: dataclasses.replace(s, mean_response=means[m])
                          for m, s in self.specs.items()}
        try:
            model = create_model(config.model, mice=self.specs,
                                 in_channels=self.clips.in_channels, **options)
        except TypeError as e:  # an option of the wrong type, named by create_model
            raise ConfigError(f"model_config: {e}") from e
        if config.frames <= model.burn_in:
            msg = (f"frames={config.frames}: {config.model}'s first {model.burn_in} frames of a "
                   f"clip are burn-in and give no prediction; pass frames of at least "
                   f"{model.burn_in + 1} (default 80).")
            raise ConfigError(msg)
        self.model: VideoEncoder = model.to(self.device)
        self.forward: nn.Module = self.model
        if config.compile:
            if self.device.type == "cuda":
                self.forward = torch.compile(self.model)  # type: ignore[assignment]
            else:
                log.info("compile=true is ignored on %s (only worth it on a GPU)", self.device)
        self.lr = config.lr if config.lr is not None else default_lr(config.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.factor, patience=config.patience,
            threshold=config.threshold, threshold_mode="abs", min_lr=config.min_lr)
        self.stopping = EarlyStopping(config.patience, config.lr_decay_steps, config.threshold)
        try:
            self.sampler = MouseBatchSampler(self.clips, config.batch_size, mode="per_mouse",
                                             drop_last=config.drop_last, seed=config.seed)
        except ValueError as e:  # a mouse with fewer train clips than batch_size
            msg = f"{e} (in the config: batch_size, drop_last)"
            raise ConfigError(msg) from e
        self.loader = data.loader(self.clips, self.sampler, config.num_workers)
        self.norm_batches = data.interleaved_batches(self.clips, config.batch_size, NORM_BATCHES)
        # sqrt(trials / batch_size) per mouse, counting every trial with files (all tiers), as
        # the starter kit's len(dataset) does
        n_trials = {m: int((ds["tier"] != "none").sum()) for m, ds in self.datasets.items()}
        self.loss_scale = {m: math.sqrt(n / config.batch_size) for m, n in n_trials.items()}
        self.history: list[dict[str, float]] = []
        self.timed = False  # the speed of the first batch is reported once per process
        defaults = resolve_model_config(config.model, {})
        self.published_size = all(
            options[k] == v for k, v in defaults.items()
            if isinstance(v, int | tuple) and not isinstance(v, bool))
        self.epoch = 0
        self.best: dict[str, torch.Tensor] | None = None
        if state is not None:
            self._restore(state)

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"]["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stopping.load_state_dict(state["stopping"])
        self.history = [dict(row) for row in state["history"]]
        self.epoch = int(state["epoch"])
        if (self.folder / checkpoint.BEST).exists():
            best = checkpoint.load(self.folder / checkpoint.BEST)["state_dict"]
            self.best = {k: v.to(self.device) for k, v in best.items()}
        checkpoint.set_rng_state(state["rng"])
        log.info("resumed %s after epoch %d", self.folder, self.epoch)

    def fit(self) -> None:
        from tqdm.auto import tqdm

        config = self.config
        bar = tqdm(total=config.max_epochs, initial=self.epoch, disable=not config.progress,
                   desc=f"training {config.model}", unit="epoch", dynamic_ncols=True)
        if self.history:
            bar.set_postfix(self._postfix(self.history[-1]))
        while not self.stopping.stopped and self.epoch < config.max_epochs:
            self.epoch += 1
            row = self._epoch(bar)
            self.history.append(row)
            self.save()
            bar.update()
            bar.set_postfix(self._postfix(row))
            problem = guards.failure(self.history, lr=self.lr, val_tier=config.val_tier)
            if problem is not None:
                bar.close()
                msg = (f"training stopped after epoch {self.epoch}: {problem} The epochs so far "
                       f"are in {self.folder / METRICS}.")
                raise guards.TrainingFailedError(msg)
        bar.close()
        if not self.stopping.stopped and self.best is not None:
            self.model.load_state_dict(self.best)  # max_epochs reached: end with the best
        if self.config.score:
            self.score()

    def _postfix(self, row: Mapping[str, float]) -> dict[str, str]:
        return {"loss": f"{row['train_loss']:.4g}",
                "val corr": f"{row['validation_correlation']:.4f}",
                "best": f"{self.stopping.best:.4f}", "lr": f"{row['lr']:.2g}"}

    def _epoch(self, bar: Any) -> dict[str, float]:
        config, start = self.config, time.perf_counter()
        self.clips.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch)
        lr = float(self.optimizer.param_groups[0]["lr"])
        steps = len(self.sampler)
        seen = [0]
        first_done = [start]

        def on_batch(loss: float) -> None:
            seen[0] += 1
            now = time.perf_counter()
            if seen[0] == 1:
                first_done[0] = now
            # the first batch also starts the loader: time the batches after it
            later = seen[0] - 1
            per_batch = (now - first_done[0]) / later if later else now - start
            if not self.timed and (later == 1 or steps == 1):
                self.timed = True
                self._report_speed(per_batch, steps)
            bar.set_description(
                f"epoch {self.epoch} batch {seen[0]}/{steps} loss {loss:.4g} "
                f"{config.batch_size / per_batch:.3g} clips/s, "
                f"{per_batch * (steps - seen[0]):.0f} s left of the epoch ({self.device})",
                refresh=True)

        loss = train_epoch(self.model, self.forward, self.loader, self.optimizer,
                           loss_scale=self.loss_scale, batches_per_step=len(self.clips.mice),
                           device=self.device, autocast=self.autocast, on_batch=on_batch)
        bar.set_description(f"training {config.model}", refresh=False)
        recompute_batch_norm(self.model.core, data.loader(self.clips, self.norm_batches,
                                                          config.num_workers),
                             device=self.device, autocast=self.autocast)
        correlation = validate(self.model, self.validation, batch_size=config.batch_size,
                               device=self.device, autocast=self.autocast,
                               num_workers=config.num_workers)
        decision = self.stopping.step(correlation, self.epoch, self.scheduler)
        if decision == "improved" or self.best is None:
            self.best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            payload = self._model_payload()
            payload.update(epoch=self.epoch, validation_correlation=correlation)
            checkpoint.save(self.folder / checkpoint.BEST, payload)
        elif decision in ("restored", "stop"):
            self.model.load_state_dict(self.best)
        log.info("epoch %d: loss %.5g, %s correlation %.4f (%s)", self.epoch, loss,
                 config.val_tier, correlation, decision)
        return {"epoch": self.epoch, "lr": lr, "train_loss": loss,
                "validation_correlation": correlation,
                "seconds": round(time.perf_counter() - start, 3)}

    def _report_speed(self, per_batch: float, steps: int) -> None:
        """Log the device and the time an epoch will take, from the second batch (the first
        with a single one); warn when a model of its published size trains on a CPU."""
        epoch = per_batch * steps
        log.info("training on %s: %.3g s per batch, about %.0f s per epoch of %d batches",
                 self.device, per_batch, epoch, steps)
        if self.device.type == "cpu" and self.published_size and per_batch > 1:
            log.warning(
                "%s at its published size trains on the CPU at %.3g s per batch (measured), "
                "about %.1f min per epoch of %d batches. Train on a GPU (--device "
                "cuda), or narrow the model for a CPU (its size options: docs/models.md; "
                "docs/benchmarks.md has the measured costs).",
                self.config.model, per_batch, epoch / 60, steps)

    def _model_payload(self) -> dict[str, Any]:
        return checkpoint.model_payload(self.model, self.specs, self.clips.in_channels)

    def save(self) -> None:
        """Write last.pt (everything a resume needs) and metrics.csv."""
        payload = {
            "format": checkpoint.FORMAT,
            "model": self._model_payload(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stopping": self.stopping.state_dict(),
            "history": self.history,
            "epoch": self.epoch,
            "rng": checkpoint.rng_state(),
        }
        checkpoint.save(self.folder / checkpoint.LAST, payload)
        write_metrics(self.folder / METRICS, self.history)

    def score(self) -> None:
        """Predict every labelled tier but train with the best model; write scores.csv."""
        from sensorium_models.leaderboard import evaluate

        tiers = scored_tiers(self.datasets)
        if not tiers:
            log.warning("no labelled tier besides train: no scores.csv")
            return
        predictions = predict(self.model, self.datasets, tiers=tiers,
                              batch_size=self.config.batch_size, device=str(self.device),
                              progress=self.config.progress, **data.loader_options(self.config))
        table = evaluate(predictions, self.datasets, scale="official")
        table.to_csv(self.folder / SCORES, index=False)
        log.info("scores written to %s", self.folder / SCORES)


def warn_few_train_trials(config: TrainConfig, datasets: Mapping[str, xr.Dataset]) -> None:
    """Log a warning naming ``normalize="per_neuron"`` when the competition's per-frame
    statistics come from fewer than ``FEW_TRAIN_TRIALS`` train trials of some recording."""
    if config.normalize != "official":
        return
    counts = {m: int((ds["tier"].values.astype(str) == config.train_tier).sum())
              for m, ds in datasets.items()}
    few = {m: n for m, n in counts.items() if n < FEW_TRAIN_TRIALS}
    if few:
        listed = ", ".join(f"{m} ({n})" for m, n in few.items())
        log.warning(
            "few %s trials in %s: normalize='official' divides each frame by its standard "
            "deviation over these trials, too few to estimate it (a quiet neuron's frame gets "
            "up to 100x weight), and such runs learn little beyond the mean. Pass --set "
            "normalize=per_neuron (docs/training.md, 'When training goes wrong').",
            config.train_tier, listed)


def scored_tiers(datasets: Mapping[str, xr.Dataset]) -> list[str]:
    """Tiers with labelled trials in some recording, except train."""
    out: set[str] = set()
    for ds in datasets.values():
        labelled = ds["labelled"].values.astype(bool) & (ds["n_frames"].values > 0)
        out |= set(ds["tier"].values.astype(str)[labelled])
    return sorted(str(t) for t in out - {"train", "none"})


def write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(history)
    partial.replace(path)
