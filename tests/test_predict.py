"""predict(): whole trials in raw units, NaN burn-in; evaluate and submission files from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.submission import FILES
from tests.conftest import shifted_copy


@pytest.fixture(scope="module")
def datasets(simulated_stores):
    return {ds.attrs["mouse"]: ds for ds in map(sd.open_mouse, simulated_stores)}


@pytest.fixture(scope="module")
def predictions(trained_run, datasets):
    return sm.predict(trained_run, datasets)


def test_predictions_are_whole_trials_of_every_tier_but_train(predictions, datasets):
    assert list(predictions) == list(datasets)
    for mouse, values in predictions.items():
        ds = datasets[mouse]
        assert values.dims == ("trial", "neuron", "frame") and values.dtype == np.float32
        expected = ds["trial"].values[(ds["tier"].values != "train") & (ds["n_frames"] > 0)]
        assert sorted(values["trial"].values.tolist()) == sorted(expected.tolist())
        assert values.sizes["frame"] == ds.sizes["frame"]
        np.testing.assert_array_equal(values["neuron"].values, ds["neuron"].values)
        assert set(values["tier"].values) == set(ds["tier"].values) - {"train"}


def test_burn_in_and_padding_are_nan_the_rest_positive(predictions, datasets):
    for mouse, values in predictions.items():
        n_frames = datasets[mouse]["n_frames"].sel(trial=values["trial"]).values
        for j, length in enumerate(n_frames):
            trial = values.values[j]  # (neuron, frame)
            assert np.isnan(trial[:, :18]).all()  # the factorized core's burn-in
            assert np.isnan(trial[:, length:]).all()
            assert (trial[:, 18:length] > 0).all()


def test_predictions_are_the_model_output_in_raw_units(trained_run, predictions, datasets):
    model = sm.load_run(trained_run)
    mouse = next(iter(datasets))
    trials = sd.TrialDataset([datasets[mouse]], tier="oracle")
    item = trials[0]
    with torch.no_grad():
        out = model(item["videos"][None], mouse=mouse, behavior=item["behavior"][None])[0]
    precision = trials.precision(mouse)[:, 18:item["length"]]  # normalized = raw * precision
    raw = predictions[mouse].sel(trial=item["trial"]).values[:, 18:item["length"]]
    np.testing.assert_allclose(raw * precision, out.numpy(), rtol=1e-4)


def test_a_model_object_predicts_the_same(trained_run, predictions, datasets):
    mouse = next(iter(datasets))
    direct = sm.predict(sm.load_run(trained_run), {mouse: datasets[mouse]}, tiers="oracle",
                        batch_size=3)
    expected = predictions[mouse].sel(trial=direct[mouse]["trial"])
    np.testing.assert_allclose(direct[mouse].values, expected.values, rtol=1e-5)


def test_evaluate_takes_the_predictions(predictions, datasets):
    table = sm.evaluate(predictions, datasets, scale="official")
    pooled = table[(table["mouse"] == "all") & (table["tier"] == "oracle")]
    assert len(pooled) == 1 and np.isfinite(pooled["single_trial_correlation"]).all()
    assert (table["single_trial_correlation_ceiling"] > 0.2).all()


def test_a_submission_from_the_predictions_is_valid(predictions, datasets, tmp_path):
    written = sm.write_submission(predictions, datasets, tmp_path, scale="official")
    assert {p.name for p in written} == {*FILES["main"].values(), "submission_main.zip"}
    assert sm.validate_submission(tmp_path / "submission_main.zip", datasets) == []


def test_mice_the_model_does_not_know_are_an_error(trained_run, make_tree, data_dir):
    other = sd.open_mouse(make_tree(name="stranger"))
    with pytest.raises(ValueError, match=r"the model has no readout for \['stranger'\]; it was "
                       "trained on"):
        sm.predict(trained_run, [other])


@pytest.fixture(scope="module")
def second_run(trained_run, tmp_path_factory):
    """A copy of ``trained_run`` whose readout biases are moved by 0.5: another member."""
    return shifted_copy(trained_run, tmp_path_factory.mktemp("member") / "run", by=0.5)


def test_several_runs_predict_as_their_ensemble(trained_run, second_run, predictions, datasets):
    other = sm.predict(second_run, datasets, tiers="oracle")
    ensemble = sm.predict([trained_run, second_run], datasets, tiers="oracle")
    assert list(ensemble) == list(other)
    for mouse, values in ensemble.items():
        one = predictions[mouse].sel(trial=values.trial)
        assert not np.allclose(one.values, other[mouse].values, equal_nan=True)
        np.testing.assert_allclose(values.values, (one.values + other[mouse].values) / 2,
                                   rtol=1e-5, atol=1e-6, equal_nan=True)


def test_runs_with_other_loader_options_are_not_ensembled(trained_run, second_run, datasets):
    import json

    path = second_run / "config.json"
    config = json.loads(path.read_text())
    original = path.read_text()
    try:
        path.write_text(json.dumps({**config, "normalize": "per_neuron"}))
        with pytest.raises(ValueError, match=r"cannot ensemble runs trained with other loader "
                           r"options \(normalize: 'official' in .*, 'per_neuron' in"):
            sm.predict([trained_run, second_run], datasets)
    finally:
        path.write_text(original)
    with pytest.raises(TypeError, match="a non-empty list of run directories"):
        sm.predict([], datasets)
    with pytest.raises(TypeError, match=r"is a list of PosixPath, VideoEncoder: pass a run"):
        sm.predict([trained_run, sm.load_run(trained_run)], datasets)


def test_runs_of_other_recipes_are_not_ensembled_and_named(trained_run, simulated_stores,
                                                           datasets, tmp_path):
    config = sm.TrainConfig(model="ln", mice=tuple(str(s) for s in simulated_stores),
                            model_config={"channels": 2, "spatial_kernel": 5,
                                          "temporal_kernel": 3},
                            max_epochs=1, batch_size=4, device="cpu", progress=False,
                            score=False, out=str(tmp_path / "ln"))
    ln = sm.train(config)
    with pytest.raises(ValueError, match=rf"cannot ensemble these runs \(model 0 = "
                       rf"{trained_run}, model 1 = {ln}\): model 1 has burn_in="):
        sm.predict([trained_run, ln], datasets)
