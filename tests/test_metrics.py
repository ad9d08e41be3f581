"""sensorium_models.metrics: hand-computed cases, properties against direct transcriptions of
the formulas and scipy, running accumulators against one-shot results, and bad input."""

from __future__ import annotations

import doctest
import functools

import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorium_models import accumulators, leaderboard, metrics
from sensorium_models.metrics import (
    RunningCorrelationToAverage,
    RunningFEVE,
    RunningOracleCorrelation,
    RunningSingleTrialCorrelation,
    correlation_to_average,
    feve,
    oracle_correlation,
    single_trial_correlation,
)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- direct transcriptions


def ref_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The benchmark's correlation over axis 0 of (samples, neuron) arrays, in float64."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    zx = (x - x.mean(axis=0)) / (x.std(axis=0, ddof=0) + 1e-8)
    zy = (y - y.mean(axis=0)) / (y.std(axis=0, ddof=0) + 1e-8)
    r = (zx * zy).mean(axis=0)
    r[np.isnan(r)] = 0
    return r


def ref_windows(r, p, skip, max_frames):
    """Per trial (neuron, kept frames) of responses and predictions; None if nothing is kept."""
    r, p = r.astype(np.float64), p.astype(np.float64)
    out = []
    for i in range(len(r)):
        if r.ndim == 2:
            keep = not np.isnan(r[i]).all()
            out.append((r[i][:, None], p[i][:, None]) if keep else None)
            continue
        all_nan = np.isnan(r[i]).all(axis=0)
        end = int(np.argmax(all_nan)) if all_nan.any() else r.shape[2]
        stop = end if max_frames is None else min(end, max_frames)
        out.append((r[i][:, skip:stop], p[i][:, skip:stop]) if stop > skip else None)
    return out


def ref_single(r, p, skip=50, max_frames=300):
    kept = [w for w in ref_windows(r, p, skip, max_frames) if w is not None]
    x = np.concatenate([w[0] for w in kept], axis=1).T
    y = np.concatenate([w[1] for w in kept], axis=1).T
    return ref_corr(x, y)


def ref_groups(r, p, ids, skip=50, max_frames=300):
    """Repeat groups: per id the kept windows of its trials, cut to the shortest."""
    groups: dict = {}
    for w, i in zip(ref_windows(r, p, skip, max_frames), ids, strict=True):
        if w is not None:
            groups.setdefault(i, []).append(w)
    out = []
    for ws in groups.values():
        if len(ws) >= 2:
            n = min(w[0].shape[1] for w in ws)
            out.append((np.stack([w[0][:, :n] for w in ws]), np.stack([w[1][:, :n] for w in ws])))
    return out  # each: (repeats, neuron, frames) responses and predictions


def ref_average(r, p, ids, skip=50, max_frames=300):
    groups = ref_groups(r, p, ids, skip, max_frames)
    x = np.concatenate([g[0].mean(axis=0) for g in groups], axis=1).T
    y = np.concatenate([g[1].mean(axis=0) for g in groups], axis=1).T
    return ref_corr(x, y)


def ref_oracle(r, ids, skip=50, max_frames=300):
    xs, ms = [], []
    for g, _ in ref_groups(r, r, ids, skip, max_frames):
        for t in range(len(g)):
            xs.append(g[t])
            ms.append(np.delete(g, t, axis=0).mean(axis=0))
    return ref_corr(np.concatenate(xs, axis=1).T, np.concatenate(ms, axis=1).T)


def ref_feve(r, p, ids, threshold=0.15, skip=50, max_frames=300):
    """sinzlab's 2022 fev/feve, one condition per (image, frame)."""
    targets, preds = [], []
    for gx, gy in ref_groups(r, p, ids, skip, max_frames):
        for f in range(gx.shape[2]):
            targets.append(gx[:, :, f].astype(np.float64))
            preds.append(gy[:, :, f].astype(np.float64))
    img_var = np.vstack([np.var(t, axis=0, ddof=1) for t in targets])
    pred_var = np.vstack([(t - q) ** 2 for t, q in zip(targets, preds, strict=True)])
    total_var = np.var(np.vstack(targets), axis=0, ddof=1)
    noise_var = img_var.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fev = (total_var - noise_var) / total_var
        fev_e = 1 - (pred_var.mean(axis=0) - noise_var) / (total_var - noise_var)
    return fev, fev_e


