"""The running metrics over repeats (correlation to average, oracle correlation, FEVE).

Trials are grouped by video (or image) id; each group keeps per-frame moments, merged with
Chan et al.'s pairwise update, so memory is bounded by neurons x frames x groups. Built on
:class:`sensorium_models.accumulators.RunningBase`, as the single-trial correlation is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any, Self

import numpy as np

from sensorium_models._arrays import check_groups, raise_non_finite
from sensorium_models.accumulators import (
    RunningBase,
    RunningSingleTrialCorrelation,
    pearson,
)

log = logging.getLogger(__name__)


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


class _Repeats(RunningBase):
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

    Examples
    --------
    Two batches that split the repeats of a video score as all trials at once:

    >>> from sensorium_models.metrics import correlation_to_average
    >>> rng = np.random.default_rng(0)
    >>> responses = rng.poisson(2.0, (6, 3, 80)).astype("float32")
    >>> predictions = responses + rng.normal(0, 1, responses.shape)
    >>> videos = ["a", "b", "a", "b", "a", "b"]
    >>> acc = RunningCorrelationToAverage().update(responses[:3], predictions[:3], videos[:3])
    >>> _ = acc.update(responses[3:], predictions[3:], videos[3:])
    >>> bool(np.isclose(acc.compute(), correlation_to_average(responses, predictions, videos)))
    True
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

    Examples
    --------
    Accumulators of two shares of the trials (two processes) merge into the one-shot value:

    >>> from sensorium_models.metrics import oracle_correlation
    >>> responses = np.array([[1.0], [2.0], [5.0], [6.0]])  # 2022: 4 trials, 1 neuron
    >>> a = RunningOracleCorrelation().update(responses[:2], ["a", "a"])
    >>> b = RunningOracleCorrelation().update(responses[2:], ["b", "b"])
    >>> round(a.merge(b).compute(), 4), round(oracle_correlation(responses, list("aabb")), 4)
    (0.8824, 0.8824)
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

    Examples
    --------
    >>> from sensorium_models.metrics import feve
    >>> responses = np.array([[1.0], [3.0], [5.0], [7.0]])  # 2022: 4 trials, 1 neuron
    >>> means = np.array([[2.0], [2.0], [6.0], [6.0]])  # each image's mean response
    >>> acc = RunningFEVE().update(responses[::2], means[::2], [0, 1])
    >>> _ = acc.update(responses[1::2], means[1::2], [0, 1])
    >>> round(acc.compute(), 4) == round(feve(responses, means, [0, 0, 1, 1]), 4)
    True
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
