"""Read ``.npy`` files from a recording without ever running code stored in them.

``np.load(..., allow_pickle=True)`` runs whatever callable a pickled object names (a crafted
``tiers.npy`` can call ``os.system``), so it is never used. A file of plain dtype (numbers,
``<U`` strings: how the releases store ``tiers.npy``, which lRomul's reader loads with
``allow_pickle=False``) is read as data. A file of object dtype (what ``np.save`` writes for
an array of Python strings) holds a pickle; it is read by an unpickler that resolves only the
two numpy names such a file uses (``_reconstruct`` and ``ndarray``, plus ``dtype``), refuses
every other name before anything is called, and accepts the result only if every element is a
string or a number.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from sensorium_data.errors import RecordingFormatError

# The only globals an object array pickled by numpy 1.x or 2.x refers to.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles a numpy object array and nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            msg = f"the pickle names {module}.{name}, which a numpy string array never does"
            raise pickle.UnpicklingError(msg)
        return super().find_class(module, name)


def _header(f: io.BufferedIOBase) -> np.dtype:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        _, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        _, _, dtype = np.lib.format.read_array_header_2_0(f)
    return np.dtype(dtype)


def load_npy(data: bytes, where: str) -> np.ndarray:
    """The array in the bytes of one ``.npy`` file, read without running any stored code.

    Parameters
    ----------
    data
        The file's bytes.
    where
        The file's location, for error messages.

    Returns
    -------
    numpy.ndarray
        The array; an object array holds only ``str``, ``int`` and ``float`` elements.

    Raises
    ------
    RecordingFormatError
        If the file is not a valid ``.npy`` file, or holds a pickle of anything but an array
        of strings and numbers.

    Examples
    --------
    >>> import io, numpy as np
    >>> buf = io.BytesIO()
    >>> np.save(buf, np.array(["train", "oracle"], dtype=object), allow_pickle=True)
    >>> load_npy(buf.getvalue(), "tiers.npy").tolist()
    ['train', 'oracle']
    """
    f = io.BytesIO(data)
    try:
        dtype = _header(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        value = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError,
            IndexError, KeyError) as e:
        msg = (
            f"{where} is not a plain numpy array file ({e}). Recordings hold numbers and "
            "strings only; this file is damaged or was crafted. Replace it with the published "
            "one."
        )
        raise RecordingFormatError(msg) from e
    if not isinstance(value, np.ndarray) or not all(
        isinstance(v, str | int | float) for v in value.ravel().tolist()
    ):
        msg = (
            f"{where} holds a pickled {type(value).__name__} that is not an array of strings "
            "and numbers; recordings hold nothing else. Replace it with the published file."
        )
        raise RecordingFormatError(msg)
    return value