# ---------------------------------------------------------------- generated data


@st.composite
def recordings(draw, static=False):
    """Small (trial, neuron, frame) responses/predictions with NaN padding, a window, ids."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_trials = draw(st.integers(1, 6))
    n_neurons = draw(st.integers(1, 3))
    n_frames = draw(st.integers(3, 12))
    skip = draw(st.integers(0, 3))
    max_frames = draw(st.one_of(st.none(), st.integers(skip + 1, n_frames + 2)))
    shape = (n_trials, n_neurons) if static else (n_trials, n_neurons, n_frames)
    scale = draw(st.sampled_from([1e-3, 1.0, 100.0]))
    r = (rng.gamma(0.5, scale, shape) + draw(st.sampled_from([0.0, 1.0, 1e3]))).astype(np.float32)
    p = (r + rng.normal(0, scale, shape) * draw(st.sampled_from([0.1, 1, 10]))).astype(np.float32)
    if draw(st.booleans()):  # a neuron without variance
        r[:, 0] = 1.5
    if static:
        withheld = rng.random(n_trials) < 0.2
        r[withheld] = np.nan
    else:
        valid = rng.integers(0, n_frames + 1, n_trials)
        for i, v in enumerate(valid):
            r[i, :, v:] = np.nan
            p[i, :, v:] = rng.choice([np.nan, np.inf, 7.0])  # never read
    ids = rng.integers(0, draw(st.integers(1, 3)), n_trials)
    return r, p, ids, skip, max_frames


def scored(r, skip, max_frames) -> bool:
    return any(w is not None for w in ref_windows(r, r, skip, max_frames))


def has_repeats(r, ids, skip, max_frames) -> bool:
    return bool(ref_groups(r, r, ids, skip, max_frames))


def splits(n: int, seed: int) -> list[np.ndarray]:
    """A random partition of range(n) into 1-3 batches (trial order does not matter)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return [np.flatnonzero(labels == k) for k in range(3) if (labels == k).any()]


# ---------------------------------------------------------------- hand-computed cases


def test_single_trial_window_hand_computed():
    # trial 0: 6 valid frames, trial 1: 4 valid frames (NaN from frame 4)
    nan = np.nan
    r = np.array([[[9, 1, 2, 3, 4, 5, 6]], [[9, 2, 4, 6, nan, nan, nan]]], dtype=np.float32)
    p = np.array([[[0, 1, 2, 3, 5, 9, 9]], [[0, 1, 1, 1, 1, 1, 1]]], dtype=np.float32)
    # skip=1, max_frames=5: trial 0 keeps frames 1..4, trial 1 keeps frames 1..3
    x = np.array([1, 2, 3, 4, 2, 4, 6.0])
    y = np.array([1, 2, 3, 5, 1, 1, 1.0])
    expected = np.corrcoef(x, y)[0, 1]
    got = single_trial_correlation(r, p, skip=1, max_frames=5)
    assert got == pytest.approx(expected, abs=1e-7)


def test_constant_neuron_scores_zero():
    r = np.ones((2, 2, 6), dtype=np.float32)
    r[:, 1] = np.arange(6)
    p = r + np.arange(6)[::-1]
    per_neuron = single_trial_correlation(r, p, skip=0, per_neuron=True)
    assert per_neuron[0] == 0.0
    assert single_trial_correlation(r, p, skip=0) == pytest.approx(per_neuron.mean())


def test_correlation_to_average_hand_computed():
    # two videos, two repeats each, 3 frames, skip 1: averaged traces are 2 frames per video
    r = np.array([[[0, 1, 3]], [[0, 3, 5]], [[0, 4, 0]], [[0, 6, 2]]], dtype=np.float32)
    p = np.array([[[0, 1, 1]], [[0, 1, 3]], [[0, 2, 2]], [[0, 4, 0]]], dtype=np.float32)
    # averages over repeats: responses (2, 4), (5, 1); predictions (1, 2), (3, 1)
    expected = np.corrcoef([2, 4, 5, 1], [1, 2, 3, 1])[0, 1]
    got = correlation_to_average(r, p, ["a", "a", "b", "b"], skip=1)
    assert got == pytest.approx(expected, abs=1e-7)


