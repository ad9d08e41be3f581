"""Behaviour of the simulated mouse: running bouts, pupil dilation and eye position.

A slow *arousal* state drives everything: it makes running bouts more likely and dilates the
pupil; running dilates it further (with a lag) and brings more saccades. The eye fixates,
drifts back towards its resting position and jumps in saccades, mostly horizontal ones. Each
trial starts from the stationary state of these processes, so trials are independent and can
be generated in any order.

Units (the real recordings do not document theirs; these are plausible): running speed in
cm/s, pupil dilation as a radius in eye-camera pixels, pupil centre in eye-camera pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sensorium_data.simulate.textures import ornstein_uhlenbeck


@dataclass(frozen=True)
class BehaviorConfig:
    """Parameters of the behaviour model (times in seconds, rates in 1/s)."""

    arousal_tau: float = 8.0
    run_start_rate: float = 0.04
    """Rate of starting a bout at arousal 0; it grows as exp(arousal)."""
    run_stop_rate: float = 0.1
    run_speed_median: float = 12.0
    """Median cruising speed of a bout, cm/s (log-normal across bouts, sigma 0.5)."""
    run_speed_tau: float = 0.6
    """Time constant of accelerating into and out of a bout."""
    pupil_radius: float = 22.0
    """Pupil radius at rest and arousal 0, camera pixels."""
    pupil_arousal: float = 0.12
    pupil_running: float = 0.3
    """Relative dilation per unit arousal and at full running (speed >> 5 cm/s)."""
    pupil_tau: float = 1.2
    saccade_rate_rest: float = 0.25
    saccade_rate_running: float = 1.0
    saccade_amplitude: float = 5.0
    """Standard deviation of a saccade's horizontal jump, degrees (vertical: 0.4 times)."""
    eye_recentre_tau: float = 3.0
    eye_jitter: float = 0.15
    """Fixational drift, degrees per frame (random walk, held by the recentring)."""
    eye_limit: float = 15.0
    camera_px_per_degree: float = 2.5
    eye_centre: tuple[float, float] = (320.0, 240.0)
    """Pupil centre (camera pixels, x then y) when the eye looks straight ahead."""
    noise: float = 0.02
    """Measurement noise of each trace, relative to its scale."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Behavior:
    """One trial's behaviour at the frame rate: four arrays of length ``frames``."""

    pupil: np.ndarray
    """Pupil dilation (radius, camera pixels)."""
    speed: np.ndarray
    """Running speed, cm/s."""
    eye_x: np.ndarray
    eye_y: np.ndarray
    """Eye position in degrees (x right, y up), what moves the image on the retina."""
    pupil_x: np.ndarray
    pupil_y: np.ndarray
    """Pupil centre in camera pixels (the recorded ``pupil_center``)."""

    @property
    def running(self) -> np.ndarray:
        """Running in [0, 1): speed / (speed + 5 cm/s), the neurons' running signal."""
        return self.speed / (self.speed + 5.0)


def simulate_behavior(
    rng: np.random.Generator, frames: int, *, fps: float = 30.0, config: BehaviorConfig
) -> Behavior:
    """Behaviour of one trial of ``frames`` frames.

    Examples
    --------
    >>> b = simulate_behavior(np.random.default_rng(0), 300, config=BehaviorConfig())
    >>> b.pupil.shape, bool((b.speed >= 0).all())
    ((300,), True)
    """
    c = config
    dt = 1.0 / fps
    arousal = ornstein_uhlenbeck(rng, frames, tau=c.arousal_tau * fps)
    # running state: a two-state Markov chain whose start rate follows arousal
    p_run = c.run_start_rate / (c.run_start_rate + c.run_stop_rate)
    running = rng.random() < p_run * np.exp(arousal[0]) / (1 + p_run * (np.exp(arousal[0]) - 1))
    cruise = c.run_speed_median * np.exp(0.5 * rng.standard_normal())
    speed_now = cruise * (0.7 + 0.3 * rng.random()) if running else 0.0
    u = rng.random(frames)
    bout_speeds = c.run_speed_median * np.exp(0.5 * rng.standard_normal(frames))
    wobble = ornstein_uhlenbeck(rng, frames, tau=0.5 * fps, std=0.15)
    a_speed = float(np.exp(-dt / c.run_speed_tau))
    speed = np.empty(frames)
    for i in range(frames):
        if running and u[i] < c.run_stop_rate * dt:
            running = False
        elif not running and u[i] < c.run_start_rate * np.exp(arousal[i]) * dt:
            running, cruise = True, bout_speeds[i]
        target = cruise * (1 + wobble[i]) if running else 0.0
        speed_now = a_speed * speed_now + (1 - a_speed) * target
        speed[i] = speed_now
    run = speed / (speed + 5.0)

    # the pupil follows arousal and running through a first-order lag, from its steady state
    drive = c.pupil_radius * (1 + c.pupil_arousal * arousal + c.pupil_running * run)
    a_pupil = float(np.exp(-dt / c.pupil_tau))
    pupil = np.empty(frames)
    level = drive[0]
    for i in range(frames):
        level = a_pupil * level + (1 - a_pupil) * drive[i]
        pupil[i] = level

    eye_x, eye_y = _eye(rng, frames, run, fps=fps, config=c)
    scale = c.camera_px_per_degree
    noise = c.noise * rng.standard_normal((4, frames))
    return Behavior(
        pupil=pupil + noise[0] * c.pupil_radius,
        speed=np.maximum(speed + noise[1] * c.run_speed_median * 0.1, 0.0),
        eye_x=eye_x,
        eye_y=eye_y,
        pupil_x=c.eye_centre[0] + scale * eye_x + noise[2] * scale,
        # camera y grows downwards: looking up moves the pupil up in the image
        pupil_y=c.eye_centre[1] - scale * eye_y + noise[3] * scale,
    )


def _eye(
    rng: np.random.Generator, frames: int, run: np.ndarray, *, fps: float, config: BehaviorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Eye position (degrees): fixations, saccades of two frames, slow recentring."""
    c = config
    dt = 1.0 / fps
    rate = c.saccade_rate_rest + (c.saccade_rate_running - c.saccade_rate_rest) * run
    saccade = rng.random(frames) < rate * dt
    jumps = rng.standard_normal((frames, 2)) * c.saccade_amplitude * np.array([1.0, 0.4])
    jitter = rng.standard_normal((frames, 2)) * c.eye_jitter
    keep = float(np.exp(-dt / c.eye_recentre_tau))
    # stationary start: roughly the spread that saccades and recentring produce
    spread = c.saccade_amplitude * np.sqrt(c.saccade_rate_rest * c.eye_recentre_tau / 2)
    pos = rng.standard_normal(2) * spread * np.array([1.0, 0.4])
    target = pos.copy()
    out = np.empty((frames, 2))
    for i in range(frames):
        if saccade[i]:
            target = np.clip(target + jumps[i], -c.eye_limit, c.eye_limit)
        target = keep * target + jitter[i]
        pos = 0.5 * (pos + target)  # a saccade takes about two frames
        out[i] = pos
    return out[:, 0], out[:, 1]
