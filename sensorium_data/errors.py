"""Exceptions of `sensorium_data`: each message names the bad value and the fix."""

from __future__ import annotations


class SensoriumDataError(Exception):
    """Base class of the errors this package raises on bad input or bad data."""


class RecordingFormatError(SensoriumDataError, ValueError):
    """A path or archive is not a recording in the competition's file-tree format."""


class StoreError(SensoriumDataError, ValueError):
    """A converted store is incomplete, of an older schema, or not a store at all."""
