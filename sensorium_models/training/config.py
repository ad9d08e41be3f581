"""The training configuration: a typed dataclass, read from TOML or JSON, overridden by flags.

A config file holds the fields of :class:`TrainConfig` at the top level and the model's own
options in a ``[model_config]`` table::

    model = "factorized_baseline"
    mice = ["F", "G", "H", "I", "J"]
    lr = 0.005
    max_epochs = 200

    [model_config]                 # fields of sensorium_models.model_config(model)
    hidden_channels = [32, 64, 128]

A flag ``--set key=value`` (``model_config.key=value`` for the model) parses ``value`` as a
TOML value (``3``, ``0.01``, ``true``, ``[16, 32]``, ``"text"``; a bare word is a string).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sensorium_data.errors import Fix, Message
from sensorium_models.coerce import Mismatch, coerce

MODEL_KEY = "model_config"
PUBLISHED_LR = 5e-3
DEFAULT_LR = {"ln": 5e-4}
NORMALIZE = ("official", "per_neuron", "official_viv1t", "none")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("plateau", "warmup_cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Keys that may change when a run is resumed: where and how fast it runs, and how long.
RUNTIME_KEYS = frozenset(
    {"device", "num_workers", "in_memory", "progress", "out", "compile", "amp", "precision",
     "max_epochs", "data_dir", "download", "score", "checkpoint_activations"}
)


class ConfigError(ValueError):
    """A configuration that cannot be used: unknown key, wrong type, or a resume mismatch."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; the run directory keeps it as ``config.json``.

    Attributes
    ----------
    model
        A registered model name (:func:`sensorium_models.list_models`).
    mice
        Recordings to train on: letters (``"F"``), names, or paths to stores or file trees
        (anything :func:`sensorium_data.open_mouse` accepts).
    model_config
        Overrides of the model's defaults (:func:`sensorium_models.model_config`); the run
        directory stores all of the model's fields, resolved.
    data_dir, download
        The data cache (default ``$SENSORIUM_DATA_DIR``), and whether a recording missing
        from it may be downloaded.
    normalize
        ``"official"`` (the competition's per-frame statistics), ``"per_neuron"``,
        ``"official_viv1t"`` (official, but videos ``(x - mean) / (std - mean)`` as ViV1T's
        loader, faithful to its likely bug) or ``"none"``: how the loaders scale videos,
        behaviour and responses.
    behavior_channels, pupil_channels
        Behaviour (pupil dilation, running speed) and pupil position as extra video channels.
    track, image_scale
        2022 (static image) recordings only: ``"sensorium"`` (the image alone) or
        ``"sensorium+"`` (behaviour as 3 extra image channels; pair it with
        ``model_config.shifter = true``), and the image scale (0.25: the starter kit's 36 x 64).
    train_tier, val_tier
        The tier of the training clips, and the tier whose single-trial correlation drives
        the LR schedule and early stopping.
    frame_step, canvas, relu_responses
        Loader options (:class:`sensorium_data.ClipDataset`): training clips take every
        ``frame_step``-th frame (whole trials keep all); frames centred on a ``canvas`` x
        ``canvas`` square (None: 36 x 64 as recorded); responses below zero set to zero.
        DwiseNeuro: 2, 64, true.
    fold, folds
        Cross-validation by video (:mod:`sensorium_models.training.folds`): with ``fold`` K,
        the trials of ``train_tier`` and ``val_tier`` are pooled, those of fold K of
        ``folds`` validate and the others train. None: train on ``train_tier``, validate on
        ``val_tier``.
    teacher
        A finished run directory of the same model family on the same mice whose predictions
        fill the targets of mice not recorded in a sample (DwiseNeuro's stage 2); checked when
        the run starts (:func:`sensorium_models.training.distill.check_teacher`).
    frames, batch_size
        Frames per training clip, trials per batch (one mouse per batch).
    drop_last
        Leave out the smaller last batch of each pass over a mouse's trials. Batch norm's
        running statistics follow the latest batches (momentum 0.7 in the factorized core),
        and validation and prediction use them: a last batch of one or two clips sets them
        from those clips alone (docs/training.md, "How a run trains": one such batch cut a
        run's oracle correlation from 0.244 to 0.143). The starter kit keeps such batches.
        (Measured before the running statistics were recomputed after every epoch from up to
        64 batches, which takes the last batch's weight out of evaluation.)
    in_memory, num_workers
        Hold the training tier in RAM; DataLoader worker processes.
    optimizer, lr, weight_decay
        ``"adamw"`` (decoupled weight decay) or ``"adam"`` (``weight_decay`` as an L2 term
        of the gradient); the learning rate and weight decay of every parameter but the
        readouts' (and of those too unless ``readout_lr``, ``readout_weight_decay`` are set).
        ``lr`` None (the default) takes the model's starting rate, :func:`default_lr` (the
        run's ``config.json`` holds the number).
    readout_lr, readout_weight_decay
        The learning rate and weight decay of the readouts and shifters, a second parameter
        group; ``None``: ``lr``, ``weight_decay``.
    schedule
        ``"plateau"``: ReduceLROnPlateau and early stopping in rounds (below).
        ``"warmup_cosine"``: per optimizer step, a linear warm-up from 0 over
        ``warmup_epochs``, ``constant_epochs`` at ``lr``, then a cosine down to ``min_lr``
        (each group to its LR times ``min_lr / lr``) at the end of ``max_epochs``; no early
        stopping: every epoch trains, ``best.pt`` keeps the best validation epoch.
    warmup_epochs, constant_epochs
        The warm-up and constant parts of ``"warmup_cosine"``, in epochs (fractions allowed).
    loss
        ``"poisson"`` (the baselines') or ``"poisson_correlation"`` (ViV1T's: Poisson plus
        1000 x the sum over neurons of 1 - correlation); see
        :mod:`sensorium_models.training.losses`.
    max_epochs, patience, lr_decay_steps, factor, threshold, min_lr
        As the starter kit's early stopping: a round ends after ``patience`` epochs in a
        row without improving the validation correlation by more than ``threshold``, and
        puts the best weights back; training stops when ``lr_decay_steps`` rounds have
        ended, or after ``max_epochs``. ReduceLROnPlateau (mode max, absolute
        ``threshold``, never reset) multiplies the LR by ``factor`` (not below ``min_lr``)
        after more than ``patience`` epochs without improvement.
    mixed_mice
        Batches that mix mice (one shuffle of every mouse's train clips): the core sees the
        whole batch, each readout only its mouse's clips, and the loss counts each clip for
        its own mouse only. Otherwise one mouse per batch and one batch of each mouse per
        optimizer step, as the baselines train.
    cutmix
        The probability that a clip gets CutMix: a box of another clip of the same mouse
        in the batch (Beta(1, 1) area, every channel, every frame) pasted over it, the
        targets mixed by the box's share of the frame. 0: off.
    ema
        The decay of an exponential moving average of the weights (buffers included),
        updated after every optimizer step; validation, ``best.pt`` and the scores use it.
        0: off.
    precision
        Autocast of the forward passes: ``"fp32"`` (none), ``"bf16"``, ``"fp16"`` (with a
        gradient scaler), or ``"auto"``: bf16 on a GPU when ``amp``, fp32 otherwise.
    accumulate
        Optimizer steps sum the gradients of this many rounds of batches (a round: one
        batch of each mouse; with ``mixed_mice``, one batch). The loss scale counts
        ``batch_size * accumulate`` clips, so ``batch_size=4, accumulate=2`` trains as
        ``batch_size=8`` does.
    seed
        Seeds the weights, the clip windows and the batch order.
    device, amp, compile
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; bf16 autocast
        on a GPU (with ``precision="auto"``) and ``torch.compile`` of the training forward
        pass (only on a GPU).
    checkpoint_activations
        Keep no activations inside the core's blocks but recompute them in the backward
        pass: memory for time (about a third more per step). For the cores built of blocks
        (``dwiseneuro``, ``dynamic_v1fm``, ``viv1t``); the results are the same.
    progress
        Show progress bars.
    score
        After training, predict every labelled tier but train with the best model and write
        the leaderboard table (``scores.csv``, official scale).
    out
        The run directory (default: ``runs/<model>-<date>-<time>``).
    """

    model: str = "factorized_baseline"
    mice: tuple[str, ...] = ()
    model_config: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    download: bool = True
    normalize: str = "official"
    behavior_channels: bool = True
    pupil_channels: bool = False
    track: str = "sensorium"
    image_scale: float = 0.25
    train_tier: str = "train"
    val_tier: str = "oracle"
    frame_step: int = 1
    canvas: int | None = None
    relu_responses: bool = False
    fold: int | None = None
    folds: int = 7
    teacher: str | None = None
    frames: int = 80
    batch_size: int = 8
    drop_last: bool = True
    in_memory: bool = False
    num_workers: int = 0
    lr: float | None = None
    weight_decay: float = 0.01
    loss: str = "poisson"
    max_epochs: int = 200
    patience: int = 5
    lr_decay_steps: int = 4
    factor: float = 0.3
    threshold: float = 1e-6
    min_lr: float = 1e-4
    optimizer: str = "adamw"
    readout_lr: float | None = None
    readout_weight_decay: float | None = None
    schedule: str = "plateau"
    warmup_epochs: float = 0.0
    constant_epochs: float = 0.0
    mixed_mice: bool = False
    cutmix: float = 0.0
    ema: float = 0.0
    accumulate: int = 1
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    precision: str = "auto"
    compile: bool = False
    checkpoint_activations: bool = False
    progress: bool = True
    score: bool = True
    out: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), _hints()[f.name]))
        self._check()
        self._check_recipe()

    def _check(self) -> None:
        from sensorium_models.training.losses import LOSSES

        if self.normalize not in NORMALIZE:
            msg = f"normalize={self.normalize!r}; choose one of {list(NORMALIZE)}."
            raise ConfigError(msg)
        if self.loss not in LOSSES:
            msg = f"loss={self.loss!r}; choose one of {list(LOSSES)}."
            raise ConfigError(msg)
        if self.track not in ("sensorium", "sensorium+") or not self.image_scale > 0:
            msg = (f"track={self.track!r}, image_scale={self.image_scale}: the 2022 track is "
                   "'sensorium' or 'sensorium+' and the image scale positive (0.25: 36 x 64).")
            raise ConfigError(msg)
        if self.folds < 2:
            msg = f"folds={self.folds}; cross-validation needs at least 2 folds (DwiseNeuro: 7)."
            raise ConfigError(msg)
        if self.fold is not None and not 0 <= self.fold < self.folds:
            msg = Message(f"unknown fold {self.fold}; with folds={self.folds} the folds are 0 "
                          f"to {self.folds - 1}. Pass ", Fix("fold=K", "--fold K"),
                          " with K in that range (one model per fold).")
            raise ConfigError(msg)
        if self.canvas is not None and self.canvas < 1:
            msg = (f"canvas={self.canvas}; pass the side of the square to centre the frames on "
                   "(64 for DwiseNeuro), or leave it unset for the recorded 36 x 64.")
            raise ConfigError(msg)
        for name in ("frames", "batch_size", "max_epochs", "patience", "lr_decay_steps",
                     "frame_step"):
            if getattr(self, name) < 1:
                msg = f"{name}={getattr(self, name)}; it must be a positive integer"
                if name == "lr_decay_steps":
                    msg += " (1: stop at the first round's end, without restarting)"
                raise ConfigError(msg + ".")
        for name in ("num_workers", "seed"):
            if getattr(self, name) < 0:
                msg = f"{name}={getattr(self, name)}; it must be a non-negative integer."
                raise ConfigError(msg)
        for f in fields(self):  # inf or nan would train, then fail or never improve
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                default = default_lr(self.model) if f.name == "lr" else f.default
                msg = Message(f"{f.name}={value}; it must be a finite number (default "
                              f"{default}, e.g. ", Fix(f"{f.name}={default}",
                                                       f"--set {f.name}={default}"), ").")
                raise ConfigError(msg)
        if not 0 < self.factor < 1:
            msg = f"factor={self.factor}; the LR decay factor must lie in (0, 1)."
            raise ConfigError(msg)
        for name in ("lr", "min_lr"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                msg = f"{name}={value}; a learning rate must be positive."
                raise ConfigError(msg)
        if self.threshold < 0:  # weight_decay: with the recipe keys (_check_recipe)
            msg = (f"threshold={self.threshold}; the improvement an epoch must make to count "
                   "must be 0 or more.")
            raise ConfigError(msg)
        lr = self.lr if self.lr is not None else default_lr(self.model)
        if self.min_lr > lr:
            msg = (f"min_lr={self.min_lr} is above lr={lr}: the schedule could never "
                   "decay; lower min_lr (default 1e-4) or raise lr.")
            raise ConfigError(msg)

    def _check_recipe(self) -> None:
        """The optimizer, schedule, batches, augmentation, averaging and precision keys."""
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                msg = f"{name}={getattr(self, name)!r}; choose one of {list(choices)}."
                raise ConfigError(msg)
        for name in ("weight_decay", "readout_weight_decay", "warmup_epochs", "constant_epochs"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                msg = f"{name}={value}; it must be a finite number >= 0."
                raise ConfigError(msg)
        if self.readout_lr is not None and not 0 < self.readout_lr < math.inf:
            msg = (f"readout_lr={self.readout_lr}; a learning rate must be positive (or leave "
                   "it unset: the readouts then train at lr).")
            raise ConfigError(msg)
        if self.teacher is not None and not (self.mixed_mice and self.loss == "poisson"):
            msg = Message(f"teacher={self.teacher!r} with mixed_mice={self.mixed_mice}, loss="
                   f"{self.loss!r}: distillation fits every mouse's readout on every clip of a "
                   "batch that mixes mice, with the Poisson loss (DwiseNeuro's stage 2); pass ",
                   Fix("mixed_mice=True, loss='poisson'",
                       "--set mixed_mice=true --set loss=poisson"),
                   " (docs/recipes/dwiseneuro_distilled.toml).")
            raise ConfigError(msg)
        if self.schedule == "warmup_cosine":
            if self.warmup_epochs + self.constant_epochs > self.max_epochs:
                msg = (f"warmup_epochs={self.warmup_epochs} + constant_epochs="
                       f"{self.constant_epochs} exceed max_epochs={self.max_epochs}: the "
                       "cosine would never start; raise max_epochs or shorten them.")
                raise ConfigError(msg)
        elif self.warmup_epochs or self.constant_epochs:
            msg = (f"warmup_epochs={self.warmup_epochs}, constant_epochs={self.constant_epochs} "
                   f"with schedule={self.schedule!r}: they shape schedule='warmup_cosine' "
                   "only; set schedule='warmup_cosine' or leave them at 0.")
            raise ConfigError(msg)
        if not 0 <= self.cutmix <= 1:
            msg = f"cutmix={self.cutmix}; it is a probability per clip, in [0, 1] (0: off)."
            raise ConfigError(msg)
        if not 0 <= self.ema < 1:
            msg = (f"ema={self.ema}; the decay of the weights' moving average must lie in "
                   "[0, 1) (0: off; the 2023 winner used 0.999).")
            raise ConfigError(msg)
        if self.accumulate < 1:
            msg = (f"accumulate={self.accumulate}; it must be a positive integer (rounds of "
                   "batches per optimizer step; 1: one round).")
            raise ConfigError(msg)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from a mapping (a parsed file); unknown keys are an error naming the valid ones.

        Examples
        --------
        >>> TrainConfig.from_dict({"model": "ln", "mice": ["F"], "lr": 1e-3}).lr
        0.001
        >>> TrainConfig.from_dict({"lrr": 1})
        Traceback (most recent call last):
        ...
        sensorium_models.training.config.ConfigError: unknown config key 'lrr'; valid keys: ...
        """
        check_keys(values.keys())
        return cls(**dict(values))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a ``.toml`` or ``.json`` config file (a run directory's ``config.json`` too)."""
        return cls.from_dict(read_file(path))

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainConfig:
        """A copy with ``overrides`` applied; ``"model_config.key"`` keys set model options.

        Examples
        --------
        >>> c = TrainConfig(model="ln").with_overrides({"lr": 0.01, "model_config.kernel": 5})
        >>> c.lr, c.model_config
        (0.01, {'kernel': 5})
        """
        values = self.to_dict()
        nested = dict(values[MODEL_KEY])
        for key, value in overrides.items():
            if key.startswith(MODEL_KEY + "."):
                nested[key.removeprefix(MODEL_KEY + ".")] = value
            elif key == MODEL_KEY:
                if not isinstance(value, Mapping):
                    msg = f"{MODEL_KEY} must be a table of the model's options; got {value!r}."
                    raise ConfigError(msg)
                nested.update(value)
            else:
                check_keys([key])
                values[key] = value
        values[MODEL_KEY] = nested
        return TrainConfig.from_dict(values)

    @property
    def start_lr(self) -> float:
        """``lr``, or the model's :func:`default_lr` where it is None."""
        return self.lr if self.lr is not None else default_lr(self.model)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), as written to ``config.json``."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def differences(self, other: TrainConfig, *, ignore: Iterable[str] = RUNTIME_KEYS
                    ) -> list[str]:
        """The keys whose values differ (``model_config.x`` for model options), sorted."""
        a, b = self.to_dict(), other.to_dict()
        skip = set(ignore)
        out = [k for k in a if k != MODEL_KEY and k not in skip and a[k] != b[k]]
        ma, mb = a[MODEL_KEY], b[MODEL_KEY]
        out += [f"{MODEL_KEY}.{k}" for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)]
        return sorted(out)


def default_lr(model: str) -> float:
    """The learning rate a run of ``model`` starts at unless the config sets ``lr``.

    The published 5e-3 for the baselines; 5e-4 for the LN, whose one convolution has no
    normalisation after it: at 5e-3 its filters over the uncentred behaviour channels grow
    together and its predictions diverge to zero within two epochs (docs/training.md, "When
    training goes wrong").

    Examples
    --------
    >>> default_lr("factorized_baseline"), default_lr("ln")
    (0.005, 0.0005)
    """
    return DEFAULT_LR.get(model, PUBLISHED_LR)


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def check_keys(keys: Iterable[str]) -> None:
    """Raise ConfigError naming the first unknown key and every valid one."""
    valid = valid_keys()
    for key in keys:
        if key not in valid:
            msg = Message(
                f"unknown config key {key!r}; valid keys: {', '.join(valid)} (model options "
                f"go under {MODEL_KEY}, e.g. ",
                Fix(f"{MODEL_KEY}={{'hidden_channels': [16, 32]}}",
                    f"--set {MODEL_KEY}.hidden_channels=[16,32]"), ").",
            )
            raise ConfigError(msg)


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a ``.toml`` or ``.json`` file."""
    p = Path(path)
    if not p.is_file():
        msg = f"config file {p} does not exist."
        raise FileNotFoundError(msg)
    try:
        if p.suffix == ".json":
            values = json.loads(p.read_text())
        else:
            values = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        msg = f"cannot parse the config file {p}: {e}"
        raise ConfigError(msg) from e
    if not isinstance(values, dict):
        msg = f"the config file {p} must hold a table of keys; got {type(values).__name__}."
        raise ConfigError(msg)
    return values


_HINTS: dict[str, Any] = {}


def _hints() -> dict[str, Any]:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(TrainConfig))
    return _HINTS


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type (:func:`~sensorium_models.coerce.coerce`; one string
    for a tuple of them), or ConfigError."""
    if isinstance(value, str) and typing.get_origin(hint) is tuple:
        value = [value]
    try:
        return coerce(value, hint)
    except Mismatch as e:
        names = {tuple: "a list of strings", dict: "a table"}
        kind = names.get(typing.get_origin(e.hint), getattr(e.hint, "__name__", e.hint))
        msg = f"config key {name!r} must be {kind}; got {value!r}."
        raise ConfigError(msg) from None
