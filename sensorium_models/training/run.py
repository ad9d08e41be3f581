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

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sensorium_data.errors import Fix, Message, reason
from sensorium_models.predictions import fill_cache
from sensorium_models.scoring_inputs import scored_tiers
from sensorium_models.training import checkpoint, data, distributed, guards, images, schedule
from sensorium_models.training.batchnorm import recompute_batch_norm
from sensorium_models.training.calibrate import calibrate_start, for_evaluation, set_readout_biases
from sensorium_models.training.checkpoint import write_metrics
from sensorium_models.training.compiling import compile_model
from sensorium_models.training.config import ConfigError, TrainConfig
from sensorium_models.training.ema import WeightAverage
from sensorium_models.training.lock import claim, new_run_dir
from sensorium_models.training.loop import train_epoch, validate
from sensorium_models.training.losses import get_loss
from sensorium_models.training.optim import build_optimizer
from sensorium_models.training.options import resolve_model_config
from sensorium_models.training.precision import resolve_precision
from sensorium_models.training.predict import predict, resolve_device
from sensorium_models.training.preflight import check_window
from sensorium_models.training.recompute import enable_checkpointing

if TYPE_CHECKING:
    import xarray as xr
    from torch import nn

    from sensorium_models.models import VideoEncoder

log = logging.getLogger(__name__)

METRICS, SCORES = "metrics.csv", "scores.csv"
# Training batches whose statistics the batch norm layers keep for evaluation, taken after
# every epoch with the epoch's clip windows (docs/models.md, "Batch norm").
NORM_BATCHES = 64


