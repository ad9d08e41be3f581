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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Self

import numpy as np

from sensorium_models._arrays import (
    Trials,
    Window,
    as_trials,
    check_groups,
    check_n_frames,
    check_pair,
    check_window,
    raise_non_finite,
    windows,
)

log = logging.getLogger(__name__)

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


class _Running:
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

    def _absorb(self, other: _Running) -> None:
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


class RunningSingleTrialCorrelation(_Running):
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


class _Group:
    """One repeat group: per frame the trial count and per (neuron, frame) float64 arrays."""

    def __init__(self, n_neurons: int, names: tuple[str, ...]):
        self.trials = 0
        self.count = np.zeros(0, dtype=np.int64)
        self.arrays = {name: np.zeros((n_neurons, 0)) for name in names}

    def grow(self, frames: int) -> None:
        old = len(self.count)
        if frames > old:
            self.count = np.pad(self.count, (0, frames - old))
            for name, a in self.arrays.items():
                grown = np.zeros((a.shape[0], frames))
                grown[:, :old] = a
                self.arrays[name] = grown

    def complete(self) -> slice:
        """The frames every repeat of the group covers: a prefix, as all repeats start at the
        first frame of the window."""
        return slice(0, int((self.count == self.trials).sum()))


class _Repeats(_Running):
    """Shared by the metrics over repeats: trials grouped by video (or image) id."""

    names: tuple[str, ...] = ()

    def __init__(self, *, skip: int = 50, max_frames: int | None = 300, min_repeats: int = 2):
        super().__init__(skip=skip, max_frames=max_frames)
        if isinstance(min_repeats, bool) or not isinstance(min_repeats, int) or min_repeats < 2:
            msg = f"min_repeats must be an integer of at least 2; got {min_repeats!r}."
            raise ValueError(msg)
        self.min_repeats = min_repeats
        self.groups: dict[Hashable, _Group] = {}

    def _update(
        self,
        responses: Any,
        predictions: Any,
        ids: Any,
        n_frames: Any,
        name: str,
        fold: Callable[[_Group], None] | None = None,
    ) -> None:
        """Add a batch. With ``fold``, trials are read one id after the other and each
        group is handed to ``fold`` once complete (a one-shot score needs one group at a
        time in memory, not all)."""
        r, p = self._inputs(responses, predictions)
        ids = check_groups(ids, r.shape[0], name)
        order = None
        if fold is not None:
            order = np.argsort(np.unique(ids, return_inverse=True)[1], kind="stable")
        current: _Group | None = None
        for w in self._windows(r, p, n_frames, order):
            x, y = w.x, w.y
            if not np.isfinite(x.sum(dtype=np.float64)) or (
                y is not None and not np.isfinite(y.sum(dtype=np.float64))
            ):
                raise_non_finite(w, r, p)
            key = ids[w.position].item() if hasattr(ids[w.position], "item") else ids[w.position]
            assert self.n_neurons is not None
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(self.n_neurons, self.names)
            if fold is not None and current is not None and group is not current:
                fold(current)
            current = group
            lo = w.start - (0 if self.static else self.skip)
            hi = lo + x.shape[1]
            group.grow(hi)
            group.trials += 1
            self._add(group, lo, hi, x, y)
            group.count[lo:hi] += 1
        if fold is not None and current is not None:
            fold(current)

    def _add(self, g: _Group, lo: int, hi: int, x: np.ndarray, y: np.ndarray | None) -> None:
        raise NotImplementedError

    def _merge_group(self, g: _Group, other: _Group) -> None:
        raise NotImplementedError

    def merge(self, other: Self) -> Self:
        """Fold ``other`` (built with the same window) into this accumulator."""
        self._absorb(other)
        for key, theirs in other.groups.items():
            mine = self.groups.get(key)
            if mine is None:
                assert self.n_neurons is not None
                mine = self.groups[key] = _Group(self.n_neurons, self.names)
            frames = max(len(mine.count), len(theirs.count))
            mine.grow(frames)
            theirs_grown = _Group(0, ())
            theirs_grown.count = np.pad(theirs.count, (0, frames - len(theirs.count)))
            theirs_grown.arrays = {
                k: np.pad(a, ((0, 0), (0, frames - a.shape[1]))) for k, a in theirs.arrays.items()
            }
            self._merge_group(mine, theirs_grown)
            mine.count = mine.count + theirs_grown.count
            mine.trials += theirs.trials
        return self

    def _repeated(self) -> list[_Group]:
        """Groups with enough repeats; raises when there are none."""
        groups = [g for g in self.groups.values() if g.trials >= self.min_repeats]
        if not groups:
            if not self.groups:
                raise self._nothing()
            most = max(g.trials for g in self.groups.values())
            msg = (
                f"no repeats: none of the {len(self.groups)} video/image ids is shared by "
                f"{self.min_repeats} or more scored trials (at most {most}); this metric needs a "
                "tier with repeated stimuli (oracle, live/final test), grouped by video_id "
                "(2023) or image_id (2022)."
            )
            raise ValueError(msg)
        left = len(self.groups) - len(groups)
        if left:
            log.info("%d ids with fewer than %d repeats are left out", left, self.min_repeats)
        return groups

    @property
    def has_repeats(self) -> bool:
        """Whether some id has at least ``min_repeats`` scored trials."""
        return any(g.trials >= self.min_repeats for g in self.groups.values())


