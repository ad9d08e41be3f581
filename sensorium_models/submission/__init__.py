"""Submission files in the SENSORIUM 2023 competition's own format.

:mod:`~sensorium_models.submission.format` holds the format's facts (file names per track
and tier, columns, the frames scored), :mod:`~sensorium_models.submission.write` writes a
track's files, :mod:`~sensorium_models.submission.read` reads and validates them and
:mod:`~sensorium_models.submission.scoring` scores them against known responses.

Needs ``pyarrow`` (``pip install 'sensorium[submission]'``).
"""

from sensorium_models.submission.format import (
    COLUMNS,
    FILES,
    MAX_FRAMES,
    ROWS_PER_GROUP,
    SKIP,
    TIER_OF,
    submission_paths,
)
from sensorium_models.submission.read import read_submission, validate_submission
from sensorium_models.submission.scoring import score_submission
from sensorium_models.submission.write import check_free, write_submission

__all__ = [
    "COLUMNS",
    "FILES",
    "MAX_FRAMES",
    "ROWS_PER_GROUP",
    "SKIP",
    "TIER_OF",
    "check_free",
    "read_submission",
    "score_submission",
    "submission_paths",
    "validate_submission",
    "write_submission",
]
