"""The ``static2022`` preset: a static-image twin in the SENSORIUM 2022 file format.

Three mice see flashed natural-like images, one trial per image presentation::

    <path>/static2022-A/                   A: like the competition mice (hashed trial_idx,
    ├── data/                              a final_test tier); B, C: like the pre-training mice
    │   ├── images/<trial>.npy             (1, 144 s, 256 s)  0-255 (s = image_scale)
    │   ├── responses/<trial>.npy          (neurons,)  simulated deconvolved activity
    │   ├── behavior/<trial>.npy           (3,)  pupil dilation, its derivative, running speed
    │   ├── pupil_center/<trial>.npy       (2,)  eye position (camera pixels)
    │   └── rates/<trial>.npy              (neurons,)  expected responses: the ceiling
    └── meta/
        ├── neurons/, statistics/          as the real release
        ├── trials/tiers.npy, frame_image_id.npy, trial_idx.npy, frame_image_class.npy
        ├── simulation.json                preset, seed, scales, behaviour gain, the model
        ├── simulation_neurons.json        every neuron's receptive field and gains
        ├── simulation_receptive_fields.npy  (neurons, 36, 64) the true linear (even) RFs
        ├── simulation_image_ids.npy, simulation_image_rates.npy  (images,), (images, neurons):
        │                                  each image's rates at mean behaviour, eye at rest
        └── simulation_explainable_variance.json  per tier and neuron, see below

The mouse sees the stored image at 36 x 64 (the starter kit's scale 0.25 of 144 x 256),
shifted by its eye position when the behaviour gain is on. Each neuron is a Gabor unit
between simple (the even filter, rectified) and complex (the energy of the even and odd
filters), thresholded and raised to a power; with ``behavior_gain`` its rate is multiplied
by ``exp(g_run * running_z + g_pupil * pupil_z)``. Responses are compound Poisson (Poisson
events of log-normal size, mean 1) plus a small half-normal floor, so the expected response
(``rates``) is ``rate + FLOOR_MEAN`` and ``Var(response | rate) = rate * EVENT_M2 + FLOOR_VAR``.

Explainable variance, per tier and neuron, from the rates written: ``signal_variance``
(variance of the rates over the tier's trials), ``stimulus_variance`` (that minus the mean
variance of the rates across repeats of one image: what the image alone explains; equal to
the signal without the behaviour gain), ``noise_variance`` (mean of ``rate * EVENT_M2``) and
``explainable_fraction = stimulus_variance / (signal_variance + noise_variance)``: the
population value that the 2022 FEV (``(total_var - noise_var) / total_var`` over repeats)
estimates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensorium_data.errors import Fix, Message
from sensorium_data.rescale import Rescaler
from sensorium_data.simulate.natural import natural_image
from sensorium_data.simulate.presets import mouse_key
from sensorium_data.simulate.textures import ornstein_uhlenbeck, shift_frames
from sensorium_data.tree import TreeWriter

HEIGHT, WIDTH = 36, 64
"""The retina's grid: the starter kit's training resolution."""
FULL = (144, 256)
"""The release's image size (image_scale 1)."""
EVENT_SIGMA = 0.8
EVENT_M2 = float(np.exp(EVENT_SIGMA**2))
"""E[size^2] of the log-normal events of mean 1: the noise variance per unit of rate."""
FLOOR = 0.02
"""Scale of the half-normal measurement floor added to every response: a trial's responses are
then never all zero (which the converter would read as withheld, as in the test tiers)."""
FLOOR_MEAN = FLOOR * float(np.sqrt(2 / np.pi))
FLOOR_VAR = FLOOR**2 * (1 - 2 / np.pi)
EYE_SHIFT = 0.8
"""RF displacement on the screen, in 36 x 64 pixels, per standard deviation of eye position."""
MICE = (  # name, neurons, hashed trial_idx and a final_test tier (as the competition mice)
    ("A", 200, True),
    ("B", 160, False),
    ("C", 240, False),
)
TRAIN, VALIDATION, TEST_IMAGES, REPEATS = 360, 40, 20, (8, 12)  # ~10 repeats, as released
CALIBRATION_IMAGES = 64
RATE_MEDIAN = 0.3
"""Median over neurons of the mean events per trial (low: single trials are noisy)."""
CALIBRATION_ID = 10**9  # image ids of the calibration images (never shown in a trial)
STREAMS = {
    "images": "grayscale 0-255, (1, height, width)",
    "responses": "simulated deconvolved calcium activity (a.u.), (neurons,)",
    "rates": "expected responses given the image and the recorded behaviour: the ceiling",
    "behavior": "pupil dilation (px), its change since the previous trial, running speed (cm/s)",
    "pupil_center": "pupil centre x, y (eye-camera pixels)",
}


