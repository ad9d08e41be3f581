"""The readout of features without space (DwiseNeuro's): channel dropout, a grouped 1x1
convolution to the mouse's neurons, softplus; a whole trial's window slots averaged.

The core has averaged space away, so a neuron is a weighting of the shared features, not a
position: the readout is one grouped linear map per frame (two groups halve its weights;
95 % of DwiseNeuro's parameters are readouts even so). The softplus is taken with a small
beta (0.07: nearly linear over the responses' range, which the authors found worth +0.018)
on every (frame, window slot) pair the core gives, and the valid slots of a frame are
averaged (:func:`~sensorium_models.models.dwiseneuro.window_slots`), so a frame's prediction
is the mean of its windows' predictions.

Registered as the readout ``"pooled"``; it needs a :class:`DwiseNeuroConfig`.
"""

from __future__ import annotations

import typing

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sensorium_models.models.dwiseneuro import DwiseNeuroConfig, window_slots
from sensorium_models.models.encoder import ModelConfig, Readout
from sensorium_models.models.registry import register_readout
from sensorium_models.models.specs import MouseSpec


class PooledReadout(Readout):
    """One mouse's readout of (B, C, T, S, 1) pooled features.

    Parameters
    ----------
    in_channels
        Feature channels of the core.
    n_neurons
        The mouse's neurons (the convolution rounds up to a multiple of ``groups`` and
        drops the extra outputs).
    groups, dropout, beta
        Groups of the 1x1 convolution; channel dropout before it; softplus sharpness.
    mean_response
        The mouse's mean responses (N,), or None: the biases that start each neuron's softplus
        there (zero biases start every neuron at log(2) / beta, ~10 at beta 0.07, whatever its
        responses: an untrained or briefly trained model over-predicted 16x on the twin).
    window, frame_step, stride
        The core's windows (:func:`~sensorium_models.models.dwiseneuro.window_ends`): a
        feature map of S = ``window`` slots per frame is a whole trial whose frames are
        averaged over the windows that hold them; S = 1 is a clip.

    Examples
    --------
    >>> import torch
    >>> readout = PooledReadout(8, 5, groups=2, dropout=0.4, beta=0.07, window=4,
    ...                         frame_step=2)
    >>> readout(torch.randn(2, 8, 4, 1, 1)).shape  # a clip: one prediction per frame
    torch.Size([2, 5, 4])
    >>> readout(torch.randn(2, 8, 9, 4, 1)).shape  # a trial: window slots averaged
    torch.Size([2, 5, 9])
    """

    def __init__(self, in_channels: int, n_neurons: int, *, groups: int, dropout: float,
                 beta: float, window: int, frame_step: int, stride: int = 1,
                 mean_response: np.ndarray | None = None) -> None:
        super().__init__()
        self.n_neurons, self.beta = n_neurons, beta
        self.window, self.frame_step, self.stride = window, frame_step, stride
        self.dropout = nn.Dropout1d(dropout)
        outputs = -(-n_neurons // groups) * groups
        self.conv = nn.Conv1d(in_channels, outputs, 1, groups=groups)
        nn.init.normal_(self.conv.weight, 0.0, (2.0 * groups / outputs) ** 0.5)
        bias = typing.cast(Tensor, self.conv.bias)
        nn.init.zeros_(bias)
        if mean_response is not None:  # start at the mean: softplus(b) = mean, not log(2)/beta
            with torch.no_grad():
                bias[:n_neurons] = torch.as_tensor(
                    inverse_softplus(np.asarray(mean_response, dtype=np.float64), beta))

    def forward(self, x: Tensor, shift: Tensor | None = None,
                behavior: Tensor | None = None) -> Tensor:
        """(B, C, T, S, 1) features -> (B, N, T) predictions (positive; the model's output
        is the identity). ``shift`` and ``behavior`` are not used: behaviour enters the core
        as channels."""
        b, c, t, s, w = x.shape
        if w != 1 or s not in (1, self.window):
            msg = (f"the pooled readout takes (B, C, T, S, 1) features with S 1 or "
                   f"{self.window} (DwiseNeuro's core); got {tuple(x.shape)}.")
            raise ValueError(msg)
        drive = self.conv(self.dropout(x.reshape(b, c, t * s)))  # (B, N_padded, T * S)
        rates = F.softplus(drive[:, :self.n_neurons], beta=self.beta)  # (B, N, T * S)
        rates = rates.view(b, self.n_neurons, t, s)  # (B, N, T, S)
        if s == 1:
            return rates[..., 0]  # (B, N, T)
        _, _, valid = window_slots(t, self.window, self.frame_step, self.stride,
                                   x.device)  # (T, S)
        weights = valid.to(rates.dtype)
        return (rates * weights).sum(-1) / weights.sum(-1)  # (B, N, T)

    def regularizer(self) -> Tensor:
        """None (weight decay and dropout regularize it)."""
        return self.conv.weight.new_zeros(())


def inverse_softplus(y: np.ndarray, beta: float) -> np.ndarray:
    """The x whose ``softplus(x, beta)`` is ``y`` (y floored at 1e-3: the output is positive).

    Examples
    --------
    >>> x = inverse_softplus(np.array([0.5, 10.0]), 0.07)
    >>> np.round(np.log1p(np.exp(0.07 * x)) / 0.07, 6)
    array([ 0.5, 10. ])
    """
    y = np.maximum(y, 1e-3) * beta
    return np.where(y > 20, y, np.log(np.expm1(y))) / beta


@register_readout("pooled")
def pooled(in_channels: int, spec: MouseSpec, config: ModelConfig) -> PooledReadout:
    """DwiseNeuro's readout of one mouse, from its config."""
    if not isinstance(config, DwiseNeuroConfig):
        msg = (f"readout='pooled' needs a core that pools space into window slots "
               f"(dwiseneuro); {type(config).__name__} has none. Use readout='gaussian'.")
        raise ValueError(msg)
    return PooledReadout(in_channels, spec.n_neurons, groups=config.cortex_groups,
                         dropout=config.readout_dropout, beta=config.softplus_beta,
                         window=config.window, frame_step=config.frame_step,
                         stride=config.window_stride, mean_response=spec.mean_response)
