"""sensorium_models.leaderboard.evaluate on recordings built by hand in the foundation's shape."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from sensorium_models import evaluate, official_precision
from sensorium_models.metrics import correlation_to_average, feve, single_trial_correlation

FRAMES = 40
WINDOW = {"skip": 5, "max_frames": 30}
# (tier, stimulus type, videos, repeats, valid frames, labelled)
LAYOUT = [
    ("train", "NaturalVideo", 4, 1, 40, True),
    ("oracle", "NaturalVideo", 2, 3, 40, True),
    ("live_test_main", "NaturalVideo", 1, 3, 40, False),
    ("final_test_main", "NaturalVideo", 2, 3, 36, True),
    ("final_test_bonus", "Gabor", 2, 2, 32, True),
    ("final_test_bonus", "RandomDots", 1, 3, 24, True),
]


def make_recording(mouse: str, n_neurons: int = 5, seed: int = 0, rates: bool = True):
    """A 2023 recording's Dataset: rates per video, Poisson-like noise, NaN padding."""
    rng = np.random.default_rng(seed)
    tier, kind, video, n_frames, labelled, truth = [], [], [], [], [], []
    for t, k, videos, repeats, frames, lab in LAYOUT:
        for v in range(videos):
            signal = rng.gamma(1.0, 1.0, (n_neurons, FRAMES))
            for _ in range(repeats):
                tier.append(t), kind.append(k), video.append(f"{t}-{k}-{v}")
                n_frames.append(frames), labelled.append(lab), truth.append(signal)
    rate = np.stack(truth).astype(np.float32)  # (trial, neuron, frame)
    responses = (rate + rng.normal(0, 0.7, rate.shape)).astype(np.float32)
    frame = np.arange(FRAMES)
    padding = frame[None, None, :] >= np.array(n_frames)[:, None, None]
    responses[np.broadcast_to(padding, responses.shape)] = np.nan
    rate[np.broadcast_to(padding, rate.shape)] = np.nan
    responses[~np.array(labelled)] = np.nan
    trials = np.arange(len(tier)) * 2 + 1  # file indices with gaps
    data = {"responses": (("trial", "neuron", "frame"), responses)}
    if rates:
        data["rates"] = (("trial", "neuron", "frame"), rate)
    return xr.Dataset(
        data,
        coords={
            "trial": trials,
            "tier": ("trial", np.array(tier)),
            "stimulus_type": ("trial", np.array(kind)),
            "video_id": ("trial", np.array(video)),
            "n_frames": ("trial", np.array(n_frames)),
            "labelled": ("trial", np.array(labelled)),
            "neuron": np.arange(n_neurons) * 3 + 1,
            "time": ("frame", frame / 30),
        },
        attrs={"mouse": mouse, "competition": "2023"},
    )


def predict(ds: xr.Dataset, seed: int = 1, tiers=None) -> xr.DataArray:
    """A noisy model of the rates, NaN before skip (not predicted), as a DataArray by trial."""
    rng = np.random.default_rng(seed)
    pred = ds["rates"] + rng.normal(0, 0.5, ds["rates"].shape)
    pred[:, :, :2] = np.nan
    if tiers is not None:
        pred = pred.where(ds.tier.isin(tiers), drop=True)
    return pred.astype(np.float32)


def subset(ds, pred, tier, kind):
    sel = (ds.tier == tier) & (ds.stimulus_type == kind)
    return ds.where(sel, drop=True), pred.sel(trial=ds.trial[sel])


@pytest.fixture(scope="module")
def mice():
    return {
        "A": make_recording("dynamicA-1-1-Video-x", n_neurons=5, seed=0),
        "B": make_recording("dynamicB-1-1-Video-x", n_neurons=3, seed=5),
    }


@pytest.fixture(scope="module")
def table(mice):
    preds = {key: predict(ds, seed=i) for i, (key, ds) in enumerate(mice.items())}
    return evaluate(preds, mice, **WINDOW), preds


def row(table, mouse, tier, kind):
    out = table[(table.mouse == mouse) & (table.tier == tier) & (table.stimulus_type == kind)]
    assert len(out) == 1, (mouse, tier, kind)
    return out.iloc[0]