def train(config: TrainConfig | str | os.PathLike[str], *,
          resume: str | os.PathLike[str] | None = None) -> Path:
    """Train a model on recordings; return the run directory.

    By default AdamW with ReduceLROnPlateau and early stopping on the validation tier's
    single-trial correlation; one optimizer step sums the Poisson losses of one batch of
    random clips of each mouse. The config's recipe keys change that (see
    :class:`TrainConfig`): Adam, separate LR and weight decay for the readouts, a per-step
    warm-up + cosine schedule, batches mixing mice, CutMix, a moving average of the weights,
    fp16/bf16, gradient accumulation. Every epoch writes ``last.pt`` and ``metrics.csv``
    (and ``best.pt`` when the validation correlation improves); at the end the best model
    predicts every labelled tier but train, and ``scores.csv`` holds its leaderboard table
    (``sensorium_models.evaluate``, official scale).

    Parameters
    ----------
    config
        A :class:`TrainConfig`, or a path to a TOML or JSON file of one.
    resume
        A run directory to continue from its ``last.pt`` (weights, optimizer, scheduler,
        early stopping, moving average, gradient scaler, RNG, epoch). ``config`` must equal
        the run's, except for the keys of where and how fast it runs and how long
        (``RUNTIME_KEYS``: ``max_epochs`` (not with ``schedule="warmup_cosine"``, whose
        cosine it sets), ``device``, ``amp``, ``precision``, ``compile``, ``num_workers``,
        ``in_memory``, ``progress``, ``data_dir``, ``download``, ``score``, ``out``).

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
    >>> import sensorium_models as sm  # the smallest model on the simulated tiny mice, a CPU
    >>> config = sm.TrainConfig(model="ln", mice=tiny, max_epochs=1, batch_size=2,
    ...                         device="cpu", progress=False, score=False, out="runs/ln")
    >>> run = sm.train(config)
    >>> run = sm.train(sm.read_config(run), resume=run)  # after an interruption
    >>> config = sm.TrainConfig(model="factorized_baseline", mice=("F", "G"))  # on a GPU
    >>> run = sm.train(config)  # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_file(config)
    with distributed.session(config) as world:
        return _train(config, resume, world)


def _train(config: TrainConfig, resume: str | os.PathLike[str] | None,
           world: distributed.World) -> Path:
    options = resolve_model_config(config.model, config.model_config)
    config = dataclasses.replace(config, model_config=json.loads(json.dumps(options)),
                                 lr=config.start_lr)
    if resume is not None:
        folder = Path(resume)
        saved = checkpoint.read_config(folder)
        differing = saved.differences(config)
        if differing:
            a, b = saved.to_dict(), config.to_dict()
            details = "; ".join(f"{k}: run {_get(a, k)!r}, now {_get(b, k)!r}" for k in differing)
            msg = Message(
                f"cannot resume {folder} with another config; differing keys: {details}. "
                "Resume with the run's own config (",
                Fix(f"train(read_config({str(folder)!r}), resume={str(folder)!r})",
                    f"sensorium train --resume {folder}, without other options"),
                ") or start a new run.",
            )
            raise ConfigError(msg)
        schedule.check_resume(saved, config)
    else:
        folder = new_run_dir(config) if world.main else Path()  # the others get rank 0's
    # one run at a time: a new run's folder is made here, and removed if the data fails
    with (claim(folder, new=resume is None, numbered=not config.out) if world.main
          else nullcontext(folder)) as folder:
        folder = distributed.share_folder(folder, world)
        state = None if resume is None else checkpoint.load(folder / checkpoint.LAST)
        done = None if state is None else finished(state, config.max_epochs)
        if done is not None:
            log.warning("%s is finished: %s; nothing to resume.", folder, done)
            return folder
        config = dataclasses.replace(config, out=str(folder))
        trainer = Trainer(config, options, folder, state)  # opens the data
        if world.main:
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
        return Message(f"it has run max_epochs={max_epochs} epochs; pass a larger ",
                       Fix("max_epochs", "--max-epochs"), " to train it longer")
    return None


def _get(values: Mapping[str, Any], key: str) -> Any:
    head, _, tail = key.partition(".")
    return values[head].get(tail) if tail else values.get(key)


class Trainer:
    """The state of one run while it trains."""

    def __init__(self, config: TrainConfig, options: dict[str, Any], folder: Path,
                 state: dict[str, Any] | None):
        from sensorium_data import MouseBatchSampler
        from sensorium_models.models import create_model, mouse_specs

        self.config, self.folder = config, folder
        self.world = distributed.current()
        self.device = distributed.rank_device(resolve_device(config.device), self.world)
        self.autocast, self.scaler = resolve_precision(config, self.device)
        torch.manual_seed(config.seed)
        self.datasets = data.open_mice(config)
        guards.warn_few_train_trials(config, self.datasets)
        train_sets, val_sets, tiers = self._split(config)
        self.static = images.is_static(self.datasets)  # 2022 recordings: images
        self.clips = (images.image_set(config, train_sets, tiers[0]) if self.static
                      else data.clips(config, train_sets, tiers[0]))
        self.validation = (images.image_set(config, val_sets, tiers[1]) if self.static else
                           data.trials(val_sets, tiers[1], data.loader_options(config)))
        self.specs = mouse_specs(self.datasets)
        self.means = (images.mean_responses(self.clips, config.batch_size) if self.static
                      else data.mean_responses(config, train_sets, config.batch_size,
                                               tier=tiers[0]))
        means = self.means
        if state is None:
            self.specs = {m: dataclasses.replace(s, mean_response=means[m])
                          for m, s in self.specs.items()}
        try:
            model = create_model(config.model, mice=self.specs,
                                 in_channels=self.clips.in_channels, **options)
        except TypeError as e:  # an option of the wrong type, named by create_model
            raise ConfigError(Message("model_config: ", reason(e))) from e
        check_window(config, model)
        self.teacher: VideoEncoder | None = None
        if config.teacher is not None:
            from sensorium_models.training.distill import check_teacher

            try:
                teacher = check_teacher(config.teacher, model=config.model,
                                        mice=list(self.datasets), options=config.to_dict())
            except ValueError as e:
                raise ConfigError(str(e)) from e
            self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        if config.frames <= model.burn_in:
            msg = (f"frames={config.frames}: {config.model}'s first {model.burn_in} frames of a "
                   f"clip are burn-in and give no prediction; pass frames of at least "
                   f"{model.burn_in + 1} (default 80).")
            raise ConfigError(msg)
        if config.checkpoint_activations:
            enable_checkpointing(model, config.model)
        model = model.to(self.device)
        if state is None:  # the biases that give the mean responses on training clips
            calibrate_start(model, self.clips, means, batch_size=config.batch_size,
                            device=self.device, autocast=self.autocast)
        self.model: VideoEncoder
        self.model, self.forward = distributed.wrap(model, self.device, self.world)
        if config.compile:
            if self.device.type == "cuda":
                self.forward = compile_model(self.forward)
            else:
                log.info("compile=true is ignored on %s (only worth it on a GPU)", self.device)
        self.core: nn.Module = self.model.core
        if config.mixed_mice and self.forward is not self.model:
            # batches that mix mice run the core alone, then each mouse's readout on its clips
            self.core = torch.compile(self.model.core)  # type: ignore[assignment]
        self.lr = config.start_lr
        self.optimizer = build_optimizer(self.model, config)
        self.stopping = schedule.build_stopping(config)
        try:
            self.sampler = MouseBatchSampler(  # each rank its share of the batch
                self.clips, config.batch_size // self.world.size,
                mode="mixed" if config.mixed_mice else "per_mouse", drop_last=config.drop_last,
                seed=config.seed, num_replicas=self.world.size, rank=self.world.rank)
        except ValueError as e:  # a mouse with fewer train clips than batch_size
            msg = f"{e} (in the config: batch_size, drop_last)"
            raise ConfigError(msg) from e
        self.loader = data.loader(self.clips, self.sampler, config.num_workers)
        # a round: one batch of each mouse, or one batch of mixed mice
        rounds = 1 if config.mixed_mice else len(self.clips.mice)
        self.batches_per_step = rounds * config.accumulate
        self.scheduler = schedule.build_scheduler(
            config, self.optimizer, -(-len(self.sampler) // self.batches_per_step))
        self.average = WeightAverage(self.model, config.ema) if config.ema else None
        # sqrt(trials / clips per step and mouse) per mouse, counting every trial with files
        # (all tiers), as the starter kit's len(dataset) does; times the ranks, as DDP
        # averages their gradients
        self.norm_batches = data.interleaved_batches(self.clips, config.batch_size, NORM_BATCHES)
        n_trials = {m: int((ds["tier"] != "none").sum()) for m, ds in self.datasets.items()}
        clips = config.batch_size * config.accumulate
        self.loss_scale = {m: math.sqrt(n / clips) * self.world.size
                           for m, n in n_trials.items()}
        self.history: list[dict[str, float]] = []
        self.timed = False  # the speed of the first batch is reported once per process
        defaults = resolve_model_config(config.model, {})
        self.published_size = all(
            options[k] == v for k, v in defaults.items()
            if isinstance(v, int | tuple) and not isinstance(v, bool))
        self.epoch = 0
        self.best: dict[str, torch.Tensor] | None = None
        self.best_biases: dict[str, torch.Tensor] = {}  # best's readout biases, not calibrated
        if state is not None:
            self._restore(state)

    def _split(self, config: TrainConfig) -> tuple[Mapping[str, xr.Dataset],
                                                   Mapping[str, xr.Dataset],
                                                   tuple[str | list[str], str | list[str]]]:
        """Training and validation recordings and tiers: the configured tiers, or with a
        ``fold`` both tiers pooled and split by video."""
        if config.fold is None:
            return self.datasets, self.datasets, (config.train_tier, config.val_tier)
        from sensorium_models.training.folds import split_by_fold

        pooled = [config.train_tier, config.val_tier]
        try:
            train, validation = split_by_fold(self.datasets, pooled, config.fold, config.folds)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        return train, validation, (pooled, pooled)

    def _restore(self, state: dict[str, Any]) -> None:
        sources = dict(zip(self.datasets, self.config.mice, strict=True))
        last, best_path = self.folder / checkpoint.LAST, self.folder / checkpoint.BEST
        checkpoint.check_mice(state["model"], self.specs, last, sources)
        checkpoint.load_weights(self.model, state["model"]["state_dict"], last)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stopping.load_state_dict(state["stopping"])
        if self.average is not None and "ema" in state:
            self.average.load_state_dict(state["ema"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.history = [dict(row) for row in state["history"]]
        self.epoch = int(state["epoch"])
        if best_path.exists():
            best = checkpoint.load(best_path)
            checkpoint.check_mice(best, self.specs, best_path, sources)
            self.best = {k: v.to(self.device) for k, v in best["state_dict"].items()}
        checkpoint.set_rng_state(state["rng"])
        log.info("resumed %s after epoch %d", self.folder, self.epoch)

    def fit(self) -> None:
        from tqdm.auto import tqdm

        config = self.config
        bar = tqdm(total=config.max_epochs, initial=self.epoch,
                   disable=not (config.progress and self.world.main),
                   desc=f"training {config.model}", unit="epoch", dynamic_ncols=True)
        if self.history:
            bar.set_postfix(self._postfix(self.history[-1]))
        while not self.stopping.stopped and self.epoch < config.max_epochs:
            self.epoch += 1
            with distributed.guard(self.world, self.folder, self.epoch - 1):
                row = self._epoch(bar)
            self.history.append(row)
            self.save()
            bar.update()
            bar.set_postfix(self._postfix(row))
            problem = guards.failure(self.history, lr=self.lr, val_tier=config.val_tier)
            if problem is not None:
                bar.close()
                msg = Message(f"training stopped after epoch {self.epoch}: ", problem,
                              f" The epochs so far are in {self.folder / METRICS}.")
                raise guards.TrainingFailedError(msg)
        bar.close()
        if not self.stopping.stopped and self.best is not None:
            self.model.load_state_dict(self.best)  # max_epochs reached: end with the best
        if self.config.score and self.world.main:
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
                           loss_scale=self.loss_scale, batches_per_step=self.batches_per_step,
                           device=self.device, autocast=self.autocast, on_batch=on_batch,
                           on_step=self._after_step, cutmix=config.cutmix, scaler=self.scaler,
                           regularizer_scale=1 / config.accumulate, core=self.core,
                           criterion=get_loss(config.loss), teacher=self.teacher)
        loss = distributed.mean(loss, self.world)  # every rank's share: the whole batch's
        bar.set_description(f"training {config.model}", refresh=False)
        evaluated = self.model if self.average is None else self.average.module
        # batch norm's running statistics lag the weights: recomputed for the evaluated ones
        core: Any = evaluated.core
        recompute_batch_norm(core, data.loader(self.clips, self.norm_batches,
                                               config.num_workers),
                             device=self.device, autocast=self.autocast)
        # biases calibrated for validation and best.pt; training goes on from its own
        with for_evaluation(evaluated, self.clips, self.means, batch_size=config.batch_size,
                            device=self.device, autocast=self.autocast) as trained_biases:
            # every rank evaluates rank 0's weights (its calibration, its batch-norm pass)
            distributed.broadcast_module(evaluated, self.world)
            correlation = (images.validate if self.static else validate)(
                evaluated, self.validation, batch_size=config.batch_size, device=self.device,
                autocast=self.autocast, num_workers=config.num_workers)
            # Every rank validates; nondeterministic kernels can make their numbers differ in
            # the last digits, and a rank that decided alone to stop would leave the others
            # waiting in their next collective: all decide on the mean.
            correlation = distributed.mean(correlation, self.world)
            # EarlyStopping comes with the plateau scheduler, KeepBest ignores the scheduler
            decision = self.stopping.step(correlation, self.epoch,
                                          self.scheduler)  # type: ignore[arg-type]
            if decision == "improved" or self.best is None:
                self.best = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
                self.best_biases = trained_biases
                payload = checkpoint.model_payload(evaluated, self.specs, self.clips.in_channels)
                payload.update(epoch=self.epoch, validation_correlation=correlation)
                if self.world.main:
                    checkpoint.save(self.folder / checkpoint.BEST, payload)
        if decision in ("restored", "stop"):  # stop: ends calibrated; restored: trains on
            self.model.load_state_dict(self.best)
            if self.average is not None:
                self.average.reset(self.best)
            if decision == "restored" and self.best_biases:  # (unknown after a resume)
                for module in (self.model, evaluated):
                    set_readout_biases(module, self.best_biases)
        log.info("epoch %d: loss %.5g, %s correlation %.4f (%s)", self.epoch, loss,
                 config.val_tier, correlation, decision)
        return {"epoch": self.epoch, "lr": lr, "train_loss": loss,
                "validation_correlation": correlation,
                "seconds": round(time.perf_counter() - start, 3)}

    def _after_step(self) -> None:
        """After each optimizer step: a per-step schedule steps, the moving average moves."""
        if schedule.per_step(self.config):
            self.scheduler.step()  # type: ignore[call-arg]
        if self.average is not None:
            self.average.update(self.model)

    def _report_speed(self, per_batch: float, steps: int) -> None:
        """Log the device and the time an epoch will take, from the second batch (the first
        with a single one); warn when a model of its published size trains on a CPU."""
        epoch = per_batch * steps
        log.info("training on %s: %.3g s per batch, about %.0f s per epoch of %d batches",
                 self.device, per_batch, epoch, steps)
        if self.device.type == "cpu" and self.published_size and per_batch > 1:
            log.warning(
                "%s at its published size trains on the CPU at %.3g s per batch (measured), "
                "about %.1f min per epoch of %d batches. Train on a GPU (%s), or narrow "
                "the model for a CPU (its size options: docs/models.md; docs/benchmarks.md "
                "has the measured costs).",
                self.config.model, per_batch, epoch / 60, steps,
                Message(Fix("device='cuda'", "--device cuda")))

    def save(self) -> None:
        """Write last.pt (everything a resume needs) and metrics.csv (rank 0)."""
        if not self.world.main:
            return
        payload = {
            "format": checkpoint.FORMAT,
            "model": checkpoint.model_payload(self.model, self.specs, self.clips.in_channels),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stopping": self.stopping.state_dict(),
            "history": self.history,
            "epoch": self.epoch,
            "rng": checkpoint.rng_state(),
        }
        if self.average is not None:
            payload["ema"] = self.average.state_dict()
        if self.scaler is not None:
            payload["scaler"] = self.scaler.state_dict()
        checkpoint.save(self.folder / checkpoint.LAST, payload)
        write_metrics(self.folder / METRICS, self.history)

    def score(self) -> None:
        """Predict every labelled tier but train with the best model; write scores.csv."""
        from sensorium_models.leaderboard import evaluate

        if self.static:
            return images.score(self.model, self.datasets, self.config, self.folder / SCORES,
                                self.device, self.autocast)
        tiers = scored_tiers(self.datasets)
        if self.config.fold is not None:  # both tiers were pooled and trained on, in part
            pooled = {self.config.train_tier, self.config.val_tier}
            log.info("fold %d: %s not scored (their trials trained this run, but for the "
                     "fold's own)", self.config.fold, ", ".join(sorted(pooled)))
            tiers = [t for t in tiers if t not in pooled]
        if not tiers:
            log.warning("no labelled tier besides the ones trained on: no scores.csv")
            return
        predictions = predict(self.model, self.datasets, tiers=tiers,
                              batch_size=self.config.batch_size, device=str(self.device),
                              progress=self.config.progress, **data.loader_options(self.config))
        if (self.folder / checkpoint.BEST).is_file():  # the model is best.pt's: cached
            fill_cache(self.folder, self.datasets, predictions, self.device.type)
        table = evaluate(predictions, self.datasets, scale="official")
        table.to_csv(self.folder / SCORES, index=False)
        log.info("scores written to %s", self.folder / SCORES)
