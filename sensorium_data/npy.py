"""Read ``.npy`` files from a recording without ever running code stored in them.

``np.load(..., allow_pickle=True)`` runs whatever callable a pickled object names (a crafted
``tiers.npy`` can call ``os.system``), so it is never used, and no pickle is ever loaded. A
file of plain dtype (numbers, ``<U`` strings: how the releases store ``tiers.npy``, which
lRomul's reader loads with ``allow_pickle=False``) is read as data. A file of object dtype
(what ``np.save`` writes for an array of Python strings) holds a pickle; its opcodes are read
with :func:`pickletools.genops`, a parser that executes nothing, and replayed on a stack of
plain values (strings, numbers, tuples, lists, and the names of the few globals a numpy object
array refers to, which are never called). Any other opcode or global, or anything but an array
of strings and numbers, is refused with the file named.
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorium_data.errors import RecordingFormatError

# The globals a pickled numpy object array names (numpy 1.x and 2.x).
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                             "_reconstruct")}
# Protocol 2 spells bytes as a call of _codecs.encode; like the others, it is never called.
_ALLOWED = {*_RECONSTRUCT, ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _Refused(ValueError):
    """The pickle is not a numpy array of strings and numbers; the message says what."""


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass
class _Call:
    func: _Global
    args: tuple[Any, ...]
    state: Any = None


_MARK = object()
_LITERALS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINBYTES",
             "BINBYTES", "BINBYTES8", "BININT", "BININT1", "BININT2", "LONG1", "INT",
             "SHORT_BINSTRING", "BINSTRING", "STRING", "BINFLOAT", "FLOAT", "LONG", "LONG4"}
_CONSTANTS = {"NEWFALSE": False, "NEWTRUE": True, "NONE": None}


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    msg = "a MARK is missing"
    raise _Refused(msg)


def _replay(payload: bytes) -> Any:
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    arg: Any
    for op, arg, _ in pickletools.genops(payload):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name in _LITERALS:
            stack.append(arg.decode("latin1") if isinstance(arg, bytes) and "STRING" in name
                         else arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[arg])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                attr, module = stack.pop(), stack.pop()
            if (module, attr) not in _ALLOWED:
                msg = f"it names {module}.{attr}, which a numpy string array never has"
                raise _Refused(msg)
            stack.append(_Global(module, attr))
        elif name == "POP":
            stack.pop()
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(_pop_mark(stack)))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            stack.append(_pop_mark(stack))
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            items = _pop_mark(stack)
            stack[-1].extend(items)
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if not isinstance(func, _Global) or not isinstance(args, tuple):
                msg = "it calls something other than numpy's array constructors"
                raise _Refused(msg)
            stack.append(_Call(func, args))
        elif name == "BUILD":
            state = stack.pop()
            if not isinstance(stack[-1], _Call):
                msg = "it sets the state of something other than a numpy array"
                raise _Refused(msg)
            stack[-1].state = state
        elif name == "STOP":
            return stack.pop()
        else:
            msg = f"it uses the opcode {name}, which a numpy string array never has"
            raise _Refused(msg)
    msg = "it ends without STOP"
    raise _Refused(msg)



def read_object_array(payload: bytes) -> np.ndarray:
    """The object array pickled in ``payload`` (the bytes after an object-dtype ``.npy``
    header), of ``str``, ``int`` and ``float`` elements, read without unpickling.

    Raises ValueError naming what else the pickle holds.
    """
    try:
        array = _replay(payload)
    except _Refused:
        raise
    except (IndexError, KeyError, AttributeError, TypeError) as e:
        msg = f"it is not a well-formed pickle of a numpy array ({type(e).__name__})"
        raise _Refused(msg) from e
    except ValueError as e:  # genops on bytes that are not a pickle
        raise _Refused(f"it is not a pickle ({e})") from e
    if not (isinstance(array, _Call) and (array.func.module, array.func.name) in _RECONSTRUCT
            and isinstance(array.state, tuple) and len(array.state) == 5):
        msg = "it holds something other than a numpy array"
        raise _Refused(msg)
    _, shape, _, _, values = array.state  # numpy lists an object array's values in C order
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
            and isinstance(values, list)):
        msg = "it holds a numpy array without a shape and a list of values"
        raise _Refused(msg)
    odd = sorted({type(v).__name__ for v in values
                  if not isinstance(v, str | int | float) or isinstance(v, bool)})
    if odd:
        msg = f"its array holds {', '.join(odd)} values: not an array of strings and numbers"
        raise _Refused(msg)
    if int(np.prod(shape)) != len(values):
        msg = f"its shape {shape} does not match its {len(values)} values"
        raise _Refused(msg)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


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
        return read_object_array(f.read())
    except _Refused as e:
        msg = (
            f"{where} holds a pickle that is not an array of strings and numbers: {e}. "
            "Recordings hold nothing else; this file is damaged or was crafted, and nothing "
            "in it was run. Replace it with the published file."
        )
        raise RecordingFormatError(msg) from e
    except (ValueError, EOFError, TypeError) as e:
        msg = (
            f"{where} is not a plain numpy array file ({e}). Recordings hold numbers and "
            "strings only; this file is damaged or was crafted. Replace it with the published "
            "one."
        )
        raise RecordingFormatError(msg) from e
