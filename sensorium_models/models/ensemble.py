"""An ensemble: the mean prediction of models that share mice, inputs and burn-in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from sensorium_models.models.encoder import check_inputs

if TYPE_CHECKING:
    from sensorium_models.models.encoder import VideoEncoder


class Ensemble(nn.Module):
    """Average the outputs of several models (e.g. seeds or folds of one recipe).

    Parameters
    ----------
    models
        Models from :func:`sensorium_models.create_model` (or ensembles); all need the same
        ``burn_in``, ``mice`` (same names, any order) and ``in_channels``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sensorium_models import MouseSpec, create_model
    >>> mice = {"toy": MouseSpec(n_neurons=3, coords=np.eye(3, 2))}
    >>> ensemble = Ensemble([create_model("ln", mice=mice, channels=2) for _ in range(2)])
    >>> ensemble.eval()(torch.randn(1, 3, 12, 36, 64), mouse="toy").shape
    torch.Size([1, 3, 2])
    """

    def __init__(self, models: Sequence[VideoEncoder | Ensemble]) -> None:
        super().__init__()
        if not models:
            msg = "an Ensemble needs at least one model."
            raise ValueError(msg)
        first = models[0]
        for i, m in enumerate(models[1:], start=1):
            for attr in ("burn_in", "in_channels"):
                if getattr(m, attr) != getattr(first, attr):
                    msg = (
                        f"model {i} has {attr}={getattr(m, attr)} but model 0 has "
                        f"{getattr(first, attr)}; ensemble members must agree, so that their "
                        "outputs cover the same frames of the same inputs."
                    )
                    raise ValueError(msg)
            if set(m.mice) != set(first.mice):
                msg = (
                    f"model {i} has mice {sorted(m.mice)} but model 0 has {sorted(first.mice)}; "
                    "ensemble members must predict the same mice."
                )
                raise ValueError(msg)
        self.members = nn.ModuleList(models)
        self._members = list(models)  # typed view of the same modules
        self.name = "ensemble"
        self.mice: list[str] = list(first.mice)
        self.burn_in: int = first.burn_in
        self.in_channels: int = first.in_channels

    def forward(self, videos: Tensor, *, mouse: str, behavior: Tensor | None = None) -> Tensor:
        """The members' mean prediction, (B, N_mouse, T - burn_in)."""
        check_inputs(videos, behavior, mouse=mouse, mice=self.mice,
                     in_channels=self.in_channels, burn_in=self.burn_in)
        outputs = [m(videos, mouse=mouse, behavior=behavior) for m in self._members]
        return torch.stack(outputs).mean(0)  # (B, N, T_out)

    def regularizer(self, mouse: str) -> Tensor:
        """The members' mean regularizer (for fine-tuning the ensemble jointly)."""
        return torch.stack([m.regularizer(mouse) for m in self._members]).mean()