@dataclass(frozen=True)
class StaticPlan:
    """One simulated 2022 mouse: its trials (file index order) and neurons."""

    name: str
    unit_ids: np.ndarray
    coordinates: np.ndarray  # (N, 3) microns
    tiers: np.ndarray  # per trial
    image_id: np.ndarray  # per trial, int
    order: np.ndarray  # presentation order of each trial
    hashed: bool

    @property
    def trial_idx(self) -> np.ndarray:
        if not self.hashed:
            return self.order.astype(np.int64)
        return np.array([hashlib.md5(f"{self.name}/{o}".encode(), usedforsecurity=False).hexdigest()
                         for o in self.order])


def plans(seed: int, scale: float) -> list[StaticPlan]:
    """The three mice of the preset at ``scale`` (neurons and images; at least 2 repeats)."""
    n_test = max(2, round(TEST_IMAGES * scale))
    # the live test images are shown to every mouse (as in the release); final_test to A only
    test_ids, final_ids = np.arange(1, n_test + 1), np.arange(n_test + 1, 2 * n_test + 1)
    out = []
    for m, (letter, neurons, competition) in enumerate(MICE):
        name = f"static2022-{letter}"
        mrng = np.random.default_rng(np.random.SeedSequence([seed, 21, mouse_key(name)]))
        n = max(4, round(neurons * scale))
        unit_ids = np.cumsum(1 + mrng.geometric(0.8, n))
        xy = mrng.uniform(-300, 300, (n, 2))
        z = mrng.choice(np.arange(200, 426, 25), n)
        coordinates = np.column_stack([np.rint(xy), z]).astype(np.float64)
        first = 1000 * (m + 1) * 1000  # own train and validation images per mouse
        n_train, n_val = max(8, round(TRAIN * scale)), max(2, round(VALIDATION * scale))
        rows = [("train", first + i) for i in range(n_train)]
        rows += [("validation", first + n_train + i) for i in range(n_val)]
        for tier, ids in (("test", test_ids), ("final_test", final_ids)):
            if tier == "final_test" and not competition:
                continue
            lo, hi = REPEATS
            rows += [(tier, int(i)) for i in ids
                     for _ in range(max(2, int(mrng.integers(lo, hi + 1))))]
        trials = mrng.permutation(len(rows))  # file index of each row: random, as released
        tiers = np.empty(len(rows), dtype=object)
        image_id = np.empty(len(rows), dtype=np.int64)
        for (tier, image), index in zip(rows, trials, strict=True):
            tiers[index], image_id[index] = tier, image
        out.append(StaticPlan(name, unit_ids, coordinates, tiers.astype(str), image_id,
                              mrng.permutation(len(rows)), competition))
    return out


