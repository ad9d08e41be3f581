"""The 2022 leaderboard against a transcription of the website's code (notes A4), to 1e-6."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.scale import official_precision
from sensorium_models.scoring2022 import leaderboard_2022, website_metrics

# ----------------------------------------------- the notes' formulas, transcribed (A4)


def np_corr(y1, y2, axis=0, eps=1e-8):
    """neuralpredictors.measures.np_functions.corr."""
    y1 = (y1 - y1.mean(axis=axis, keepdims=True)) / (y1.std(axis=axis, keepdims=True, ddof=0)
                                                      + eps)
    y2 = (y2 - y2.mean(axis=axis, keepdims=True)) / (y2.std(axis=axis, keepdims=True, ddof=0)
                                                      + eps)
    return (y1 * y2).mean(axis=axis)


def np_fev(targets, predictions):
    """neuralpredictors.measures.np_functions.fev(..., return_exp_var=True)."""
    img_var, pred_var = [], []
    for target, prediction in zip(targets, predictions, strict=True):
        pred_var.append((target - prediction) ** 2)
        img_var.append(np.var(target, axis=0, ddof=1))
    img_vars, pred_vars = np.vstack(img_var), np.vstack(pred_var)
    total_var = np.var(np.vstack(targets), axis=0, ddof=1)
    noise_var = np.mean(img_vars, axis=0)
    fev = (total_var - noise_var) / total_var
    fev_e = 1 - (np.mean(pred_vars, axis=0) - noise_var) / (total_var - noise_var)
    return fev, fev_e


def website(trial_idx, image_ids, neuron_ids, responses, sub_trial_idx, sub_neuron_ids,
            predictions, threshold=0.15):
    """sensorium/utility/metrics.py::Metrics: order both by trial_idx and neuron_ids, check
    they match, split by image, then the three numbers."""
    t, n = np.argsort(trial_idx), np.argsort(neuron_ids)
    r, ids = responses[t][:, n], np.asarray(image_ids)[t]
    st, sn = np.argsort(sub_trial_idx), np.argsort(sub_neuron_ids)
    assert (np.asarray(trial_idx)[t] == np.asarray(sub_trial_idx)[st]).all()
    assert (np.asarray(neuron_ids)[n] == np.asarray(sub_neuron_ids)[sn]).all()
    p = predictions[st][:, sn]

    def split(x):
        return [x[ids == i] for i in np.unique(ids)]

    single = np_corr(p, r, axis=0).mean()
    mean_r = np.vstack([g.mean(axis=0, keepdims=True) for g in split(r)])
    mean_p = np.vstack([g.mean(axis=0, keepdims=True) for g in split(p)])
    average = np_corr(mean_r, mean_p, axis=0).mean()
    fev, feve = np_fev(split(r), split(p))
    return {"single_trial_correlation": single, "correlation_to_average": average,
            "feve": feve[fev >= threshold].mean()}


def hand_made(seed=0, repeats=(2, 3, 5, 4), n_neurons=4):
    """Trials of images with unequal repeat counts, hashed trial ids, a noisy neuron."""
    rng = np.random.default_rng(seed)
    ids = np.concatenate([[f"img{k}"] * n for k, n in enumerate(repeats)])
    signal = rng.gamma(2.0, 1.0, (len(repeats), n_neurons))
    codes = np.unique(ids, return_inverse=True)[1]
    responses = signal[codes] + rng.normal(0, 0.5, (len(ids), n_neurons))
    responses[:, -1] = rng.normal(0, 1, len(ids))  # no signal: below the FEV threshold
    predictions = signal[codes] * 0.8 + rng.normal(0, 0.3, (len(ids), n_neurons))
    trial_idx = np.array([hashlib.md5(f"{seed}/{i}".encode(), usedforsecurity=False).hexdigest()
                          for i in range(len(ids))])
    return trial_idx, ids, responses, predictions


@pytest.mark.parametrize(("seed", "repeats"), [(0, (2, 3, 5, 4)), (1, (10, 9, 10, 8, 10)),
                                               (2, (2, 2, 2))])
def test_website_metrics_equal_the_transcription(seed, repeats):
    trial_idx, ids, r, p = hand_made(seed, repeats)
    neuron_ids = np.array([14, 2, 7, 9])
    # the submission lists trials and neurons in another order: the website sorts both
    shuffle, perm = np.random.default_rng(seed).permutation(len(ids)), np.array([2, 0, 3, 1])
    want = website(trial_idx, ids, neuron_ids, r, trial_idx[shuffle], neuron_ids[perm],
                   p[shuffle][:, perm])
    got = website_metrics(r, p, ids)
    assert got.keys() == want.keys()
    for metric, value in want.items():
        assert got[metric] == pytest.approx(value, abs=1e-6), metric


def test_feve_filters_by_fev_threshold():
    trial_idx, ids, r, p = hand_made()
    split = [r[ids == i] for i in np.unique(ids)]
    fev, _ = np_fev(split, split)
    assert fev[-1] < 0.15 < fev[:-1].min()  # the noise neuron is left out
    for threshold in (0.15, 0.0, -10.0):
        want = website(trial_idx, ids, np.arange(4), r, trial_idx, np.arange(4), p, threshold)
        got = website_metrics(r, p, ids, fev_threshold=threshold)
        assert got["feve"] == pytest.approx(want["feve"], abs=1e-6)


def test_without_repeats_only_single_trial_correlation():
    r = np.arange(12.0).reshape(4, 3) ** 1.5
    got = website_metrics(r, r * 2 + 1, ["a", "b", "c", "d"])
    assert got["single_trial_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(got["correlation_to_average"]) and np.isnan(got["feve"])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"responses \(4, 3\), predictions \(4, 2\) and 4 image"):
        website_metrics(np.ones((4, 3)), np.ones((4, 2)), list("abcd"))


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin2022")
    trees = sd.simulate(root, preset="static2022", scale=0.1, image_scale=0.125, progress=False)
    return sd.open_store(sd.convert(trees[0], root / "a.zarr", progress=False))


def test_leaderboard_2022_equals_the_transcription(twin):
    rng = np.random.default_rng(0)
    raw = twin.rates.values * rng.uniform(0.5, 1.5, twin.rates.shape)  # (trial, neuron)
    table = leaderboard_2022({"static2022-A": raw}, twin, units="raw")
    assert table.tier.tolist() == ["validation", "test", "final_test"]
    precision = official_precision(twin.sensorium.statistics.responses.sel(statistic="std"))
    for row in table.itertuples():
        keep = twin.tier.values == row.tier
        r, p = twin.responses.values[keep] * precision, raw[keep] * precision
        ids, trial_idx = twin.image_id.values[keep], twin.trial_idx.values[keep]
        assert row.n_trials == keep.sum()
        if row.tier == "validation":  # each image once
            assert row.single_trial_correlation == pytest.approx(
                np_corr(p, r).mean(), abs=1e-6)
            continue
        want = website(trial_idx, ids, twin.neuron.values, r, trial_idx, twin.neuron.values, p)
        for metric, value in want.items():
            assert getattr(row, metric) == pytest.approx(value, abs=1e-6)
        ceiling = website_metrics(r, twin.rates.values[keep] * precision, ids)
        assert row.feve_ceiling == pytest.approx(ceiling["feve"], abs=1e-6)
        assert row.feve_fraction == pytest.approx(row.feve / ceiling["feve"])
    official = leaderboard_2022({"static2022-A": raw * precision}, twin)
    np.testing.assert_allclose(official.feve, table.feve, rtol=1e-6)


def test_evaluate_selects_tiers_of_a_2022_recording(twin):
    """evaluate(tiers=...) looked up n_frames, which a 2022 recording does not have."""
    import sensorium_models as sm

    table = sm.evaluate({"static2022-A": twin.rates}, twin, tiers=["test"])
    assert table.tier.tolist() == ["test"]
    with pytest.raises(ValueError, match=r"no recording has trials of tier\(s\) \['oracle'\]"):
        sm.evaluate({"static2022-A": twin.rates}, twin, tiers=["oracle"])


def test_leaderboard_2022_takes_a_dataarray_of_some_trials(twin):
    test = twin.rates.where(twin.tier == "test", drop=True)
    table = leaderboard_2022({"static2022-A": test}, twin, units="raw")
    assert table.tier.tolist() == ["test"]
    assert table.single_trial_correlation_fraction.iloc[0] == pytest.approx(1.0)


def test_leaderboard_2022_bad_input(twin, make_tree, tmp_path):
    with pytest.raises(ValueError, match=r"tier\(s\) \['oracle'\]; their tiers: .*The 2022 "):
        leaderboard_2022({"static2022-A": twin.rates.values}, twin, tiers=["oracle"])
    with pytest.raises(ValueError, match=r"units='per_neuron'; choose 'official'"):
        leaderboard_2022({"static2022-A": twin.rates.values}, twin, units="per_neuron")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"predictions have shape \(3, 2\); expected"):
        leaderboard_2022({"static2022-A": np.ones((3, 2))}, twin)
    video = sd.open_store(sd.convert(make_tree(), tmp_path / "v.zarr", progress=False))
    with pytest.raises(ValueError, match=r"is a 2023 \(video\) recording; the 2022 table"):
        leaderboard_2022({}, video)


def test_twin_feve_is_a_fraction_of_the_known_explainable_variance(twin):
    from sensorium_data.simulate.static2022 import read_explainable_variance
    from sensorium_models.scoring2022 import twin_feve

    rates = twin.rates.values.astype(np.float64)
    keep = twin.tier.values == "test"
    ids = twin.image_id.values
    # the rates explain all of their own variance; with the behaviour gain they explain more
    # than the image's share
    perfect = twin_feve(rates, twin, units="raw")
    assert perfect["feve_known"] == pytest.approx(1.0, abs=1e-12)
    assert perfect["feve_known_image"] > 1
    # the best image-only prediction (each test image's mean rate) explains the image's share
    image_mean = rates.copy()
    for i in np.unique(ids[keep]):
        at = keep & (ids == i)
        image_mean[at] = rates[at].mean(axis=0)
    best_image = twin_feve(image_mean, twin, units="raw")
    assert best_image["feve_known_image"] == pytest.approx(1.0, abs=1e-9)
    assert best_image["feve_known"] < 1
    worse = twin_feve(rates * 0.5 + rates.mean(axis=0) * 0.5, twin, units="raw")
    assert worse["feve_known"] < 0.9
    # the formulas, transcribed: per neuron against the rates on the official scale, averaged
    # over the neurons whose known explainable fraction reaches 0.15
    precision = official_precision(twin.sensorium.statistics.responses.sel(statistic="std"))
    r = rates[keep] * precision
    p = (rates * 0.5 + rates.mean(axis=0) * 0.5)[keep] * precision
    use = read_explainable_variance(twin.attrs["source"])["test"]["explainable_fraction"] >= 0.15
    assert worse["n_neurons"] == use.sum() > 0
    mse = ((p - r) ** 2).mean(axis=0)
    groups = [r[ids[keep] == i] for i in np.unique(ids[keep])]
    within = sum(((g - g.mean(axis=0)) ** 2).sum(axis=0) for g in groups) / len(r)
    signal = r.var(axis=0)[use]
    mse, within = mse[use], within[use]
    assert worse["feve_known"] == pytest.approx((1 - mse / signal).mean(), abs=1e-9)
    assert worse["feve_known_image"] == pytest.approx(
        (1 - (mse - within) / (signal - within)).mean(), abs=1e-9)
    assert worse["feve_known_median"] == pytest.approx(np.median(1 - mse / signal))
    responses = twin.responses.values[keep] * precision
    assert worse["feve"] == pytest.approx(website_metrics(responses, p, ids[keep])["feve"],
                                          abs=1e-9)


def test_twin_feve_needs_a_twin(make_static_tree, tmp_path):
    from sensorium_models.scoring2022 import twin_feve

    ds = sd.open_store(sd.convert(make_static_tree(height=16, width=32), tmp_path / "s.zarr",
                                  progress=False))
    with pytest.raises(ValueError, match=r"has no known explainable variance .*static2022"):
        twin_feve(np.ones((ds.sizes["trial"], ds.sizes["neuron"])), ds)
