"""The shape every model of the zoo shares: core -> per-mouse readout and shifter -> output.

A core turns a clip (B, C, T, H, W) into features (B, C', T - burn_in, H', W'), shared by all
mice. Each mouse has its own readout, chosen by name from the readout registry (the Gaussian
readout of :mod:`.readout` by default), and pupil-driven shifter (:mod:`.shifter`); an output
nonlinearity (ELU + 1 by default) makes the predictions positive. A model family defines its
core and a config dataclass, and a readout family its module and a registered builder.
"""

from __future__ import annotations

import abc
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.shifter import Shifter


class Core(nn.Module, abc.ABC):
    """A feature extractor ``(B, C_in, T, H, W) -> (B, out_channels, T - burn_in, H', W')``.

    Output frame ``i`` belongs to input frame ``burn_in + i``: a core never looks ahead.
    """

    out_channels: int
    burn_in: int
    # Cores whose blocks run through :meth:`through` can recompute their activations in the
    # backward pass instead of keeping them (TrainConfig's ``checkpoint_activations``).
    supports_checkpointing: typing.ClassVar[bool] = False
    checkpointing: bool = False

    @abc.abstractmethod
    def regularizer(self) -> Tensor:
        """The core's penalty, a differentiable scalar added to the loss."""

    def through(self, block: nn.Module, *inputs: Tensor | None) -> Tensor:
        """``block(*inputs)``; with ``checkpointing`` on in training, the block's activations
        are not kept but recomputed in the backward pass (less memory, about a third more
        time; dropout and drop-path draw the same numbers both times)."""
        if self.checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return typing.cast(Tensor, checkpoint(_once_tracked(block), *inputs,
                                                  use_reentrant=False))
        return typing.cast(Tensor, block(*inputs))


def _once_tracked(block: nn.Module) -> typing.Callable[..., Tensor]:
    """``block``'s call for :func:`torch.utils.checkpoint.checkpoint`: its recomputation in
    the backward pass leaves the batch norms' running statistics as the forward pass left
    them (else each step would move them twice, and count two batches)."""
    calls = 0

    def run(*inputs: Tensor | None) -> Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return typing.cast(Tensor, block(*inputs))
        norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats]
        kept = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)
                 if b is not None] for m in norms]
        try:  # (the recomputation may stop early, by an exception, once it has what it needs)
            return typing.cast(Tensor, block(*inputs))
        finally:
            with torch.no_grad():
                for m, saved in zip(norms, kept, strict=True):
                    live = [b for b in (m.running_mean, m.running_var, m.num_batches_tracked)
                            if b is not None]
                    for b, s in zip(live, saved, strict=True):
                        b.copy_(s)

    return run


class Readout(nn.Module, abc.ABC):
    """One mouse's readout: core features -> the drive of each of its neurons per frame.

    Built per mouse by a builder registered with
    :func:`~sensorium_models.models.registry.register_readout`; the config's ``readout``
    names it.
    """

    @abc.abstractmethod
    def forward(self, x: Tensor, shift: Tensor | None = None,
                behavior: Tensor | None = None) -> Tensor:
        """(B, C, T, H, W) features, optional (B, T, 2) shift of the positions and (B, 4, T)
        behaviour of the same frames -> (B, N, T) drive, before the output nonlinearity."""

    @abc.abstractmethod
    def regularizer(self) -> Tensor:
        """The readout's penalty, a differentiable scalar added to the loss."""


