"""Image rescaling as the 2022 starter kit does it, as two small matrix products.

The starter kit's ``ScaleInputs`` calls ``skimage.transform.rescale(image, scale, order=1,
mode="reflect", anti_aliasing=False, preserve_range=True, clip=True)``: the output has
``round(size * scale)`` pixels per axis and output pixel ``o`` samples the input at
``(o + 0.5) * size / out - 0.5`` (pixel centres aligned, scipy's ``grid_mode``), linearly
interpolated, the input mirrored about its edge pixels (skimage's ``"reflect"`` is scipy's
``"mirror"``: index -1 reads index 1). Linear interpolation is separable, so the whole
resampling is ``rows @ image @ cols.T`` with two fixed (out, in) matrices, built once.
``clip=True`` changes nothing here: a linear interpolation never leaves its input's range.
"""

from __future__ import annotations

import numpy as np


def scaled_size(size: int, scale: float) -> int:
    """Pixels of one axis after rescaling by ``scale`` (at least 1), as skimage rounds."""
    return max(int(np.round(size * scale)), 1)


def interpolation_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) float64: row ``o`` holds the linear weights of output pixel ``o``.

    Examples
    --------
    >>> interpolation_matrix(4, 2).tolist()  # 2x down: the mean of each pair of pixels
    [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    >>> interpolation_matrix(2, 4)[0].tolist()  # 2x up: mirrored at the edge (-0.25 -> 0.25)
    [0.75, 0.25]
    """
    if size < 1 or out < 1:
        msg = f"cannot resample {size} pixels to {out}; both must be at least 1."
        raise ValueError(msg)
    weights = np.zeros((out, size))
    if size == 1:
        weights[:, 0] = 1.0
        return weights
    source = (np.arange(out) + 0.5) * (size / out) - 0.5
    low = np.floor(source).astype(np.int64)
    frac = source - low
    for index, w in ((low, 1.0 - frac), (low + 1, frac)):
        period = 2 * (size - 1)  # mirror: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
        folded = np.mod(index, period)
        folded = np.where(folded > size - 1, period - folded, folded)
        np.add.at(weights, (np.arange(out), folded), w)
    return weights


class Rescaler:
    """Rescale (..., height, width) images by ``scale`` as the starter kit does.

    Examples
    --------
    >>> images = np.arange(16.0).reshape(1, 4, 4)
    >>> Rescaler((4, 4), 0.5)(images).tolist()
    [[[2.5, 4.5], [10.5, 12.5]]]
    """

    def __init__(self, shape: tuple[int, int], scale: float):
        height, width = shape
        self.shape = (scaled_size(height, scale), scaled_size(width, scale))
        self.rows = interpolation_matrix(height, self.shape[0])
        self.cols_t = interpolation_matrix(width, self.shape[1]).T.copy()
        self.identity = self.shape == (height, width)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(..., height, width) -> (..., out_height, out_width) float64."""
        images = np.asarray(images, dtype=np.float64)
        if self.identity:
            return images
        *lead, height, width = images.shape
        out_h, out_w = self.shape
        # two plain matrix products (one BLAS call each, not one per image)
        cols = images.reshape(-1, width) @ self.cols_t  # (... * height, out_w)
        stacked = cols.reshape(-1, height, out_w).transpose(1, 0, 2).reshape(height, -1)
        rows = self.rows @ stacked  # (out_h, ... * out_w)
        return rows.reshape(out_h, -1, out_w).transpose(1, 0, 2).reshape(*lead, out_h, out_w)
