"""Smoothness penalties on convolution kernels, shared by the cores.

Both are normalised: the squared Laplacian of the kernels over their squared norm, so the
penalty does not depend on the kernels' scale (the batch norm after each convolution makes
that scale arbitrary) and only smoothness is rewarded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The 5-point discrete Laplacian, and in time neuralpredictors' laplace1d, [-1, 4, -1], which
# the starter kit's gamma_input_temporal weighs: not the second difference [-1, 2, -1], so a
# constant kernel is penalised too (the ratio is 18 - 16 r1 + 2 r2 with r1, r2 the kernel's
# lag-1 and lag-2 autocorrelations: still lowest for smooth kernels). Kernels are zero-padded
# by one sample, so an edge is penalised like a jump to zero.
_LAPLACE_2D = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])[None, None]
_LAPLACE_1D = torch.tensor([-1.0, 4.0, -1.0])[None, None]
_EPS = 1e-12


def laplace_l2(kernels: Tensor) -> Tensor:
    """Normalised spatial Laplace penalty ``sum(laplace(w)^2) / sum(w^2)``.

    Parameters
    ----------
    kernels
        (..., k_h, k_w): every leading index is one 2D kernel.

    Returns
    -------
    Tensor
        A differentiable scalar.

    Examples
    --------
    >>> import torch
    >>> smooth = torch.ones(1, 1, 5, 5)
    >>> bool(laplace_l2(smooth) < laplace_l2(torch.randn(1, 1, 5, 5)))
    True
    """
    w = kernels.reshape(-1, 1, *kernels.shape[-2:])  # (M, 1, k_h, k_w)
    lap = F.conv2d(w, _LAPLACE_2D.to(w), padding=1)  # (M, 1, k_h, k_w)
    return lap.pow(2).sum() / w.pow(2).sum().clamp_min(_EPS)


def temporal_laplace_l2(kernels: Tensor) -> Tensor:
    """Normalised temporal penalty ``sum(lap(w)^2) / sum(w^2)`` along the last axis, with the
    starter kit's kernel ``lap = [-1, 4, -1]`` (neuralpredictors' ``DepthLaplaceL21d``).

    Parameters
    ----------
    kernels
        (..., k_t): every leading index is one temporal kernel.

    Returns
    -------
    Tensor
        A differentiable scalar.

    Examples
    --------
    >>> import torch
    >>> round(float(temporal_laplace_l2(torch.ones(2, 3, 5))), 6)  # (4 * 2^2 + 2 * 3^2) / 5
    6.0
    """
    w = kernels.reshape(-1, 1, kernels.shape[-1])  # (M, 1, k_t)
    lap = F.conv1d(w, _LAPLACE_1D.to(w), padding=1)  # (M, 1, k_t)
    return lap.pow(2).sum() / w.pow(2).sum().clamp_min(_EPS)
