"""The six stimulus types of SENSORIUM 2023, as 36 x 64 grayscale videos at 30 Hz.

=============  =====================================================  ===========  ==========
type           what                                                   item frames  trial
=============  =====================================================  ===========  ==========
NaturalVideo   natural-like movie (1/f scenes, camera pans, objects)  -            300
NaturalImages  natural-like images, 15 frames each, 12-18 frames gray 27-33        10 images
Gabor          drifting Gabor: 8 directions x 3 SF x 3 TF             25           12 items
PinkNoise      directional pink noise, stripes across the motion      27           12 items
RandomDots     random dot kinematogram, 8 dir. x 2 coherences x 2 v   60           4 items
GaussianDot    Gaussian blob, 105 positions x 2 polarities            9            35 items
=============  =====================================================  ===========  ==========

Durations follow ``trials.schema.json`` of the reference tables and the valid frames measured
in the real recordings (NaturalVideo and Gabor 300, RandomDots 240, GaussianDot 315, PinkNoise
324, NaturalImages 305-326). A video is a pure function of its generator: trials that share a
``video_id`` share the generator's seed and so show the same pixels, and a longer request of
the same video starts with the shorter one (except for NaturalVideo, whose shots and cuts are
planned for the length asked).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from sensorium_data.simulate import natural, parametric

HEIGHT, WIDTH = 36, 64
GRAY = 128.0
STIMULUS_TYPES = (
    "NaturalVideo",
    "NaturalImages",
    "Gabor",
    "PinkNoise",
    "RandomDots",
    "GaussianDot",
)
ITEMS = {"NaturalImages": 10, "Gabor": 12, "PinkNoise": 12, "RandomDots": 4, "GaussianDot": 35}
"""Items per trial in the competition (NaturalVideo has no items: 300 frames)."""
NATURAL_VIDEO_FRAMES = 300
IMAGE_FRAMES = 15
GRAY_FRAMES = (12, 18)


def video_seed(seed: int, stimulus_type: str, video_id: str) -> np.random.SeedSequence:
    """The seed of one video: trials with the same ``video_id`` show identical frames."""
    key = zlib.crc32(f"{stimulus_type}/{video_id}".encode())
    return np.random.SeedSequence([seed, 1, key])


def make_video(
    stimulus_type: str,
    rng: np.random.Generator,
    *,
    frames: int | None = None,
    items: int | None = None,
) -> np.ndarray:
    """One trial's video, (frames, HEIGHT, WIDTH) float32 in 0-255.

    Parameters
    ----------
    stimulus_type
        One of :data:`STIMULUS_TYPES`.
    rng
        The video's generator (see :func:`video_seed`).
    frames
        Length of the trial. Default: the length of ``items`` items (300 for NaturalVideo).
    items
        Items to show (default: as in the competition, :data:`ITEMS`); ignored for
        NaturalVideo. More items are drawn if ``frames`` needs them.

    Examples
    --------
    >>> video = make_video("Gabor", np.random.default_rng(0), items=2)
    >>> video.shape
    (50, 36, 64)
    """
    if stimulus_type == "NaturalVideo":
        movie = natural.natural_movie(rng, NATURAL_VIDEO_FRAMES if frames is None else frames)
        return _to_pixels(movie)
    if stimulus_type not in ITEMS:
        msg = f"unknown stimulus type {stimulus_type!r}; choose one of {', '.join(STIMULUS_TYPES)}"
        raise ValueError(msg)
    n_items = ITEMS[stimulus_type] if items is None else items
    make_item = _item_maker(stimulus_type, rng)
    parts: list[np.ndarray] = []
    total = 0
    while len(parts) < n_items * (2 if stimulus_type == "NaturalImages" else 1) or (
        frames is not None and total < frames
    ):
        part = make_item()
        parts.append(part)
        total += len(part)
    video = np.concatenate(parts, axis=0)
    return _to_pixels(video if frames is None else video[:frames])


def _item_maker(stimulus_type: str, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    """A function returning the next item (for NaturalImages: an image, then a gray gap)."""
    if stimulus_type == "Gabor":
        return lambda: parametric.gabor(rng)
    if stimulus_type == "PinkNoise":
        return lambda: parametric.directional_pink_noise(rng)
    if stimulus_type == "RandomDots":
        return lambda: parametric.random_dots(rng)
    if stimulus_type == "GaussianDot":
        positions = parametric.gaussian_dot_positions()
        conditions = [(p, s) for p in range(len(positions)) for s in (1.0, -1.0)]
        order: list[int] = []

        def next_dot() -> np.ndarray:
            if not order:
                order.extend(rng.permutation(len(conditions)).tolist())
            p, s = conditions[order.pop(0)]
            return parametric.gaussian_dot(positions[p], s)

        return next_dot
    # NaturalImages: image, gray, image, gray, ...
    state = {"image_next": True}

    def next_part() -> np.ndarray:
        if state["image_next"]:
            state["image_next"] = False
            image = natural.natural_image(rng)
            return np.repeat(image[None], IMAGE_FRAMES, axis=0)
        state["image_next"] = True
        gap = int(rng.integers(GRAY_FRAMES[0], GRAY_FRAMES[1] + 1))
        return np.zeros((gap, HEIGHT, WIDTH), np.float32)

    return next_part


def _to_pixels(contrast: np.ndarray) -> np.ndarray:
    # 8-bit values, as the real stimuli: the store then keeps them as uint8
    return np.round(np.clip(GRAY + GRAY * contrast, 0.0, 255.0)).astype(np.float32)
