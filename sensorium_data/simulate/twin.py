"""The digital twin of one mouse: stimulus and behaviour in, responses and rates out.

One trial, step by step:

1. the screen image moves on the retina with the eye (pupil position -> shift);
2. each pixel is filtered by the biphasic temporal kernels, and integrated over each
   two-photon scan (8 Hz, at a random phase to the stimulus);
3. the receptive fields project it (even/odd Gabor x fast/slow kernel), giving every
   neuron's simple/complex, direction-tuned drive, divided by the local contrast;
4. threshold, power law, gains from running and pupil: the *rate* (events per scan);
5. a gain fluctuation shared by the population and Poisson events of log-normal size: the
   *response*, non-negative, sparse and heavy-tailed like deconvolved calcium activity;
6. both are brought from the scans to the 30 Hz frames by linear interpolation.

The rate written as ``data/rates`` is the expected response given the stimulus and the
recorded behaviour (the shared fluctuation averages out): the best any model can predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensorium_data.simulate.behavior import Behavior, BehaviorConfig, simulate_behavior
from sensorium_data.simulate.neurons import (
    HEIGHT,
    KERNEL_FRAMES,
    WIDTH,
    NeuronConfig,
    Population,
    temporal_kernels,
)
from sensorium_data.simulate.textures import ornstein_uhlenbeck, shift_frames
from sensorium_data.tree.formats import FPS

SCAN_HZ = 8.0
DEGREES_PER_PIXEL = 1.9
GRAY = 128.0
PRE_FRAMES = KERNEL_FRAMES + 5
"""Gray frames assumed before each trial, so that the kernels start from rest."""


@dataclass
class TrialOutput:
    responses: np.ndarray
    """(neurons, frames) float32: what the microscope records."""
    rates: np.ndarray
    """(neurons, frames) float32: expected responses given stimulus and behaviour."""
    behavior: Behavior


class Twin:
    """The simulated mouse: a population, its filters, and the behaviour model.

    Call :meth:`calibrate` once (it sets each neuron's threshold and output scale from its
    drive on natural movies), then :meth:`run` per trial.
    """

    def __init__(
        self,
        population: Population,
        neuron_config: NeuronConfig,
        behavior_config: BehaviorConfig,
    ):
        self.population = population
        self.config = neuron_config
        self.behavior_config = behavior_config
        even, odd = population.filters()  # (pixels, neurons) each
        self.kernels = [temporal_kernels(*k) for k in neuron_config.temporal_classes]
        self.classes = [
            np.flatnonzero(population.temporal_class == k) for k in range(len(self.kernels))
        ]
        # per temporal class, the spatial [even | odd] filters side by side: one matrix product
        # gives the four (temporal even, odd) x (spatial even, odd) projections of the class
        self.filters = [np.concatenate([even[:, i], odd[:, i]], axis=1) for i in self.classes]
        self.pool_rows = _gaussian_matrix(HEIGHT, neuron_config.normalization_sigma)
        self.pool_cols = _gaussian_matrix(WIDTH, neuron_config.normalization_sigma)
        self.centre_pixel = np.clip(np.rint(population.rf_row), 0, HEIGHT - 1).astype(
            np.int64
        ) * WIDTH + np.clip(np.rint(population.rf_col), 0, WIDTH - 1).astype(np.int64)
        self.contrast_reference = 1.0

    # ------------------------------------------------------------------ the stimulus side

    def drive(
        self, video: np.ndarray, behavior: Behavior, phase: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalized drive of every neuron at every scan.

        Returns the drive (scans, neurons), the scan times and the local contrast (scans,
        neurons), times in seconds from trial onset.
        """
        frames = len(video)
        contrast = (video.astype(np.float32) - GRAY) / GRAY  # (frames, H, W)
        # the eye looking right/up makes receptive fields see the screen to the right/above
        dy = (behavior.eye_y / DEGREES_PER_PIXEL).astype(np.float32)
        dx = (-behavior.eye_x / DEGREES_PER_PIXEL).astype(np.float32)
        retina = shift_frames(contrast, dy, dx).reshape(frames, -1)
        retina = np.concatenate([np.zeros((PRE_FRAMES, retina.shape[1]), np.float32), retina])
        scan_times, binning = _scan_binning(frames, phase)  # (scans, PRE + frames)
        scans = len(scan_times)
        # mean contrast over each scan, and each kernel's output integrated over each scan
        operators = [binning] + [
            _filter_rows(binning, kernel) for pair in self.kernels for kernel in pair
        ]
        projected = np.concatenate(operators) @ retina  # (scans * (1 + 2 * classes), pixels)

        local = projected[:scans]
        # local RMS contrast: a separable Gaussian blur of the squared contrast, as two
        # single matrix products (a batched product would call BLAS once per scan)
        energy = (local * local).reshape(scans * HEIGHT, WIDTH) @ self.pool_cols.T
        energy = energy.reshape(scans, HEIGHT, WIDTH).transpose(1, 0, 2).reshape(HEIGHT, -1)
        pooled = (self.pool_rows @ energy).reshape(HEIGHT, scans, WIDTH).transpose(1, 0, 2)
        contrast_at = np.sqrt(pooled.reshape(scans, -1)[:, self.centre_pixel])

        p = self.population
        drive = np.empty((scans, p.n), np.float32)
        for k, (idx, filters) in enumerate(zip(self.classes, self.filters, strict=True)):
            if len(idx) == 0:
                continue
            n = len(idx)
            # (2 scans, pixels): the retina through this class's temporal even, odd kernels
            x = projected[scans * (1 + 2 * k) : scans * (3 + 2 * k)]
            out = x @ filters  # (2 scans, 2 n)
            # <temporal><spatial>: ee = temporal even x spatial even, and so on
            ee, eo = out[:scans, :n], out[:scans, n:]
            oe, oo = out[scans:, :n], out[scans:, n:]
            d = p.direction[idx].astype(np.float32)
            # two space-time filters in quadrature; with d = 1 they are oriented in space-time
            # (tuned to one direction of motion), with d = 0 separable (Adelson & Bergen 1985)
            l1 = ee - d * oo
            l2 = eo + d * oe
            phase_n = p.phase[idx].astype(np.float32)
            linear = np.cos(phase_n) * l1 + np.sin(phase_n) * l2
            energy_n = np.sqrt(l1 * l1 + l2 * l2)
            c = p.complexity[idx].astype(np.float32)
            drive[:, idx] = (1 - c) * np.maximum(linear, 0) + c * energy_n
        norm = 1 + p.normalization[None] * contrast_at / self.contrast_reference
        return drive / norm.astype(np.float32), scan_times, contrast_at

    # ------------------------------------------------------------------ the response side

    def rate(self, drive: np.ndarray, behavior: Behavior, scan_times: np.ndarray) -> np.ndarray:
        """Expected events per scan (scans, neurons), given drive and behaviour."""
        p = self.population
        if p.threshold is None or p.scale is None or p.rate_scale is None:
            msg = "the twin is not calibrated; call Twin.calibrate() first"
            raise RuntimeError(msg)
        # threshold and power law, in units of the neuron's mean on natural movies; firing
        # saturates at ``saturation`` times that mean
        stim = np.maximum(drive - p.threshold[None], 0) ** p.exponent[None] * p.scale[None]
        stim = stim / (1 + stim / self.config.saturation)
        run = _at_scans(behavior.running, scan_times)[:, None]
        dilation = _at_scans(behavior.pupil, scan_times) / self.behavior_config.pupil_radius - 1
        log_gain = p.running_gain[None] * run + p.pupil_gain[None] * dilation[:, None] / 0.1
        base = p.spontaneous[None] + (1 - p.spontaneous[None]) * stim
        events = p.events_per_scan * p.rate_scale
        rate = events[None] * (base * np.exp(log_gain) + p.running_drive[None] * run)
        return rate.astype(np.float32)

    def run(self, video: np.ndarray, rng: np.random.Generator) -> TrialOutput:
        """Simulate one trial of a video (frames, H, W) in 0-255: behaviour, rates, responses."""
        frames = len(video)
        behavior = simulate_behavior(rng, frames, fps=FPS, config=self.behavior_config)
        phase = float(rng.uniform(0, 1 / SCAN_HZ))
        drive, scan_times, _ = self.drive(video, behavior, phase)
        rate = self.rate(drive, behavior, scan_times)  # (scans, neurons)
        p = self.population
        # slow gain fluctuations, shared by the population and private to each neuron, mean one
        tau = self.config.gain_noise_tau * SCAN_HZ
        shared = ornstein_uhlenbeck(rng, len(scan_times), tau=tau).astype(np.float32)[:, None]
        private = _ou_matrix(rng, (len(scan_times), p.n), tau=tau)
        w = p.shared_gain[None].astype(np.float32)
        s = np.float32(self.config.private_gain)
        noisy_rate = rate * np.exp(w * shared + s * private - 0.5 * (w * w + s * s))
        counts = rng.poisson(noisy_rate)
        sigma = self.config.amplitude_sigma
        flat = np.flatnonzero(counts)
        sizes = rng.lognormal(-0.5 * sigma * sigma, sigma, int(counts.sum()))
        events = np.bincount(
            np.repeat(flat, counts.ravel()[flat]), weights=sizes, minlength=counts.size
        ).reshape(counts.shape)
        amplitude = p.amplitude[None]
        upsample = _upsample_matrix(scan_times, frames)  # (frames, scans)
        both = upsample @ np.concatenate([events * amplitude, rate * amplitude], axis=1)
        responses, rates = both[:, : p.n].T, both[:, p.n :].T  # (neurons, frames) each
        return TrialOutput(
            np.maximum(responses, 0).astype(np.float32), rates.astype(np.float32), behavior
        )

    def calibrate(self, videos: list[np.ndarray], rng: np.random.Generator) -> None:
        """Set thresholds and output scales from the drive on natural movies.

        Each neuron's threshold is the ``threshold_quantile`` of its drive, its ``scale`` makes
        the thresholded power of its drive 1 on average, and ``rate_scale`` makes its mean rate
        on these movies (with typical behaviour) ``events_per_scan``.
        """
        p = self.population
        self.contrast_reference = 1.0
        drives, contrasts, behaviors, times = [], [], [], []
        for video in videos:
            behavior = simulate_behavior(rng, len(video), fps=FPS, config=self.behavior_config)
            d, t, c = self.drive(video, behavior, float(rng.uniform(0, 1 / SCAN_HZ)))
            drives.append(d)
            contrasts.append(c)
            behaviors.append(behavior)
            times.append(t)
        # the normalization is relative to the typical local contrast of natural movies
        contrast = np.concatenate(contrasts)
        self.contrast_reference = float(np.mean(contrast))
        drive = (
            np.concatenate(drives)
            * (1 + p.normalization[None] * contrast)
            / (1 + p.normalization[None] * contrast / self.contrast_reference)
        )
        qs = np.clip(p.threshold_quantile, 0, 1)
        order = np.sort(drive, axis=0)
        rows = np.rint(qs * (len(order) - 1)).astype(np.int64)
        p.threshold = order[rows, np.arange(p.n)].astype(np.float64)
        stim = np.maximum(drive - p.threshold[None], 0) ** p.exponent[None]
        p.scale = 1.0 / np.maximum(stim.mean(axis=0), 1e-12)
        # one more pass with saturation and gains: rescale so the mean rate is events_per_scan
        p.rate_scale = np.ones(p.n)
        offsets = np.cumsum([0] + [len(t) for t in times])
        means = np.zeros(p.n)
        for i, (behavior, t) in enumerate(zip(behaviors, times, strict=True)):
            means += self.rate(drive[offsets[i] : offsets[i + 1]], behavior, t).sum(axis=0)
        means /= offsets[-1]
        p.rate_scale = p.events_per_scan / np.maximum(means, 1e-12)


