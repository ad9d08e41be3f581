"""sensorium_models.scoring_inputs: the one preparation evaluate, write_submission and
score_submission start from."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from sensorium_models import evaluate, scoring_inputs, write_submission
from sensorium_models.scoring_inputs import ScoringInputs, dataset_name, datasets_by_name
from tests.test_submission import MOUSE, make_recording


def test_docstring_examples():
    result = doctest.testmod(scoring_inputs, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_keys_by_recording_name_from_any_key():
    ds = make_recording()
    precision = np.ones((4, 330))
    # the catalog letter, the mapping's key and the folder name all name the one recording
    for key in ("F", "29515-10-12", MOUSE):
        inputs = scoring_inputs.scoring_inputs(
            {key: ds.rates.values}, {"F": ds}, scale="official", precision={key: precision}
        )
        assert list(inputs.sources) == [MOUSE]
        assert inputs.sources[MOUSE].trials.tolist() == ds.trial.values.tolist()
        np.testing.assert_array_equal(inputs.precision_of(MOUSE), precision)
    raw = ScoringInputs(datasets_by_name(ds), scale="raw", precision={MOUSE: precision})
    assert raw.precision_of(MOUSE) is None  # the raw scale multiplies by nothing


def test_an_unknown_mouse_names_the_datasets():
    ds = make_recording()
    with pytest.raises(KeyError, match=r"no dataset for mouse 'G'; the datasets are \['dyn"):
        dataset_name(datasets_by_name(ds), "G", {})


@pytest.mark.parametrize("verb", ["evaluate", "write_submission"])
def test_every_verb_rejects_a_bad_scale_alike(verb, tmp_path):
    ds = make_recording()
    call = {
        "evaluate": lambda: evaluate({"F": ds.rates}, {"F": ds}, scale="log"),  # type: ignore[arg-type]
        "write_submission": lambda: write_submission({"F": ds.rates}, {"F": ds}, tmp_path,
                                                     scale="log"),  # type: ignore[arg-type]
    }[verb]
    with pytest.raises(ValueError, match=r"scale must be 'raw' or 'official'; got 'log'\."):
        call()
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_dataset_without_responses_is_refused():
    ds = make_recording().drop_vars("responses")
    with pytest.raises(TypeError, match=r"xarray\.Dataset with a `responses` variable"):
        scoring_inputs.scoring_inputs({}, {"F": ds})
