"""A recording in the competition's own file-tree format: its facts, reading it, writing it.

    formats   what a tree holds: streams, tiers (and their order), statistics, FPS, valid_frames
    reader    FileTree and open_tree: a folder or a zip, read in place, never written to
    writer    TreeWriter: one trial at a time (the test fixtures and the simulator)

The reader and the writer import ``formats`` only, never each other.
"""

from sensorium_data.tree.formats import (
    FPS,
    KNOWN_STREAMS,
    OPTIONAL_STREAMS,
    STATIC_STREAMS,
    STATIC_TIERS,
    STATISTICS,
    STREAMS,
    TIER_ORDER,
    TIERS,
    valid_frames,
)
from sensorium_data.tree.reader import FileTree, open_tree
from sensorium_data.tree.writer import TreeWriter

__all__ = [
    "FPS",
    "KNOWN_STREAMS",
    "OPTIONAL_STREAMS",
    "STATIC_STREAMS",
    "STATIC_TIERS",
    "STATISTICS",
    "STREAMS",
    "TIERS",
    "TIER_ORDER",
    "FileTree",
    "TreeWriter",
    "open_tree",
    "valid_frames",
]
