"""sensorium_models.submission: the competition's files, written, read, validated and scored."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("pyarrow")
import pandas as pd

from sensorium_models import (
    evaluate,
    read_submission,
    score_submission,
    validate_submission,
    write_submission,
)

FRAMES = 330
MOUSE = "dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"
# (tier, stimulus type, valid frames): two videos of three repeats each
LAYOUT = [
    ("oracle", "NaturalVideo", 300),
    ("live_test_main", "NaturalVideo", 300),
    ("final_test_main", "NaturalVideo", 299),
    ("live_test_bonus", "PinkNoise", 324),
    ("final_test_bonus", "RandomDots", 240),
    ("final_test_bonus", "GaussianDot", 315),
]


def make_recording(mouse: str = MOUSE, n_neurons: int = 4, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    rows = [(t, k, f, f"{t}{k}{v}") for t, k, f in LAYOUT for v in range(2) for _ in range(3)]
    signal = {vid: rng.gamma(1.0, 1.0, (n_neurons, FRAMES)) for *_, vid in rows}
    rates = np.stack([signal[vid] for *_, vid in rows]).astype(np.float32)
    n_frames = np.array([f for _, _, f, _ in rows])
    padding = np.arange(FRAMES)[None, None, :] >= n_frames[:, None, None]
    rates[np.broadcast_to(padding, rates.shape)] = np.nan
    responses = (rates + rng.normal(0, 0.8, rates.shape)).astype(np.float32)
    dims = ("trial", "neuron", "frame")
    return xr.Dataset(
        {"responses": (dims, responses), "rates": (dims, rates)},
        coords={
            "trial": np.arange(len(rows)) + 100,
            "tier": ("trial", [t for t, *_ in rows]),
            "stimulus_type": ("trial", [k for _, k, *_ in rows]),
            "video_id": ("trial", [v for *_, v in rows]),
            "n_frames": ("trial", n_frames),
            "labelled": ("trial", np.ones(len(rows), bool)),
            "neuron": np.array([1, 3, 4, 6, 9, 11][:n_neurons]),
        },
        attrs={"mouse": mouse, "competition": "2023"},
    )


@pytest.fixture(scope="module")
def recording():
    ds = make_recording()
    rng = np.random.default_rng(7)
    pred = (ds.rates + rng.normal(0, 0.5, ds.rates.shape)).astype(np.float32)
    pred[:, :, :SKIP_FRAMES] = np.nan  # models predict from frame 50 on
    return ds, pred


SKIP_FRAMES = 50


@pytest.fixture(scope="module")
def main_track(recording, tmp_path_factory):
    ds, pred = recording
    folder = tmp_path_factory.mktemp("main")
    paths = write_submission({"F": pred}, {"F": ds}, folder)
    return folder, paths


def test_write_main_track_files_and_zip(main_track, recording):
    folder, paths = main_track
    names = [p.name for p in paths]
    assert names == [
        "predictions_live_main.parquet.brotli",
        "predictions_final_main.parquet.brotli",
        "submission_main.zip",
    ]
    with zipfile.ZipFile(folder / "submission_main.zip") as z:
        assert sorted(z.namelist()) == sorted(names[:2])
    frame = pd.read_parquet(folder / names[1])  # plain pandas reads it, as the scorer did
    assert list(frame.columns) == ["mouse", "trial_indices", "prediction", "neuron_ids"]
    assert (frame.mouse == MOUSE).all()


def test_read_back_values(main_track, recording):
    folder, _ = main_track
    ds, pred = recording
    table = read_submission(folder / "predictions_final_main.parquet.brotli")
    tier = ds.trial[ds.tier == "final_test_main"].values
    assert table.trial_indices.tolist() == tier.tolist()
    for _, row in table.iterrows():
        n = int(ds.n_frames.sel(trial=row.trial_indices))
        expected = pred.sel(trial=row.trial_indices).values[:, 50:n]
        assert row.prediction.shape == (4, n - 50) == (4, 249)
        np.testing.assert_array_equal(row.prediction, expected)
        np.testing.assert_array_equal(row.neuron_ids, ds.neuron.values)
    both = read_submission(folder / "submission_main.zip")
    assert sorted(set(both.file)) == [
        "predictions_final_main.parquet.brotli",
        "predictions_live_main.parquet.brotli",
    ]


def test_valid_submission_has_no_problems(main_track, recording):
    folder, paths = main_track
    ds, _ = recording
    for path in (paths[0], folder, folder / "submission_main.zip"):
        assert validate_submission(path, [ds]) == []


def test_score_equals_evaluate(main_track, recording):
    folder, _ = main_track
    ds, pred = recording
    scored = score_submission(folder / "submission_main.zip", {"F": ds})
    tiers = ["live_test_main", "final_test_main"]
    expected = evaluate({"F": pred}, {"F": ds}, tiers=tiers)
    pd.testing.assert_frame_equal(scored, expected, check_exact=False, rtol=1e-6)
    assert set(scored.tier) == set(tiers)


@pytest.mark.parametrize("track", ["bonus"])
def test_bonus_track_official_scale_round_trip(recording, tmp_path, track):
    ds, pred = recording
    rng = np.random.default_rng(3)
    prec = rng.uniform(0.5, 2.0, (4, FRAMES))
    paths = write_submission(
        {"F": pred}, [ds], tmp_path, track=track, scale="official", precision={"F": prec}
    )
    assert [p.name for p in paths] == [
        "predictions_live_test_bonus_ood.parquet.brotli",
        "predictions_final_test_bonus_ood.parquet.brotli",
        "predictions_live_test_bonus_ood.zip",
        "predictions_final_test_bonus_ood.zip",
    ]
    written = read_submission(paths[0])
    first = int(written.trial_indices[0])
    n = int(ds.n_frames.sel(trial=first))
    np.testing.assert_allclose(
        written.prediction[0], pred.sel(trial=first).values[:, 50:n] * prec[:, 50:n], rtol=1e-6
    )
    kw = {"scale": "official", "precision": {"F": prec}}
    scored = score_submission(tmp_path, [ds], **kw)
    expected = evaluate({"F": pred}, [ds], tiers=["live_test_bonus", "final_test_bonus"], **kw)
    pd.testing.assert_frame_equal(scored, expected, check_exact=False, rtol=1e-6)
    pooled = scored[scored.stimulus_type == "out_of_domain"]
    assert pooled.tier.tolist() == ["live_test_bonus", "final_test_bonus"]


def _starter_kit_file(path, ds, pred, rows):
    """Write rows as the starter kit did: pandas, lists of float64 lists, brotli."""
    records = [
        {
            "mouse": mouse,
            "trial_indices": trial,
            "prediction": values.tolist(),
            "neuron_ids": ids.astype(np.uint32),
        }
        for mouse, trial, values, ids in rows
    ]
    pd.DataFrame(records).to_parquet(path, compression="brotli", engine="pyarrow", index=False)


def test_validation_reports_every_problem(recording, tmp_path):
    ds, pred = recording
    trials = ds.trial[ds.tier == "final_test_main"].values.tolist()  # 6 trials
    ids = ds.neuron.values
    rows = []
    for t in trials[2:]:  # the first two are missing
        values = pred.sel(trial=t).values[:, 50:299]
        rows.append((MOUSE, f"{t}.npy", values, ids))
    rows[0] = (MOUSE, rows[0][1], rows[0][2][:, :-1], ids)  # one frame short
    rows[1] = (MOUSE, rows[1][1], rows[1][2][:3], ids)  # a neuron short
    bad = rows[2][2].copy()
    bad[0, :2] = [np.nan, np.inf]
    rows[2] = (MOUSE, rows[2][1], bad, ids[::-1])  # 2 non-finite values, reversed neuron ids
    rows.append(rows[3])  # a duplicate
    other = int(ds.trial[ds.tier == "oracle"][0])
    rows.append((MOUSE, f"{other}.npy", pred.sel(trial=other).values[:, 50:300], ids))
    rows.append(("dynamic0-0-0-Video-x", "1.npy", rows[3][2], ids))
    path = tmp_path / "predictions_final_main.parquet.brotli"
    _starter_kit_file(path, ds, pred, rows)
    problems = validate_submission(path, [ds])
    text = "\n".join(problems)
    name = "predictions_final_main.parquet.brotli"
    t = trials
    assert f"{name}: {MOUSE}: 2 missing trials of tier final_test_main: {t[0]}, {t[1]}" in text
    assert (
        f"2 predictions of the wrong shape (neurons x (n_frames - 50)): trial {t[2]}: 4 x 248, "
        f"expected 4 x 249, trial {t[3]}: 3 x 249, expected 4 x 249"
    ) in text
    assert f"1 non-finite predictions: trial {t[4]}: 2 values" in text
    order = "wrong neuron order (neuron_ids must be the unit ids in recording order)"
    assert f"1 {order}: trial {t[4]}" in text
    assert f"1 duplicated trials: {t[5]} (2 rows)" in text
    assert f"1 trials not in tier final_test_main: {other} (oracle)" in text
    assert "dynamic0-0-0-Video-x: 1 rows of a mouse not in the datasets: trial 1.npy" in text
    assert len(problems) == 7
    with pytest.raises(ValueError, match="invalid submission:\n  predictions_final_main"):
        score_submission(path, [ds])


def test_starter_kit_file_scores(recording, tmp_path):
    ds, pred = recording
    trials = ds.trial[ds.tier == "final_test_main"].values.tolist()
    rows = [(MOUSE, t, pred.sel(trial=t).values[:, 50:299], ds.neuron.values) for t in trials]
    path = tmp_path / "predictions_final_main.parquet.brotli"
    _starter_kit_file(path, ds, pred, rows)
    assert validate_submission(path, [ds]) == []
    scored = score_submission(path, [ds])
    expected = evaluate({MOUSE: pred}, [ds], tiers=["final_test_main"])
    pd.testing.assert_frame_equal(scored, expected, check_exact=False, rtol=1e-6)


def test_bad_files(recording, tmp_path):
    ds, _ = recording
    odd = tmp_path / "my_predictions.parquet"
    pd.DataFrame({"mouse": [MOUSE], "trial_indices": [1]}).to_parquet(odd)
    assert validate_submission(odd, [ds]) == [
        "my_predictions.parquet: not a competition file name; expected one of "
        "['predictions_final_main.parquet.brotli', 'predictions_final_test_bonus_ood.parquet."
        "brotli', 'predictions_live_main.parquet.brotli', "
        "'predictions_live_test_bonus_ood.parquet.brotli']"
    ]
    named = tmp_path / "predictions_live_main.parquet.brotli"
    odd.rename(named)
    assert validate_submission(named, [ds]) == [
        "predictions_live_main.parquet.brotli: missing columns ['prediction', 'neuron_ids']; "
        "a submission has columns ['mouse', 'trial_indices', 'prediction', 'neuron_ids']."
    ]
    with pytest.raises(ValueError, match="missing columns"):
        read_submission(named)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds none of the competition's files"):
        validate_submission(tmp_path / "empty", [ds])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_submission(tmp_path / "nothing.parquet")


def test_write_errors(recording, tmp_path):
    ds, pred = recording
    some = pred.where(ds.tier != "final_test_main", drop=True)
    missing = ds.trial[ds.tier == "final_test_main"].values.tolist()
    with pytest.raises(
        ValueError,
        match=rf"cannot write the submission:\n  {MOUSE}: 6 trials of the main track have no "
        rf"predictions: \[{', '.join(map(str, missing))}\]",
    ):
        write_submission({"F": some}, {"F": ds}, tmp_path)
    bad = pred.copy()
    trial = int(ds.trial[ds.tier == "live_test_main"][1])
    bad.loc[{"trial": trial}] = np.nan
    with pytest.raises(
        ValueError,
        match=rf"cannot write predictions_live_main.parquet.brotli:\n  {MOUSE}: trial {trial}: "
        r"1000 NaN or infinite values in frames 50\.\.299",
    ):
        write_submission({"F": bad}, {"F": ds}, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(ValueError, match="track must be 'main' or 'bonus'; got 'ood'"):
        write_submission({"F": pred}, {"F": ds}, tmp_path, track="ood")  # type: ignore[arg-type]


def test_submission_for_withheld_tiers(make_tree, tmp_path):
    """Real mice F-J: test responses withheld; a submission is written and validated, but
    there is nothing to score it against."""
    sd = pytest.importorskip("sensorium_data")
    tree = make_tree("dynamic1-2-3-Video-x", frames=70, withheld=True, junk=False)
    ds = sd.open_mouse(sd.convert(tree, tmp_path / "f.zarr", progress=False), progress=False)
    pred = xr.zeros_like(ds.responses) + 0.5
    paths = write_submission({"dynamic1-2-3-Video-x": pred}, [ds], tmp_path / "out")
    assert validate_submission(paths[-1], [ds]) == []
    frame = read_submission(paths[-1])
    assert len(frame) == 4 and frame.prediction[0].shape == (7, int(ds.n_frames[8]) - 50)
    with pytest.raises(ValueError, match=r"nothing to score: .* \(4 unlabelled trials skipped"):
        score_submission(paths[-1], [ds])


def test_an_earlier_submission_is_never_overwritten_silently(recording, tmp_path):
    ds, pred = recording
    first = write_submission({"F": pred}, {"F": ds}, tmp_path)
    before = {p.name: p.read_bytes() for p in first}
    with pytest.raises(FileExistsError, match=r"predictions_live_main.parquet.brotli, .*"
                       r"submission_main.zip already exist \(an earlier submission\?\); pass "
                       r"another folder, or overwrite=True to replace them"):
        write_submission({"F": pred + 1}, {"F": ds}, tmp_path)
    bad = pred.copy()
    bad.loc[{"trial": int(ds.trial[ds.tier == "final_test_main"][0])}] = np.nan
    with pytest.raises(ValueError, match="cannot write predictions_final_main"):
        write_submission({"F": bad}, {"F": ds}, tmp_path, overwrite=True)
    # the live file was written before the final one failed: the earlier files stay, together
    assert {p.name: p.read_bytes() for p in first} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    second = write_submission({"F": pred + 1}, {"F": ds}, tmp_path, overwrite=True)
    assert second == first and second[0].read_bytes() != before[second[0].name]
    assert validate_submission(second[-1], [ds]) == []


LIVE, FINAL = "predictions_live_main.parquet.brotli", "predictions_final_main.parquet.brotli"


@pytest.mark.parametrize(("column", "holds"), [
    (["abc"], "large_string|string"),  # a string per row
    ([[0.1, 0.2]], r"list<(element|item): double>"),  # a flat list: no neuron axis
    ([0.5], "double"),  # a plain float per row
])
def test_a_prediction_column_of_another_type_is_reported(recording, tmp_path, column, holds):
    ds, _ = recording
    trials = ds.trial[ds.tier == "final_test_main"].values.tolist()
    path = tmp_path / FINAL
    pd.DataFrame({"mouse": MOUSE, "trial_indices": trials, "prediction": column * len(trials),
                  "neuron_ids": [ds.neuron.values.astype(np.uint32)] * len(trials)}
                 ).to_parquet(path, compression="brotli")
    problems = validate_submission(path, [ds])
    assert len(problems) == 1
    assert re.fullmatch(
        rf"{FINAL}: column 'prediction' holds ({holds}); it must hold one list of lists of "
        r"numbers per row \(neurons x frames, list<list<float32>> as write_submission writes "
        r"it; the starter kit's list<list<double>> reads too\).", problems[0])
    with pytest.raises(ValueError, match=r"column 'prediction' holds .*; it must hold one list "
                       "of lists of numbers per row"):
        read_submission(path)
    with pytest.raises(ValueError, match=r"invalid submission:\n  .*column 'prediction' holds"):
        score_submission(path, [ds])


def test_a_neuron_ids_column_that_is_not_lists_is_reported(main_track, recording, tmp_path):
    folder, _ = main_track
    ds, _ = recording
    frame = pd.read_parquet(folder / FINAL)
    frame["neuron_ids"] = 1
    frame.to_parquet(tmp_path / FINAL, compression="brotli")
    assert validate_submission(tmp_path / FINAL, [ds]) == [
        f"{FINAL}: column 'neuron_ids' holds int64; it must hold one list of integer unit ids "
        "per row (list<uint32>, the recording's unit ids in the order of the prediction's rows)."]


def test_extra_columns_are_reported(main_track, recording, tmp_path, caplog):
    folder, _ = main_track
    ds, _ = recording
    frame = pd.read_parquet(folder / FINAL)
    frame["responses"] = 1.0
    frame.to_parquet(tmp_path / FINAL, compression="brotli")
    assert validate_submission(tmp_path / FINAL, [ds]) == [
        f"{FINAL}: extra columns ['responses']; a submission has exactly the columns "
        "['mouse', 'trial_indices', 'prediction', 'neuron_ids']: drop the others"]
    with caplog.at_level("WARNING", logger="sensorium_models.submission"):
        assert len(read_submission(tmp_path / FINAL)) == len(frame)  # read, not silently
    assert f"{FINAL}: extra columns ['responses'] are not read" in caplog.text


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for source, name in members:
            z.write(source, arcname=name)
    return path


def test_an_incomplete_main_track_fails_validation(main_track, recording, tmp_path):
    folder, _ = main_track
    ds, _ = recording
    missing = (f"the main track is submitted as both {LIVE} and {FINAL}; {LIVE} is missing "
               "(write_submission(..., track='main') writes both)")
    only_final = _zip(tmp_path / "submission_main.zip", [(folder / FINAL, FINAL)])
    assert validate_submission(only_final, [ds]) == [f"submission_main.zip: {missing}"]
    misnamed = _zip(tmp_path / "misnamed.zip", [(folder / FINAL, FINAL),
                                                 (folder / LIVE, "predictions_live.parquet")])
    assert validate_submission(misnamed, [ds]) == [
        "misnamed.zip: predictions_live.parquet is not a competition file name; expected one of "
        "['predictions_final_main.parquet.brotli', 'predictions_final_test_bonus_ood.parquet."
        "brotli', 'predictions_live_main.parquet.brotli', "
        "'predictions_live_test_bonus_ood.parquet.brotli']",
        f"misnamed.zip: {missing}"]
    (tmp_path / "only_final").mkdir()
    (tmp_path / "only_final" / FINAL).write_bytes((folder / FINAL).read_bytes())
    assert validate_submission(tmp_path / "only_final", [ds]) == [f"only_final: {missing}"]
    with pytest.raises(ValueError,
                       match=re.escape(f"invalid submission:\n  only_final: {missing}")):
        score_submission(tmp_path / "only_final", [ds])
    # one file on its own is checked as that file; the bonus track uploads one zip per file
    assert validate_submission(folder / FINAL, [ds]) == []


def test_files_in_a_folder_of_the_zip_or_twice_in_it_are_reported(main_track, recording,
                                                                   tmp_path):
    folder, _ = main_track
    ds, _ = recording
    nested = _zip(tmp_path / "nested.zip", [(folder / LIVE, f"submission/{LIVE}"),
                                             (folder / FINAL, f"submission/{FINAL}")])
    assert validate_submission(nested, [ds]) == [
        f"nested.zip: submission/{name} is inside a folder; the competition reads the files at "
        "the top of the zip (zip the files themselves, not their folder)"
        for name in sorted([LIVE, FINAL])]
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = _zip(tmp_path / "twice.zip", [(folder / LIVE, LIVE), (folder / FINAL, FINAL),
                                              (folder / FINAL, FINAL)])
    assert validate_submission(twice, [ds])[0] == f"twice.zip: {FINAL} is in the zip 2 times"
    mac = _zip(tmp_path / "mac.zip", [(folder / LIVE, LIVE), (folder / FINAL, FINAL),
                                      (folder / LIVE, f"__MACOSX/._{LIVE}")])
    assert validate_submission(mac, [ds]) == []
