"""Natural-like movies and flashed natural-like images.

Movies stand in for the competition's film and Sports-1M clips: shots of a 1/f textured scene
filmed by a panning camera, with textured objects and luminance edges moving across it and
cuts between shots. Images stand in for the ImageNet flashes of the ``NaturalImages`` type.
Values are in contrast units (0 = gray); :mod:`.stimuli` maps them to 0-255.
"""

from __future__ import annotations

import itertools

import numpy as np

from sensorium_data.simulate.textures import (
    ornstein_uhlenbeck,
    pink_noise,
    sample_wrapped,
    soft_mask,
)

HEIGHT, WIDTH = 36, 64
CANVAS = (96, 192)
"""A shot's scene: a periodic texture larger than the screen, so the camera can pan across."""
MIN_SHOT = 45


def natural_movie(rng: np.random.Generator, frames: int) -> np.ndarray:
    """A natural-like movie of ``frames`` frames, (frames, HEIGHT, WIDTH), contrast units."""
    n_cuts = min(rng.poisson(frames / 150), frames // MIN_SHOT - 1)
    cuts: list[int] = []
    if n_cuts > 0:
        # spread the cuts so that no shot is shorter than MIN_SHOT frames
        slack = frames - (n_cuts + 1) * MIN_SHOT
        gaps = np.sort(rng.integers(0, slack + 1, size=n_cuts))
        cuts = [int(g) + (i + 1) * MIN_SHOT for i, g in enumerate(gaps)]
    bounds = [0, *cuts, frames]
    shots = [_shot(rng, b - a) for a, b in itertools.pairwise(bounds)]
    movie = np.concatenate(shots, axis=0)
    # slow global luminance drift (1/f-like in time: a slow OU)
    movie += 0.08 * ornstein_uhlenbeck(rng, frames, tau=60.0)[:, None, None].astype(np.float32)
    return movie


def _shot(rng: np.random.Generator, frames: int) -> np.ndarray:
    t = np.arange(frames, dtype=np.float32)
    scene = pink_noise(rng, CANVAS, alpha=rng.uniform(1.0, 1.6)) * rng.uniform(0.1, 0.35)
    scene += rng.uniform(-0.35, 0.2)  # shots differ in mean luminance
    # camera: smooth random pan (velocity is an OU process, px/frame), occasionally fast
    speed = rng.choice([0.1, 0.4, 1.0, 2.0], p=[0.3, 0.35, 0.25, 0.1])
    vy = ornstein_uhlenbeck(rng, frames, tau=25.0, std=0.4 * speed)
    vx = ornstein_uhlenbeck(rng, frames, tau=25.0, std=speed)
    py = np.cumsum(vy) + rng.uniform(0, CANVAS[0])
    px = np.cumsum(vx) + rng.uniform(0, CANVAS[1])
    ys = np.arange(HEIGHT)[None, :, None] + py[:, None, None]
    xs = np.arange(WIDTH)[None, None, :] + px[:, None, None]
    movie = sample_wrapped(scene, ys, xs).astype(np.float32)
    # objects and edges move over the scene, in the order they are drawn (later occludes)
    for _ in range(rng.poisson(2.5)):
        movie = _add_object(rng, movie, t)
    if rng.random() < 0.4:
        movie = _add_edge(rng, movie, t)
    return movie


def _add_object(rng: np.random.Generator, movie: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A textured ellipse that enters, crosses or wanders over the screen at constant velocity."""
    ry, rx = rng.uniform(3, 12), rng.uniform(3, 14)
    angle = rng.uniform(0, np.pi)
    cy0, cx0 = rng.uniform(-5, HEIGHT + 5), rng.uniform(-5, WIDTH + 5)
    vy, vx = rng.normal(0, 0.3), rng.normal(0, 0.6)
    cy = cy0 + vy * t
    cx = cx0 + vx * t
    yy = np.arange(HEIGHT, dtype=np.float32)[None, :, None] - cy[:, None, None]
    xx = np.arange(WIDTH, dtype=np.float32)[None, None, :] - cx[:, None, None]
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / rx
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / ry
    radius = np.sqrt(u * u + v * v)
    alpha = soft_mask((radius - 1.0) * min(rx, ry))
    inside = alpha > 0
    fill = np.full(int(inside.sum()), rng.uniform(-0.8, 0.8), np.float32)
    if rng.random() < 0.6:
        # a texture that moves with the object, sampled only where the object is
        texture = pink_noise(rng, (64, 64), alpha=rng.uniform(0.8, 1.6)) * rng.uniform(0.05, 0.3)
        yy_in = np.broadcast_to(yy, alpha.shape)[inside]
        xx_in = np.broadcast_to(xx, alpha.shape)[inside]
        fill += sample_wrapped(texture, yy_in + 32.0, xx_in + 32.0)
    a = alpha[inside]
    movie[inside] = movie[inside] * (1 - a) + fill * a
    return movie


def _add_edge(rng: np.random.Generator, movie: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A luminance edge (half-plane) sweeping across the screen."""
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.3, 1.5)
    normal = np.array([np.cos(angle), -np.sin(angle)])  # (x, y) in image coordinates
    centre = np.array([WIDTH / 2, HEIGHT / 2])
    offset = rng.uniform(-40, 10) + speed * t  # signed distance of the edge from the centre
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    proj = (xx - centre[0]) * normal[0] + (yy - centre[1]) * normal[1]
    alpha = soft_mask(proj[None] - offset[:, None, None], width=0.8)
    step = rng.uniform(-0.7, 0.7)
    return (movie + step * alpha).astype(np.float32)


def natural_image(rng: np.random.Generator) -> np.ndarray:
    """A static natural-like image (HEIGHT, WIDTH): a 1/f scene with a few textured objects."""
    scene = pink_noise(rng, CANVAS, alpha=rng.uniform(0.9, 1.5)) * rng.uniform(0.2, 0.5)
    y0, x0 = rng.integers(0, CANVAS[0]), rng.integers(0, CANVAS[1])
    image = np.roll(scene, (-y0, -x0), axis=(0, 1))[:HEIGHT, :WIDTH] + rng.uniform(-0.3, 0.2)
    frame = image[None].astype(np.float32)
    t = np.zeros(1, np.float32)
    for _ in range(1 + rng.poisson(1.0)):
        frame = _add_object(rng, frame, t)
    return frame[0]
