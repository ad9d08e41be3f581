"""What a model needs to know about each mouse: neurons, cortical positions, mean response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class MouseSpec:
    """The per-mouse facts a readout is built from.

    Attributes
    ----------
    n_neurons
        Number of neurons (readout outputs).
    coords
        (n_neurons, 2) cortical x, y of every neuron, any units; the readout standardises them.
    mean_response
        Optional (n_neurons,) mean response in the units the model is trained on; the readout
        bias starts where the model predicts it. ``None`` starts the bias at zero.

    Examples
    --------
    >>> import numpy as np
    >>> MouseSpec(n_neurons=3, coords=np.zeros((3, 2))).n_neurons
    3
    """

    n_neurons: int
    coords: np.ndarray
    mean_response: np.ndarray | None = None

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords)
        if coords.shape != (self.n_neurons, 2):
            msg = (
                f"coords has shape {coords.shape}; a mouse of n_neurons={self.n_neurons} needs "
                f"({self.n_neurons}, 2): cortical x and y of every neuron."
            )
            raise ValueError(msg)
        if self.mean_response is not None and np.shape(self.mean_response) != (self.n_neurons,):
            msg = (
                f"mean_response has shape {np.shape(self.mean_response)}; expected "
                f"({self.n_neurons},), one value per neuron, or None."
            )
            raise ValueError(msg)

    def placed_coords(self, readout: str) -> np.ndarray:
        """The (n_neurons, 2) coordinates for a readout that places neurons by them.

        One neuron without a position would make every neuron's position NaN (the readouts
        centre the coordinates on their mean), so a missing one is refused here, named.

        Examples
        --------
        >>> import numpy as np
        >>> MouseSpec(2, np.array([[0.0, 1.0], [np.nan, 2.0]])).placed_coords("gaussian")
        Traceback (most recent call last):
        ...
        ValueError: 1 of 2 neurons have no cortical coordinates (NaN x or y); ...
        """
        coords = np.asarray(self.coords, dtype=np.float64)
        missing = int((~np.isfinite(coords)).any(axis=1).sum())
        if missing:
            msg = (
                f"{missing} of {self.n_neurons} neurons have no cortical coordinates (NaN x or "
                f"y); readout={readout!r} places each neuron from its cortical position. The "
                "recording lacks meta/neurons/cell_motor_coordinates.npy: convert it from a tree "
                "that has it, or choose a readout that needs no positions (readout='pooled')."
            )
            raise ValueError(msg)
        return coords


def mouse_specs(datasets: Mapping[str, xr.Dataset]) -> dict[str, MouseSpec]:
    """One :class:`MouseSpec` per recording, from the Datasets' ``x`` and ``y`` coordinates.

    Parameters
    ----------
    datasets
        Mouse name -> Dataset from :func:`sensorium_data.open_mouse` (or any Dataset with a
        ``neuron`` dimension and ``x``, ``y`` coordinates along it).

    Returns
    -------
    dict of str to MouseSpec
        In the order of ``datasets``; ``mean_response`` is None (the trainer fills it in from
        the training data when it wants the bias initialised).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(coords={"neuron": [7, 9], "x": ("neuron", [0.0, 10.0]),
    ...                         "y": ("neuron", [5.0, 5.0])})
    >>> mouse_specs({"toy": ds})["toy"].coords.tolist()
    [[0.0, 5.0], [10.0, 5.0]]
    """
    specs = {}
    for mouse, ds in datasets.items():
        missing = [c for c in ("x", "y") if c not in ds.coords]
        if missing:
            msg = (
                f"recording {mouse!r} has no coordinate {missing[0]!r}; the readout needs the "
                "neurons' cortical x and y. Open it with sensorium_data.open_mouse."
            )
            raise ValueError(msg)
        coords = np.stack([ds["x"].values, ds["y"].values], axis=1).astype(np.float64)
        specs[mouse] = MouseSpec(n_neurons=len(coords), coords=coords)
    return specs