class _ReadAndOutput(nn.Module):
    """A readout and the output nonlinearity as one call (what checkpointing recomputes)."""

    def __init__(self, readout: nn.Module, output: typing.Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.readout, self.output = readout, output

    def forward(self, x: Tensor, shift: Tensor | None, behavior: Tensor | None) -> Tensor:
        return self.output(self.readout(x, shift, behavior))


def _elu1(x: Tensor) -> Tensor:
    return F.elu(x) + 1


def _elu1_inverse(m: np.ndarray) -> np.ndarray:
    return np.where(m > 1, m - 1, np.log(np.clip(m, 1e-3, 1)))


def _softplus_inverse(m: np.ndarray) -> np.ndarray:
    m = np.clip(m, 1e-3, None)
    return np.where(m > 20, m, np.log(np.expm1(m)))


#: Output nonlinearities by name: the function on the drive, and its inverse on a mean
#: response (where the readout's bias starts).
OUTPUTS: dict[str, tuple[typing.Callable[[Tensor], Tensor],
                         typing.Callable[[np.ndarray], np.ndarray]]] = {
    "elu1": (_elu1, _elu1_inverse),
    "exp": (torch.exp, lambda m: np.log(np.clip(m, 1e-3, None))),
    "softplus": (F.softplus, _softplus_inverse),
    # for a readout that applies its own nonlinearity (DwiseNeuro's averages after it)
    "identity": (lambda x: x, lambda m: m),
}


@dataclass(frozen=True, kw_only=True)
class ModelConfig(abc.ABC):
    """Options of the readout and shifter, shared by every model; a family adds its core's.

    Attributes
    ----------
    init_sigma
        Initial spread of the readout positions (entries of the covariance's square root
        start uniform in [-init_sigma, init_sigma]).
    grid_mean_hidden
        Hidden units of the network mapping cortical position to readout position.
    feature_reg
        L1 penalty on the readout's feature weights (the baseline uses 0).
    shifter
        Shift the readout positions by an MLP of the pupil position (behaviour rows 2:4).
    shifter_hidden
        Hidden units of the shifter's two hidden layers.
    readout
        The registered readout family (:func:`~sensorium_models.models.registry.list_readouts`).
    output
        The output nonlinearity, one of :data:`OUTPUTS`: ``"elu1"`` (ELU + 1), ``"exp"``,
        ``"softplus"``, or ``"identity"`` for a readout that applies its own.
    """

    init_sigma: float = 1.0
    grid_mean_hidden: int = 30
    feature_reg: float = 0.0
    shifter: bool = True
    shifter_hidden: int = 5
    readout: str = "gaussian"
    output: str = "elu1"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, int | float) and not isinstance(v, bool) and v < 0
                   for v in values):
                msg = f"{f.name}={value!r} is negative; every option of a model is >= 0."
                raise ValueError(msg)
        if self.output not in OUTPUTS:
            msg = f"output={self.output!r}; choose one of {', '.join(OUTPUTS)}."
            raise ValueError(msg)

    @abc.abstractmethod
    def build_core(self, in_channels: int) -> Core:
        """The family's core for clips of ``in_channels`` channels."""


def initial_bias(mean_response: np.ndarray | None, output: str = "elu1") -> np.ndarray | None:
    """The readout bias whose ``output`` nonlinearity is ``mean_response``, so training starts
    at the mean.

    Examples
    --------
    >>> initial_bias(np.array([2.0, 1.0, 0.5]))  # elu(x) + 1 is 2, 1 and 0.5 at these
    array([ 1.        ,  0.        , -0.69314718])
    """
    if mean_response is None:
        return None
    return OUTPUTS[output][1](np.asarray(mean_response, dtype=np.float64))


def check_inputs(videos: Tensor, behavior: Tensor | None, *, mouse: str, mice: Sequence[str],
                 in_channels: int, burn_in: int) -> None:
    """Raise ValueError naming the problem and the fix if a model cannot take these inputs."""
    if mouse not in mice:
        msg = (
            f"unknown mouse {mouse!r}; this model has readouts for {list(mice)}. Pass one of "
            "them, or create a model with this mouse in `mice`."
        )
        raise ValueError(msg)
    if videos.ndim != 5:
        msg = f"videos must be (B, C, T, H, W); got shape {tuple(videos.shape)}."
        raise ValueError(msg)
    b, c, t = videos.shape[:3]
    if c != in_channels:
        msg = (
            f"videos have {c} channels but the model was built for in_channels={in_channels} "
            "(1 video + 2 behaviour [+ 2 pupil] channels). Create the model with "
            f"in_channels={c}, or load clips with the channel options it was trained with."
        )
        raise ValueError(msg)
    if t <= burn_in:
        msg = (
            f"videos have {t} frames; this model needs at least {burn_in + 1}, because its "
            f"first burn_in={burn_in} frames produce no output."
        )
        raise ValueError(msg)
    if behavior is not None and tuple(behavior.shape) != (b, 4, t):
        msg = (
            f"behavior must be (B, 4, T) = {(b, 4, t)} to match the videos (pupil_dilation, "
            f"running_speed, pupil_x, pupil_y); got {tuple(behavior.shape)}."
        )
        raise ValueError(msg)


