"""Running versions of the benchmark's metrics: per-neuron float64 sums that merge.

Each accumulator takes batches of trials with :meth:`update`, combines with another one built
the same way (another process, another GPU's share) with :meth:`merge`, and gives the same
number as the one-shot function in :mod:`sensorium_models.metrics` with :meth:`compute`.
Memory is bounded by the neurons (single-trial correlation) or by neurons x frames x repeat
groups (the metrics over repeats), never by the number of trials.

Moments are merged with Chan et al.'s pairwise update (means and centred sums of squares),
which stays accurate where sums of raw squares lose digits. The single-trial correlation's
sums of squares are held in units of a per-neuron power of two, so values whose squares
leave float64's range (float64 predictions of 1e200) score as the same values scaled down.

The metrics over repeats (correlation to average, oracle correlation, FEVE) are in
:mod:`sensorium_models.repeat_accumulators`, on the base class and correlation here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Self

import numpy as np

from sensorium_models._arrays import (
    Trials,
    Window,
    as_trials,
    check_n_frames,
    check_pair,
    check_window,
    raise_non_finite,
    windows,
)

EPS = 1e-8  # added to each standard deviation, as the benchmark's correlation does


_SCRATCH = threading.local()


def _scratch(k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Float64 scratch space for centred values, reused from trial to trial (per thread):
    fresh large arrays would page-fault on every trial."""
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    size = shape[0] * shape[1]
    if k not in buffers or buffers[k].size < size:
        buffers[k] = np.empty(size)
    return buffers[k][:size].reshape(shape)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (neuron, frames) float64 arrays."""
    if hasattr(np, "vecdot"):  # numpy >= 2: SIMD dot loops, faster than einsum
        return np.vecdot(a, b)
    return np.einsum("ij,ij->i", a, b)


def pearson(
    n: float | np.ndarray,
    cxy: np.ndarray,
    cxx: np.ndarray,
    cyy: np.ndarray,
    kx: float | np.ndarray = 1.0,
    ky: float | np.ndarray = 1.0,
) -> np.ndarray:
    """Per-neuron correlation from co-moments: cov / ((std_x + eps)(std_y + eps)), ddof=0.

    The co-moments may be in units of ``kx`` and ``ky`` (the true ``cxx`` is ``cxx * kx**2``,
    ``cxy`` is ``cxy * kx * ky``): the formula is evaluated in those units, never forming a
    product beyond float64's range. A neuron without variance scores 0; NaN becomes 0.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (cxy / n) / ((np.sqrt(cxx / n) + EPS / kx) * (np.sqrt(cyy / n) + EPS / ky))
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def _power_of_two(v: np.ndarray) -> np.ndarray:
    """The smallest power of two above each (finite, non-negative) value, 1 for 0: dividing by
    it is exact, so sums taken in its units round as the unscaled ones would."""
    return np.ldexp(1.0, np.frexp(v)[1])


def _neurons(n: int, what: str, shape: tuple[int, ...]) -> None:
    if n == 0:
        msg = (
            f"{what} have no neurons (shape {shape}): a metric is a mean over neurons; select "
            "at least one (e.g. responses.isel(neuron=slice(0, 100)) keeps the first 100)."
        )
        raise ValueError(msg)


