"""The digital twin's parts: stimuli, behaviour, neurons and the trial simulation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sensorium_data.simulate import parametric
from sensorium_data.simulate.behavior import Behavior, BehaviorConfig, simulate_behavior
from sensorium_data.simulate.neurons import NeuronConfig, make_population
from sensorium_data.simulate.stimuli import STIMULUS_TYPES, make_video, video_seed
from sensorium_data.simulate.textures import pink_noise, shift_frames
from sensorium_data.simulate.twin import (
    DEGREES_PER_PIXEL,
    Twin,
    _scan_binning,
    _upsample_matrix,
)

H, W = 36, 64
REAL_FRAMES = {
    "NaturalVideo": 300,
    "Gabor": 300,
    "PinkNoise": 324,
    "RandomDots": 240,
    "GaussianDot": 315,
}


# ----------------------------------------------------------------------------- stimuli


@pytest.mark.parametrize("stimulus", STIMULUS_TYPES)
def test_stimuli_have_their_real_durations_and_range(stimulus: str) -> None:
    video = make_video(stimulus, np.random.default_rng(video_seed(0, stimulus, "v1")))
    assert video.dtype == np.float32 and video.shape[1:] == (H, W)
    if stimulus == "NaturalImages":
        assert 10 * (15 + 12) <= len(video) <= 10 * (15 + 18)  # real trials: 305-326
    else:
        assert len(video) == REAL_FRAMES[stimulus]
    assert video.min() >= 0 and video.max() <= 255 and video.std() > 5
    again = make_video(stimulus, np.random.default_rng(video_seed(0, stimulus, "v1")))
    np.testing.assert_array_equal(video, again)
    other = make_video(stimulus, np.random.default_rng(video_seed(0, stimulus, "v2")))
    assert not np.array_equal(video[: len(other)], other[: len(video)])


@pytest.mark.parametrize("stimulus", STIMULUS_TYPES[1:])
def test_a_shorter_request_is_a_prefix(stimulus: str) -> None:
    full = make_video(stimulus, np.random.default_rng(1))
    part = make_video(stimulus, np.random.default_rng(1), frames=100)
    np.testing.assert_array_equal(part, full[:100])
    longer = make_video(stimulus, np.random.default_rng(1), frames=len(full) + 40)
    np.testing.assert_array_equal(longer[: len(full)], full)


def test_unknown_stimulus_type() -> None:
    with pytest.raises(ValueError, match="unknown stimulus type 'Plaid'; choose one of Natural"):
        make_video("Plaid", np.random.default_rng(0))


def test_gaussian_dots_cover_105_positions() -> None:
    positions = parametric.gaussian_dot_positions()
    assert positions.shape == (105, 2) and len({tuple(p) for p in positions}) == 105
    dot = parametric.gaussian_dot(positions[0], -1.0)
    assert dot.shape == (9, H, W) and dot.min() < -0.8 and dot.max() <= 0


def test_directional_pink_noise_is_oriented() -> None:
    texture = pink_noise(np.random.default_rng(0), (64, 64), orientation=0.0, bandwidth=0.2)
    # wave vectors along x (rightwards): vertical stripes, so columns vary and rows do not
    assert np.abs(np.diff(texture, axis=1)).mean() > 3 * np.abs(np.diff(texture, axis=0)).mean()
    assert abs(texture.mean()) < 1e-5 and abs(texture.std() - 1) < 1e-4


def test_shift_frames_moves_content() -> None:
    frames = np.zeros((2, H, W), np.float32)
    frames[:, 10, 20] = 1.0
    out = shift_frames(frames, np.array([0.0, 3.0], np.float32), np.array([0.0, -5.0], np.float32))
    assert out[0, 10, 20] == 1.0
    assert out[1, 13, 15] == pytest.approx(1.0) and out[1].sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------- behaviour


def test_behavior_is_plausible() -> None:
    config = BehaviorConfig()
    trials = [simulate_behavior(np.random.default_rng(i), 300, config=config) for i in range(60)]
    speed = np.concatenate([b.speed for b in trials])
    pupil = np.concatenate([b.pupil for b in trials])
    assert speed.min() >= 0 and (speed > 5).mean() > 0.1 and (speed < 1).mean() > 0.3
    assert np.corrcoef(speed, pupil)[0, 1] > 0.2  # running dilates the pupil
    eye_x = np.concatenate([b.eye_x for b in trials])
    pupil_x = np.concatenate([b.pupil_x for b in trials])
    assert np.corrcoef(eye_x, pupil_x)[0, 1] > 0.95
    jumps = np.abs(np.diff(trials[0].eye_x))
    assert (
        jumps.max() > 10 * np.median(jumps)
        or max(np.abs(np.diff(b.eye_x)).max() for b in trials) > 1
    )


# ----------------------------------------------------------------------------- neurons


def test_receptive_fields_follow_the_cortex() -> None:
    rng = np.random.default_rng(0)
    coords = np.column_stack([rng.uniform(-300, 300, (500, 2)), np.full(500, 250.0)])
    pop = make_population(coords, rng, NeuronConfig())
    assert abs(np.corrcoef(coords[:, 0], pop.rf_col)[0, 1]) > 0.8
    assert abs(np.corrcoef(coords[:, 1], pop.rf_row)[0, 1]) > 0.8
    frac_complex = (pop.complexity > 0.5).mean()
    assert 0.4 < frac_complex < 0.7
    even, odd = pop.filters()
    assert even.shape == odd.shape == (H * W, 500)
    np.testing.assert_allclose(np.linalg.norm(even, axis=0), 1, rtol=1e-4)
    assert np.abs(even.sum(axis=0)).max() < 1e-3  # no response to uniform luminance


def _one_neuron_twin(**params: float) -> Twin:
    pop = make_population(np.zeros((1, 3)), np.random.default_rng(0), NeuronConfig())
    values = {
        "rf_row": 18.0,
        "rf_col": 32.0,
        "rf_sigma": 3.0,
        "rf_period": 10.0,
        "rf_aspect": 1.0,
        "orientation": 0.0,
        "phase": 0.0,
        "normalization": 0.0,
        "temporal_class": 0,
        **params,
    }
    pop = replace(pop, **{k: np.array([v]) for k, v in values.items()})
    return Twin(pop, NeuronConfig(), BehaviorConfig())


def _still(frames: int, eye_x: float = 0.0) -> Behavior:
    zeros = np.zeros(frames)
    return Behavior(zeros + 22, zeros, zeros + eye_x, zeros, zeros, zeros)


def _grating(
    direction: float, frames: int = 120, period: float = 10.0, hz: float = 2.0
) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    along = xx * np.cos(direction) - yy * np.sin(direction)
    return (128 + 100 * np.cos(2 * np.pi * (along / period - hz * t / 30))).astype(np.float32)


@pytest.mark.parametrize("orientation", [0.0, np.pi / 4, 3 * np.pi / 2])
def test_direction_selective_cells_prefer_their_direction(orientation: float) -> None:
    twin = _one_neuron_twin(direction=1.0, complexity=1.0, orientation=orientation)
    preferred = twin.drive(_grating(orientation), _still(120), 0.0)[0][4:].mean()
    null = twin.drive(_grating(orientation + np.pi), _still(120), 0.0)[0][4:].mean()
    orthogonal = twin.drive(_grating(orientation + np.pi / 2), _still(120), 0.0)[0][4:].mean()
    assert preferred > 3 * null and preferred > 3 * orthogonal


def test_direction_blind_cells_respond_to_both_directions() -> None:
    twin = _one_neuron_twin(direction=0.0, complexity=1.0)
    forward = twin.drive(_grating(0.0), _still(120), 0.0)[0][4:].mean()
    backward = twin.drive(_grating(np.pi), _still(120), 0.0)[0][4:].mean()
    assert forward == pytest.approx(backward, rel=0.2)


def test_complex_cells_are_phase_invariant_and_simple_cells_are_not() -> None:
    grating = _grating(0.0, frames=240, hz=1.0)
    modulation = {}
    for complexity in (0.0, 1.0):
        twin = _one_neuron_twin(direction=0.0, complexity=complexity)
        drive = twin.drive(grating, _still(240), 0.0)[0][8:, 0]
        modulation[complexity] = drive.std() / drive.mean()
    assert modulation[0.0] > 0.7 and modulation[1.0] < 0.3


def test_receptive_fields_move_with_the_eye() -> None:
    twin = _one_neuron_twin(complexity=1.0, rf_sigma=2.0)
    video = np.full((60, H, W), 128, np.float32)
    video[:, :, 44:] = 255  # a vertical edge 12 px right of the receptive field
    video[::10] = 128  # flicker it so that the transient kernels respond
    look_ahead = twin.drive(video, _still(60), 0.0)[0].mean()
    look_right = twin.drive(video, _still(60, eye_x=12 * DEGREES_PER_PIXEL), 0.0)[0].mean()
    assert look_right > 5 * look_ahead


def test_normalization_saturates_contrast() -> None:
    twin = _one_neuron_twin(direction=0.0, complexity=1.0, normalization=2.0)
    twin.contrast_reference = 0.3
    low = twin.drive((_grating(0.0) - 128) * 0.25 + 128, _still(120), 0.0)[0][4:].mean()
    high = twin.drive(_grating(0.0), _still(120), 0.0)[0][4:].mean()
    assert 1.2 * low < high < 3 * low  # four times the contrast, well under four times the drive


# ------------------------------------------------------------------------------ trials


@pytest.fixture(scope="module")
def twin() -> Twin:
    rng = np.random.default_rng(0)
    coords = np.column_stack([rng.uniform(-300, 300, (60, 2)), np.full(60, 250.0)])
    pop = make_population(coords, rng, NeuronConfig())
    twin = Twin(pop, NeuronConfig(), BehaviorConfig())
    videos = [
        make_video("NaturalVideo", np.random.default_rng(100 + i), frames=200) for i in range(4)
    ]
    twin.calibrate(videos, np.random.default_rng(1))
    return twin


def test_scan_binning_and_upsampling_are_averages() -> None:
    times, binning = _scan_binning(150, 0.05)
    assert np.allclose(binning.sum(axis=1), 1) and times[0] < 0 <= (150 - 1) / 30 <= times[-1]
    assert np.allclose(np.diff(times), 1 / 8)
    up = _upsample_matrix(times, 150)
    assert up.shape == (150, len(times)) and np.allclose(up.sum(axis=1), 1)


def test_responses_are_sparse_heavy_tailed_and_rates_their_mean(twin: Twin) -> None:
    video = make_video("NaturalVideo", np.random.default_rng(7), frames=150)
    outs = [twin.run(video, np.random.default_rng(i)) for i in range(30)]
    responses = np.stack([o.responses for o in outs])  # (trial, neuron, frame)
    rates = np.stack([o.rates for o in outs])
    assert responses.dtype == rates.dtype == np.float32
    assert responses.min() >= 0 and rates.min() >= 0
    assert 0.85 < responses.sum() / rates.sum() < 1.15
    flat = responses.transpose(1, 0, 2).reshape(len(twin.population.rf_row), -1)
    ratio = np.median(flat.std(axis=1) / flat.mean(axis=1))
    assert 3 < ratio < 10  # the real recordings: 4.4 to 6.9
    expected = rates.transpose(1, 0, 2).reshape(flat.shape)
    corr = [np.corrcoef(r, q)[0, 1] for r, q in zip(flat, expected, strict=True)]
    assert 0.2 < np.nanmean(corr) < 0.7  # a ceiling like the real data allows, not 0.9


def test_calibration_sets_the_mean_rate(twin: Twin) -> None:
    pop = twin.population
    assert pop.threshold is not None and pop.scale is not None
    video = make_video("NaturalVideo", np.random.default_rng(5), frames=300)
    outs = [twin.run(video, np.random.default_rng(50 + i)) for i in range(8)]
    mean_rate = np.mean([o.rates.mean(axis=1) for o in outs], axis=0) / pop.amplitude
    assert 0.5 < np.median(mean_rate / pop.events_per_scan) < 2