def test_rows_match_the_metric_functions(mice, table):
    table, preds = table
    for key, ds in mice.items():
        mouse = ds.attrs["mouse"]
        for tier, kind in [("oracle", "NaturalVideo"), ("final_test_bonus", "Gabor")]:
            sub, pred = subset(ds, preds[key], tier, kind)
            r = row(table, mouse, tier, kind)
            assert r.single_trial_correlation == pytest.approx(
                single_trial_correlation(sub.responses, pred, **WINDOW)
            )
            assert r.correlation_to_average == pytest.approx(
                correlation_to_average(sub.responses, pred, sub.video_id, **WINDOW)
            )
            assert r.n_trials == len(sub.trial) and r.n_neurons == ds.sizes["neuron"]


def test_train_tier_has_no_repeats(table):
    table, _ = table
    r = row(table, "dynamicA-1-1-Video-x", "train", "NaturalVideo")
    assert r.n_trials == 4 and np.isfinite(r.single_trial_correlation)
    assert np.isnan(r.correlation_to_average)


def test_unlabelled_trials_are_skipped_and_counted(table):
    table, _ = table
    r = row(table, "dynamicA-1-1-Video-x", "live_test_main", "NaturalVideo")
    assert (r.n_trials, r.n_unlabelled) == (0, 3)
    assert np.isnan(r.single_trial_correlation)
    pooled = row(table, "all", "live_test_main", "all")
    assert (pooled.n_trials, pooled.n_unlabelled) == (0, 6)


def test_pooled_rows_as_table_1(mice, table):
    table, preds = table
    per_neuron = []
    for key, ds in mice.items():
        sub, pred = subset(ds, preds[key], "final_test_main", "NaturalVideo")
        per_neuron.append(single_trial_correlation(sub.responses, pred, per_neuron=True, **WINDOW))
    main = row(table, "all", "final_test_main", "all")
    assert main.single_trial_correlation == pytest.approx(np.concatenate(per_neuron).mean())
    assert (main.n_neurons, main.n_trials) == (8, 12)
    by_type = []
    for kind in ("Gabor", "RandomDots"):
        values = []
        for key, ds in mice.items():
            sub, pred = subset(ds, preds[key], "final_test_bonus", kind)
            values.append(
                correlation_to_average(sub.responses, pred, sub.video_id, per_neuron=True, **WINDOW)
            )
        by_type.append(np.concatenate(values).mean())
    bonus = row(table, "all", "final_test_bonus", "out_of_domain")
    assert bonus.correlation_to_average == pytest.approx(np.mean(by_type))


def test_ceiling_from_rates(mice, table):
    table, _ = table
    ds = mice["A"]
    sub = ds.where(ds.tier == "oracle", drop=True)
    r = row(table, ds.attrs["mouse"], "oracle", "NaturalVideo")
    ceiling = single_trial_correlation(sub.responses, sub.rates, **WINDOW)
    assert r.single_trial_correlation_ceiling == pytest.approx(ceiling)
    assert r.single_trial_correlation_fraction == pytest.approx(
        r.single_trial_correlation / ceiling
    )
    # a model that predicts the rates reaches the ceiling
    perfect = evaluate({"A": ds.rates.sel(trial=sub.trial)}, {"A": ds}, **WINDOW)
    assert row(perfect, ds.attrs["mouse"], "oracle", "NaturalVideo")[
        ["single_trial_correlation_fraction", "correlation_to_average_fraction"]
    ].tolist() == pytest.approx([1.0, 1.0])


def test_prediction_forms_agree(mice):
    ds = mice["A"]
    pred = predict(ds)
    tiers = ["oracle", "final_test_main"]
    by_trial = evaluate({"A": pred.where(ds.tier.isin(tiers), drop=True)}, {"A": ds}, **WINDOW)
    aligned = evaluate({ds.attrs["mouse"]: pred.values}, [ds], tiers=tiers, **WINDOW)
    shuffled = pred.isel(neuron=[4, 2, 0, 1, 3], trial=np.arange(len(ds.trial))[::-1])
    permuted = evaluate({"A": shuffled}, {"A": ds}, tiers=tiers, **WINDOW)
    lazy = evaluate(
        {"A": pred.chunk({"trial": 5})}, {"A": ds.chunk({"trial": 4})}, tiers=tiers, **WINDOW
    )
    for other in (aligned, permuted, lazy):
        assert other[by_trial.columns].equals(by_trial)