def test_correlation_to_average_uses_frames_every_repeat_covers():
    r = np.array([[[1, 2, 3, 4]], [[3, 4, np.nan, np.nan]]], dtype=np.float32)
    p = np.array([[[1, 5, 0, 0]], [[1, 1, 0, 0]]], dtype=np.float32)
    # frames 0-1 only; averages: responses (2, 3), predictions (1, 3)
    assert correlation_to_average(r, p, [7, 7], skip=0) == pytest.approx(1.0, abs=1e-7)


def test_oracle_and_feve_hand_computed():
    r = np.array([[1.0], [2.0], [5.0], [6.0]])
    assert oracle_correlation(r, ["a", "a", "b", "b"]) == pytest.approx(15 / 17)
    r = np.array([[1.0], [3.0], [5.0], [7.0]])
    means = np.array([[2.0], [2.0], [6.0], [6.0]])
    # total_var 20/3, noise_var 2, mse 1
    assert feve(r, means, [0, 0, 1, 1]) == pytest.approx(1 - (1 - 2) / (20 / 3 - 2))


def test_feve_threshold_leaves_out_noisy_neurons():
    r = np.array([[1.0, 0.0], [3.0, 9.0], [5.0, 0.0], [7.0, 9.0]])  # neuron 1: all noise
    per_neuron = feve(r, r, [0, 0, 1, 1], per_neuron=True)
    assert np.isnan(per_neuron[1]) and np.isfinite(per_neuron[0])
    assert feve(r, r, [0, 0, 1, 1]) == pytest.approx(per_neuron[0])


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e150])
def test_correlations_of_values_whose_squares_overflow_float64(scale):
    # 1e200 ** 2 is past float64's 1.8e308: the sums are held in units of a power of two,
    # so the correlation is that of the unscaled values (up to the 1e-8 added to each std)
    rng = np.random.default_rng(3)
    r = rng.poisson(2.0, (20, 5, 120)).astype(np.float64)  # 20 trials: two blocks of reads
    p = r + rng.normal(0, 1, r.shape) + np.arange(20)[:, None, None] * 7  # means differ
    ids = np.repeat(np.arange(10), 2)
    for big in (p * 1e200, p * 1e150):
        assert single_trial_correlation(r, big) == pytest.approx(
            single_trial_correlation(r, p), rel=1e-7)
        assert correlation_to_average(r, big, ids) == pytest.approx(
            correlation_to_average(r, p, ids), rel=1e-7)
    both = single_trial_correlation(r * scale, p * scale, per_neuron=True)
    if scale > 1:  # tiny values score ~0, as the benchmark's eps in the denominator has it
        np.testing.assert_allclose(both, single_trial_correlation(r, p, per_neuron=True),
                                   rtol=1e-7)
    # batch by batch, merged: the same
    a = RunningSingleTrialCorrelation().update(r[:7] * scale, p[:7] * 1e200)
    b = RunningSingleTrialCorrelation().update(r[7:] * scale, p[7:])  # another scale: merges
    whole = RunningSingleTrialCorrelation().update(
        np.concatenate([r[:7] * scale, r[7:] * scale]), np.concatenate([p[:7] * 1e200, p[7:]]))
    assert a.merge(b).compute() == pytest.approx(whole.compute(), rel=1e-7)


def test_scaled_units_at_ordinary_scales_match_the_direct_formula():
    # the units are powers of two: dividing by them is exact, so nothing rounds differently
    # (the pinned values elsewhere in this file stay as they were)
    rng = np.random.default_rng(4)
    r = rng.gamma(0.5, 3.0, (9, 4, 90)).astype(np.float32)
    p = (r + rng.normal(0, 2, r.shape) + 1e3).astype(np.float32)
    acc = RunningSingleTrialCorrelation(skip=10).update(r, p)
    assert (acc.kx > 1).any()  # the means differ by more than 1: scaled units in use
    x = np.concatenate(list(r[:, :, 10:].astype(np.float64)), axis=1)
    y = np.concatenate(list(p[:, :, 10:].astype(np.float64)), axis=1)
    dx, dy = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    n = x.shape[1]
    direct = (dx * dy).sum(1) / n / ((np.sqrt((dx * dx).sum(1) / n) + 1e-8)
                                     * (np.sqrt((dy * dy).sum(1) / n) + 1e-8))
    np.testing.assert_allclose(acc.compute(per_neuron=True), direct, rtol=1e-12)


