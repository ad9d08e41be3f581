"""``in_memory=True``: the selected trials of a recording in RAM, normalized, time-major."""

from __future__ import annotations

import logging

import numpy as np

from sensorium_data.loaders.reader import Windows
from sensorium_data.loaders.sources import TrialSelection

log = logging.getLogger(__name__)


class Resident:
    """The valid frames of every selected trial, concatenated along time, float32, normalized.

    Time-major (frame first), so that the window of a clip is one contiguous block of rows of
    each array: ``videos`` (frames, height, width), ``responses`` (frames, neuron),
    ``behavior`` (frames, 4). Trial ``j`` starts at row ``offsets[j]``. Memory: the tier's
    valid frames in float32, allocated once (no copies while loading).
    """

    def __init__(self, rec: TrialSelection, videos: Windows, responses: Windows):
        n_frames = rec.n_frames
        self.offsets = np.concatenate([[0], np.cumsum(n_frames)[:-1]]).astype(np.int64)
        total = int(n_frames.sum())
        self.videos = np.empty((total, rec.height, rec.width), np.float32)
        self.responses = np.empty((total, rec.n_neurons), np.float32)
        self.behavior = np.empty((total, 4), np.float32)
        precision = rec.scaling.precision  # (N, T)
        for j, (pos, n) in enumerate(zip(rec.positions.tolist(), n_frames.tolist(), strict=True)):
            o = int(self.offsets[j])
            for at, piece in videos.parts(pos, 0, n):  # (f, height, width)
                rows = slice(o + at, o + at + len(piece))
                rec.scaling.videos(piece, at, self.videos[rows])
            for at, piece in responses.parts(pos, 0, n):  # (N, f)
                f = piece.shape[1]
                # normalize in the stored layout, then transpose (faster than both at once)
                np.copyto(self.responses[o + at:o + at + f], (piece * precision[:, at:at + f]).T)
            self.behavior[o:o + n] = rec.behavior[j, :, :n].T
        log.info("%s: %d trials (%d frames) in memory, %.0f MB", rec.mouse, len(n_frames), total,
                 self.nbytes / 1e6)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self.videos.nbytes + self.responses.nbytes + self.behavior.nbytes

    def window(self, j: int, start: int, frames: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of frames ``start:start + frames`` of trial ``j``: videos (F, height, width),
        responses (N, F) and behaviour (4, F); the last two are transposed views."""
        rows = slice(int(self.offsets[j]) + start, int(self.offsets[j]) + start + frames)
        return self.videos[rows], self.responses[rows].T, self.behavior[rows].T
