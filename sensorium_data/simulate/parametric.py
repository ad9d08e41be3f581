"""The parametric out-of-domain stimuli: Gabors, directional pink noise, dots.

Each generator makes one *item* (a fixed number of frames, as in the competition: Gabor 25,
PinkNoise 27, RandomDots 60, GaussianDot 9) in contrast units (0 = gray); :mod:`.stimuli`
strings items into trials. Directions are in radians, 0 = rightwards, pi/2 = upwards on screen.
"""

from __future__ import annotations

import numpy as np

from sensorium_data.simulate.textures import pink_noise, sample_wrapped
from sensorium_data.tree.formats import FPS

HEIGHT, WIDTH = 36, 64

GABOR_FRAMES = 25
GABOR_DIRECTIONS = tuple(np.deg2rad(np.arange(0, 360, 45)))
GABOR_PERIODS_PX = (24.0, 12.0, 6.0)
"""Spatial periods; at ~1.9 deg per pixel, about 0.02, 0.04 and 0.09 cycles per degree."""
GABOR_TEMPORAL_HZ = (1.0, 2.0, 4.0)
GABOR_SIGMA_PX = 10.0

PINK_FRAMES = 27
PINK_SPEEDS = (0.5, 1.0, 2.0)  # px/frame

DOTS_FRAMES = 60
DOTS_COHERENCES = (0.5, 1.0)
DOTS_SPEEDS = (0.5, 1.0)  # px/frame: ~30 and ~60 deg/s
DOTS_COUNT = 60
DOTS_SIGMA_PX = 1.0

GAUSSIAN_DOT_FRAMES = 9
GAUSSIAN_DOT_GRID = (7, 15)  # rows x columns: 105 positions
GAUSSIAN_DOT_SIGMA_PX = 2.5

_yy, _xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)


def gabor(rng: np.random.Generator) -> np.ndarray:
    """A drifting Gabor patch: one of 8 directions x 3 spatial x 3 temporal frequencies."""
    direction = GABOR_DIRECTIONS[rng.integers(len(GABOR_DIRECTIONS))]
    period = GABOR_PERIODS_PX[rng.integers(len(GABOR_PERIODS_PX))]
    hz = GABOR_TEMPORAL_HZ[rng.integers(len(GABOR_TEMPORAL_HZ))]
    cy = HEIGHT / 2 + rng.uniform(-3, 3)
    cx = WIDTH / 2 + rng.uniform(-3, 3)
    phase0 = rng.uniform(0, 2 * np.pi)
    t = np.arange(GABOR_FRAMES, dtype=np.float32)[:, None, None]
    along = (_xx - cx) * np.cos(direction) - (_yy - cy) * np.sin(direction)
    envelope = np.exp(-((_xx - cx) ** 2 + (_yy - cy) ** 2) / (2 * GABOR_SIGMA_PX**2))
    carrier = np.cos(2 * np.pi * (along / period - hz * t / FPS) + phase0)
    return (0.8 * envelope * carrier).astype(np.float32)


def directional_pink_noise(rng: np.random.Generator) -> np.ndarray:
    """Pink noise whose stripes are perpendicular to its direction of motion."""
    direction = rng.uniform(0, 2 * np.pi)
    speed = PINK_SPEEDS[rng.integers(len(PINK_SPEEDS))]
    canvas = pink_noise(rng, (128, 128), alpha=1.0, orientation=direction) * 0.35
    t = np.arange(PINK_FRAMES, dtype=np.float32)[:, None, None]
    ys = _yy[None] + speed * np.sin(direction) * t
    xs = _xx[None] - speed * np.cos(direction) * t
    return sample_wrapped(canvas, ys, xs).astype(np.float32)


def random_dots(rng: np.random.Generator) -> np.ndarray:
    """A random dot kinematogram: 8 directions x 2 coherences x 2 speeds, black and white dots."""
    direction = rng.integers(8) * np.pi / 4
    coherence = DOTS_COHERENCES[rng.integers(len(DOTS_COHERENCES))]
    speed = DOTS_SPEEDS[rng.integers(len(DOTS_SPEEDS))]
    n = DOTS_COUNT
    coherent = rng.random(n) < coherence
    angles = np.where(coherent, direction, rng.uniform(0, 2 * np.pi, n))
    y0, x0 = rng.uniform(0, HEIGHT, n), rng.uniform(0, WIDTH, n)
    sign = np.where(rng.random(n) < 0.5, -0.9, 0.9).astype(np.float32)
    t = np.arange(DOTS_FRAMES)[:, None]
    ys = (y0 - speed * np.sin(angles) * t) % HEIGHT  # (frames, dots), dots wrap around
    xs = (x0 + speed * np.cos(angles) * t) % WIDTH
    # separable Gaussian blobs: (frames, dots, rows) x (frames, dots, cols)
    gy = np.exp(-((np.arange(HEIGHT)[None, None] - ys[..., None]) ** 2) / (2 * DOTS_SIGMA_PX**2))
    gx = np.exp(-((np.arange(WIDTH)[None, None] - xs[..., None]) ** 2) / (2 * DOTS_SIGMA_PX**2))
    # (frames, rows, dots) @ (frames, dots, cols): one small product per frame
    frames = np.matmul((gy * sign[None, :, None]).transpose(0, 2, 1), gx).astype(np.float32)
    return np.clip(frames, -0.9, 0.9).astype(np.float32)


def gaussian_dot_positions() -> np.ndarray:
    """The 105 dot centres (row, col) in pixels, a 7 x 15 grid over the screen."""
    rows = np.linspace(3, HEIGHT - 4, GAUSSIAN_DOT_GRID[0])
    cols = np.linspace(3, WIDTH - 4, GAUSSIAN_DOT_GRID[1])
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def gaussian_dot(position: np.ndarray, polarity: float) -> np.ndarray:
    """One Gaussian blob at ``position`` (row, col), white (+1) or black (-1), 9 frames."""
    blob = np.exp(
        -((_yy - position[0]) ** 2 + (_xx - position[1]) ** 2) / (2 * GAUSSIAN_DOT_SIGMA_PX**2)
    )
    frame = (0.9 * polarity * blob).astype(np.float32)
    return np.repeat(frame[None], GAUSSIAN_DOT_FRAMES, axis=0)
