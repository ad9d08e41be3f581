"""ClipDataset's frame step, canvas and relu options, against the xarray values."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data.loaders import shaping


def test_a_stepped_clip_on_a_canvas(simulated_stores: list[Path]):
    ds = sd.open_mouse(simulated_stores[0])
    clips = sd.ClipDataset(ds, frames=16, frame_step=2, canvas=64, normalize=None,
                           behavior_channels=True, pupil_channels=True, seed=3)
    item = clips[0]
    trial, start = item["trial"], item["start"]
    frames = np.arange(start, start + 31, 2)  # 16 frames at step 2
    x = ds.sel(trial=trial)
    assert item["videos"].shape == (5, 16, 64, 64)
    np.testing.assert_allclose(item["videos"][0, :, 14:50].numpy(), x.videos.values[frames])
    assert not item["videos"][0, :, :14].any() and not item["videos"][0, :, 50:].any()
    behavior = x.behavior.values[:, frames]  # (4, 16): dilation, speed, pupil x, pupil y
    for channel in range(1, 5):  # constant planes over the whole canvas
        plane = item["videos"][channel].numpy()
        np.testing.assert_allclose(plane, np.broadcast_to(
            behavior[channel - 1][:, None, None], plane.shape), rtol=1e-6)
    np.testing.assert_allclose(item["behavior"].numpy(), behavior, rtol=1e-6)
    np.testing.assert_allclose(item["responses"].numpy(), x.responses.values[:, frames],
                               rtol=1e-6)


def test_relu_responses_cut_what_is_below_zero(make_tree, tmp_path: Path):
    tree = make_tree(frames=40)
    for path in (tree / "data" / "responses").glob("[0-9]*.npy"):
        np.save(path, np.load(path) - 1.0)  # the deconvolved traces dip below zero
    ds = sd.open_mouse(sd.convert(tree, tmp_path / "toy.zarr", progress=False))
    kept, cut = (sd.ClipDataset(ds, frames=8, normalize=None, seed=0, relu_responses=relu)[0]
                 for relu in (False, True))
    raw = kept["responses"].numpy()
    assert (raw < 0).any() and (raw > 0).any()
    np.testing.assert_array_equal(cut["responses"].numpy(), np.maximum(raw, 0))


def test_whole_trials_keep_every_frame_on_the_canvas(simulated_stores: list[Path]):
    trials = sd.TrialDataset(simulated_stores[0], canvas=(40, 64), normalize=None)
    item = trials[0]
    assert item["videos"].shape[1] == item["length"]
    assert item["videos"].shape[2:] == (40, 64)


def test_a_frame_step_whose_span_no_trial_holds_is_refused(simulated_stores: list[Path]):
    with pytest.raises(ValueError, match=r"frames=16 at frame_step=20 \(a span of 301\) is "
                                         r"longer than every trial .*smaller frame_step"):
        sd.ClipDataset(simulated_stores[0], frames=16, frame_step=20)


@pytest.mark.parametrize(("options", "match"), [
    ({"frame_step": 0}, r"frame_step=0; pass a positive int"),
    ({"canvas": (64,)}, r"canvas=\(64,\); pass a side"),
    ({"canvas": 32}, r"canvas=\(32, 32\) is smaller than the frames of .* \(36 x 64\)"),
])
def test_bad_options_name_the_fix(simulated_stores: list[Path], options, match):
    with pytest.raises(ValueError, match=match):
        sd.ClipDataset(simulated_stores[0], frames=16, **options)


def test_docstring_examples():
    assert doctest.testmod(shaping).failed == 0