class VideoEncoder(nn.Module):
    """A full model: shared core, one readout and shifter per mouse, output nonlinearity.

    Build one with :func:`sensorium_models.create_model`.

    Attributes
    ----------
    name
        The registered model name.
    config
        The resolved config dataclass.
    mice
        Mouse names, in the order given.
    in_channels
        Channels of the clips it takes.
    burn_in
        Input frames consumed before the first output frame.

    Examples
    --------
    >>> import torch
    >>> from sensorium_models import MouseSpec, create_model
    >>> model = create_model("ln", mice={"toy": MouseSpec(n_neurons=3, coords=np.eye(3, 2))},
    ...                      channels=2)
    >>> model.mice, model.in_channels, model.burn_in
    (['toy'], 3, 10)
    >>> model.eval()(torch.randn(1, 3, 12, 36, 64), mouse="toy").shape  # 12 - 10 frames out
    torch.Size([1, 3, 2])
    >>> model(torch.randn(1, 3, 12, 36, 64), mouse="other")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown mouse 'other'; this model has readouts for ['toy']. Pass one of them, ...
    """

    def __init__(self, core: Core, *, readouts: Mapping[str, Readout], in_channels: int,
                 config: ModelConfig, name: str) -> None:
        super().__init__()
        if not readouts:
            msg = "a model needs at least one mouse; pass mice=mouse_specs(datasets)."
            raise ValueError(msg)
        for mouse in readouts:
            if not mouse or "." in mouse:
                msg = f"mouse name {mouse!r} cannot name a readout: it must be non-empty, no '.'."
                raise ValueError(msg)
        self.name = name
        self.config = config
        self.in_channels = in_channels
        self.core = core
        self.readouts = nn.ModuleDict(dict(readouts))
        self.shifters = (
            nn.ModuleDict({mouse: Shifter(config.shifter_hidden) for mouse in readouts})
            if config.shifter else None
        )
        self.output = OUTPUTS[config.output][0]

    @property
    def mice(self) -> list[str]:
        return list(self.readouts.keys())

    @property
    def burn_in(self) -> int:
        return self.core.burn_in

    def forward(self, videos: Tensor, *, mouse: str, behavior: Tensor | None = None) -> Tensor:
        """Predict one mouse's responses to a batch of clips.

        Parameters
        ----------
        videos
            (B, C, T, H, W) normalised clips, C = ``in_channels``.
        mouse
            Whose readout to use.
        behavior
            (B, 4, T) normalised behaviour; rows 2:4 (pupil x, y) drive the shifter. Without
            it the positions are not shifted.

        Returns
        -------
        Tensor
            (B, N_mouse, T - burn_in) positive predictions for the last T - burn_in frames.
        """
        check_inputs(videos, behavior, mouse=mouse, mice=self.mice,
                     in_channels=self.in_channels, burn_in=self.burn_in)
        features = self.core(videos)  # (B, C', T_out, H', W')
        t_out = features.shape[2]
        shift = None
        state = None if behavior is None else behavior[:, :, -t_out:]  # (B, 4, T_out)
        if self.shifters is not None and state is not None:
            shift = self.shifters[mouse](state[:, 2:4])  # (B, T_out, 2)
        readout = self.readouts[mouse]
        if self.core.checkpointing:
            # the readout's per-neuron tensors (B x N x T x C) outweigh the core's at 8,000
            # neurons: recomputed too, like the blocks
            return self.core.through(_ReadAndOutput(readout, self.output), features, shift,
                                     state)  # (B, N, T_out)
        drive = readout(features, shift, state)  # (B, N, T_out)
        return self.output(drive)  # (B, N, T_out)

    def regularizer(self, mouse: str) -> Tensor:
        """The core's penalty plus ``mouse``'s readout penalty (the shifter has none)."""
        if mouse not in self.readouts:
            msg = f"unknown mouse {mouse!r}; this model has readouts for {self.mice}."
            raise ValueError(msg)
        readout = typing.cast(Readout, self.readouts[mouse])
        return self.core.regularizer() + readout.regularizer()