@dataclass
class StaticTwin:
    """The population of one mouse: Gabor filters, nonlinearity and behaviour gains."""

    even: np.ndarray  # (HEIGHT * WIDTH, N) unit norm
    odd: np.ndarray
    table: dict[str, list[float]]
    complexity: np.ndarray
    threshold: np.ndarray
    amplitude: np.ndarray
    exponent: np.ndarray
    g_run: np.ndarray
    g_pupil: np.ndarray

    @classmethod
    def draw(cls, coordinates: np.ndarray, rng: np.random.Generator) -> StaticTwin:
        n = len(coordinates)
        # retinotopy: cortical x, y (microns) to screen row, column, with scatter
        col = WIDTH / 2 + coordinates[:, 0] / 25.0 + rng.normal(0, 1.5, n)
        row = HEIGHT / 2 - coordinates[:, 1] / 40.0 + rng.normal(0, 1.5, n)
        col, row = np.clip(col, 8, WIDTH - 9), np.clip(row, 6, HEIGHT - 7)
        sigma = np.exp(rng.normal(np.log(2.8), 0.2, n))
        period = np.exp(rng.normal(np.log(10.0), 0.25, n))
        theta = rng.uniform(0, np.pi, n)
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
        dy, dx = yy[..., None] - row, xx[..., None] - col  # (H, W, N)
        along = dx * np.cos(theta) + dy * np.sin(theta)
        envelope = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        even = (envelope * np.cos(2 * np.pi * along / period)).reshape(-1, n)
        odd = (envelope * np.sin(2 * np.pi * along / period)).reshape(-1, n)
        even -= even.mean(axis=0)
        even /= np.linalg.norm(even, axis=0)
        odd /= np.linalg.norm(odd, axis=0)
        complexity = rng.uniform(0, 1, n)
        g_run, g_pupil = rng.normal(0.35, 0.15, n), rng.normal(0.2, 0.1, n)
        table = {"rf_row": row, "rf_col": col, "rf_sigma": sigma, "rf_period": period,
                 "rf_orientation": theta, "complexity": complexity, "gain_running": g_run,
                 "gain_pupil": g_pupil}
        return cls(even.astype(np.float32), odd.astype(np.float32),
                   {k: np.asarray(v).tolist() for k, v in table.items()}, complexity,
                   np.zeros(n), np.ones(n), rng.uniform(1.3, 2.0, n), g_run, g_pupil)

    def drive(self, retina: np.ndarray) -> np.ndarray:
        """(T, HEIGHT, WIDTH) contrast images -> (T, N) drive, simple to complex."""
        flat = retina.reshape(len(retina), -1)
        e, o = flat @ self.even, flat @ self.odd
        return (1 - self.complexity) * e + self.complexity * np.sqrt(e * e + o * o)

    def calibrate(self, retina: np.ndarray, rng: np.random.Generator) -> None:
        """Threshold at a random quantile of each neuron's drive; mean rates log-normal around
        RATE_MEDIAN."""
        d = np.asarray(self.drive(retina))  # (images, N)
        q = np.asarray(rng.uniform(0.3, 0.6, size=d.shape[1]))
        self.threshold = np.array([np.quantile(d[:, i], q[i]) for i in range(d.shape[1])])
        shaped = np.maximum(d - self.threshold, 0) ** self.exponent
        target = np.exp(rng.normal(np.log(RATE_MEDIAN), 0.5, d.shape[1]))
        self.amplitude = target / np.maximum(shaped.mean(axis=0), 1e-12)
        self.table.update(threshold=self.threshold.tolist(), amplitude=self.amplitude.tolist(),
                          exponent=self.exponent.tolist())

    def rates(self, retina: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """(T, N) expected responses; ``gain`` (T, N) from behaviour (ones without)."""
        d = self.drive(retina)
        return self.amplitude * np.maximum(d - self.threshold, 0) ** self.exponent * gain


def _behavior(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per trial in presentation order: a slow arousal state drives pupil and running."""
    arousal = ornstein_uhlenbeck(rng, n, tau=40.0)
    pupil = 22 + 6 * arousal + rng.normal(0, 1.0, n)
    running = np.maximum(0, 12 * (arousal + ornstein_uhlenbeck(rng, n, tau=10.0) - 0.3))
    eye = np.stack([ornstein_uhlenbeck(rng, n, tau=8.0, std=4.0) + 160,
                    ornstein_uhlenbeck(rng, n, tau=8.0, std=3.0) + 120], axis=1)
    return {"pupil": pupil, "dpupil": np.diff(pupil, prepend=pupil[0]), "running": running,
            "eye": eye}


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)


def image_pixels(seed: int, image_id: int, shape: tuple[int, int]) -> np.ndarray:
    """The stored image of ``image_id``: a natural-like image at ``shape``, 0-255 integers."""
    contrast = natural_image(np.random.default_rng(np.random.SeedSequence([seed, 22, image_id])))
    big = Rescaler((HEIGHT, WIDTH), shape[0] / HEIGHT)(contrast)
    return np.round(np.clip(128 + 128 * big, 0, 255))


def write_static_mouse(plan: StaticPlan, target: Path, *, seed: int, image_scale: float,
                       behavior_gain: bool, params: dict[str, object],
                       on_trial: Callable[[], None] | None = None) -> Path:
    """Simulate ``plan`` and write its file tree to ``target`` (empty or missing)."""
    key = mouse_key(plan.name)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 23, key]))
    twin = StaticTwin.draw(plan.coordinates, rng)
    shape = (max(1, round(FULL[0] * image_scale)), max(1, round(FULL[1] * image_scale)))
    to_retina = Rescaler(shape, HEIGHT / shape[0])
    calibration = np.stack([to_retina(image_pixels(seed, CALIBRATION_ID + i, shape)) / 128 - 1
                            for i in range(CALIBRATION_IMAGES)])
    twin.calibrate(calibration, rng)
    n = len(plan.tiers)
    behavior = {k: v[plan.order] for k, v in _behavior(rng, n).items()}  # to file-index order
    if behavior_gain:
        gain = np.exp(np.outer(_zscore(behavior["running"]), twin.g_run)
                      + np.outer(_zscore(behavior["pupil"]), twin.g_pupil))
        shift = EYE_SHIFT * _zscore(behavior["eye"])  # RF moves with the eye
    else:
        gain, shift = np.ones((n, len(twin.complexity))), np.zeros((n, 2))
    images = {i: image_pixels(seed, int(i), shape) for i in np.unique(plan.image_id)}
    retina = np.stack([to_retina(images[int(i)]) / 128 - 1 for i in plan.image_id])
    # an RF moved by +d on the screen sees the image moved by -d
    retina = shift_frames(retina.astype(np.float32), -shift[:, 1], -shift[:, 0])
    rates = twin.rates(retina, gain)  # (trials, N)
    events = rng.poisson(rates)
    sizes = np.exp(rng.normal(-EVENT_SIGMA**2 / 2, EVENT_SIGMA, (n, rates.shape[1], 8)))
    cap = np.arange(8) < events[..., None]
    responses = (sizes * cap).sum(axis=-1) + _overflow(rng, events - 8)
    responses += np.abs(rng.normal(0, FLOOR, responses.shape))
    rates = rates + FLOOR_MEAN  # the expected response
    writer = TreeWriter(target, tiers=plan.tiers, unit_ids=plan.unit_ids,
                        coordinates=plan.coordinates,
                        trial_info={"frame_image_id": plan.image_id, "trial_idx": plan.trial_idx,
                                    "frame_image_class": np.full(n, "imagenet")})
    for t in range(n):
        writer.write_trial(
            t, images=images[int(plan.image_id[t])][None], responses=responses[t],
            behavior=np.array([behavior["pupil"][t], behavior["dpupil"][t],
                               behavior["running"][t]]),
            pupil_center=behavior["eye"][t], rates=rates[t])
        if on_trial is not None:
            on_trial()
    writer.write_json("meta/simulation.json", {
        **params, "mouse": plan.name, "image_shape": list(shape), "retina_shape": [HEIGHT, WIDTH],
        "behavior_gain": behavior_gain, "event_sigma": EVENT_SIGMA, "event_m2": EVENT_M2,
        "floor": FLOOR,
        "eye_shift": EYE_SHIFT if behavior_gain else 0.0, "streams": STREAMS,
        "ground_truth": "meta/simulation_neurons.json, meta/simulation_receptive_fields.npy, "
                        "meta/simulation_explainable_variance.json"})
    writer.write_json("meta/simulation_neurons.json",
                      {"unit_id": plan.unit_ids.tolist(), **twin.table})
    writer.write_json("meta/simulation_explainable_variance.json",
                      explainable_variance(rates, plan.tiers, plan.image_id))
    np.save(target / "meta" / "simulation_receptive_fields.npy",
            twin.even.T.reshape(-1, HEIGHT, WIDTH))
    # each image's expected response at mean behaviour (gain 1) and the eye at rest
    ids = np.unique(plan.image_id)
    still = np.stack([to_retina(images[int(i)]) / 128 - 1 for i in ids])
    np.save(target / "meta" / "simulation_image_ids.npy", ids)
    np.save(target / "meta" / "simulation_image_rates.npy",
            (twin.rates(still, np.ones((len(ids), len(twin.complexity)))) + FLOOR_MEAN)
            .astype(np.float32))
    return writer.close()


def _overflow(rng: np.random.Generator, extra: np.ndarray) -> np.ndarray:
    """Sum of the events beyond the first 8 (rare): their count times a mean-1 size."""
    out = np.zeros(extra.shape)
    many = extra > 0
    out[many] = rng.gamma(extra[many] / (EVENT_M2 - 1), EVENT_M2 - 1)
    return out


def explainable_variance(rates: np.ndarray, tiers: np.ndarray,
                         image_id: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """Per tier and neuron: signal, stimulus and noise variance and the explainable fraction
    (see the module's docstring), from the rates (trials, N) of the tier's trials."""
    out = {}
    for tier in sorted(set(tiers.tolist())):
        r = rates[tiers == tier].astype(np.float64)
        ids = image_id[tiers == tier]
        signal = r.var(axis=0)
        groups = [r[ids == i] for i in np.unique(ids) if (ids == i).sum() > 1]
        within = np.mean([g.var(axis=0) for g in groups], axis=0) if groups else 0.0
        stimulus = signal - within
        noise = (r.mean(axis=0) - FLOOR_MEAN) * EVENT_M2 + FLOOR_VAR
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = stimulus / (signal + noise)
        out[tier] = {k: np.asarray(v, np.float64).tolist() for k, v in {
            "signal_variance": signal, "stimulus_variance": stimulus,
            "noise_variance": noise, "explainable_fraction": fraction}.items()}
    return out


def read_explainable_variance(tree: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``meta/simulation_explainable_variance.json`` of a simulated 2022 recording, as arrays
    (in the order of ``meta/neurons/unit_ids.npy``)."""
    path = Path(tree) / "meta" / "simulation_explainable_variance.json"
    if not path.is_file():
        msg = Message(f"{path} does not exist: {tree} is not a recording of the static2022 "
                      "preset (", Fix("sensorium_data.simulate(out, preset='static2022')",
                                      "sensorium simulate OUT --preset static2022"), ").")
        raise FileNotFoundError(msg)
    return {tier: {k: np.asarray(v) for k, v in values.items()}
            for tier, values in json.loads(path.read_text()).items()}
