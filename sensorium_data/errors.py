"""Exceptions of `sensorium_data`: each message names the bad value and the fix.

A fix reads differently to a user of the library and to a user of the ``sensorium``
command: ``convert(tree, store, overwrite=True)`` is ``sensorium convert TREE --store STORE
--overwrite``. A message that names a fix is a :class:`Message`: a string in the Python
words (what ``str(error)`` and ``pytest.raises(match=...)`` see), holding the same message
in the command's words as ``.cli``, which the command line prints instead (for a logged
warning too: a Message passed as a logging argument is swapped by the command line's logging
filter, ``sensorium_data.cli.command_words``). Any exception type can carry one:

>>> from sensorium_data.errors import Fix, Message, cli_message
>>> msg = Message("F.zarr exists; pass ", Fix("overwrite=True", "--overwrite"), " to replace it.")
>>> str(FileExistsError(msg))
'F.zarr exists; pass overwrite=True to replace it.'
>>> cli_message(FileExistsError(msg))
'F.zarr exists; pass --overwrite to replace it.'
"""

from __future__ import annotations

from typing import NamedTuple


class SensoriumDataError(Exception):
    """Base class of the errors this package raises on bad input or bad data."""


class RecordingFormatError(SensoriumDataError, ValueError):
    """A path or archive is not a recording in the competition's file-tree format."""


class StoreError(SensoriumDataError, ValueError):
    """A converted store is incomplete, of an older schema, or not a store at all."""


class ClusterError(SensoriumDataError, RuntimeError):
    """An item of a call spread over a dask cluster failed there (the cause is chained)."""


class NotEnoughSpaceError(SensoriumDataError, OSError):
    """A disk has less free space than a recording takes."""


class Fix(NamedTuple):
    """One fix in the words of each place a user meets it."""

    python: str
    """The Python call or argument, e.g. ``overwrite=True``."""
    cli: str
    """The ``sensorium`` command or flag, e.g. ``--overwrite``."""


class Message(str):
    """An error message whose fixes are :class:`Fix` parts: the string itself names the
    Python calls, :attr:`cli` names the ``sensorium`` commands. A part may be a Message."""

    cli: str

    def __new__(cls, *parts: str | Fix) -> Message:
        self = super().__new__(cls, "".join(p.python if isinstance(p, Fix) else p
                                            for p in parts))
        self.cli = "".join(p.cli if isinstance(p, Fix | Message) else p for p in parts)
        return self


def reason(error: BaseException) -> str:
    """``error``'s message for a new message to include as a part: the :class:`Message` itself
    when it is one (an f-string would keep only its Python words), else its text."""
    message = error.args[0] if len(error.args) == 1 else None
    return message if isinstance(message, Message) else str(error)


def cli_message(error: BaseException) -> str:
    """What the command line prints for ``error``: its message in the command's words."""
    message = error.args[0] if len(error.args) == 1 else str(error)
    return message.cli if isinstance(message, Message) else str(message)


OVERWRITE = Fix("overwrite=True", "--overwrite")
"""The fix of a refusal to replace what exists."""
LIST_MICE = Fix("sensorium_data.list_mice()", "sensorium list")
"""Where the known mouse names are listed."""
OPEN_AGAIN = Fix("Open the recording again (open_mouse converts it again from its source)",
                 "Run the command again (it converts the recording again from its source)")
"""The fix of a store deleted while it was open."""


def convert_again(store: object = None) -> Fix:
    """The fix of a damaged or outdated store: convert its recording into it again
    (``store``: its path, else a placeholder)."""
    python = "store" if store is None else repr(str(store))
    cli = "STORE" if store is None else str(store)
    return Fix(f"sensorium_data.convert(<tree or zip>, {python}, overwrite=True)",
               f"sensorium convert <tree or zip> --store {cli} --overwrite")