def _scan_binning(frames: int, phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Scan times and the (scans, PRE_FRAMES + frames) matrix averaging frames per scan.

    Scan k ends at ``phase + (k - 1) / SCAN_HZ`` and integrates the frames shown during the
    scan before; the first scan ends before the trial starts, the last at or after its end,
    so that every frame lies between two scans.
    """
    period = 1 / SCAN_HZ
    last = (frames - 1) / FPS
    n = int(np.ceil((last - phase) / period)) + 2
    ends = phase + (np.arange(n) - 1) * period
    frame_times = (np.arange(-PRE_FRAMES, frames) + 0.5) / FPS
    inside = (frame_times[None] > ends[:, None] - period) & (frame_times[None] <= ends[:, None])
    counts = np.maximum(inside.sum(axis=1, keepdims=True), 1)
    return ends, (inside / counts).astype(np.float32)


def _filter_rows(binning: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``binning`` composed with a causal temporal filter: scan k of the result integrates the
    filtered frames, (B K)[k, f] = sum over lags of B[k, f + lag] * kernel[lag]."""
    out = np.zeros_like(binning)
    length = binning.shape[1]
    for lag, weight in enumerate(kernel[:length]):
        out[:, : length - lag] += np.float32(weight) * binning[:, lag:]
    return out


def _upsample_matrix(scan_times: np.ndarray, frames: int) -> np.ndarray:
    """(frames, scans) linear interpolation from scan times to frame times."""
    frame_times = np.arange(frames) / FPS
    right = np.clip(np.searchsorted(scan_times, frame_times, side="right"), 1, len(scan_times) - 1)
    left = right - 1
    span = scan_times[right] - scan_times[left]
    w = np.clip((frame_times - scan_times[left]) / span, 0, 1)
    out = np.zeros((frames, len(scan_times)), np.float32)
    out[np.arange(frames), left] = 1 - w
    out[np.arange(frames), right] += w
    return out


def _ou_matrix(rng: np.random.Generator, shape: tuple[int, int], *, tau: float) -> np.ndarray:
    """Independent stationary Ornstein-Uhlenbeck processes along axis 0, unit variance."""
    a = np.float32(np.exp(-1.0 / tau))
    noise = rng.standard_normal(shape, dtype=np.float32)
    out = np.empty(shape, np.float32)
    out[0] = noise[0]
    innovation = np.float32(np.sqrt(1 - a * a))
    for i in range(1, shape[0]):
        out[i] = a * out[i - 1] + innovation * noise[i]
    return out


def _at_scans(trace: np.ndarray, scan_times: np.ndarray) -> np.ndarray:
    """A per-frame trace read at the scan times (held at the ends)."""
    frame_times = np.arange(len(trace)) / FPS
    return np.interp(scan_times, frame_times, trace).astype(np.float32)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float32)
    g = np.exp(-((x[:, None] - x[None]) ** 2) / (2 * sigma**2))
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)
