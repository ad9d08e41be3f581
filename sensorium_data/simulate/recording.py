"""Write one simulated mouse as a recording in the competition's file-tree format.

Trials stream through :class:`~sensorium_data.tree.TreeWriter` one at a time, grouped by
video so that each video is generated once and dropped after its last repeat: memory does not
grow with the number of trials. Every random draw comes from a generator keyed by the seed and
by what it is for (the population, a video, a trial), so the bytes do not depend on the order
of work and the same seed writes the same files.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from sensorium_data.simulate.behavior import BehaviorConfig
from sensorium_data.simulate.neurons import NeuronConfig, make_population
from sensorium_data.simulate.presets import MousePlan, mouse_key
from sensorium_data.simulate.stimuli import make_video, video_seed
from sensorium_data.simulate.twin import DEGREES_PER_PIXEL, SCAN_HZ, Twin
from sensorium_data.tree import FPS, TreeWriter

log = logging.getLogger(__name__)

TWIN_VERSION = 1
CALIBRATION_VIDEOS = 8
STREAMS = {
    "videos": "grayscale 0-255, (36, 64, frames); NaN past the trial's valid frames",
    "responses": "simulated deconvolved calcium activity (a.u.), (neurons, frames)",
    "rates": "expected responses given the stimulus and the recorded behaviour, (neurons, "
    "frames): the best possible prediction, so every metric of rates vs responses is a ceiling",
    "behavior": "pupil dilation (radius, eye-camera pixels), running speed (cm/s)",
    "pupil_center": "pupil centre x, y (eye-camera pixels; y grows downwards)",
}


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run matrix products on one thread, where ``threadpoolctl`` is installed.

    The twin's products are many and mid-sized, one after the other: a second BLAS thread
    gains little on the largest (8,000 neurons) and, spinning between calls, costs three
    times the CPU time on small populations, more when the machine is busy.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own thread count
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def calibration_videos(seed: int) -> list[np.ndarray]:
    """The natural movies every mouse of a seed is calibrated on (not part of any recording)."""
    return [
        make_video("NaturalVideo", np.random.default_rng(np.random.SeedSequence([seed, 5, i])))
        for i in range(CALIBRATION_VIDEOS)
    ]


def build_twin(
    plan: MousePlan,
    seed: int,
    *,
    calibration: list[np.ndarray] | None = None,
    neuron_config: NeuronConfig | None = None,
    behavior_config: BehaviorConfig | None = None,
) -> Twin:
    """The calibrated twin of one planned mouse."""
    neuron_config = neuron_config or NeuronConfig()
    behavior_config = behavior_config or BehaviorConfig()
    key = mouse_key(plan.name)
    # the population is drawn for every neuron of the layout, then subset: a scaled-down
    # recording keeps the ground truth of the neurons it keeps
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, key]))
    population = make_population(plan.coordinates, rng, neuron_config).subset(plan.neuron_index)
    twin = Twin(population, neuron_config, behavior_config)
    videos = calibration_videos(seed) if calibration is None else calibration
    twin.calibrate(videos, np.random.default_rng(np.random.SeedSequence([seed, 6, key])))
    return twin


def write_mouse(
    plan: MousePlan,
    target: Path,
    *,
    seed: int,
    params: dict[str, object],
    calibration: list[np.ndarray] | None = None,
    on_trial: Callable[[], None] | None = None,
) -> Path:
    """Simulate ``plan`` and write it to ``target`` (which must not exist or be empty)."""
    start = time.perf_counter()
    with single_threaded_blas():
        _write(plan, target, seed=seed, params=params, calibration=calibration, on_trial=on_trial)
    log.info(
        "simulated %s: %d neurons, %d trials in %.1f s",
        plan.name,
        len(plan.unit_ids),
        len(plan.trials),
        time.perf_counter() - start,
    )
    return target


def _write(
    plan: MousePlan,
    target: Path,
    *,
    seed: int,
    params: dict[str, object],
    calibration: list[np.ndarray] | None,
    on_trial: Callable[[], None] | None,
) -> None:
    twin = build_twin(plan, seed, calibration=calibration)
    writer = TreeWriter(
        target,
        tiers=plan.tiers,
        unit_ids=plan.unit_ids,
        coordinates=plan.coordinates[plan.neuron_index],
        trial_info={
            "stimulus_type": plan.labels(plan.stimulus_type),
            "video_id": plan.labels(plan.video_id),
        },
        dtype=np.float32,
    )
    longest: dict[tuple[str, str], int] = {}
    for stimulus, vid, valid in zip(
        plan.stimulus_type, plan.video_id, plan.valid_frames, strict=True
    ):
        longest[(stimulus, vid)] = max(longest.get((stimulus, vid), 0), int(valid))
    # repeats of a video are consecutive, so one video is held at a time
    order = sorted(range(len(plan.trials)), key=lambda i: (plan.video_id[i], plan.trials[i]))
    key = mouse_key(plan.name)
    current: tuple[tuple[str, str], np.ndarray] | None = None
    for i in order:
        trial = int(plan.trials[i])
        video_key = (str(plan.stimulus_type[i]), str(plan.video_id[i]))
        if current is None or current[0] != video_key:
            rng = np.random.default_rng(video_seed(seed, *video_key))
            current = (video_key, make_video(video_key[0], rng, frames=longest[video_key]))
        valid = int(plan.valid_frames[i])
        video = current[1][:valid]
        out = twin.run(video, np.random.default_rng(np.random.SeedSequence([seed, 4, key, trial])))
        b = out.behavior
        writer.write_trial(
            trial,
            videos=_pad(video.transpose(1, 2, 0), plan.frames),
            responses=_pad(out.responses, plan.frames),
            behavior=_pad(np.stack([b.pupil, b.speed]), plan.frames),
            pupil_center=_pad(np.stack([b.pupil_x, b.pupil_y]), plan.frames),
            rates=_pad(out.rates, plan.frames),
        )
        if on_trial is not None:
            on_trial()
    writer.write_json("meta/simulation.json", _description(plan, twin, params))
    writer.write_json("meta/simulation_neurons.json", twin.population.to_table(plan.unit_ids))
    writer.close()


def _description(plan: MousePlan, twin: Twin, params: dict[str, object]) -> dict[str, object]:
    """``meta/simulation.json``: how this recording was made, enough to make it again."""
    return {
        **params,
        "mouse": plan.name,
        "mimics": plan.mimics,
        "twin_version": TWIN_VERSION,
        "fps": FPS,
        "scan_hz": SCAN_HZ,
        "degrees_per_pixel": DEGREES_PER_PIXEL,
        "calibration_videos": CALIBRATION_VIDEOS,
        "contrast_reference": twin.contrast_reference,
        "neurons": twin.config.to_dict(),
        "behavior": twin.behavior_config.to_dict(),
        "streams": STREAMS,
        "ground_truth": "meta/simulation_neurons.json: every neuron's parameters",
    }


def _pad(array: np.ndarray, frames: int) -> np.ndarray:
    """NaN-pad the last axis to ``frames`` (as float32)."""
    out = np.full((*array.shape[:-1], frames), np.nan, dtype=np.float32)
    out[..., : array.shape[-1]] = array
    return out
