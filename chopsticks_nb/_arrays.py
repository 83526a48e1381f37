"""Builds the numpy arrays and scalars a remote sends, from a dtype of a closed list, a
checked shape and the raw bytes of the message.

Everything is checked before numpy is asked for anything: the dtype text against the closed
list of kinds, sizes, byte orders and units (``parse_dtype``), the shape's dimensions, and that
the shape times the item size is exactly the number of bytes that follow (which the decoder
checks against the message before it hands them over). A large array in a message read into
memory of its own (``decoder.donated``) is used where it lies, not copied; every other array
gets its own copy. numpy is imported when the first array comes, not before.
"""

from __future__ import annotations

import re
from typing import Any

from . import _agent
from ._agent import DecodeError, Tag
from ._values import INT, expect, optional_module

__all__ = ["build_array", "build_scalar", "numpy", "parse_dtype"]

#: A dtype as numpy's ``dtype.str`` spells it: byte order, kind, size (characters for ``U``),
#: and for datetime64/timedelta64 an optional [count unit].
_DTYPE = re.compile(
    r"(?P<order>[<>|])(?P<kind>[biufcmMUS])(?P<size>[0-9]{1,9})"
    r"(?:\[(?P<count>[0-9]{0,9})(?P<unit>Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as)\])?"
)
#: The item sizes each kind may have (U and S: any up to 2**28 characters or bytes).
_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16),
          "m": (8,), "M": (8,)}  # fmt: skip
MAX_WIDTH = 1 << 28
MAX_DIMENSIONS = 32
MAX_EMPTY_ITEMS = 1 << 20
#: Arrays this large in a donated message are used where they lie (smaller ones are copied:
#: they would keep the whole message alive).
SHARE_FROM = 64 * 1024


def numpy() -> Any:
    """numpy, imported now if it was not; MissingModule if it is not installed here."""
    return optional_module("numpy", "a numpy array")


def parse_dtype(text: str) -> Any:
    """The numpy dtype ``text`` names, if it is one of the closed list that travels (see
    _agent._ARRAY_KINDS); else DecodeError."""
    match = _DTYPE.fullmatch(text)
    if match is None:
        raise DecodeError(f"unsupported dtype {text[:40]!r}")
    order, kind, size = match["order"], match["kind"], int(match["size"])
    if match["unit"] is not None and kind not in "mM":
        raise DecodeError(f"unsupported dtype {text!r}: a unit belongs to datetimes")
    allowed = _SIZES.get(kind)
    if (size not in allowed) if allowed else size > MAX_WIDTH:
        raise DecodeError(f"unsupported dtype {text!r}: its size")
    if (order == "|") != (kind in "bS" or (kind in "iu" and size == 1)):
        raise DecodeError(f"unsupported dtype {text!r}: its byte order")
    return numpy().dtype(text)


def _checked_contents(np: Any, array: Any) -> Any:
    """``array`` if its bytes are valid items of its dtype: bools 0 or 1, UCS-4 code points
    up to U+10FFFF (others would fail whoever reads them later)."""
    if not array.size or array.dtype.itemsize == 0:
        return array
    if array.dtype.kind == "b" and array.view(np.uint8).max() > 1:
        raise DecodeError("a bool array holding values other than 0 and 1")
    if array.dtype.kind == "U":
        codes = array.reshape(-1, order="A").view(array.dtype.byteorder.replace("|", "=") + "u4")
        if codes.max() > 0x10FFFF:
            raise DecodeError("a str array holding values beyond U+10FFFF")
    return array


def build_array(decoder: Any, state: Any) -> Any:
    dtype_text, shape, layout, nbytes = expect(state, (str, tuple, str, INT), "array")
    if len(shape) > MAX_DIMENSIONS or layout not in ("C", "F"):
        raise DecodeError(f"malformed array: {len(shape)} dimensions, layout {layout[:4]!r}")
    size = 1
    for dimension in expect(shape, (INT,) * len(shape), "array shape"):
        if dimension < 0:
            raise DecodeError(f"malformed array shape: dimension {dimension}")
        size *= dimension
    dtype = parse_dtype(dtype_text)
    if size * dtype.itemsize != nbytes:
        raise DecodeError(f"malformed array: its shape and dtype take {size * dtype.itemsize} "
                          f"bytes, not {nbytes}")  # fmt: skip
    if size > max(nbytes, MAX_EMPTY_ITEMS):  # items of no bytes (str of width 0)
        raise DecodeError(f"malformed array: {size} items in {nbytes} bytes")
    padding = decoder.take(1)[0]
    if padding > 63:
        raise DecodeError(f"malformed array: {padding} bytes of padding")
    decoder.take(padding)
    raw = decoder.take(nbytes)  # checked against the message: nothing is allocated before
    decoder.charge(nbytes)
    np = numpy()
    if not nbytes:
        return np.empty(shape, dtype, order=layout)
    array = np.frombuffer(raw, dtype)
    if not (decoder.donated and nbytes >= SHARE_FROM):
        array = array.copy()
    return _checked_contents(np, array).reshape(shape, order=layout)


def build_scalar(decoder: Any, state: Any) -> Any:
    dtype_text, raw = expect(state, (str, bytes), "numpy scalar")
    dtype = parse_dtype(dtype_text)
    if len(raw) != dtype.itemsize:
        raise DecodeError(f"malformed numpy scalar: {len(raw)} bytes for a {dtype}")
    np = numpy()
    if raw:
        value = _checked_contents(np, np.frombuffer(raw, dtype).copy())[0]
    else:
        value = np.zeros((), dtype)[()]
    decoder.settle(_agent.KEPT[Tag.NP_SCALAR] + dtype.itemsize)
    return value