class RunningBase:
    """Shared by the accumulators: the frame window and the neuron count."""

    def __init__(self, *, skip: int = 50, max_frames: int | None = 300):
        check_window(skip, max_frames)
        self.skip = int(skip)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.n_neurons: int | None = None
        self.static: bool | None = None  # 2-D (2022) inputs: one frame per trial
        self.n_trials = 0  # trials with at least one scored frame

    def _start(self, responses: Trials) -> None:
        n, static = responses.shape[1], len(responses.shape) == 2
        _neurons(n, responses.name, responses.shape)
        if self.n_neurons is None:
            self.n_neurons, self.static = n, static
        elif (n, static) != (self.n_neurons, self.static):
            was = "2-D" if self.static else "3-D"
            msg = (
                f"this accumulator holds {self.n_neurons} neurons of {was} data; the batch has "
                f"{n} neurons and {len(responses.shape)}-D; use one accumulator per recording."
            )
            raise ValueError(msg)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(skip={self.skip}, max_frames={self.max_frames}): "
            f"{self.n_trials} trials, {self.n_neurons} neurons"
        )

    def _nothing(self) -> ValueError:
        return ValueError(
            f"nothing to score: no trial had frames inside the window [skip={self.skip}, "
            f"max_frames={self.max_frames}) (withheld trials are all NaN)."
        )

    def _absorb(self, other: RunningBase) -> None:
        """Check that ``other`` can merge into this accumulator, and take over its counts."""
        if type(other) is not type(self):
            msg = f"cannot merge a {type(other).__name__} into a {type(self).__name__}."
            raise TypeError(msg)
        if (other.skip, other.max_frames) != (self.skip, self.max_frames):
            msg = (
                f"cannot merge accumulators with different frame windows: skip={self.skip}, "
                f"max_frames={self.max_frames} vs skip={other.skip}, max_frames={other.max_frames}."
            )
            raise ValueError(msg)
        if None not in (self.n_neurons, other.n_neurons) and (
            (self.n_neurons, self.static) != (other.n_neurons, other.static)
        ):
            msg = (
                f"cannot merge accumulators of {self.n_neurons} and {other.n_neurons} neurons; "
                "use one accumulator per recording."
            )
            raise ValueError(msg)
        if self.n_neurons is None:
            self.n_neurons, self.static = other.n_neurons, other.static
        self.n_trials += other.n_trials

    def _inputs(self, responses: Any, predictions: Any) -> tuple[Trials, Trials | None]:
        r = as_trials(responses, "responses")
        p = None
        if predictions is not None:
            p = as_trials(predictions, "predictions")
            check_pair(r, p)
        self._start(r)
        return r, p

    def _windows(
        self, r: Trials, p: Trials | None, n_frames: Any, positions: Any = None
    ) -> Iterator[Window]:
        """The batch's windows, read lazily a block of trials at a time (in ``positions``
        order if given)."""
        frames = check_n_frames(n_frames, r.shape[0])
        kept = windows(
            r, p, skip=self.skip, max_frames=self.max_frames, n_frames=frames, positions=positions
        )
        return self._count(kept)

    def _count(self, kept: Iterator[Window]) -> Iterator[Window]:
        for w in kept:
            self.n_trials += 1
            yield w