def test_zero_neurons_are_named():
    r, p = _data()
    match = (r"responses have no neurons \(shape \(3, 0, 60\)\): a metric is a mean over "
             r"neurons; select at least one")
    for call in (lambda: single_trial_correlation(r[:, :0], p[:, :0]),
                 lambda: correlation_to_average(r[:, :0], p[:, :0], [0, 0, 1]),
                 lambda: oracle_correlation(r[:, :0], [0, 0, 1]),
                 lambda: feve(r[:, :0], p[:, :0], [0, 0, 1])):
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(ValueError, match=r"responses have no neurons \(shape \(0, 70\)\)"):
        RunningSingleTrialCorrelation().add(np.zeros((0, 70)), np.zeros((0, 70)))


def test_zero_padded_responses_with_n_frames():
    rng = np.random.default_rng(1)
    r = rng.random((3, 4, 20)).astype(np.float32)
    p = rng.random((3, 4, 20)).astype(np.float32)
    n_frames = np.array([20, 12, 15])
    padded = r.copy()
    for i, n in enumerate(n_frames):
        padded[i, :, n:] = np.nan
    zeros = np.nan_to_num(padded)
    expected = single_trial_correlation(padded, p, skip=2)
    assert single_trial_correlation(zeros, p, skip=2, n_frames=n_frames) == pytest.approx(expected)


# ---------------------------------------------------------------- properties


@PROPERTY
@given(recordings())
def test_single_trial_matches_transcription_and_scipy(case):
    r, p, _, skip, max_frames = case
    if not scored(r, skip, max_frames):
        with pytest.raises(ValueError, match="nothing to score"):
            single_trial_correlation(r, p, skip=skip, max_frames=max_frames)
        return
    got = single_trial_correlation(r, p, skip=skip, max_frames=max_frames, per_neuron=True)
    np.testing.assert_allclose(got, ref_single(r, p, skip, max_frames), atol=1e-6)
    kept = [w for w in ref_windows(r, p, skip, max_frames) if w is not None]
    x = np.concatenate([w[0] for w in kept], axis=1).astype(np.float64)
    y = np.concatenate([w[1] for w in kept], axis=1).astype(np.float64)
    for n in range(x.shape[0]):
        if x.shape[1] > 2 and x[n].std() > 0.01 and y[n].std() > 0.01:
            assert got[n] == pytest.approx(scipy.stats.pearsonr(x[n], y[n])[0], abs=1e-6)
    mean = single_trial_correlation(r, p, skip=skip, max_frames=max_frames)
    assert mean == pytest.approx(got.mean(), abs=1e-12)


@PROPERTY
@given(recordings(static=True))
def test_single_trial_2022_is_correlation_over_trials(case):
    r, p, _, _, _ = case
    keep = ~np.isnan(r).all(axis=1)
    if not keep.any():
        return
    got = single_trial_correlation(r, p, per_neuron=True)
    np.testing.assert_allclose(got, ref_corr(r[keep], p[keep]), atol=1e-6)


@PROPERTY
@given(st.one_of(recordings(), recordings(static=True)))
def test_repeat_metrics_match_transcriptions(case):
    r, p, ids, skip, max_frames = case
    kw = {"skip": skip, "max_frames": max_frames}
    if not has_repeats(r, ids, skip, max_frames):
        with pytest.raises(ValueError, match=r"no repeats|nothing to score"):
            correlation_to_average(r, p, ids, **kw)
        return
    np.testing.assert_allclose(
        correlation_to_average(r, p, ids, per_neuron=True, **kw),
        ref_average(r, p, ids, skip, max_frames),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        oracle_correlation(r, ids, per_neuron=True, **kw),
        ref_oracle(r, ids, skip, max_frames),
        atol=1e-6,
    )
    fev, fev_e = ref_feve(r, p, ids, 0.15, skip, max_frames)
    got = feve(r, p, ids, per_neuron=True, **kw)
    keep = fev >= 0.15
    np.testing.assert_allclose(got[keep], fev_e[keep], rtol=1e-6, atol=1e-6)
    assert np.isnan(got[~keep]).all()


