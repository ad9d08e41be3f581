"""The shifter: where the eye looks moves every receptive field on the screen."""

from __future__ import annotations

from torch import Tensor, nn


class Shifter(nn.Module):
    """MLP 2 -> hidden -> hidden -> 2 with tanh after every layer, applied per frame.

    Maps the pupil position to one offset of all of a mouse's readout positions, in the
    feature map's normalised coordinates.

    Parameters
    ----------
    hidden
        Hidden units of both hidden layers.

    Examples
    --------
    >>> import torch
    >>> Shifter()(torch.zeros(3, 2, 10)).shape
    torch.Size([3, 10, 2])
    """

    def __init__(self, hidden: int = 5) -> None:
        super().__init__()
        first, second, out = nn.Linear(2, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 2)
        # Start without a shift: a random one (up to half the feature map) sends neurons to
        # the edge before the core has features worth reading there.
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(first, nn.Tanh(), second, nn.Tanh(), out, nn.Tanh())

    def forward(self, pupil: Tensor) -> Tensor:
        """(B, 2, T) pupil x, y -> (B, T, 2) shift."""
        return self.mlp(pupil.transpose(1, 2))  # (B, T, 2)
