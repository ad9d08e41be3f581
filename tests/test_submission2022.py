"""2022 submission CSVs: written, read back, validated and scored; every bad file named."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.scale import official_precision
from sensorium_models.scoring2022 import leaderboard_2022
from sensorium_models.submission2022 import (
    COLUMNS_2022,
    read_submission_2022,
    score_submission_2022,
    validate_submission_2022,
    write_submission_2022,
)
from tests.test_scoring2022 import website


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("sub2022")
    trees = sd.simulate(root, preset="static2022", scale=0.1, image_scale=0.125, progress=False)
    return [sd.open_store(sd.convert(t, root / f"{t.name}.zarr", progress=False))
            for t in trees[:2]]


def predictions(ds):
    noise = np.random.default_rng(1).uniform(0.5, 1.5, ds.rates.shape)
    return ds.rates.values * noise * official_precision(
        ds.sensorium.statistics.responses.sel(statistic="std"))


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def rewrite(path: Path, table: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(table)
    return path


def test_write_and_read_back(twin, tmp_path):
    ds = twin[0]
    pred = predictions(ds)
    live, final = write_submission_2022(pred, ds, tmp_path)
    assert [live.name, final.name] == ["submission_file_live_test.csv",
                                       "submission_file_final_test.csv"]
    table = rows(live)
    assert tuple(table[0]) == COLUMNS_2022
    assert re.fullmatch("[0-9a-f]{32}", table[1][0])  # the hashed trial_idx
    sub = read_submission_2022(live)
    keep = ds.tier.values == "test"
    assert sub.tier == "test" and len(sub.trial_indices) == keep.sum()
    np.testing.assert_array_equal(sub.trial_indices, ds.trial_idx.values[keep].astype(str))
    np.testing.assert_array_equal(sub.image_ids, ds.image_id.values[keep].astype(str))
    np.testing.assert_array_equal(sub.predictions, pred[keep])  # exact: repr round-trips
    np.testing.assert_array_equal(sub.neuron_ids, ds.neuron.values)
    assert read_submission_2022(final).tier == "final_test"


def test_score_equals_the_website_and_the_table(twin, tmp_path):
    ds = twin[0]
    pred = predictions(ds)
    write_submission_2022(pred, ds, tmp_path)
    table = leaderboard_2022({"static2022-A": pred}, ds, tiers=["test", "final_test"])
    precision = official_precision(ds.sensorium.statistics.responses.sel(statistic="std"))
    for tier, name in (("test", "live_test"), ("final_test", "final_test")):
        got = score_submission_2022(tmp_path / f"submission_file_{name}.csv", ds)
        keep = ds.tier.values == tier
        ids, n = ds.trial_idx.values[keep], ds.neuron.values
        want = website(ids, ds.image_id.values[keep], n, ds.responses.values[keep] * precision,
                       ids, n, pred[keep])
        row = table[table.tier == tier].iloc[0]
        for metric, value in want.items():
            assert got[metric] == pytest.approx(value, abs=1e-6)
            assert got[metric] == pytest.approx(row[metric], abs=1e-9)


def test_rows_and_neurons_in_any_order_score_the_same(twin, tmp_path):
    ds = twin[0]
    [live] = write_submission_2022(predictions(ds), ds, tmp_path, tiers=["test"])
    before = score_submission_2022(live, ds)
    header, *body = rows(live)
    body = [body[i] for i in np.random.default_rng(0).permutation(len(body))]
    order = np.random.default_rng(1).permutation(ds.sizes["neuron"])
    for row in body:  # the neurons reordered too, values and ids together
        values = np.array(row[2][1:-1].split(","), float)[order]
        ids = np.array(row[3][1:-1].split(","), int)[order]
        row[2], row[3] = str(values.tolist()), str(ids.tolist())
    after = score_submission_2022(rewrite(live, [header, *body]), ds)
    for metric in before:
        assert after[metric] == pytest.approx(before[metric], abs=1e-9)


def test_raw_units_are_scaled(twin, tmp_path):
    ds = twin[0]
    precision = official_precision(ds.sensorium.statistics.responses.sel(statistic="std"))
    pred = predictions(ds)
    [a] = write_submission_2022(pred, ds, tmp_path / "a", tiers=["test"])
    [b] = write_submission_2022(pred / precision, ds, tmp_path / "b", tiers=["test"],
                                units="raw")
    np.testing.assert_allclose(read_submission_2022(b).predictions,
                               read_submission_2022(a).predictions, rtol=1e-12)


def test_wrong_tier_is_named(twin, tmp_path):
    ds = twin[0]
    [live] = write_submission_2022(predictions(ds), ds, tmp_path, tiers=["test"])
    with pytest.raises(ValueError, match=r"trials are not in tier 'final_test' of static2022-A"
                       r"\. They are trials of tier \['test'\]: this looks like the file of "
                       "another tier"):
        validate_submission_2022(live, ds, tier="final_test")
    with pytest.raises(ValueError, match=r"not trials of this recording: is it another mouse"):
        validate_submission_2022(live, twin[1])


def test_missing_and_repeated_trials_are_named(twin, tmp_path):
    ds = twin[0]
    [live] = write_submission_2022(predictions(ds), ds, tmp_path, tiers=["test"])
    header, *body = rows(live)
    rewrite(live, [header, *body[:-3]])
    with pytest.raises(ValueError, match=rf"3 of the {len(body)} trials of tier 'test' of "
                       "static2022-A are missing"):
        validate_submission_2022(live, ds)
    rewrite(live, [header, *body, body[0]])
    with pytest.raises(ValueError, match=r"listed more than once"):
        validate_submission_2022(live, ds)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda t: [["trial", "image", "pred", "ids"], *t[1:]], r"has columns \['trial'"),
    (lambda t: [t[0], [t[1][0], t[1][1], "{0.5}", t[1][3]], *t[2:]],
     r"line 2: prediction is not a list of numbers"),
    (lambda t: [t[0], [t[1][0], t[1][1], "[0.5, 1]", t[1][3]], *t[2:]],
     r"line 2: 2 predictions for \d+ neuron ids"),
    (lambda t: [t[0], t[1], [t[2][0], t[2][1], t[2][2], "[1]"], *t[3:]],
     r"line 3: neuron_ids differ from the first row's"),
    (lambda t: [t[0], [t[1][0], "123456789", *t[1][2:]], *t[2:]],
     r"1 trials have image_ids other than the recording's"),
    (lambda t: [t[0], [*t[1][:2], t[1][2].replace("[", "[nan, ", 1).replace(", ", ", ", 1)
                       .rsplit(",", 1)[0] + "]", t[1][3]], *t[2:]],
     r"predictions hold NaN"),
    (lambda t: [t[0]], r"has no rows"),
])
def test_bad_files_are_named(twin, tmp_path, edit, match):
    ds = twin[0]
    [live] = write_submission_2022(predictions(ds), ds, tmp_path, tiers=["test"])
    rewrite(live, edit(rows(live)))
    with pytest.raises(ValueError, match=match):
        validate_submission_2022(live, ds)


def test_other_neurons_are_named(twin, tmp_path):
    ds = twin[0]
    [live] = write_submission_2022(predictions(ds), ds, tmp_path, tiers=["test"])
    header, *body = rows(live)
    for row in body:
        row[3] = row[3].replace("[", "[999999, ", 1).rsplit(",", 1)[0] + "]"
    with pytest.raises(ValueError, match=r"neuron_ids are not the \d+ unit ids of static2022-A"):
        validate_submission_2022(rewrite(live, [header, *body]), ds)


def test_writing_refuses_what_it_cannot_do(twin, tmp_path):
    a, b = twin
    pred = predictions(a)
    with pytest.raises(ValueError, match=r"static2022-B has no trials of tier\(s\) "
                       r"\['final_test'\].*only the competition mice have final_test"):
        write_submission_2022(predictions(b), b, tmp_path)
    with pytest.raises(ValueError, match=r"tiers \['validation'\] have no 2022 submission file"):
        write_submission_2022(pred, a, tmp_path, tiers=["validation"])
    some = a.rates.where(a.tier == "train", drop=True)
    with pytest.raises(ValueError, match=r"no predictions for \d+ of the \d+ trials of tier "
                       "'test'"):
        write_submission_2022(some, a, tmp_path, tiers=["test"])
    write_submission_2022(pred, a, tmp_path, tiers=["test"])
    with pytest.raises(FileExistsError, match=r"already exist.*overwrite=True"):
        write_submission_2022(pred, a, tmp_path, tiers=["test"])
    write_submission_2022(pred * 2, a, tmp_path, tiers=["test"], overwrite=True)
    np.testing.assert_allclose(
        read_submission_2022(tmp_path / "submission_file_live_test.csv").predictions,
        pred[a.tier.values == "test"] * 2)
    # predictions of the test trials only: final_test is refused before the live file changes
    live = (tmp_path / "submission_file_live_test.csv").read_bytes()
    tested = (a.rates * 3).where(a.tier == "test", drop=True)
    with pytest.raises(ValueError, match=r"no predictions for .* of tier 'final_test'"):
        write_submission_2022(tested, a, tmp_path, overwrite=True)
    assert (tmp_path / "submission_file_live_test.csv").read_bytes() == live


def test_unknown_file_name_needs_a_tier(twin, tmp_path):
    [live] = write_submission_2022(predictions(twin[0]), twin[0], tmp_path, tiers=["test"])
    other = live.rename(tmp_path / "mine.csv")
    with pytest.raises(ValueError, match=r"cannot tell the tier of mine.csv.*pass tier="):
        read_submission_2022(other)
    assert read_submission_2022(other, tier="test").tier == "test"


def test_withheld_responses_cannot_be_scored(make_static_tree, tmp_path):
    ds = sd.open_store(sd.convert(make_static_tree(withheld=True, height=16, width=32),
                                  tmp_path / "w.zarr", progress=False))
    pred = np.ones((ds.sizes["trial"], ds.sizes["neuron"]))
    [live] = write_submission_2022(pred, ds, tmp_path, tiers=["test"])
    validate_submission_2022(live, ds)
    with pytest.raises(ValueError, match=r"responses of tier 'test' of toy2022 are withheld"):
        score_submission_2022(live, ds)


def test_fractional_neuron_ids_are_refused(twin, tmp_path):
    ds = twin[0]
    [live] = write_submission_2022(predictions(ds), ds, tmp_path, tiers=["test"])
    header, *body = rows(live)
    for row in body:
        row[3] = row[3].replace("[", "[0.5, ", 1).rsplit(",", 1)[0] + "]"
    with pytest.raises(ValueError, match=r"neuron_ids must be whole numbers \(unit ids\); got "
                       r"\[0.5\]"):
        validate_submission_2022(rewrite(live, [header, *body]), ds)