@PROPERTY
@given(st.one_of(recordings(), recordings(static=True)), st.integers(0, 2**32 - 1))
def test_running_merged_equals_one_shot(case, seed):
    r, p, ids, skip, max_frames = case
    kw = {"skip": skip, "max_frames": max_frames}
    batches = splits(len(r), seed)

    def merged(make, feed):
        parts = [feed(make(), b) for b in batches]
        return functools.reduce(lambda a, b: a.merge(b), parts)

    if scored(r, skip, max_frames):
        acc = merged(lambda: RunningSingleTrialCorrelation(**kw), lambda a, b: a.update(r[b], p[b]))
        one_shot = single_trial_correlation(r, p, per_neuron=True, **kw)
        np.testing.assert_allclose(acc.compute(per_neuron=True), one_shot, atol=1e-6)
    if has_repeats(r, ids, skip, max_frames):
        checks = [
            (
                RunningCorrelationToAverage,
                lambda a, b: a.update(r[b], p[b], ids[b]),
                correlation_to_average(r, p, ids, per_neuron=True, **kw),
            ),
            (
                RunningOracleCorrelation,
                lambda a, b: a.update(r[b], ids[b]),
                oracle_correlation(r, ids, per_neuron=True, **kw),
            ),
            (
                RunningFEVE,
                lambda a, b: a.update(r[b], p[b], ids[b]),
                feve(r, p, ids, per_neuron=True, **kw),
            ),
        ]
        for cls, feed, one_shot in checks:
            acc = merged(lambda cls=cls: cls(**kw), feed)
            np.testing.assert_allclose(
                acc.compute(per_neuron=True), one_shot, atol=1e-6, equal_nan=True
            )


def test_running_sequential_updates_equal_one_shot():
    rng = np.random.default_rng(3)
    r = rng.gamma(0.5, 2.0, (40, 25, 90)).astype(np.float32) + 3
    p = r * 0.5 + rng.normal(0, 1, r.shape).astype(np.float32)
    ids = np.repeat(np.arange(8), 5)
    single = RunningSingleTrialCorrelation(skip=10, max_frames=80)
    average = RunningCorrelationToAverage(skip=10, max_frames=80)
    for b in np.array_split(rng.permutation(40), 7):
        single.update(r[b], p[b])
        average.update(r[b], p[b], ids[b])
    assert single.compute() == pytest.approx(
        single_trial_correlation(r, p, skip=10, max_frames=80), abs=1e-6
    )
    assert average.compute() == pytest.approx(
        correlation_to_average(r, p, ids, skip=10, max_frames=80), abs=1e-6
    )


# ---------------------------------------------------------------- input types


def test_torch_xarray_and_dask_inputs_agree():
    torch = pytest.importorskip("torch")
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(2)
    r = rng.random((5, 3, 70)).astype(np.float32)
    r[2, :, 60:] = np.nan
    p = rng.random((5, 3, 70)).astype(np.float32)
    ids = np.array(["a", "a", "b", "b", "b"])
    expected = single_trial_correlation(r, p)
    assert single_trial_correlation(torch.from_numpy(r), torch.from_numpy(p)) == pytest.approx(
        expected
    )
    dims = ("trial", "neuron", "frame")
    rx = xr.DataArray(r, dims=dims, coords={"trial": [10, 11, 12, 13, 14]})
    px = xr.DataArray(p, dims=dims, coords={"trial": [10, 11, 12, 13, 14]})
    lazy = rx.transpose("frame", "trial", "neuron").chunk({"trial": 2})
    assert single_trial_correlation(lazy, px) == pytest.approx(expected)
    assert correlation_to_average(lazy, px, xr.DataArray(ids, dims="trial")) == pytest.approx(
        correlation_to_average(r, p, ids)
    )


# ---------------------------------------------------------------- bad input


def _data(trials=3, neurons=2, frames=60):
    rng = np.random.default_rng(0)
    return (
        rng.random((trials, neurons, frames)).astype(np.float32),
        rng.random((trials, neurons, frames)).astype(np.float32),
    )