class RunningSingleTrialCorrelation(RunningBase):
    """Single-trial correlation, accumulated batch by batch.

    Holds per neuron the frame count, both means, the centred sums of squares and products,
    and the powers of two they are counted in (``kx``, ``ky``: 1 unless the squares of the
    values would overflow), in float64: 7 x neurons numbers whatever the number of trials.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> responses = rng.poisson(2.0, (6, 3, 80)).astype("float32")
    >>> predictions = responses + rng.normal(0, 1, responses.shape)
    >>> from sensorium_models.metrics import single_trial_correlation
    >>> a, b = RunningSingleTrialCorrelation(), RunningSingleTrialCorrelation()
    >>> _ = a.update(responses[:4], predictions[:4])
    >>> _ = b.update(responses[4:], predictions[4:])  # elsewhere: another process or GPU
    >>> bool(np.isclose(a.merge(b).compute(), single_trial_correlation(responses, predictions)))
    True
    """

    def __init__(self, *, skip: int = 50, max_frames: int | None = 300):
        super().__init__(skip=skip, max_frames=max_frames)
        self.n = 0  # frames accumulated (the same for every neuron)
        self.mean_x = self.mean_y = self.cxx = self.cyy = self.cxy = np.zeros(0)
        self.kx = self.ky = np.ones(0)  # cxx is in units of kx**2, cyy of ky**2, cxy of kx * ky

    def update(self, responses: Any, predictions: Any, *, n_frames: Any = None) -> Self:
        """Add a batch of trials: (trial, neuron, frame) or (trial, neuron) arrays."""
        r, p = self._inputs(responses, predictions)
        for w in self._windows(r, p, n_frames):
            assert w.y is not None
            self.add(w.x, w.y, on_error=lambda w=w: raise_non_finite(w, r, p))
        return self

    def add(self, x: np.ndarray, y: np.ndarray, on_error: Any = None) -> None:
        """Add frames already cut to the window: ``x``, ``y`` are (neuron, frames) numpy arrays.

        ``on_error`` is called (to raise a precise error) when a value is not finite.
        """
        _neurons(x.shape[0], "responses", x.shape)
        nb = x.shape[1]
        mx = x.mean(axis=1, dtype=np.float64)
        my = y.mean(axis=1, dtype=np.float64)
        if not (np.isfinite(mx).all() and np.isfinite(my).all()):
            if on_error is not None:
                on_error()
            msg = "responses and predictions must be finite inside the scored frames."
            raise ValueError(msg)
        dx = np.subtract(x, mx[:, None], out=_scratch(0, x.shape))
        dy = np.subtract(y, my[:, None], out=_scratch(1, x.shape))
        kx = ky = np.ones(x.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            cxx, cyy, cxy = _rowdot(dx, dx), _rowdot(dy, dy), _rowdot(dx, dy)
        if not (np.isfinite(cxx).all() and np.isfinite(cyy).all() and np.isfinite(cxy).all()):
            # squares past float64's range (values beyond ~1e154): count in powers of two
            kx, ky = _power_of_two(np.abs(dx).max(axis=1)), _power_of_two(np.abs(dy).max(axis=1))
            dx /= kx[:, None]
            dy /= ky[:, None]
            cxx, cyy, cxy = _rowdot(dx, dx), _rowdot(dy, dy), _rowdot(dx, dy)
        if self.n_neurons is None:
            self.n_neurons, self.static = x.shape[0], False
        self._combine(nb, mx, my, cxx, cyy, cxy, kx, ky)

    def _combine(
        self,
        nb: int,
        mx: np.ndarray,
        my: np.ndarray,
        cxx: np.ndarray,
        cyy: np.ndarray,
        cxy: np.ndarray,
        kx: np.ndarray,
        ky: np.ndarray,
    ) -> None:
        """Fold in the moments of ``nb`` frames (co-moments in units of ``kx``, ``ky``)."""
        na = self.n
        if na == 0:
            self.n = nb
            self.mean_x, self.mean_y = mx.copy(), my.copy()
            self.cxx, self.cyy, self.cxy = cxx.copy(), cyy.copy(), cxy.copy()
            self.kx, self.ky = kx.copy(), ky.copy()
            return
        n = na + nb
        dx, dy = mx - self.mean_x, my - self.mean_y
        w = na * nb / n
        # common units, large enough for both sides and for the spread between their means
        ux = np.maximum(np.maximum(self.kx, kx), _power_of_two(np.abs(dx) * np.sqrt(w)))
        uy = np.maximum(np.maximum(self.ky, ky), _power_of_two(np.abs(dy) * np.sqrt(w)))
        ax, ay, bx, by = self.kx / ux, self.ky / uy, kx / ux, ky / uy
        dx_u, dy_u = dx / ux, dy / uy
        self.mean_x = self.mean_x + dx * (nb / n)
        self.mean_y = self.mean_y + dy * (nb / n)
        self.cxx = self.cxx * ax * ax + cxx * bx * bx + dx_u * dx_u * w
        self.cyy = self.cyy * ay * ay + cyy * by * by + dy_u * dy_u * w
        self.cxy = self.cxy * ax * ay + cxy * bx * by + dx_u * dy_u * w
        self.kx, self.ky = ux, uy
        self.n = n

    def merge(self, other: RunningSingleTrialCorrelation) -> Self:
        """Fold ``other`` (built with the same window) into this accumulator."""
        self._absorb(other)
        if other.n:
            self._combine(other.n, other.mean_x, other.mean_y, other.cxx, other.cyy, other.cxy,
                          other.kx, other.ky)
        return self

    def compute(self, *, per_neuron: bool = False) -> Any:
        """The correlation per neuron (``per_neuron``) or its mean over neurons."""
        if self.n == 0:
            raise self._nothing()
        r = pearson(self.n, self.cxy, self.cxx, self.cyy, self.kx, self.ky)
        return r if per_neuron else float(r.mean())
