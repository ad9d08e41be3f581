"""CutMix within a mouse (``cutmix`` in the config), as DwiseNeuro trains.

A clip chosen with probability ``p`` gets a box of another clip of the same mouse in the batch
pasted over it, in every channel (video, behaviour and pupil planes) and every frame; its
targets become ``(1 - a) * own + a * partner``, ``a`` the box's share of the frame. The box's
unclipped area is ``lam`` of the frame, ``lam ~ Beta(1, 1)`` (uniform), its sides
``sqrt(lam)`` of the frame's, its centre a uniform pixel, clipped to the frame. The behaviour
rows that drive the shifter stay the clip's own. Random numbers come from torch's global
generator (on the CPU), which a checkpoint saves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor


class Box(NamedTuple):
    """Rows ``top:bottom`` and columns ``left:right`` of a frame."""

    top: int
    bottom: int
    left: int
    right: int

    def share(self, height: int, width: int) -> float:
        return (self.bottom - self.top) * (self.right - self.left) / (height * width)


def random_box(height: int, width: int, generator: torch.Generator | None = None) -> Box:
    """A CutMix box: area ``lam`` (uniform in [0, 1]) of the frame before clipping, sides
    ``sqrt(lam)`` of the frame's, centred on a uniform pixel, clipped to the frame.

    Examples
    --------
    >>> import torch
    >>> box = random_box(36, 64, torch.Generator().manual_seed(0))
    >>> 0 <= box.top <= box.bottom <= 36 and 0 <= box.left <= box.right <= 64
    True
    """
    side = float(torch.rand((), generator=generator)) ** 0.5
    h, w = round(side * height), round(side * width)
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    top, left = cy - h // 2, cx - w // 2
    return Box(max(top, 0), min(top + h, height), max(left, 0), min(left + w, width))


def partners(mice: str | Sequence[str], n: int, generator: torch.Generator | None = None
             ) -> list[int]:
    """For each of ``n`` clips, another clip of the same mouse (itself if it is its mouse's
    only one): a random cycle through each mouse's clips.

    Examples
    --------
    >>> p = partners(["A", "B", "A", "A"], 4)
    >>> p[1], sorted([p[0], p[2], p[3]]), all(p[i] != i for i in (0, 2, 3))
    (1, [0, 2, 3], True)
    """
    labels = [mice] * n if isinstance(mice, str) else list(mice)
    out = list(range(n))
    for mouse in dict.fromkeys(labels):
        rows = [i for i, m in enumerate(labels) if m == mouse]
        order = [rows[int(k)] for k in torch.randperm(len(rows), generator=generator)]
        for a, b in zip(order, order[1:] + order[:1], strict=True):
            out[a] = b
    return out


def cutmix(videos: Tensor, responses: Tensor | list[Tensor], mice: str | Sequence[str],
           p: float, generator: torch.Generator | None = None
           ) -> tuple[Tensor, Tensor | list[Tensor], list[Box | None]]:
    """CutMix a batch within each mouse; the inputs are left unchanged.

    Parameters
    ----------
    videos
        (B, C, F, H, W) clips.
    responses
        (B, N, F) targets of one mouse, or a list of B (N_i, F) targets of mixed mice.
    mice
        The batch's mouse, or each clip's.
    p
        The probability that a clip is mixed.
    generator
        The random generator (default: torch's global one).

    Returns
    -------
    tuple
        The mixed videos and targets (the same types as given) and each clip's box of its
        partner (``None`` where the clip was left as it was).

    Examples
    --------
    >>> import torch
    >>> videos = torch.arange(2.0).reshape(2, 1, 1, 1, 1).expand(2, 1, 1, 4, 4)
    >>> mixed, targets, boxes = cutmix(videos, torch.tensor([[[0.0]], [[1.0]]]), "A", 1.0)
    >>> box = boxes[0]
    >>> float(mixed[0].mean()) == box.share(4, 4) == float(targets[0])
    True
    """
    n, height, width = videos.shape[0], videos.shape[-2], videos.shape[-1]
    chosen = (torch.rand(n, generator=generator) < p).tolist()
    partner = partners(mice, n, generator)
    mixed = videos.clone()
    targets = responses.clone() if isinstance(responses, Tensor) else list(responses)
    boxes: list[Box | None] = []
    for b in range(n):
        if not chosen[b] or partner[b] == b:
            boxes.append(None)
            continue
        box = random_box(height, width, generator)
        boxes.append(box)
        mixed[b, ..., box.top:box.bottom, box.left:box.right] = (
            videos[partner[b], ..., box.top:box.bottom, box.left:box.right])
        a = box.share(height, width)
        targets[b] = (1 - a) * responses[b] + a * responses[partner[b]]
    return mixed, targets, boxes