def _welford(g: _Group, lo: int, hi: int, x: np.ndarray) -> None:
    """Add one trial's frames to the per-frame mean and centred sum of squares."""
    n = (g.count[lo:hi] + 1).astype(np.float64)
    mean, m2 = g.arrays["mean"], g.arrays["m2"]
    delta = x - mean[:, lo:hi]
    mean[:, lo:hi] += delta / n
    m2[:, lo:hi] += delta * (x - mean[:, lo:hi])


def _chan(g: _Group, other: _Group) -> None:
    """Merge per-frame means and centred sums of squares of two groups (Chan et al.)."""
    na, nb = g.count.astype(np.float64), other.count.astype(np.float64)
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        w_b = np.where(n > 0, nb / n, 0.0)
        w_ab = np.where(n > 0, na * nb / n, 0.0)
    delta = other.arrays["mean"] - g.arrays["mean"]
    g.arrays["mean"] += delta * w_b
    g.arrays["m2"] += other.arrays["m2"] + delta * delta * w_ab


class RunningCorrelationToAverage(_Repeats):
    """Correlation to average, accumulated batch by batch.

    Holds per video id and frame the float64 sums of responses and predictions over the
    repeats seen so far (2 x neurons x frames per video).
    """

    names = ("sum_x", "sum_y")

    def update(
        self, responses: Any, predictions: Any, video_ids: Any, *, n_frames: Any = None
    ) -> Self:
        """Add a batch of trials and their repeat-group ids (``video_ids``, one per trial)."""
        self._update(responses, predictions, video_ids, n_frames, "video_ids")
        return self

    def _add(self, g: _Group, lo: int, hi: int, x: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        g.arrays["sum_x"][:, lo:hi] += x
        g.arrays["sum_y"][:, lo:hi] += y

    def _merge_group(self, g: _Group, other: _Group) -> None:
        g.arrays["sum_x"] += other.arrays["sum_x"]
        g.arrays["sum_y"] += other.arrays["sum_y"]

    def compute(self, *, per_neuron: bool = False) -> Any:
        """Correlation between the repeat-averaged responses and predictions."""
        acc = RunningSingleTrialCorrelation(skip=0, max_frames=None)
        for g in self._repeated():
            self._average_into(g, acc, in_place=False)
        return acc.compute(per_neuron=per_neuron)

    @staticmethod
    def _average_into(g: _Group, acc: RunningSingleTrialCorrelation, in_place: bool) -> None:
        """Add a group's averaged traces (the frames all its repeats cover) to ``acc``;
        ``in_place`` turns the group's sums into the averages (it is not used again)."""
        frames = g.complete()
        x, y = g.arrays["sum_x"][:, frames], g.arrays["sum_y"][:, frames]
        if in_place:
            x /= g.trials
            y /= g.trials
            acc.add(x, y)
        else:
            acc.add(x / g.trials, y / g.trials)

    def _score_once(
        self, responses: Any, predictions: Any, video_ids: Any, *, n_frames: Any = None
    ) -> RunningSingleTrialCorrelation:
        """Score a whole selection at once, one video at a time, in bounded memory.

        Equivalent to ``update`` then ``compute``, but each video's sums are folded into
        the correlation as soon as its repeats are read, and released. This accumulator
        keeps only the repeat counts; the returned one holds the correlation.
        """
        out = RunningSingleTrialCorrelation(skip=0, max_frames=None)

        def fold(g: _Group) -> None:
            if g.trials >= self.min_repeats:
                self._average_into(g, out, in_place=True)
            g.arrays = {}  # folded: only its trial count is kept

        self._update(responses, predictions, video_ids, n_frames, "video_ids", fold)
        self._repeated()  # raises when nothing was scored or no video repeats
        return out


class RunningOracleCorrelation(_Repeats):
    """Leave-one-out oracle correlation, accumulated batch by batch.

    Holds per video id and frame the float64 mean and centred sum of squares of the
    responses over the repeats seen so far.
    """

    names = ("mean", "m2")

    def update(self, responses: Any, video_ids: Any, *, n_frames: Any = None) -> Self:
        """Add a batch of trials and their repeat-group ids (``video_ids``, one per trial)."""
        self._update(responses, None, video_ids, n_frames, "video_ids")
        return self

    def _add(self, g: _Group, lo: int, hi: int, x: np.ndarray, y: np.ndarray | None) -> None:
        _welford(g, lo, hi, x)

    def _merge_group(self, g: _Group, other: _Group) -> None:
        _chan(g, other)

    def compute(self, *, per_neuron: bool = False) -> Any:
        """Correlation of each repeat with the mean of the other repeats, pooled per neuron."""
        cells = []
        for g in self._repeated():
            frames = g.complete()
            cells.append((g.trials, g.arrays["mean"][:, frames], g.arrays["m2"][:, frames]))
        total = sum(n * mean.shape[1] for n, mean, _ in cells)
        grand = sum(n * mean.sum(axis=1) for n, mean, _ in cells) / total
        cxx = cmm = cxm = 0.0
        # Each repeat pairs x_t with the mean of the others, m_t = mean - (x_t - mean)/(n - 1):
        # within a (video, frame) cell both average to the cell mean, so only the spread
        # about it differs between x and m.
        for n, mean, m2 in cells:
            between = n * ((mean - grand[:, None]) ** 2).sum(axis=1)
            spread = m2.sum(axis=1)
            cxx = cxx + between + spread
            cmm = cmm + between + spread / (n - 1) ** 2
            cxm = cxm + between - spread / (n - 1)
        r = pearson(total, np.asarray(cxm), np.asarray(cxx), np.asarray(cmm))
        return r if per_neuron else float(r.mean())


class RunningFEVE(_Repeats):
    """Fraction of explainable variance explained (FEVE), accumulated batch by batch.

    Holds per image (or video) id and frame the float64 mean and centred sum of squares of the
    responses and the sum of squared prediction errors.
    """

    names = ("mean", "m2", "sse")

    def __init__(
        self,
        *,
        skip: int = 50,
        max_frames: int | None = 300,
        min_repeats: int = 2,
        fev_threshold: float = 0.15,
    ):
        super().__init__(skip=skip, max_frames=max_frames, min_repeats=min_repeats)
        self.fev_threshold = float(fev_threshold)

    def update(
        self, responses: Any, predictions: Any, image_ids: Any, *, n_frames: Any = None
    ) -> Self:
        """Add a batch of trials and their repeat-group ids (``image_ids``, one per trial)."""
        self._update(responses, predictions, image_ids, n_frames, "image_ids")
        return self

    def _add(self, g: _Group, lo: int, hi: int, x: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        _welford(g, lo, hi, x)
        err = np.subtract(x, y, dtype=np.float64)
        g.arrays["sse"][:, lo:hi] += err * err

    def _merge_group(self, g: _Group, other: _Group) -> None:
        _chan(g, other)
        g.arrays["sse"] += other.arrays["sse"]

    def fev(self) -> np.ndarray:
        """Fraction of explainable variance per neuron (the neuron filter)."""
        return self._variances()[0]

    def _variances(self) -> tuple[np.ndarray, np.ndarray]:
        cells = []
        for g in self._repeated():
            f, a = g.complete(), g.arrays
            cells.append((g.trials, a["mean"][:, f], a["m2"][:, f], a["sse"][:, f]))
        total = sum(n * mean.shape[1] for n, mean, _, _ in cells)
        conditions = sum(mean.shape[1] for _, mean, _, _ in cells)
        grand = sum(n * mean.sum(axis=1) for n, mean, _, _ in cells) / total
        total_m2 = sum(
            m2.sum(axis=1) + n * ((mean - grand[:, None]) ** 2).sum(axis=1)
            for n, mean, m2, _ in cells
        )
        noise_var = sum(m2.sum(axis=1) / (n - 1) for n, _, m2, _ in cells) / conditions
        mse = sum(sse.sum(axis=1) for _, _, _, sse in cells) / total
        with np.errstate(invalid="ignore", divide="ignore"):
            total_var = np.asarray(total_m2 / (total - 1))
            fev = (total_var - noise_var) / total_var
            feve = 1 - (mse - noise_var) / (total_var - noise_var)
        return fev, feve

    def compute(self, *, per_neuron: bool = False) -> Any:
        """FEVE per neuron (NaN below the threshold) or its mean over the neurons above it."""
        fev, feve = self._variances()
        keep = fev >= self.fev_threshold
        if per_neuron:
            return np.where(keep, feve, np.nan)
        if not keep.any():
            log.warning(
                "no neuron reaches the fraction of explainable variance threshold %s; FEVE is NaN",
                self.fev_threshold,
            )
            return float("nan")
        return float(feve[keep].mean())