def test_official_scale(mice):
    ds = mice["A"]
    pred = predict(ds, tiers=["oracle"])
    rng = np.random.default_rng(4)
    std = rng.uniform(0.5, 2.0, (ds.sizes["neuron"], FRAMES))
    prec = official_precision(std)
    table = evaluate({"A": pred}, {"A": ds}, scale="official", precision={"A": prec}, **WINDOW)
    sub = ds.where(ds.tier == "oracle", drop=True)
    expected = single_trial_correlation(sub.responses * prec, pred * prec, **WINDOW)
    r = row(table, ds.attrs["mouse"], "oracle", "NaturalVideo")
    assert r.single_trial_correlation == pytest.approx(expected)
    assert table.attrs["scale"] == "official"
    # a precision constant over frames leaves every correlation unchanged
    flat = np.repeat(prec[:, :1], FRAMES, axis=1)
    scaled = evaluate({"A": pred}, {"A": ds}, scale="official", precision={"A": flat}, **WINDOW)
    raw = evaluate({"A": pred}, {"A": ds}, **WINDOW)
    np.testing.assert_allclose(
        scaled.single_trial_correlation, raw.single_trial_correlation, atol=1e-6
    )


def test_official_precision_matches_neuronormalizer():
    std = np.array([[1.0, 2.0, np.nan], [0.001, 4.0, 0.5]])
    threshold = 0.01 * np.nanmean(std)
    expected = np.array([[1.0, 0.5, 1 / threshold], [1 / threshold, 0.25, 2.0]])
    np.testing.assert_allclose(official_precision(std), expected)


def test_2022_recording_scores_feve():
    rng = np.random.default_rng(0)
    images = np.repeat(np.arange(6), 4)
    signal = rng.gamma(1.0, 1.0, (6, 4))[images]
    responses = signal + rng.normal(0, 0.3, signal.shape)
    ds = xr.Dataset(
        {"responses": (("trial", "neuron"), responses)},
        coords={
            "trial": np.arange(24),
            "tier": ("trial", ["test"] * 24),
            "image_id": ("trial", images),
            "neuron": np.arange(4),
        },
        attrs={"mouse": "static1-2-3-GrayImageNet-x", "competition": "2022"},
    )
    pred = signal + rng.normal(0, 0.2, signal.shape)
    table = evaluate({"static1-2-3-GrayImageNet-x": pred}, [ds])
    assert len(table) == 1  # no pooled rows for 2022
    r = table.iloc[0]
    assert r.feve == pytest.approx(feve(responses, pred, images))
    assert r.single_trial_correlation == pytest.approx(single_trial_correlation(responses, pred))
    assert r.stimulus_type == "unknown"


def test_errors(mice):
    ds = mice["A"]
    pred = predict(ds, tiers=["oracle"])
    with pytest.raises(KeyError, match=r"no dataset for mouse 'C'; the datasets are \["):
        evaluate({"C": pred}, mice)
    with pytest.raises(ValueError, match="have 6 trials but the recording has 26: pass an array"):
        evaluate({"A": pred.values}, mice)
    with pytest.raises(ValueError, match=r"2 trials the recording does not have: \[100, 102\]"):
        evaluate({"A": pred.assign_coords(trial=[1, 3, 5, 7, 100, 102])}, mice)
    with pytest.raises(ValueError, match="does not hold the recording's 5 neurons"):
        evaluate({"A": pred.assign_coords(neuron=[1, 2, 3, 4, 5])}, mice)
    bad = pred.copy()
    bad[2, 1, 10] = np.nan
    trial = int(bad.trial[2])
    with pytest.raises(
        ValueError,
        match=rf"dynamicA-1-1-Video-x: predictions of trial {trial} have 1 NaN or infinite",
    ):
        evaluate({"A": bad}, mice, **WINDOW)
    with pytest.raises(ValueError, match=r"no recording has trials of tier\(s\) \['orcale'\]; "
                       r"their tiers: \[.*'oracle'"):
        evaluate({"A": pred}, mice, tiers=["oracle", "orcale"])
    live = ds.rates.where(ds.tier == "live_test_main", drop=True)
    with pytest.raises(ValueError, match=r"nothing to score: .* \(3 unlabelled trials skipped"):
        evaluate({"A": live}, mice)
    with pytest.raises(ValueError, match="scale='official' needs the response statistics"):
        evaluate({"A": pred}, mice, scale="official")
    with pytest.raises(ValueError, match="precision has 2 neurons; the recording has 5"):
        evaluate({"A": pred}, mice, scale="official", precision={"A": np.ones((2, 40))})
    with pytest.raises(ValueError, match="precision covers 20 frames but frames up to 30"):
        evaluate({"A": pred}, mice, scale="official", precision={"A": np.ones((5, 20))}, **WINDOW)
    with pytest.raises(ValueError, match="scale must be 'raw' or 'official'; got 'z'"):
        evaluate({"A": pred}, mice, scale="z")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predictions must be a mapping mouse"):
        evaluate(pred, mice)  # type: ignore[arg-type]