def test_error_shapes_do_not_match():
    r, p = _data()
    with pytest.raises(
        ValueError,
        match=r"same trials and neurons: responses .* \(3, 2, 60\), predictions = \(3, 1, 60\)",
    ):
        single_trial_correlation(r, p[:, :1])
    with pytest.raises(ValueError, match=r"must be 3-D .* or 2-D .* got shape"):
        single_trial_correlation(r[0, 0], p[0, 0])
    with pytest.raises(
        ValueError, match="predictions of trial 0 have 40 frames but frames up to 60"
    ):
        single_trial_correlation(r, p[:, :, :40])
    with pytest.raises(TypeError, match="must hold real numbers"):
        single_trial_correlation(r.astype(str), p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_error_non_finite_predictions_where_responses_are_valid(bad):
    r, p = _data()
    p[1, 1, 55] = bad
    with pytest.raises(
        ValueError,
        match=r"predictions of trial 1 have 1 NaN or infinite values where the responses are "
        r"valid \(frames 50\.\.59",
    ):
        single_trial_correlation(r, p)
    with pytest.raises(ValueError, match="predictions of trial 1 have 1 NaN"):
        correlation_to_average(r, p, [0, 0, 1])
    p[1, 1, 55] = 0
    p[1, 1, 10] = bad  # before the window: not scored
    assert np.isfinite(single_trial_correlation(r, p))


def test_error_responses_with_nan_inside_valid_frames():
    r, p = _data()
    r[0, 1, 52] = np.nan
    with pytest.raises(
        ValueError,
        match=r"responses of trial 0 have 1 NaN or infinite values inside the scored "
        r"frames 50\.\.59",
    ):
        single_trial_correlation(r, p)


def test_error_no_repeats():
    r, p = _data()
    with pytest.raises(
        ValueError, match="no repeats: none of the 3 video/image ids is shared by 2"
    ):
        correlation_to_average(r, p, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no repeats"):
        oracle_correlation(r, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no repeats"):
        feve(r[:, :, 0], p[:, :, 0], ["a", "b", "c"])


def test_error_video_ids_of_wrong_length():
    r, p = _data()
    with pytest.raises(
        ValueError,
        match=r"video_ids must give one id per trial: responses have 3 trials but video_ids has "
        r"shape \(2,\)",
    ):
        correlation_to_average(r, p, ["a", "a"])
    with pytest.raises(ValueError, match="image_ids must give one id per trial"):
        feve(r[:, :, 0], p[:, :, 0], ["a"])


def test_error_empty_selection():
    r, p = _data()
    with pytest.raises(ValueError, match="nothing to score"):
        single_trial_correlation(r[:0], p[:0])
    with pytest.raises(ValueError, match="nothing to score"):
        single_trial_correlation(np.full_like(r, np.nan), p)  # all withheld
    with pytest.raises(ValueError, match="nothing to score"):
        single_trial_correlation(r[:, :, :50], p[:, :, :50])  # no frame past skip
    with pytest.raises(ValueError, match="nothing to score"):
        correlation_to_average(r[:0], p[:0], [])


def test_error_bad_window_and_options():
    r, p = _data()
    with pytest.raises(ValueError, match="skip must be a non-negative integer"):
        single_trial_correlation(r, p, skip=-1)
    with pytest.raises(ValueError, match="max_frames must be None or an integer above skip=50"):
        single_trial_correlation(r, p, max_frames=50)
    with pytest.raises(ValueError, match="min_repeats must be an integer of at least 2"):
        correlation_to_average(r, p, [0, 0, 1], min_repeats=1)
    with pytest.raises(ValueError, match="n_frames must hold one integer per trial"):
        single_trial_correlation(r, p, n_frames=[60, 60])


def test_error_misaligned_coordinates():
    xr = pytest.importorskip("xarray")
    r, p = _data()
    dims = ("trial", "neuron", "frame")
    rx = xr.DataArray(r, dims=dims, coords={"trial": [1, 2, 3]})
    px = xr.DataArray(p, dims=dims, coords={"trial": [1, 3, 2]})
    with pytest.raises(
        ValueError,
        match=r"trial coordinates of responses and predictions differ \(first at position 1: "
        r"2 vs 3\)",
    ):
        single_trial_correlation(rx, px)


def test_error_merging_incompatible_accumulators():
    r, p = _data()
    a = RunningSingleTrialCorrelation().update(r, p)
    with pytest.raises(ValueError, match="different frame windows"):
        a.merge(RunningSingleTrialCorrelation(skip=10))
    with pytest.raises(ValueError, match="accumulators of 2 and 1 neurons"):
        a.merge(RunningSingleTrialCorrelation().update(r[:, :1], p[:, :1]))
    with pytest.raises(TypeError, match="cannot merge a RunningOracleCorrelation"):
        RunningFEVE().merge(RunningOracleCorrelation())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holds 2 neurons of 3-D data"):
        a.update(r[:, :, 0], p[:, :, 0])


@pytest.mark.parametrize("module", [metrics, accumulators, leaderboard])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
