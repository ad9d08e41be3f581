"""Optional reshaping of an item after it is read: every ``frame_step``-th frame, the frames
on a larger canvas, responses below zero cut to zero (DwiseNeuro's input and targets)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np


def check_frame_step(frame_step: object) -> int:
    """``frame_step`` as an int >= 1, or ValueError naming the fix."""
    if not isinstance(frame_step, numbers.Integral) or isinstance(frame_step, bool) \
            or frame_step < 1:
        msg = (f"frame_step={frame_step!r}; pass a positive int: 1 takes consecutive frames, 2 "
               "every other one (DwiseNeuro's 16 frames span 31).")
        raise ValueError(msg)
    return int(frame_step)


def check_canvas(canvas: object) -> tuple[int, int] | None:
    """``canvas`` (an int side or a (height, width) pair) as a pair, None for no canvas."""
    if canvas is None:
        return None
    pair = (canvas, canvas) if isinstance(canvas, int | np.integer) else canvas
    if (not isinstance(pair, tuple | list) or len(pair) != 2
            or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0
                       for v in pair)):
        msg = (f"canvas={canvas!r}; pass a side (64: a 64 x 64 canvas), a (height, width) "
               "pair of positive ints, or None to keep the frames' size.")
        raise ValueError(msg)
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class Shaping:
    """What to do to an item's frames (axis 1 of videos, the last of responses and
    behaviour) once it is read.

    Attributes
    ----------
    frame_step
        Keep every ``frame_step``-th frame of the read span, starting with its first.
    canvas
        (height, width) to centre the frames on, zero around them; the behaviour and pupil
        channels fill the whole canvas (they are constant planes). None keeps the size.
    relu_responses
        Responses below zero become zero (the deconvolved traces dip below it by noise).

    Examples
    --------
    >>> shape = Shaping(frame_step=2, canvas=(4, 3), relu_responses=True)
    >>> videos, responses = np.ones((2, 5, 2, 3)), np.array([[-1.0, 1, 2, 3, 4]])
    >>> v, r, b = shape(videos, responses, np.zeros((4, 5)))
    >>> v.shape, r.tolist(), b.shape
    ((2, 3, 4, 3), [[0.0, 2.0, 4.0]], (4, 3))
    >>> v[0, 0, :, 0].tolist(), v[1, 0, :, 0].tolist()  # video centred, planes filled
    ([0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0])
    """

    frame_step: int = 1
    canvas: tuple[int, int] | None = None
    relu_responses: bool = False

    def span(self, frames: int) -> int:
        """Frames to read for ``frames`` frames at this step."""
        return (frames - 1) * self.frame_step + 1

    def __call__(self, videos: np.ndarray, responses: np.ndarray, behavior: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(C, F, H, W) videos, (N, F) responses, (4, F) behaviour of a read span -> the item's.

        Never writes into its inputs (they may be views of a dataset's memory)."""
        if self.frame_step > 1:
            step = self.frame_step
            videos = videos[:, ::step]  # (C, F', H, W)
            responses = np.ascontiguousarray(responses[:, ::step])  # (N, F')
            behavior = np.ascontiguousarray(behavior[:, ::step])  # (4, F')
        if self.canvas is not None:
            videos = on_canvas(videos, self.canvas)  # (C, F', canvas height, canvas width)
        if self.relu_responses:
            responses = np.maximum(responses, 0)  # NaN (withheld) stays NaN
        return np.ascontiguousarray(videos), responses, behavior


def on_canvas(videos: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """(C, F, H, W) -> (C, F, height, width): channel 0 (the video) centred on zeros, the
    other channels (constant planes) filling the canvas."""
    c, f, h, w = videos.shape
    height, width = canvas
    out = np.zeros((c, f, height, width), videos.dtype)
    top, left = (height - h) // 2, (width - w) // 2
    out[0, :, top:top + h, left:left + w] = videos[0]
    out[1:] = videos[1:, :, :1, :1]
    return out
