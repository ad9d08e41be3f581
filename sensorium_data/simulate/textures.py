"""Random textures and image resampling shared by the stimulus generators.

Everything here works on float arrays in contrast units (0 = mean gray) and draws from a
``numpy.random.Generator`` it is given, so a stimulus is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np


def pink_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    alpha: float = 1.0,
    orientation: float | None = None,
    bandwidth: float = 0.35,
) -> np.ndarray:
    """A periodic 2-D texture with a 1/f^alpha amplitude spectrum, zero mean and unit std.

    ``orientation`` (radians) keeps only wave vectors within ``bandwidth`` (radians, Gaussian)
    of that direction, which gives stripes perpendicular to it (directional pink noise).
    """
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amplitude = f**-alpha
    amplitude[0, 0] = 0.0
    if orientation is not None:
        # wave-vector angle in image coordinates (rows grow downwards, hence -fy)
        angle = np.arctan2(-fy, fx)
        delta = np.angle(np.exp(2j * (angle - orientation))) / 2  # orientation is mod pi
        amplitude = amplitude * np.exp(-0.5 * (delta / bandwidth) ** 2)
    spectrum = amplitude * (
        rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape)
    )
    field = np.fft.irfft2(spectrum, s=shape)
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def sample_wrapped(canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of a periodic ``canvas`` (rows, cols) at fractional ``ys``, ``xs``."""
    rows, cols = canvas.shape
    ys = np.asarray(ys, dtype=np.float32)
    xs = np.asarray(xs, dtype=np.float32)
    y0 = np.floor(ys)
    x0 = np.floor(xs)
    wy = ys - y0
    wx = xs - x0
    y0i = y0.astype(np.int32) % rows
    x0i = x0.astype(np.int32) % cols
    y1i = y0i + 1
    y1i[y1i == rows] = 0
    x1i = x0i + 1
    x1i[x1i == cols] = 0
    flat = canvas.ravel()
    top, bottom = y0i * cols, y1i * cols
    a, b = flat[top + x0i], flat[top + x1i]
    c, d = flat[bottom + x0i], flat[bottom + x1i]
    upper = a + (b - a) * wx
    return upper + ((c + (d - c) * wx) - upper) * wy


def shift_frames(frames: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Translate each frame of (T, H, W) by (dy[t], dx[t]) pixels; uncovered pixels are 0 (gray).

    Bilinear, so sub-pixel shifts are smooth; this is how the eye's position moves the image
    on the retina (a receptive field fixed on the retina sees the screen shifted).
    """
    t, h, w = frames.shape
    margin = int(np.ceil(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))) + 2
    padded = np.zeros((t, h + 2 * margin, w + 2 * margin), np.float32)
    padded[:, margin:-margin, margin:-margin] = frames
    iy = np.floor(dy).astype(np.int64)
    ix = np.floor(dx).astype(np.int64)
    fy = (dy - iy).astype(np.float32)
    fx = (dx - ix).astype(np.float32)
    out = np.empty((t, h, w), np.float32)
    for i in range(t):
        # out(y, x) = frames(y - dy, x - dx), between rows y - iy - 1 and y - iy
        r0, c0 = margin - iy[i], margin - ix[i]
        below = padded[i, r0 : r0 + h]
        above = padded[i, r0 - 1 : r0 - 1 + h]
        rows = (1 - fy[i]) * below + fy[i] * above
        out[i] = (1 - fx[i]) * rows[:, c0 : c0 + w] + fx[i] * rows[:, c0 - 1 : c0 - 1 + w]
    return out


def ornstein_uhlenbeck(
    rng: np.random.Generator, n: int, *, tau: float, std: float = 1.0, start: float | None = None
) -> np.ndarray:
    """A stationary Ornstein-Uhlenbeck process of ``n`` steps; ``tau`` in steps."""
    a = float(np.exp(-1.0 / tau))
    noise = rng.standard_normal(n) * std * np.sqrt(1 - a * a)
    out = np.empty(n)
    x = rng.standard_normal() * std if start is None else start
    for i in range(n):
        x = a * x + noise[i]
        out[i] = x
    return out


def soft_mask(distance: np.ndarray, width: float = 0.6) -> np.ndarray:
    """An anti-aliased inside mask from a signed distance (negative inside), in pixels: a
    linear ramp ``2 * width`` wide across the boundary."""
    return np.clip(0.5 - distance * np.float32(0.5 / width), 0.0, 1.0).astype(np.float32)