def test_a_converted_recording(make_tree, tmp_path):
    """The foundation's own Dataset: lazy, withheld test tiers, shipped statistics."""
    sd = pytest.importorskip("sensorium_data")
    tree = make_tree("dynamic1-2-3-Video-x", frames=60, withheld=True, junk=False)
    ds = sd.open_mouse(sd.convert(tree, tmp_path / "x.zarr", progress=False), progress=False)
    rng = np.random.default_rng(0)
    pred = ds.responses.fillna(0) + rng.normal(0, 1.0, ds.responses.shape)
    window = {"skip": 5, "max_frames": 50}
    table = evaluate({"dynamic1-2-3-Video-x": pred}, [ds], **window)
    oracle = ds.where(ds.tier == "oracle", drop=True)
    r = row(table, "dynamic1-2-3-Video-x", "oracle", "unknown")
    expected = single_trial_correlation(
        oracle.responses, pred.sel(trial=oracle.trial), n_frames=oracle.n_frames, **window
    )
    assert r.single_trial_correlation == pytest.approx(expected)
    tests = table[table.tier.str.contains("test") & (table.mouse != "all")]
    assert (tests.n_trials == 0).all() and tests.n_unlabelled.sum() == 7  # withheld: skipped
    std = ds.sensorium.statistics.responses.sel(statistic="std").values
    official = evaluate({"dynamic1-2-3-Video-x": pred}, [ds], scale="official", **window)
    prec = official_precision(std)
    expected = single_trial_correlation(
        oracle.responses * prec, pred.sel(trial=oracle.trial) * prec, **window
    )
    assert row(official, "dynamic1-2-3-Video-x", "oracle", "unknown").single_trial_correlation == (
        pytest.approx(expected)
    )


def test_calibration_is_the_predicted_over_the_recorded_mean(mice, table):
    table, preds = table
    r = row(table, "dynamicA-1-1-Video-x", "oracle", "NaturalVideo")
    ds, pred = subset(mice["A"], preds["A"], "oracle", "NaturalVideo")
    window = slice(WINDOW["skip"], WINDOW["max_frames"])
    recorded = ds.responses[:, :, window].mean(("trial", "frame")).values
    predicted = pred[:, :, window].mean(("trial", "frame")).values
    assert r.calibration == pytest.approx(predicted.mean() / recorded.mean(), rel=1e-4)
    assert (table["warning"] == "").all()  # a model of the rates: on scale, not constant


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        (lambda p: p * 0, "all zero"),
        (lambda p: p * 0 + 0.7, "constant"),
        (lambda p: p * 100, r"mean (9\d|1\d\d)(\.\d)?x the responses'"),
        (lambda p: p / 50, r"mean 0\.0\d+x the responses'"),
    ],
)
def test_predictions_off_in_scale_are_flagged_in_the_table_and_the_log(mice, change, warning,
                                                                       caplog):
    preds = {"A": change(predict(mice["A"]))}
    with caplog.at_level("WARNING", logger="sensorium_models.leaderboard"):
        table = evaluate(preds, {"A": mice["A"]}, **WINDOW)
    oracle = row(table, "dynamicA-1-1-Video-x", "oracle", "NaturalVideo")
    assert re.fullmatch(warning, oracle.warning)
    assert re.search(r"predictions of dynamicA-1-1-Video-x, oracle, NaturalVideo: "
                     + warning.split(" ")[0] + r".*When training goes wrong", caplog.text)


def test_flagged_reads_a_table_back_from_csv(tmp_path):
    import pandas as pd

    from sensorium_models.leaderboard import flagged

    table = pd.DataFrame({"mouse": ["a", "b"], "tier": ["oracle"] * 2,
                          "stimulus_type": ["NaturalVideo"] * 2, "calibration": [1.0, 150.0],
                          "warning": ["", "mean 150x the responses'"]})
    table.to_csv(tmp_path / "scores.csv", index=False)
    back = pd.read_csv(tmp_path / "scores.csv")  # "" comes back as NaN
    assert flagged(back) == flagged(table)
    assert len(flagged(table)) == 1 and flagged(table)[0].startswith("predictions of b, oracle")
    quiet = pd.read_csv(tmp_path / "scores.csv").assign(warning=float("nan"))  # no warning
    assert flagged(quiet) == []
