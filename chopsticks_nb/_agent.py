"""The chopsticks_nb agent: the only code sent to a remote host when a tunnel connects.

It is compiled on the far side from source, so it must stay one self-contained, stdlib-only
module whose syntax is valid on the oldest remote Python supported (3.6). The controller
imports this same file for the frame format and the codec: the protocol is written once.

Wire format: every message is a frame, a fixed header followed by ``length`` payload bytes.
Payloads are raw bytes, a pickle (controller -> agent only) or a value in the closed codec
below. The agent runs calls in its main thread, one at a time, so a cancel can interrupt them
with SIGINT. That thread also reads the requests while no call runs, so a call starts with no
hand-off between threads; a reader thread serves the pipe (imports, files, cancels) only while a
call runs.
"""

import _imp
import _thread  # not threading: it imports functools and collections (bench/README.md)
import io
import os
import select
import struct
import sys

# hashlib, tempfile, traceback, socket and _pickle (see Msg.CALL_CODEC) are imported where
# used, and the C modules below directly (pickle and collections would import re, enum and
# more): every module imported here delays the first call of every connection
# (bench/README.md, "Why the code looks this way").
try:  # the C half of signal: signal.py wraps its constants in IntEnums, and enum is slow
    import _signal as signal
except ImportError:  # pragma: no cover - CPython has had _signal since 3.5
    import signal
from _collections import deque as _deque
from time import monotonic as _monotonic

PROTOCOL_VERSION = 6

#: Frame header: kind (1 byte), request id (4 bytes), payload length (4 bytes), big-endian.
HEADER = struct.Struct(">BII")
U32 = struct.Struct(">I")

#: Written by the agent just before its first frame, so that noise a login shell prints on
#: stdout before the agent starts can be skipped instead of breaking the stream.
MAGIC = b"\x00chopsticks_nb\x01"

#: Depth of tunnelling of this process: 0 on a controller, 1 in an agent it started, ...
DEPTH = 0
#: In an agent, the controller's chopsticks_nb.DEPTH_LIMIT, passed on (the remote copy of the
#: package starts from it); None on a controller.
INHERITED_DEPTH_LIMIT = None

#: Source of this module on a remote (no file there): the stage-1 bootstrap sets SOURCE_ZLIB,
#: the compressed source as received, and SOURCE is decompressed from it when first needed.
SOURCE = None  # type: bytes | None
SOURCE_ZLIB = None  # type: bytes | None

PICKLE_PROTOCOL = 4  # the highest every supported remote (3.6+) reads
CHUNK_SIZE = 512 * 1024  # file data (and output) per frame

# Size limits of payloads from the agent, which the controller enforces (a larger frame is a
# protocol error that ends the tunnel) and the agent keeps to (refusing, cutting or splitting).
MAX_MESSAGE = 512 * 1024 * 1024  # a result
MAX_DATA_FRAME = 8 * 1024 * 1024  # output and file data (sent in CHUNK_SIZE pieces)
MAX_ERROR = 1024 * 1024  # an error record (its message and traceback are cut to fit)
MAX_REQUEST = 64 * 1024  # the handshake, an import or resource request
#: Bytes of one relayed child's input (and of its output) that may be under way unacknowledged:
#: what a relay buffers for a child's stdin, and what the controller buffers of its output.
CHILD_WINDOW = 256 * 1024

# How a payload is encoded.
RAW = "raw"  # bytes as they are
CODEC = "codec"  # the closed codec below: all the controller ever decodes
PICKLE = "pickle"  # only ever from the controller to the agent

CONTROLLER = "controller"
AGENT = "agent"


class Message(int):
    """A kind of frame: its code (the int itself), who sends it, how its payload is encoded,
    the largest payload its receiver accepts (None: no limit), the name of the receiver's method
    that handles it (None where the frame is consumed where it is read: calls and the
    configuration), and the shape a codec payload must have (see check_shape)."""

    name = ""  # type: str
    sender = ""  # type: str
    payload = ""  # type: str
    limit = None  # type: Any
    handler = None  # type: str | None
    shape = object  # type: Any

    def __new__(cls, code, sender, payload, limit, handler, shape=object):
        self = int.__new__(cls, code)
        self.sender = sender
        self.payload = payload
        self.limit = limit
        self.handler = handler
        self.shape = shape
        self.name = str(code)
        return self

    def __set_name__(self, owner, name):
        self.name = name


# The shapes of codec payloads (see check_shape).
_CONFIG = {
    "depth": int,
    "depth_limit": int,
    "host": str,
    "idle_timeout": (int, float, None),
    "poll": bool,
    "bytes_in_place": bool,
}
_PUT_OPEN = {"path": (str, None), "mode": int}
_PUT_CLOSE = {"size": int, "sha1": str}
_FETCH = {"path": str}
_HANDSHAKE = {
    "protocol": PROTOCOL_VERSION,  # first: another version's handshake may differ after it
    "version": [int],
    "implementation": str,
    "pid": int,
    "executable": str,
    "platform": str,
    "hostname": str,
    "depth": int,
    "cloudpickle": (str, None),
}
_ERROR_RECORD = {"type": str, "msg": str, "tb": (str, None), "kind": str}
_CHILD_START = {"argv": [str], "pump": (str, None)}
_CHILD_EXIT = {"status": (int, None), "error": (str, None)}
#: The value of a put's or a fetch's RESULT.
TRANSFER_RESULT = {"remote_path": str, "size": int, "sha1sum": str}


class Msg(object):
    """The protocol: every kind of frame, one entry each (see Message). ``id`` is the frame's
    request id: the call or request it belongs to."""

    # fmt: off
    #                  code  sender      payload limit           handler          shape
    # -- controller -> agent
    CONFIG = Message(     1, CONTROLLER, CODEC,  None,           None,            _CONFIG)
    CALL = Message(       2, CONTROLLER, PICKLE, None,           None)  # (callable, args, kwargs)
    CANCEL = Message(     3, CONTROLLER, RAW,    None,           "on_cancel")  # stop call `id`
    REPLY = Message(      4, CONTROLLER, CODEC,  None,           "on_reply")  # to request `id`
    PUT_OPEN = Message(   5, CONTROLLER, CODEC,  None,           "on_put_open",   _PUT_OPEN)
    PUT_DATA = Message(   6, CONTROLLER, RAW,    None,           "on_put_data")  # file bytes
    PUT_CLOSE = Message(  7, CONTROLLER, CODEC,  None,           "on_put_close",  _PUT_CLOSE)
    FETCH = Message(      8, CONTROLLER, CODEC,  None,           "on_fetch",      _FETCH)
    PING = Message(       9, CONTROLLER, RAW,    None,           "on_ping")  # payload: padding
    CALL_BLOBS = Message(10, CONTROLLER, PICKLE, None,           None)  # see below
    CALL_CODEC = Message(11, CONTROLLER, CODEC,  None,           None)  # see below
    MODULES = Message(   12, CONTROLLER, CODEC,  None,           "on_modules")  # see below
    # -- agent -> controller
    HELLO = Message(     20, AGENT,      CODEC,  MAX_REQUEST,    "on_hello",      _HANDSHAKE)
    RESULT = Message(    21, AGENT,      CODEC,  MAX_MESSAGE,    "on_result")
    ERROR = Message(     22, AGENT,      CODEC,  MAX_ERROR,      "on_error",      _ERROR_RECORD)
    STDOUT = Message(    23, AGENT,      RAW,    MAX_DATA_FRAME, "on_stdout")  # from call `id`
    STDERR = Message(    24, AGENT,      RAW,    MAX_DATA_FRAME, "on_stderr")
    IMPORT = Message(    25, AGENT,      CODEC,  MAX_REQUEST,    "on_import",     str)  # module
    GET_DATA = Message(  26, AGENT,      CODEC,  MAX_REQUEST,    "on_get_data",   str)  # a path
    FETCH_DATA = Message(27, AGENT,      RAW,    MAX_DATA_FRAME, "on_fetch_data")  # file bytes
    # -- relaying: commands an agent runs for the controller (relayed tunnels; `id` is the
    #    child's number). See CHILD_WINDOW, _relays (controller) and _relay_pump (relay).
    # controller -> agent
    CHILD_START = Message( 40, CONTROLLER, CODEC, None,       "on_child_start",  _CHILD_START)
    CHILD_STDIN = Message( 41, CONTROLLER, RAW,   None,       "on_child_stdin")  # bytes for it
    CHILD_CLOSE = Message( 42, CONTROLLER, RAW,   None,       "on_child_close")  # its stdin: EOF
    CHILD_SIGNAL = Message(43, CONTROLLER, CODEC, None,       "on_child_signal", int)  # to it
    CHILD_READ = Message(  44, CONTROLLER, CODEC, None,       "on_child_read",   int)  # credit
    # agent -> controller
    CHILD_STDOUT = Message(45, AGENT,      RAW,   CHILD_WINDOW, "on_child_stdout")  # b"": EOF
    CHILD_STDERR = Message(46, AGENT,      RAW,   CHILD_WINDOW, "on_child_stderr")  # b"": EOF
    CHILD_WRITTEN = Message(47, AGENT,     CODEC, MAX_REQUEST,  "on_child_written", int)
    CHILD_EXIT = Message(  48, AGENT,      CODEC, MAX_REQUEST,  "on_child_exit",   _CHILD_EXIT)
    # fmt: on
    # CALL_BLOBS: a call of an importable callable whose large bytes arguments ("blobs") follow
    # its pickle, to be read from the pipe straight into their bytes objects: u32 size of the
    # pickle; the pickle of (module, qualname, args, kwargs, ((index in args, size), ...)),
    # plain data only (it imports nothing); the blobs.
    # CALL_CODEC: a connection's first call, when it names an importable callable and its
    # arguments are plain data: (module, qualname, args, kwargs). The agent then need not
    # import _pickle (a good part of a start) until a later call is pickled. (_call_frames.)
    # CHILD_START: run argv as a child (the command of a relayed tunnel); the first one of a
    # connection carries the source of _relay_pump, which the agent compiles then: agents that
    # relay nothing never pay for it. CHILD_STDIN and CHILD_READ (the controller took that
    # many bytes of the child's output), CHILD_STDOUT/STDERR and CHILD_WRITTEN (that many
    # bytes went into its stdin) keep either side within CHILD_WINDOW bytes per child. A
    # child's STDOUT and STDERR end with an empty frame each, then CHILD_EXIT (status, or why
    # it could not start); the relay never reads the bytes it passes on.
    # MODULES: module records (as a REPLY to IMPORT carries them) sent before a call whose
    # callable's module the agent cannot have, so that it need not ask for them.


#: Every kind of frame by code.
MESSAGES = {int(kind): kind for kind in vars(Msg).values() if isinstance(kind, Message)}


def handlers(receiver, sender):
    """``{code: (kind, handler, loader)}`` for the frames ``sender`` sends: the method of
    ``receiver`` that the table names, and what turns a payload into its argument (see
    payload_loader; None: the payload as it is)."""
    return {
        code: (kind, getattr(receiver, kind.handler), payload_loader(kind))
        for code, kind in MESSAGES.items()
        if kind.sender == sender and kind.handler
    }


def payload_loader(kind):
    """What turns a received payload into its handler's argument: for a codec payload, decode
    it and check its shape; None for raw and pickled payloads (taken as they are). A loader
    takes ``(payload, donated=False)`` (``donated``: see decode)."""
    if kind.payload != CODEC:
        return None
    if kind.shape is object:
        return decode
    return lambda payload, donated=False: check_shape(
        decode(payload, donated), kind.shape, kind.name
    )


def load_payload(kind, payload, donated=False):
    """A received payload as its handler takes it (see payload_loader)."""
    loader = payload_loader(kind)
    return payload if loader is None else loader(payload, donated)


def check_shape(value, shape, what):
    """``value`` if it has ``shape``, else DecodeError naming ``what`` and the mismatch. A shape
    is ``object`` (anything), a type, a tuple of types (None standing for None), ``[shape]`` (a
    list of such items), ``{field: shape}`` (a dict with at least those fields, checked in
    order; only they are kept) or an int (that very value). Types are exact: the codec makes
    only exact built-in types. An int must fit in 64 bits: a remote's pid or size is printed,
    and printing an int takes time quadratic in its length."""
    if shape is object:
        return value
    if type(shape) is int:
        if type(value) is not int or value != shape:
            raise ShapeError(
                "unsupported %s %s (this side speaks %r)" % (what, _show(value), shape)
            )
        return value
    if isinstance(shape, dict):
        if type(value) is not dict:
            raise ShapeError("malformed %s: %s, not a dict" % (what, _a(value)))
        checked = {}
        for field, field_shape in shape.items():
            if field not in value:
                raise ShapeError("malformed %s: no field %r" % (what, field))
            checked[field] = check_shape(value[field], field_shape, "%s field %r" % (what, field))
        return checked
    if isinstance(shape, list):
        if type(value) is not list:
            raise ShapeError("malformed %s: %s, not a list" % (what, _a(value)))
        for item in value:
            check_shape(item, shape[0], what + " item")
        return value
    types = shape if isinstance(shape, tuple) else (shape,)
    if type(value) not in types and not (value is None and None in types):
        names = " or ".join("None" if t is None else t.__name__ for t in types)
        raise ShapeError("malformed %s: %s, not %s" % (what, _a(value), names))
    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        raise ShapeError("malformed %s: %s" % (what, _show(value)))
    return value


def _show(value):
    """A short text for a decoded value, whatever its size (a repr can be huge, or fail:
    an int of more than 4300 digits has none)."""
    if type(value) is int and value.bit_length() > 64:
        return "<an int of %d bits>" % value.bit_length()
    if type(value) in (int, float, bool, type(None)):
        return repr(value)
    if type(value) in (str, bytes):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    return "<%s>" % _a(value)


def _a(value):
    """``"an int"``, ``"a str"``: the type of ``value`` with its article."""
    name = type(value).__name__
    return ("an " if name[:1] in "aeiou" else "a ") + name


# ---------------------------------------------------------------------------------------------
# The codec: a closed set of types, so that decoding can never run code.


class CodecError(ValueError):
    """Base of the codec's errors."""


class EncodeError(CodecError):
    """A value holds something the codec cannot carry. ``path`` says where, innermost place
    first (each container the error leaves adds its own); ``top`` is the last value it left."""

    def __init__(self, message, value=None):
        CodecError.__init__(self, message)
        self.message = message
        self.path = []
        self.top = value


class DecodeError(CodecError):
    """Bytes that are not a valid encoding, or that exceed a limit."""


class ShapeError(DecodeError):
    """A decoded payload that is not of the shape its kind of message must have."""


class MissingModule(CodecError):
    """A valid value that this side cannot build: the module it needs is not installed."""


class Unavailable(object):
    """What :func:`decode` returns for a valid value that this side cannot build (an array
    where numpy is not installed): the stream stays in step, the value says why."""

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return "<unavailable value: %s>" % self.reason


class Op(object):
    """One-byte opcodes of the codec."""

    NONE = 0x00
    TRUE = 0x01
    FALSE = 0x02
    INT = 0x03  # 8-byte signed
    BIGINT = 0x04  # u32 length + signed big-endian bytes
    FLOAT = 0x05  # 8-byte IEEE double
    STR = 0x06  # u32 length + UTF-8 (surrogates passed through)
    BYTES = 0x07  # u32 length + bytes
    LIST = 0x08  # u32 count + items
    TUPLE = 0x09
    DICT = 0x0A  # u32 count + key, value pairs
    SET = 0x0B
    FROZENSET = 0x0C
    COMPLEX = 0x0D  # two 8-byte IEEE doubles
    BYTEARRAY = 0x0E  # u32 length + bytes
    EXT = 0x0F  # a tag (Tag), the value's state (a tuple of codec values), a tag's raw tail


CODEC_VERSION = 1
MAX_DEPTH = 100
MAX_ITEMS = 10 * 1000 * 1000
#: Decoding one value may build at most this many bytes of Python objects per byte of its
#: encoding (plus COST_SLACK). Without it, five bytes (an empty set) became a 216-byte object:
#: a 10 MB message of empty sets made 460 MB of objects. Ordinary values cost 3-10x.
MAX_COST_PER_BYTE = 16
COST_SLACK = 1 << 20
#: At most this many keys of one set or dict may share a hash. Inserting n keys of one hash
#: costs n*n/2 comparisons: a 1 MB set of ints that differ by multiples of 2**61-1 (which all
#: hash alike) took 25 s to build. Honest values almost never share a hash (hash(-1) ==
#: hash(-2) is the classic pair).
MAX_SHARED_HASH = 8
#: The keys of a larger set or dict that are checked for shared hashes before the rest are
#: decoded (see _Decoder.keyed_items).
HASH_CHUNK = 4096
#: Building the objects of tagged values may cost at most this much work (units of about a
#: microsecond of CPU, measured: see _WORK_*) per KiB of the encoding, plus WORK_SLACK: a
#: DataFrame costs far more to build than its bytes take to read. Honest values stay far
#: below (a frame of 1000 rows takes a few work units per KiB); about 350 one-row DataFrames
#: in one result reach it.
WORK_PER_KIB = 100
WORK_SLACK = 100 * 1000
_WORK_PANDAS = 60  # an Index, a Series, a DataFrame or one of its columns, a pandas array
_WORK_NEW_TYPE = 100  # a namedtuple type, once per message
_WORK_ZONE = 300  # a time zone looked up by key, once per message
# Approximate CPython sizes (64-bit) charged per value: the reference to it, its object, and
# for containers their header and per-element table.
_COST_REF = 8
_COST_NUMBER = 40
_COST_BLOB = 56  # + its length
_COST_SEQUENCE = 64
_COST_DICT, _COST_PAIR = 72, 48
_COST_SET, _COST_MEMBER = 224, 40
_COST_OBJECT = 200  # a tagged value's object (a datetime, a Decimal, an array's header...)

_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_C128 = struct.Struct(">dd")
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 63) - 1
_ENCODED_NONE = bytes(bytearray([CODEC_VERSION, Op.NONE]))
_INT_PREFIX = bytes(bytearray([CODEC_VERSION, Op.INT]))


class _Output(list):
    """Encoded chunks, and the item count, cost and work the decoder will charge for them."""

    items = 0
    cost = 0
    work = 0
    counted = 0  # chunks whose length is in size (see offset)
    size = 0
    keys = None  # see seen

    def offset(self):
        """Bytes encoded so far (counted incrementally: a value may ask often)."""
        self.size += sum(map(len, self[self.counted :]))
        self.counted = len(self)
        return self.size

    def seen(self, key):
        """Whether ``key`` (a time zone, a namedtuple type) came earlier in this value."""
        if self.keys is None:
            self.keys = set()
        elif key in self.keys:
            return True
        self.keys.add(key)
        return False


def encode(value, root="value"):
    # type: (object, str) -> bytes
    """Encode ``value`` to bytes; raise EncodeError naming where in it (``root`` and the keys
    and indexes that lead there) a value the codec cannot carry sits, or if the decoder would
    refuse the value for its size (so that the sender learns it, not the receiver)."""
    if value is None:
        return _ENCODED_NONE
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return _INT_PREFIX + _I64.pack(value)  # the commonest answers, without an _Output
    out = _Output([bytes(bytearray([CODEC_VERSION]))])
    try:
        _encode(value, out, 0)
    except EncodeError as exc:
        place = root + "".join(reversed(exc.path))
        raise EncodeError("%s: %s" % (place, exc.message), exc.top) from None
    data = b"".join(out)
    if out.items > MAX_ITEMS:
        raise EncodeError("%s holds %d items; the limit is %d" % (root, out.items, MAX_ITEMS))
    if out.cost > MAX_COST_PER_BYTE * len(data) + COST_SLACK:
        raise EncodeError(
            "%s of %d bytes would decode to about %d bytes of objects: too many small "
            "containers" % (root, len(data), out.cost)
        )
    if out.work > WORK_PER_KIB * len(data) // 1024 + WORK_SLACK:
        raise EncodeError(
            "%s of %d bytes holds too many pandas objects, time zones or namedtuple types for "
            "its size (put them in fewer, larger ones: pd.concat...)" % (root, len(data))
        )
    return data


#: A result that is one bytes value this large goes after its encoding's head, not joined to it
#: (a copy of the whole value into fresh memory: 0.25 s of a 256 MiB result). The controller
#: reads it into place (the bytes_in_place speed-up, _bytes_in_place, which uses this size).
LARGE_BYTES = 4 * 1024 * 1024


def encode_result(value, apart):
    # type: (object, bool) -> object
    """encode(value, "result"); or, for a large bytes value when ``apart``, (the encoding's
    head, the value itself): the same bytes uncopied, which _Channel.send writes in turn."""
    if apart and value.__class__ is bytes and len(value) >= LARGE_BYTES:
        return (bytes(bytearray([CODEC_VERSION, Op.BYTES])) + U32.pack(len(value)), value)
    return encode(value, "result")


def _encode(value, out, depth, encoder=None):
    """Encode ``value``, at ``depth``, with ``encoder`` or the one for its type."""
    if depth > MAX_DEPTH:
        raise EncodeError("value nested deeper than %d levels" % MAX_DEPTH, value)
    out.cost += _COST_REF
    if encoder is None:
        encoder = _ENCODERS.get(type(value)) or _encoder_for(value)
    encoder(value, out, depth + 1)


def _enc_int(value, out, depth):
    if _INT_MIN <= value <= _INT_MAX:
        out.cost += _COST_NUMBER
        out.append(bytes(bytearray([Op.INT])) + _I64.pack(value))
    else:
        data = int(value).to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
        out.cost += _COST_BLOB + len(data)
        out.append(bytes(bytearray([Op.BIGINT])) + U32.pack(len(data)))
        out.append(data)


def _enc_bytes(op):
    def enc(value, out, depth):
        out.cost += _COST_BLOB + len(value)
        out.append(bytes(bytearray([op])) + U32.pack(len(value)))
        out.append(bytes(value))

    return enc


def _enc_str(value, out, depth):
    _enc_bytes(Op.STR)(str(value).encode("utf-8", "surrogatepass"), out, depth)


def _enc_items(op, header, per_item, hashed=False):
    def enc(value, out, depth):
        out.items += len(value)
        out.cost += header + per_item * len(value)
        out.append(bytes(bytearray([op])) + U32.pack(len(value)))
        item = None
        try:
            for item in value:
                _encode(item, out, depth)
        except EncodeError as exc:
            exc.path.append(_place_in(value, item))
            exc.top = value
            raise
        if hashed and len(value) > MAX_SHARED_HASH:
            _check_hashes(value)

    return enc


def _enc_dict(value, out, depth):
    out.items += len(value)
    out.cost += _COST_DICT + _COST_PAIR * len(value)
    out.append(bytes(bytearray([Op.DICT])) + U32.pack(len(value)))
    key = None
    try:
        for key, item in value.items():
            _encode(key, out, depth)
            _encode(item, out, depth)
    except EncodeError as exc:
        exc.path.append(".<key %s>" % _label(key) if exc.top is key else "[%s]" % _label(key))
        exc.top = value
        raise
    if len(value) > MAX_SHARED_HASH:
        _check_hashes(value)


def _place_in(container, item):
    """Where ``item`` sits in ``container``, for an error: ``[3]``, or for a set member its
    label."""
    if type(container) in (set, frozenset) or isinstance(container, (set, frozenset)):
        return ".<member %s>" % _label(item)
    for index, each in enumerate(container):
        if each is item:
            return "[%d]" % index
    return "[?]"


def _label(key):
    """A key as an error shows it: repr of a short str, bytes or number, else its type."""
    if type(key) in (str, bytes) and len(key) <= 40 or type(key) in (bool, float, type(None)):
        return repr(key)
    if type(key) is int:
        return _show(key)
    return "<%s>" % _a(key)


def _check_hashes(keys):
    """EncodeError if more than MAX_SHARED_HASH of ``keys`` share a hash (the decoder would
    refuse them: see _Decoder.check_hashes)."""
    hashes = list(map(hash, keys))
    if len(hashes) - len(set(hashes)) >= MAX_SHARED_HASH:
        shared = _most_shared(hashes)
        if shared > MAX_SHARED_HASH:
            raise EncodeError(
                "%d keys share one hash (the limit is %d): building them would take quadratic "
                "time" % (shared, MAX_SHARED_HASH),
                keys,
            )


def _hashes(keys, at, what):
    """The hashes of ``keys`` (of the container at offset ``at``), or DecodeError."""
    try:
        return list(map(hash, keys))
    except TypeError as exc:
        raise DecodeError("unhashable %s at offset %d: %s" % (what, at, exc)) from None


def _refuse_shared(shared, at, what):
    """DecodeError if ``shared`` keys of one hash are more than MAX_SHARED_HASH."""
    if shared > MAX_SHARED_HASH:
        raise DecodeError(
            "%d %ss share one hash in the container at offset %d (the limit is %d): "
            "a hash-collision attack?" % (shared, what, at, MAX_SHARED_HASH)
        )


def _most_shared(hashes):
    """The largest number of equal values in ``hashes``."""
    counts = {}
    for h in hashes:
        counts[h] = counts.get(h, 0) + 1
    return max(counts.values())


def _enc_float(value, out, depth):
    out.cost += _COST_NUMBER
    out.append(bytes(bytearray([Op.FLOAT])) + _F64.pack(value))


def _enc_complex(value, out, depth):
    out.cost += _COST_NUMBER
    out.append(bytes(bytearray([Op.COMPLEX])) + _C128.pack(value.real, value.imag))


_ENCODERS = {
    type(None): lambda v, out, d: out.append(b"\x00"),
    bool: lambda v, out, d: out.append(b"\x01" if v else b"\x02"),
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    bytes: _enc_bytes(Op.BYTES),
    bytearray: _enc_bytes(Op.BYTEARRAY),
    list: _enc_items(Op.LIST, _COST_SEQUENCE, 0),
    tuple: _enc_items(Op.TUPLE, _COST_SEQUENCE, 0),
    dict: _enc_dict,
    set: _enc_items(Op.SET, _COST_SET, _COST_MEMBER, hashed=True),
    frozenset: _enc_items(Op.FROZENSET, _COST_SET, _COST_MEMBER, hashed=True),
}
#: Builtin types other types may travel as (a dict subclass as a dict), by the class in a
#: value's MRO that names them.
_BASES = frozenset(_ENCODERS)


#: On a remote: (line, source) of the section below, the encoders of the types outside the
#: core, compiled the first time a value needs them. Most connections never do, and compiling
#: them at start would add about 5 ms to every agent's start (bench/README.md). The controller
#: ships the section so (see _bootstrap.agent_source); where it is compiled already, None.
LATER = None
_later_lock = _thread.allocate_lock()


def load_later():
    """Compile the LATER section if it is still a string (a controller that imports this
    module from its file has it already; an agent that decodes for tunnels of its own needs it
    as a controller does)."""
    global LATER
    if LATER is not None:
        with _later_lock:
            if LATER is not None:
                line, source = LATER
                filename = load_later.__code__.co_filename
                exec(compile("\n" * (line - 1) + source, filename, "exec"), globals())
                LATER = None


def _encoder_for(value):
    """The encoder of a value whose exact type is not in _ENCODERS (see _find_encoder)."""
    load_later()
    return _find_encoder(value)


# -- BEGIN LATER: types outside the core, found by name and encoded as tagged values ---------
# Recognising one imports nothing: a value's class names its module, which is loaded already.
# A tagged value's encoder is called with ``depth`` that of its state tuple; the state's parts
# are one level deeper, as the decoder sees them.


class Tag(object):
    """The kinds of tagged value (Op.EXT: the tag, then the value's state: a tuple of its
    parts, or its one part). The receiver checks a state against its tag's closed shape before
    it builds anything, and never looks a class up by a name the sender chose
    (chopsticks_nb/_values.py builds them; the agent only encodes them)."""

    DATETIME = 1  # (DATETIME_PARTS packed, tzinfo)
    DATE = 2  # DATE_PARTS packed
    TIME = 3  # (TIME_PARTS packed, tzinfo)
    TIMEDELTA = 4  # TIMEDELTA_PARTS packed
    TIMEZONE = 5  # (offset: a TIMEDELTA, name or None): datetime.timezone
    ZONEINFO = 6  # key: zoneinfo.ZoneInfo
    DECIMAL = 7  # str(value)
    UUID = 8  # its 16 bytes
    PATH = 9  # str(value): pathlib.PurePosixPath
    NAMEDTUPLE = 10  # (type name, field names, values)
    ORDERED_DICT = 11  # a dict
    COUNTER = 12  # a dict
    ARRAY = 13  # (dtype, shape, "C" or "F", nbytes), then a raw tail: u8 n, n bytes, the data
    NP_SCALAR = 14  # (dtype, raw bytes)
    PD_INDEX = 15  # ("range", start, stop, step, name) | ("multi", levels, codes, names)
    #               | ("values", values, name, freq)
    PD_SERIES = 16  # (values, index, name)
    PD_FRAME = 17  # (columns, index, [values per column])
    PD_CATEGORICAL = 18  # (codes, categories, ordered)
    PD_DATETIME_TZ = 19  # (UTC datetime64 array, tz)
    PD_STRING = 20  # ([str or None], missing is NaN)
    PD_MASKED = 21  # (dtype name, data, mask): Int64, boolean, Float64...
    PD_TIMESTAMP = 22  # (nanoseconds since the epoch, tz)
    PD_TIMEDELTA = 23  # nanoseconds
    PD_NAT = 24  # None
    PD_NA = 25  # None


_EXT_HEADERS = [bytes(bytearray([Op.EXT, tag])) for tag in range(256)]


def _find_encoder(value):
    """The encoder of a value whose exact type is not in _ENCODERS: numpy's and pandas' own
    types; then the first class in its MRO that is a namedtuple type, one of _NAMED, or a
    builtin it travels as (an IntEnum as an int, a dict subclass as a dict)."""
    cls = type(value)
    library = _top_module(cls)
    if library == "numpy":
        encoder = _enc_numpy
    elif library == "pandas":
        encoder = _enc_pandas
    else:
        encoder = None
        for base in cls.__mro__:
            if base in _BASES:
                encoder = _ENCODERS[base]
            elif tuple in base.__bases__ and _namedtuple_fields(base) is not None:
                encoder = _enc_namedtuple
            else:
                encoder = _NAMED.get((_top_module(base), base.__name__))
            if encoder is not None:
                break
        else:
            raise EncodeError(_unsendable(value, "convert it (list(), str(), a dict)"), value)
    if len(_ENCODERS) < 512:  # found once per type (types made in a loop would pile up)
        _ENCODERS[cls] = encoder
    return encoder


def _top_module(cls):
    module = getattr(cls, "__module__", None)
    return module.partition(".")[0] if type(module) is str else ""


def _type_name(value):
    cls = type(value)
    return "%s.%s" % (getattr(cls, "__module__", "?"), getattr(cls, "__qualname__", cls.__name__))


def _unsendable(value, advice, what=None):
    return "%s cannot be sent back; %s" % (what or _type_name(value), advice)


def _ext_state(out, tag, fields, depth):
    """Start a tagged value whose state, at ``depth``, is ``fields`` parts: a tuple of them,
    which the caller encodes next one level deeper; one part, which the caller encodes next at
    ``depth`` (no tuple around it); or none, None. The state adds no place to an error's path:
    its parts are the value's insides, not places the user knows."""
    if depth > MAX_DEPTH:
        raise EncodeError("value nested deeper than %d levels" % MAX_DEPTH)
    out.cost += _COST_OBJECT
    if fields == 1:
        out.append(_EXT_HEADERS[tag])
    elif fields:
        out.items += fields
        out.cost += _COST_SEQUENCE + _COST_REF * fields
        out.append(_EXT_HEADERS[tag] + bytes(bytearray([Op.TUPLE])) + U32.pack(fields))
    else:
        out.cost += _COST_REF
        out.append(_EXT_HEADERS[tag] + b"\x00")


#: Dates and times travel packed in one bytes part: read faster than separate ints (the figure:
#: bench/README.md, "Why the code looks this way").
DATETIME_PARTS = struct.Struct(">HBBBBBIB")  # year month day hour minute second microsecond fold
DATE_PARTS = struct.Struct(">HBB")  # year month day
TIME_PARTS = struct.Struct(">BBBIB")  # hour minute second microsecond fold
TIMEDELTA_PARTS = struct.Struct(">iII")  # days seconds microseconds
#: The memory a value of these tags keeps, charged in place of its state's (dropped once the
#: value is built; DECIMAL and PATH add their text's length): see _Decoder.settle.
KEPT = {
    Tag.DATETIME: 64,
    Tag.DATE: 40,
    Tag.TIME: 64,
    Tag.TIMEDELTA: 48,
    Tag.TIMEZONE: 64,
    Tag.ZONEINFO: 16,
    Tag.DECIMAL: 112,
    Tag.UUID: 112,
    Tag.PATH: 320,
    Tag.NP_SCALAR: 112,
    Tag.PD_TIMESTAMP: 128,
    Tag.PD_TIMEDELTA: 112,
    Tag.PD_NAT: 0,
    Tag.PD_NA: 0,
}


def _kept(out, mark, tag, extra=0):
    """Charge what a built value keeps, as _Decoder.settle does (``mark``: out.cost before)."""
    out.cost = mark + KEPT[tag] + extra


def _enc_datetime(value, out, depth):
    mark = out.cost
    _ext_state(out, Tag.DATETIME, 2, depth)
    parts = (value.year, value.month, value.day, value.hour, value.minute, value.second,
             value.microsecond, value.fold)  # fmt: skip
    _encode(DATETIME_PARTS.pack(*parts), out, depth + 1)
    _enc_tzinfo(value.tzinfo, value, out, depth + 1)
    _kept(out, mark, Tag.DATETIME)


def _enc_date(value, out, depth):
    mark = out.cost
    _ext_state(out, Tag.DATE, 1, depth)
    _encode(DATE_PARTS.pack(value.year, value.month, value.day), out, depth)
    _kept(out, mark, Tag.DATE)


def _enc_time(value, out, depth):
    mark = out.cost
    _ext_state(out, Tag.TIME, 2, depth)
    parts = (value.hour, value.minute, value.second, value.microsecond, value.fold)
    _encode(TIME_PARTS.pack(*parts), out, depth + 1)
    _enc_tzinfo(value.tzinfo, None, out, depth + 1)
    _kept(out, mark, Tag.TIME)


def _enc_timedelta(value, out, depth):
    mark = out.cost
    _ext_state(out, Tag.TIMEDELTA, 1, depth)
    _encode(TIMEDELTA_PARTS.pack(value.days, value.seconds, value.microseconds), out, depth)
    _kept(out, mark, Tag.TIMEDELTA)


def _enc_timezone(value, out, depth):
    offset = value.utcoffset(None)
    name = value.tzname(None)
    # A timezone made without a name calls itself "UTC+01:00": the receiver makes it alike.
    _enc_fixed_offset(offset, None if name == type(value)(offset).tzname(None) else name, out,
                      depth)  # fmt: skip


def _enc_fixed_offset(offset, name, out, depth):
    mark = out.cost
    _ext_state(out, Tag.TIMEZONE, 2, depth)
    _encode(offset, out, depth + 1, _enc_timedelta)
    _encode(name if type(name) is str else None, out, depth + 1)
    _kept(out, mark, Tag.TIMEZONE)


def _enc_zoneinfo(value, out, depth):
    key = value.key
    if type(key) is not str:  # made from a file: no name the receiver could look up
        raise EncodeError(_unsendable(value, "give it a key (ZoneInfo('Europe/Paris'))"), value)
    _enc_zone_key(key, out, depth)


def _enc_zone_key(key, out, depth):
    mark = out.cost
    _ext_state(out, Tag.ZONEINFO, 1, depth)
    if not out.seen(("zone", key)):
        out.work += _WORK_ZONE
    _encode(key, out, depth)
    _kept(out, mark, Tag.ZONEINFO)


def _enc_tzinfo(tz, moment, out, depth):
    """A datetime's or time's tzinfo, at ``depth``: a timezone, and a ZoneInfo with a key, as
    themselves; any other (pytz, dateutil) as the fixed offset it gives ``moment`` (the same
    instant; a time's tzinfo gets None)."""
    encoder = _NAMED.get((_top_module(type(tz)), type(tz).__name__))
    if tz is None or encoder is _enc_timezone or (encoder is _enc_zoneinfo and type(tz.key) is str):
        _encode(tz, out, depth)
    else:
        offset = tz.utcoffset(moment)
        if offset is None:
            _encode(None, out, depth)
        else:
            _encode(offset, out, depth, _fixed_offset_encoder(tz.tzname(moment)))


def _fixed_offset_encoder(name):
    return lambda offset, out, depth: _enc_fixed_offset(offset, name, out, depth)


def _enc_decimal(value, out, depth):
    mark = out.cost
    text = str(value)
    _ext_state(out, Tag.DECIMAL, 1, depth)
    _encode(text, out, depth)
    _kept(out, mark, Tag.DECIMAL, len(text))


def _enc_uuid(value, out, depth):
    mark = out.cost
    _ext_state(out, Tag.UUID, 1, depth)
    _encode(value.bytes, out, depth)
    _kept(out, mark, Tag.UUID)


def _enc_path(value, out, depth):
    mark = out.cost
    text = str(value)
    _ext_state(out, Tag.PATH, 1, depth)
    _encode(text, out, depth)
    _kept(out, mark, Tag.PATH, 2 * len(text))


#: A namedtuple travels as itself if its type name and fields are plain names (see
#: plain_name) and it has at most this many fields; otherwise as a tuple.
MAX_FIELDS = 255
MAX_NAME_LENGTH = 100
_NAMEDTUPLES = {}  # type -> (name, fields), or None for one that travels as a tuple


def plain_name(name):
    """Whether ``name`` may name a namedtuple type or field where a remote's value is rebuilt:
    an ASCII identifier, not a keyword, no leading underscore, at most MAX_NAME_LENGTH long."""
    return (
        type(name) is str
        and 0 < len(name) <= MAX_NAME_LENGTH
        and name.isidentifier()
        and len(name.encode("utf-8")) == len(name)  # ASCII (str.isascii is 3.7+)
        and name[0] != "_"
        and not _iskeyword(name)
    )


def _iskeyword(name):
    import keyword  # small, and only for namedtuples

    return keyword.iskeyword(name)


def _namedtuple_fields(cls):
    """The fields of a namedtuple type (made by collections.namedtuple or NamedTuple)."""
    fields = cls.__dict__.get("_fields")
    if type(fields) is tuple and hasattr(cls, "_make"):
        return fields
    return None


def _namedtuple_type(cls):
    """(name, fields) of the namedtuple type a value of ``cls`` travels as, or None."""
    if cls in _NAMEDTUPLES:
        return _NAMEDTUPLES[cls]
    for base in cls.__mro__:
        fields = _namedtuple_fields(base)
        if tuple in base.__bases__ and fields is not None:
            break
    found = (base.__name__, fields)
    if not (
        len(fields) <= MAX_FIELDS
        and plain_name(base.__name__)
        and all(plain_name(field) for field in fields)
        and len(set(fields)) == len(fields)
    ):
        found = None  # a name the receiver would refuse
    if len(_NAMEDTUPLES) < 512:
        _NAMEDTUPLES[cls] = found
    return found


def _enc_namedtuple(value, out, depth):
    found = _namedtuple_type(type(value))
    if found is None or len(found[1]) != len(value):
        _ENCODERS[tuple](value, out, depth)
        return
    _ext_state(out, Tag.NAMEDTUPLE, 3, depth)
    if not out.seen(found):
        out.work += _WORK_NEW_TYPE
    _encode(found[0], out, depth + 1)
    _encode(found[1], out, depth + 1)
    _encode(value, out, depth + 1, _ENCODERS[tuple])


def _enc_mapping(tag):
    def enc(value, out, depth):
        _ext_state(out, tag, 1, depth)
        _encode(value, out, depth, _enc_dict)

    return enc


def _enc_enum(value, out, depth):
    """An Enum member travels as its value (an IntEnum's is itself: see _encoder_for)."""
    _encode(value.value, out, depth - 1)


#: Encoders by (top-level module, class name) of a class in a value's MRO.
_NAMED = {
    ("datetime", "datetime"): _enc_datetime,
    ("datetime", "date"): _enc_date,
    ("datetime", "time"): _enc_time,
    ("datetime", "timedelta"): _enc_timedelta,
    ("datetime", "timezone"): _enc_timezone,
    ("zoneinfo", "ZoneInfo"): _enc_zoneinfo,
    ("decimal", "Decimal"): _enc_decimal,
    ("_pydecimal", "Decimal"): _enc_decimal,
    ("uuid", "UUID"): _enc_uuid,
    ("pathlib", "PurePosixPath"): _enc_path,
    ("collections", "OrderedDict"): _enc_mapping(Tag.ORDERED_DICT),
    ("collections", "Counter"): _enc_mapping(Tag.COUNTER),
    ("collections", "defaultdict"): _enc_dict,  # its default factory is code: a dict
    ("enum", "Enum"): _enc_enum,
}


# -- numpy and pandas: the agent touches them only for a value that already is one ------------

#: dtype kinds that travel as raw buffers: bool, signed and unsigned ints, floats, complex,
#: timedelta64, datetime64, fixed-width str (UCS-4) and bytes.
_ARRAY_KINDS = "biufcmMUS"
#: Arrays this large go aligned to 64 bytes in the message, so that the receiver can use them
#: where they lie (see chopsticks_nb/_arrays.py).
_ALIGN_FROM = 4096


def _array_dtype(value, what):
    """The dtype of an array or numpy scalar, if it can travel; else EncodeError."""
    dtype = value.dtype
    kind = dtype.kind
    if (
        kind not in _ARRAY_KINDS
        or dtype.fields is not None
        or dtype.subdtype is not None
        or (kind == "f" and dtype.itemsize not in (2, 4, 8))
        or (kind == "c" and dtype.itemsize not in (8, 16))
    ):
        if kind in "fc":
            advice = "convert it (.astype(float), .tolist())"
        else:
            advice = "convert it (.tolist(), str(), a dict)"
        raise EncodeError(_unsendable(value, advice, "%s of dtype %s" % (what, dtype)), value)
    return dtype


def _enc_numpy(value, out, depth):
    np = sys.modules["numpy"]
    if type(value) is np.ndarray:
        _enc_ndarray(value, out, depth)
    elif isinstance(value, np.generic):
        dtype = _array_dtype(value, "numpy." + type(value).__name__)
        mark = out.cost
        _ext_state(out, Tag.NP_SCALAR, 2, depth)
        _encode(dtype.str, out, depth + 1)
        _encode(value.tobytes(), out, depth + 1)
        _kept(out, mark, Tag.NP_SCALAR, dtype.itemsize)
    else:
        raise EncodeError(_unsendable(value, "convert it (numpy.asarray(), .tolist())"), value)


def _enc_ndarray(value, out, depth):
    dtype = _array_dtype(value, "numpy.ndarray")
    if value.flags.c_contiguous:
        layout = "C"
    elif value.flags.f_contiguous:
        layout = "F"
    else:
        value, layout = value.copy(order="C"), "C"
    nbytes = value.nbytes
    _ext_state(out, Tag.ARRAY, 4, depth)
    _encode(dtype.str, out, depth + 1)
    _encode(tuple(int(n) for n in value.shape), out, depth + 1)
    _encode(layout, out, depth + 1)
    _encode(nbytes, out, depth + 1)
    out.cost += nbytes
    pad = (-(out.offset() + 1)) % 64 if nbytes >= _ALIGN_FROM else 0
    out.append(bytes(bytearray([pad])) + b"\0" * pad)
    if nbytes:
        out.append(memoryview(value.reshape(-1, order=layout).view("u1")))


def _enc_pandas(value, out, depth):
    pd = sys.modules["pandas"]
    mark = out.cost
    if value is pd.NaT:
        _ext_state(out, Tag.PD_NAT, 0, depth)
        _kept(out, mark, Tag.PD_NAT)
    elif value is getattr(pd, "NA", _enc_pandas):
        _ext_state(out, Tag.PD_NA, 0, depth)
        _kept(out, mark, Tag.PD_NA)
    elif isinstance(value, pd.DataFrame):
        _enc_pd_frame(value, out, depth)
    elif isinstance(value, pd.Series):
        out.work += _WORK_PANDAS
        _ext_state(out, Tag.PD_SERIES, 3, depth)
        _encode(value, out, depth + 1, _enc_pd_values)
        _encode(value.index, out, depth + 1, _enc_pd_index)
        _encode(value.name, out, depth + 1)
    elif isinstance(value, pd.Index):
        _enc_pd_index(value, out, depth)
    elif isinstance(value, pd.Timestamp):
        _ext_state(out, Tag.PD_TIMESTAMP, 2, depth)
        _encode(value.value, out, depth + 1)
        _enc_zone(value.tzinfo, value, out, depth + 1)
        _kept(out, mark, Tag.PD_TIMESTAMP)
    elif isinstance(value, pd.Timedelta):
        _ext_state(out, Tag.PD_TIMEDELTA, 1, depth)
        _encode(value.value, out, depth)
        _kept(out, mark, Tag.PD_TIMEDELTA)
    elif isinstance(value, pd.api.extensions.ExtensionArray):
        _enc_pd_array(value, out, depth)
    else:
        advice = "convert it (.to_numpy(), .tolist(), str())"
        raise EncodeError(_unsendable(value, advice), value)


def _enc_pd_frame(frame, out, depth):
    columns = frame.columns
    out.work += _WORK_PANDAS * (1 + len(columns))
    _ext_state(out, Tag.PD_FRAME, 3, depth)
    _encode(columns, out, depth + 1, _enc_pd_index)
    _encode(frame.index, out, depth + 1, _enc_pd_index)
    out.items += len(columns)
    out.cost += _COST_REF + _COST_SEQUENCE
    out.append(bytes(bytearray([Op.LIST])) + U32.pack(len(columns)))
    for number in range(len(columns)):
        try:
            _encode(frame.iloc[:, number], out, depth + 2, _enc_pd_values)
        except EncodeError as exc:
            exc.path.append("[%s]" % _label(columns[number]))
            exc.top = frame
            raise


def _enc_pd_index(index, out, depth):
    pd = sys.modules["pandas"]
    out.work += _WORK_PANDAS
    parts = depth + 1
    if isinstance(index, pd.RangeIndex):
        _ext_state(out, Tag.PD_INDEX, 5, depth)
        _encode("range", out, parts)
        for part in ("start", "stop", "step"):  # pandas < 0.25 has only _start...
            bound = getattr(index, part) if hasattr(index, part) else getattr(index, "_" + part)
            _encode(int(bound), out, parts)
        _encode(index.name, out, parts)
    elif isinstance(index, pd.MultiIndex):
        np = sys.modules["numpy"]
        codes = getattr(index, "codes", None)
        _ext_state(out, Tag.PD_INDEX, 4, depth)
        _encode("multi", out, parts)
        _encode(list(index.levels), out, parts)
        _encode([np.asarray(c) for c in (index.labels if codes is None else codes)], out, parts)
        _encode(list(index.names), out, parts)
    else:
        _ext_state(out, Tag.PD_INDEX, 4, depth)
        _encode("values", out, parts)
        _encode(index, out, parts, _enc_pd_values)
        _encode(index.name, out, parts)
        _encode(getattr(index, "freqstr", None), out, parts)


def _enc_pd_values(values, out, depth):
    """The values of a Series or Index: a numpy array, a list (object dtype), or a tagged
    pandas array (categorical, tz-aware, string, nullable)."""
    np = sys.modules["numpy"]
    dtype = values.dtype
    if not isinstance(dtype, np.dtype):
        _enc_pd_array(values.array, out, depth)
    elif dtype.kind != "O":
        _enc_ndarray(np.asarray(values), out, depth)
    else:
        items = values.tolist()
        out.items += len(items)
        out.cost += _COST_SEQUENCE
        out.append(bytes(bytearray([Op.LIST])) + U32.pack(len(items)))
        item = None
        try:
            for item in items:
                _encode(item, out, depth)
        except EncodeError as exc:
            exc.path.append(".iloc" + _place_in(items, item))
            exc.top = values
            raise


#: pandas' nullable dtypes, sent as (name, data, mask).
_PD_MASKED = frozenset(
    ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32",
     "Float64", "boolean")
)  # fmt: skip


def _enc_pd_array(array, out, depth):
    pd = sys.modules["pandas"]
    np = sys.modules["numpy"]
    dtype = array.dtype
    kind = type(dtype).__name__
    parts = depth + 1
    out.work += _WORK_PANDAS
    if isinstance(array, pd.Categorical):
        _ext_state(out, Tag.PD_CATEGORICAL, 3, depth)
        _encode(np.asarray(array.codes), out, parts)
        _encode(array.categories, out, parts, _enc_pd_index)
        _encode(bool(array.ordered), out, parts)
    elif kind == "DatetimeTZDtype":
        _ext_state(out, Tag.PD_DATETIME_TZ, 2, depth)
        _encode(np.asarray(array.tz_convert(None)), out, parts)
        _enc_zone(dtype.tz, None, out, parts)
    elif kind == "StringDtype":
        _ext_state(out, Tag.PD_STRING, 2, depth)
        _encode([item if type(item) is str else None for item in array], out, parts)
        _encode(getattr(dtype, "na_value", pd.NA) is not pd.NA, out, parts)
    elif str(dtype) in _PD_MASKED:
        _ext_state(out, Tag.PD_MASKED, 3, depth)
        zero = False if str(dtype) == "boolean" else 0
        _encode(str(dtype), out, parts)
        _encode(array.to_numpy(dtype=dtype.numpy_dtype, na_value=zero), out, parts)
        _encode(np.asarray(array.isna()), out, parts)
    else:
        what = "a pandas array of dtype %s" % dtype
        raise EncodeError(_unsendable(array, "convert it (.astype(object))", what), array)


def _enc_zone(tz, moment, out, depth):
    """A pandas time zone, at ``depth``: timezones and ZoneInfo as themselves, pytz's by its
    key, others by the fixed offset they give ``moment`` (a Timestamp's)."""
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    encoder = _NAMED.get((_top_module(type(tz)), type(tz).__name__))
    if tz is None or encoder is _enc_timezone:
        _encode(tz, out, depth)
    elif type(key) is str:
        _encode(key, out, depth, _enc_zone_key)
    elif moment is not None:
        _enc_tzinfo(tz, moment, out, depth)
    else:
        what = "a pandas time zone %s" % _type_name(tz)
        raise EncodeError(_unsendable(tz, "convert it (.dt.tz_convert('UTC'))", what), tz)


# -- END LATER --------------------------------------------------------------------------------


class _Decoder(object):
    """Reads one encoded value; every length is checked against the bytes actually present.

    ``donated``: the bytes are this value's alone (a large message read into memory of its
    own), so that an array may be used where it lies instead of being copied.
    """

    def __init__(self, data, donated=False):
        self.data = memoryview(data)
        self.donated = donated
        self.pos = 0
        self.items = 0
        self.cost = 0
        self.budget = MAX_COST_PER_BYTE * len(self.data) + COST_SLACK
        self.work = 0
        self.work_budget = WORK_PER_KIB * len(self.data) // 1024 + WORK_SLACK
        self.seen = set()  # time zones and namedtuple types met so far (see charge_once)
        self.before = 0  # the cost before the state of the tagged value being built

    def charge(self, cost):
        """Account for objects about to be built; refuse before building too many."""
        self.cost += cost
        if self.cost > self.budget:
            raise DecodeError(
                "a value of %d bytes that decodes to more than %d bytes of objects (at offset "
                "%d): too many small containers" % (len(self.data), self.budget, self.pos)
            )

    def charge_work(self, work, what):
        """Account for the CPU that building ``what`` costs beyond reading its bytes."""
        self.work += work
        if self.work > self.work_budget:
            raise DecodeError(
                "a value of %d bytes that holds too many %s for its size (at offset %d)"
                % (len(self.data), what, self.pos)
            )

    def charge_once(self, key, work, what):
        """charge_work the first time ``key`` comes in this value."""
        if key not in self.seen:
            self.seen.add(key)
            self.charge_work(work, what)

    def settle(self, kept):
        """Charge ``kept`` bytes for the tagged value just built in place of its state's
        charges (the state is dropped): called by the builders of small values (_agent.KEPT)."""
        self.cost = self.before + kept

    def take(self, n):
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(
                "truncated value: need %d bytes at offset %d, have %d"
                % (n, self.pos, len(self.data) - self.pos)
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def count(self, header, per_item):
        pos = self.pos
        if pos + 4 > len(self.data):
            self.take(4)  # raises
        n = U32.unpack_from(self.data, pos)[0]
        self.pos = pos + 4
        self.items += n
        # Every item takes at least one byte: a count beyond the bytes left is a lie.
        if n > len(self.data) - self.pos or self.items > MAX_ITEMS:
            raise DecodeError(
                "item count %d at offset %d exceeds the data or the limit" % (n, self.pos - 4)
            )
        self.charge(header + (per_item + _COST_REF) * n)
        return n

    def value(self, depth):
        if depth > MAX_DEPTH:
            raise DecodeError(
                "value nested deeper than %d levels at offset %d" % (MAX_DEPTH, self.pos)
            )
        pos = self.pos
        if pos >= len(self.data):
            raise DecodeError("truncated value: need 1 byte at offset %d, have 0" % pos)
        op = self.data[pos]
        self.pos = pos + 1
        load = _LOADERS[op]
        if load is None:
            raise DecodeError("unknown opcode 0x%02x at offset %d: corrupt stream?" % (op, pos))
        return load(self, depth + 1)

    def items_at(self, n, depth):
        """``n`` values at ``depth``: None, True and False (one byte each, the commonest
        items) read here, the rest by value()."""
        if n and depth > MAX_DEPTH:
            raise DecodeError(
                "value nested deeper than %d levels at offset %d" % (MAX_DEPTH, self.pos)
            )
        data = self.data
        value = self.value
        items = []
        append = items.append
        for _ in range(n):
            pos = self.pos
            op = data[pos] if pos < len(data) else 0xFF
            if op < 3:
                self.pos = pos + 1
                append(_CONSTANTS[op])
            else:
                append(value(depth))
        return items

    def check_hashes(self, keys, at, what):
        """Refuse ``keys`` (of the container at offset ``at``) if more than MAX_SHARED_HASH
        share a hash, before they are inserted; counting costs linear time."""
        hashes = _hashes(keys, at, what)
        if len(hashes) - len(set(hashes)) >= MAX_SHARED_HASH:
            _refuse_shared(_most_shared(hashes), at, what)

    def keyed_items(self, n, width, depth, at, what):
        """The items of a set (``width`` 1) or of a dict (2: key, value, key...) of ``n``
        keys, refused if more than MAX_SHARED_HASH keys share a hash. The first HASH_CHUNK
        keys of a larger one are checked as soon as they are decoded: a message made of keys
        that collide is refused after a few KB of it are decoded, not all of it."""
        if n <= HASH_CHUNK:
            items = self.items_at(width * n, depth)
        else:
            items = self.items_at(width * HASH_CHUNK, depth)
            self.check_hashes(items[::width], at, what)
            items += self.items_at(width * (n - HASH_CHUNK), depth)
        if n > MAX_SHARED_HASH:
            self.check_hashes(items[::width], at, what)
        return items

    # One loader per opcode (see _LOADERS); ``depth`` is that of the items of a container.

    def load_none(self, depth):
        return None

    def load_true(self, depth):
        return True

    def load_false(self, depth):
        return False

    def load_int(self, depth):
        self.charge(_COST_NUMBER)
        pos = self.pos
        if pos + 8 > len(self.data):
            self.take(8)  # raises
        self.pos = pos + 8
        return _I64.unpack_from(self.data, pos)[0]

    def load_float(self, depth):
        self.charge(_COST_NUMBER)
        pos = self.pos
        if pos + 8 > len(self.data):
            self.take(8)  # raises
        self.pos = pos + 8
        return _F64.unpack_from(self.data, pos)[0]

    def load_complex(self, depth):
        self.charge(_COST_NUMBER)
        real, imag = _C128.unpack(self.take(16))
        return complex(real, imag)

    def blob(self):
        data = self.data
        start = self.pos + 4
        if start > len(data):
            self.take(4)  # raises
        end = start + U32.unpack_from(data, start - 4)[0]
        if end > len(data):
            self.pos = start
            self.take(end - start)  # raises
        self.pos = end
        self.charge(_COST_BLOB + end - start)
        return data[start:end]

    def load_bigint(self, depth):
        return int.from_bytes(self.blob(), "big", signed=True)

    def load_bytes(self, depth):
        return self.blob().tobytes()

    def load_bytearray(self, depth):
        return bytearray(self.blob())

    def load_str(self, depth):
        raw = self.blob()
        try:
            return str(raw, "utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                "invalid UTF-8 in string at offset %d: %s" % (self.pos, exc)
            ) from None

    def load_list(self, depth):
        return self.items_at(self.count(_COST_SEQUENCE, 0), depth)

    def load_tuple(self, depth):
        return tuple(self.items_at(self.count(_COST_SEQUENCE, 0), depth))

    def load_set(self, depth, kind=set):
        at = self.pos - 1
        n = self.count(_COST_SET, _COST_MEMBER)
        items = self.keyed_items(n, 1, depth, at, "set member")
        try:
            return kind(items)
        except TypeError as exc:
            raise DecodeError("unhashable set member: %s" % exc) from None

    def load_frozenset(self, depth):
        return self.load_set(depth, frozenset)

    def load_dict(self, depth):
        at = self.pos - 1
        n = self.count(_COST_DICT, _COST_PAIR - _COST_REF)
        flat = self.keyed_items(n, 2, depth, at, "dict key")
        try:
            return dict(zip(flat[0::2], flat[1::2]))
        except TypeError as exc:
            raise DecodeError("unhashable dict key: %s" % exc) from None

    def load_ext(self, depth):
        at = self.pos - 1
        tag = self.take(1)[0]
        build = EXT_LOADERS.get(tag)
        if build is None:
            raise DecodeError("unknown value tag %d at offset %d" % (tag, at))
        before = self.cost
        state = self.value(depth)
        self.charge(_COST_OBJECT)
        self.before = before
        try:
            return build(self, state)
        except (CodecError, MemoryError):
            raise
        except Exception as exc:  # the constructor refused the state: a corrupt value
            raise DecodeError(
                "invalid value of tag %d at offset %d: %s: %s"
                % (tag, at, type(exc).__name__, _cut(_safe_str(exc), 200))
            ) from None


_CONSTANTS = (None, True, False)

#: The decoder's loader of each opcode, by opcode (None: not an opcode).
_LOADERS = [None] * 256
for _op, _load in (
    (Op.NONE, _Decoder.load_none),
    (Op.TRUE, _Decoder.load_true),
    (Op.FALSE, _Decoder.load_false),
    (Op.INT, _Decoder.load_int),
    (Op.BIGINT, _Decoder.load_bigint),
    (Op.FLOAT, _Decoder.load_float),
    (Op.STR, _Decoder.load_str),
    (Op.BYTES, _Decoder.load_bytes),
    (Op.LIST, _Decoder.load_list),
    (Op.TUPLE, _Decoder.load_tuple),
    (Op.DICT, _Decoder.load_dict),
    (Op.SET, _Decoder.load_set),
    (Op.FROZENSET, _Decoder.load_frozenset),
    (Op.COMPLEX, _Decoder.load_complex),
    (Op.BYTEARRAY, _Decoder.load_bytearray),
    (Op.EXT, _Decoder.load_ext),
):
    _LOADERS[_op] = _load

#: The builder of each tagged value, by tag: ``build(decoder, state) -> value``, ``state``
#: the tuple that followed the tag, not checked yet. Filled on the controller by
#: chopsticks_nb/_values.py; empty in an agent, which never receives tagged values.
EXT_LOADERS = {}


def decode(data, donated=False):
    # type: (object, bool) -> object
    """Decode bytes made by :func:`encode`; raise DecodeError on anything else. A valid value
    that this side cannot build (its module is not installed) decodes to Unavailable."""
    if len(data) == 10 and data[0] == CODEC_VERSION and data[1] == Op.INT:
        return _I64.unpack_from(data, 2)[0]  # the commonest answer, without a _Decoder
    if len(data) < 1 or data[0] != CODEC_VERSION:
        raise DecodeError("unsupported codec version %r" % (bytes(data[:1]),))
    decoder = _Decoder(data, donated)
    decoder.pos = 1
    try:
        value = decoder.value(0)
    except MissingModule as exc:
        return Unavailable(str(exc))
    decoder.charge(_COST_REF)
    if decoder.pos != len(decoder.data):
        raise DecodeError("%d unexpected bytes after the value" % (len(decoder.data) - decoder.pos))
    return value


def frame(kind, req_id, payload=b""):
    # type: (int, int, bytes) -> bytes
    """One message as bytes."""
    return HEADER.pack(kind, req_id, len(payload)) + payload


def _unpickle(data):
    """pickle.loads, imported on first use (see Msg.CALL_CODEC); it then takes this name."""
    global _unpickle
    try:
        from _pickle import loads
    except ImportError:  # pragma: no cover - every CPython has _pickle
        from pickle import loads
    _unpickle = loads
    return loads(data)


# ---------------------------------------------------------------------------------------------
# The agent runtime (only ever runs on the remote side).


class _Channel(object):
    """The protocol pipes of the agent: a locked writer, and a frame reader that one thread at a
    time may use (which one: see Agent)."""

    def __init__(self, rfd, wfd, idle_timeout):
        self.rfd = rfd
        self.wfd = wfd
        self.idle_timeout = idle_timeout
        self.heard = _monotonic()  # when the controller last sent anything
        self.lock = _thread.allocate_lock()
        # Reused for every read: no allocation per chunk of a put. It grows to the largest frame
        # read; 1 MiB at once was zeroed at every start (0.3 ms), for calls that never need it.
        self.buf = bytearray(128 * 1024)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        # A call unpickles its payload straight from the buffer: while it does, no bytes may be
        # moved over it (a reader thread making room gets a new buffer instead).
        self.pinned = False

    def send(self, kind, req_id, payload=b""):
        if payload.__class__ is tuple:  # (head, large value): see encode_result
            head, value = payload
            data = [HEADER.pack(kind, req_id, len(head) + len(value)) + head, value]
        else:
            header = HEADER.pack(kind, req_id, len(payload))
            data = [header + payload] if len(payload) < 65536 else [header, payload]
        with self.lock:
            for chunk in data:
                written = os.write(self.wfd, chunk)
                if written < len(chunk):
                    view = memoryview(chunk)[written:]
                    while view:
                        view = view[os.write(self.wfd, view) :]

    def next_frame(self):
        """The next (kind, req_id, payload) already in the buffer, or None.

        The payload is a view into the buffer, valid until the next read.
        """
        available = self.end - self.start
        if available >= HEADER.size:
            kind, req_id, length = HEADER.unpack_from(self.buf, self.start)
            if kind == Msg.CALL_BLOBS:
                return self._blob_call(req_id)
            if available >= HEADER.size + length:
                begin = self.start + HEADER.size
                self.start = begin + length
                if kind == Msg.CALL_CODEC:
                    return Msg.CALL, req_id, decode(self.view[begin : begin + length])
                return kind, req_id, self.view[begin : begin + length]
        return None

    def _blob_call(self, req_id):
        """(CALL, req_id, call) for the CALL_BLOBS frame at start once its pickle is in, its
        blobs then read from the pipe (waiting for them) into their places in args."""
        at = self.start + HEADER.size + 4
        if self.end < at:
            return None
        end = at + U32.unpack_from(self.buf, at - 4)[0]
        if self.end < end:
            return None
        module, qualname, args, kwargs, blobs = _unpickle(self.view[at:end])
        self.start = end
        args = list(args)
        for index, size in blobs:
            args[index] = self._read_blob(size)
        return Msg.CALL, req_id, (module, qualname, tuple(args), kwargs)

    def _read_blob(self, size):
        """The next ``size`` bytes of the stream as a bytes object."""
        have = min(size, self.end - self.start)
        if have == size:
            blob = bytes(self.view[self.start : self.start + size])
            self.start += size
            return blob
        blob = io.BufferedReader(_PipeInto(self, have), 1).read(size)
        if len(blob) < size:
            raise EOFError("the controller went away in the middle of a frame")
        return blob

    def silence_left(self):
        """Seconds until the controller will have been silent for idle_timeout (-1: never, 0:
        it has been)."""
        if not self.idle_timeout:
            return -1
        left = self.heard + self.idle_timeout - _monotonic()
        if left > 0:
            return left
        if select.select([self.rfd], [], [], 0)[0]:
            return self.idle_timeout  # it spoke; the thread that reads is busy, not waiting
        return 0

    def wait(self, fds):
        """Those of ``fds`` that are readable; none once the controller has been silent for
        idle_timeout."""
        while True:
            left = self.silence_left()
            if left == 0:
                return []
            ready = select.select(fds, [], [], None if left < 0 else left)[0]
            if ready:
                return ready

    def read(self):
        """Add what the pipe holds to the buffer (blocking until it holds something); False at
        EOF."""
        needed = HEADER.size
        if self.end - self.start >= HEADER.size:
            kind, _, length = HEADER.unpack_from(self.buf, self.start)
            if kind != Msg.CALL_BLOBS:
                needed += length
            elif self.end - self.start >= HEADER.size + 4:  # its pickle, not its blobs
                needed += 4 + U32.unpack_from(self.buf, self.start + HEADER.size)[0]
        self._make_room(needed)
        # To the end of that frame or 64 KiB past start: the blobs of a CALL_BLOBS frame are
        # to go straight into their objects, not through this buffer.
        count = os.readv(self.rfd, [self.view[self.end : self.start + max(needed, 65536)]])
        self.end += count
        self.heard = _monotonic()
        return count > 0

    def read_frame(self):
        """The next frame, waiting for it; None at EOF."""
        message = self.next_frame()
        while message is None:
            if not self.read():
                return None
            message = self.next_frame()
        return message

    def _make_room(self, needed):
        """Room to read a frame of ``needed`` bytes from ``start``: move the partial frame to
        the front, or grow the buffer (a new one: views handed out stay valid)."""
        kept = self.end - self.start
        size = len(self.buf)
        if not kept and not self.pinned:
            self.start = self.end = 0  # free now; later it would cost moving a partial frame
        elif self.start and (size - self.end < 65536 or size - self.start < needed):
            if self.pinned:
                self._replace(size, kept)
            else:
                self.buf[:kept] = self.buf[self.start : self.end]
                self.start, self.end = 0, kept
        if len(self.buf) - self.start < max(needed, kept + 65536):
            self._replace(max(needed, kept + 65536, 2 * len(self.buf)), kept)

    def _replace(self, size, kept):
        fresh = bytearray(size)
        fresh[:kept] = self.buf[self.start : self.end]
        self.buf, self.view, self.start, self.end = fresh, memoryview(fresh), 0, kept


class _PipeInto(io.RawIOBase):
    """The agent's stdin as a raw file for ``io.BufferedReader(raw, 1).read(n)``, which reads
    into the bytes object it returns: a blob is copied once, from the pipe, as in a raw echo,
    not into the channel's buffer and then out of it. What the buffer holds of it comes first.
    """

    def __init__(self, channel, buffered):
        self.channel = channel
        self.buffered = buffered

    def readable(self):
        return True

    def readinto(self, target):
        channel = self.channel
        if self.buffered:
            count, self.buffered = self.buffered, 0
            target[:count] = channel.view[channel.start : channel.start + count]
            channel.start += count
            return count
        if channel.idle_timeout and not channel.wait([channel.rfd]):
            return 0  # silent for idle_timeout: as at EOF
        count = os.readv(channel.rfd, [target])
        channel.heard = _monotonic()
        return count


class _OutputStream(io.TextIOBase):
    """sys.stdout / sys.stderr on the agent: text becomes frames, tagged with the running call.

    Complete lines are sent at once; a partial line waits for its newline, a flush, or the end of
    the call, so output stays ordered before the call's result.
    """

    def __init__(self, agent, kind, name):
        self.agent = agent
        self.kind = kind
        self.name = name
        self.pending = b""
        self.lock = _thread.allocate_lock()
        self.buffer = _BinaryOutput(self)

    def writable(self):
        return True

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "surrogateescape"

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        self.write_bytes(text.encode("utf-8", "surrogateescape"))
        return len(text)

    def write_bytes(self, data):
        with self.lock:
            data = self.pending + data
            cut = data.rfind(b"\n") + 1
            if len(data) > 65536:
                cut = len(data)
            self.pending = data[cut:]
            if cut:
                self.agent.send_output(self.kind, data[:cut])

    def flush(self):
        if not self.pending:  # at the end of every call: this thread's own writes are seen
            return
        with self.lock:
            data, self.pending = self.pending, b""
        if data:
            self.agent.send_output(self.kind, data)

    def isatty(self):
        return False

    def fileno(self):
        raise io.UnsupportedOperation("the agent's %s is relayed to the controller" % self.name)


class _BinaryOutput(object):
    """``sys.stdout.buffer`` for code that writes bytes."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, data):
        self.stream.write_bytes(bytes(data))
        return len(data)

    def flush(self):
        self.stream.flush()


#: This interpreter's bytecode magic number (module records may come compiled for it).
_MAGIC_NUMBER = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)


class _RemoteModuleFinder(object):
    """A meta path finder, after the remote's own, that imports modules from the controller."""

    def __init__(self, agent):
        self.agent = agent
        self.records = {}  # name -> module record, or None when the controller has not got it
        self.lock = _thread.allocate_lock()

    def find_spec(self, fullname, path=None, target=None):
        record = self.lookup(fullname)
        if record is None:
            return None
        loader = _RemoteModuleLoader(self.agent, record)
        # Importing nothing here: Python 3.6 calls finders holding the global import lock, and
        # an import under it waits for a module another thread is importing, which waits for
        # that lock (a deadlock seen between a call's first unpickling and a fetch's hashlib).
        spec = sys.modules["_frozen_importlib"].ModuleSpec(
            fullname, loader, origin=record["origin"], is_package=record["is_pkg"]
        )
        if record["is_pkg"]:
            spec.submodule_search_locations = list(record["path"])
        spec.has_location = record["origin"] is not None
        return spec

    def lookup(self, fullname):
        with self.lock:
            if fullname in self.records:
                return self.records[fullname]
        answer = self.ask_unlocked(fullname)
        if answer is None:
            return None  # this thread would have to read the answer itself (see Agent.ask)
        with self.lock:
            for record in answer:
                self.records.setdefault(record["name"], record)
            return self.records.setdefault(fullname, None)

    def add(self, records):
        """Records the controller sent before a call that needs them (Msg.MODULES)."""
        with self.lock:
            for record in records:
                self.records.setdefault(record["name"], record)

    def invalidate_caches(self):
        """importlib.invalidate_caches(): ask again for what the controller had not got (a
        module written there since)."""
        with self.lock:
            for name in [name for name, record in self.records.items() if record is None]:
                del self.records[name]

    def ask_unlocked(self, fullname):
        """Ask the controller, without importlib's global lock (it calls find_spec holding it):
        held, it would stop the first import of anything by any other thread until the answer
        came, and the reader thread imports (tempfile, for a put) before it reads that answer."""
        try:
            _imp.release_lock()
        except RuntimeError:  # not held by this thread: find_spec was called directly
            return self.agent.ask(Msg.IMPORT, fullname)
        try:
            return self.agent.ask(Msg.IMPORT, fullname)
        finally:
            _imp.acquire_lock()


class _RemoteModuleLoader(object):
    """Loads one module record: source text, or an empty namespace package."""

    def __init__(self, agent, record):
        self.agent = agent
        self.record = record

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = self.record["source"]
        if source is None:  # a namespace package
            return
        if self.record["origin"]:
            module.__file__ = self.record["origin"]
        code = self.record.get("code")
        if code is not None and _MAGIC_NUMBER and self.record.get("magic") == _MAGIC_NUMBER:
            import marshal  # built in

            code = marshal.loads(code)  # compiled by the controller: this very interpreter
        else:
            code = compile(
                source, self.record["origin"] or self.record["name"], "exec", dont_inherit=True
            )
        exec(code, module.__dict__)

    def is_package(self, fullname):
        return self.record["is_pkg"]

    def get_source(self, fullname):
        import importlib.util

        source = self.record["source"]
        return None if source is None else importlib.util.decode_source(source)

    def get_data(self, path):
        """Resource bytes (``pkgutil.get_data``); the controller serves only package files."""
        data = self.agent.ask(Msg.GET_DATA, path)
        if data is None:
            raise IOError(2, "not served by the controller", path)
        return data


class _Upload(object):
    """A file written by PUT frames under a temporary name beside the target, renamed at the end.

    Its SHA-1 is computed as the data passes. OpenSSL's SHA-1 (hashlib) is much faster than the
    built-in _sha1, but slow to load (bench/README.md has both figures): a file that
    comes in one chunk is hashed with _sha1 at the end, a longer one with hashlib from its second
    chunk on (the first is kept until then).
    """

    def __init__(self, path, mode):
        if path is None:
            import tempfile  # rare (a put without a path): it knows where temporary files go

            fd, self.path = tempfile.mkstemp(prefix="chopsticks-put-")
            os.close(fd)
        else:
            self.path = os.path.abspath(os.path.expanduser(path))
        self.mode = mode
        try:
            self.fd, self.tmp = _create_part_file(self.path)
        except OSError as exc:
            raise _naming(exc, self.path) from None
        self.sha1 = None
        self.first = b""
        self.size = 0

    def write(self, data):
        if self.sha1 is not None:
            self.sha1.update(data)
        elif not self.size:
            self.first = bytes(data)  # the view dies with the next read
        else:
            import hashlib

            self.sha1 = hashlib.sha1(self.first)
            self.sha1.update(data)
            self.first = b""
        self.size += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def hexdigest(self):
        if self.sha1 is None:
            try:
                from _sha1 import sha1
            except ImportError:  # a Python built without its own hashes
                from hashlib import sha1
            self.sha1 = sha1(self.first)
            self.first = b""
        return self.sha1.hexdigest()

    def finish(self, size, sha1):
        os.close(self.fd)
        self.fd = None
        received = self.hexdigest()
        if size != self.size or sha1 != received:
            self.abort()
            raise IOError(
                "checksum mismatch: sent %d bytes sha1 %s, received %d bytes sha1 %s"
                % (size, sha1, self.size, received)
            )
        try:
            os.chmod(self.tmp, self.mode)
            os.rename(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise _naming(exc, self.path) from None
        return {"remote_path": self.path, "size": self.size, "sha1sum": sha1}

    def abort(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:  # noqa: SIM105 - contextlib costs the agent's start more than it saves here
            os.unlink(self.tmp)
        except OSError:
            pass


def _naming(error, path):
    """``error`` (an OSError about a temporary file) told of the user's ``path`` instead."""
    return type(error)(error.errno, error.strerror, path)


#: The longest file name (bytes) most file systems take: a temporary name must fit too.
NAME_MAX = 255
_PART_NAME_EXTRA = len(".." + "0" * 12 + ".part")  # what the temporary name adds to NAME


def _create_part_file(path):
    """A new file ``.NAME.RANDOM.part`` beside ``path``, as tempfile.mkstemp makes it (mode 0600,
    never an existing file or link), without importing tempfile (slow to import). NAME is cut
    so that the whole fits in NAME_MAX bytes. The controller makes its fetches' files here too."""
    directory, name = os.path.split(path)
    while len(os.fsencode(name)) > NAME_MAX - _PART_NAME_EXTRA:
        name = name[:-1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    attempts = 100
    while True:
        tmp = os.path.join(directory, ".%s.%s.part" % (name, os.urandom(6).hex()))
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            attempts -= 1
            if not attempts:
                raise


# Who reads the channel (Agent.pipe, under Agent.state_lock): one thread at a time, so that no
# frame is lost, reordered or read twice.
_MAIN = 0  # the main thread: no call runs; it reads and dispatches every frame itself
_LENT = 1  # a call runs in the main thread: the reader thread may take the pipe
_READER = 2  # the reader thread reads, until the main thread, out of calls, takes the pipe back

#: While calls keep starting, the reader thread looks this often (seconds) for one still running
#: to take the pipe for; once none started for that long, it sleeps until the next one starts.
READER_PATROL = 0.005
#: Either end, waiting for the other, first polls without sleeping for up to this long (the
#: controller for an answer, the agent for the next call after answering one): waking a
#: sleeping CPU costs more than a small call on a VM (bench/README.md).
SPIN = 100e-6


def usable_cpus():
    """How many CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux, or a kernel that will not say
        return os.cpu_count() or 1


class PollPolicy(object):
    """Whether to poll (see SPIN) before the next wait: never when switched off (``enabled``
    False), nor on one CPU, where the other end could not run meanwhile (the CPUs this process
    may use when the policy is made: one per connection), and less and less while it does not
    answer that soon: each poll in vain doubles the waits until the next one."""

    def __init__(self, enabled=True):
        self.enabled = enabled and usable_cpus() > 1
        self.misses = 0  # polls in a row that ended in vain
        self.skip = 0  # waits left before the next poll

    def ready(self):
        if self.skip:
            self.skip -= 1
            return False
        return self.enabled

    def answered(self):
        self.misses = 0

    def in_vain(self):
        self.misses = min(self.misses + 1, 10)
        self.skip = (1 << self.misses) - 1


def _locked():
    lock = _thread.allocate_lock()
    lock.acquire()
    return lock


class Agent(object):
    """The remote end of one tunnel.

    The main thread reads the frames while no call runs and runs a CALL as soon as it has read
    it: no hand-off between threads from request to result. Calls run there, one at a time, so
    that a cancel can interrupt one with SIGINT. While a call runs, the reader thread takes the
    pipe, to serve cancels, import answers, files and pings and queue further calls, and the
    main thread takes it back when its calls are done. The reader does not wake for every call:
    waking it costs a GIL switch and two thread wake-ups, as much as the hand-off saved. It is
    woken by the first call after a quiet spell and by an import waiting for its answer;
    otherwise it looks every READER_PATROL seconds while calls keep starting. A call shorter
    than that (most) never meets it, and giving the pipe back then costs nothing.
    """

    def __init__(self, channel, poll=True, bytes_apart=True):
        self.channel = channel
        self.bytes_apart = bytes_apart  # see encode_result
        self.current = 0  # id of the call running in the main thread
        self.cancelling = 0
        self.interrupted = 0  # the call whose KeyboardInterrupt was raised (once per call)
        self.pending = _deque()  # (id, payload) of calls the reader thread read, in order
        self.replies = {}  # request id -> [event, answer]
        self.next_request = 0
        self.uploads = {}
        self.fetches = {}  # request id -> [stop]: stop turns True to end the stream
        self.state_lock = _thread.allocate_lock()
        self.finder = _RemoteModuleFinder(self)
        self.main = _thread.get_ident()
        self.reader = None  # ident of the thread running read_loop
        self.spin_after_call = False  # see spin()
        self.polls = PollPolicy(poll)
        self.handlers = handlers(self, CONTROLLER)
        # The pipe's ownership, under state_lock.
        self.pipe = _MAIN
        self.reader_busy = False  # the reader thread is reading or dispatching (not in select)
        self.want_pipe = False  # the main thread waits for the busy reader to give the pipe back
        self.signalled = False  # wake_reader was released and the reader has not looked yet
        self.reader_parked = True  # the reader waits for wake_reader with no time limit
        self.calls_started = 0  # lets the reader see whether calls keep coming
        self.wake_reader = _locked()
        self.pipe_returned = _locked()  # released when the busy reader gives the pipe back
        self.wake_r, self.wake_w = os.pipe()  # out of the reader's select: the pipe is taken
        self.pump = None  # the children run for the controller (a relay's), once there are

    # -- outgoing --------------------------------------------------------------------------------

    def send_output(self, kind, data):
        # One frame per CHUNK_SIZE: the controller refuses output frames over MAX_DATA_FRAME
        # (a protocol error that ends the tunnel), and print("x" * 10**7) is legitimate.
        req_id = self.current
        for start in range(0, len(data), CHUNK_SIZE):
            self.channel.send(kind, req_id, data[start : start + CHUNK_SIZE])

    def ask(self, kind, arg):
        """Send a request to the controller and wait for its REPLY. None, unasked, when the
        calling thread is the one that would have to read the reply: the reader thread, or the
        main thread between calls (a lazy import while it handles a put)."""
        me = _thread.get_ident()
        if me == self.reader or (me == self.main and not self.current):
            return None
        with self.state_lock:
            self.next_request += 1
            req_id = self.next_request
            slot = self.replies[req_id] = [_locked(), None]  # released when the answer is in
            wake = self.pipe == _LENT and self.signal_reader()
        if wake:
            self.wake_reader.release()  # the answer should not wait for the reader's patrol
        self.channel.send(kind, req_id, encode(arg))
        slot[0].acquire()
        return slot[1]

    def send_error(self, req_id, exc, kind="exception"):
        import traceback

        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_globals is globals() and tb.tb_next is not None:
            tb = tb.tb_next  # the user's frames are what help, not the agent's
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        record = {
            "type": _qualified_name(type(exc))[:MAX_NAME],
            "msg": _cut(_safe_str(exc), MAX_ERROR // 32),  # characters: up to 4 bytes each
            # Its end, where the error is, if it must be cut: the record must fit MAX_ERROR.
            "tb": text if len(text) <= MAX_ERROR // 8 else "...\n" + text[-(MAX_ERROR // 8) :],
            "kind": kind,
        }
        self.channel.send(Msg.ERROR, req_id, encode(record))

    def shutdown(self):
        """The controller is gone (EOF, silence, a broken stream): nothing we do can be reported
        any more."""
        try:
            for upload in list(self.uploads.values()):
                if upload is not None:
                    upload.abort()
        finally:
            os._exit(0)

    def dispatch(self, code, req_id, payload):
        """Handle any frame but a CALL."""
        entry = self.handlers.get(code)
        if entry is None:
            raise DecodeError("unknown message kind %d" % code)
        loader = entry[2]
        entry[1](req_id, payload if loader is None else loader(payload))

    # -- the main thread ---------------------------------------------------------------------------

    def main_loop(self):
        """Read and dispatch frames while no call runs; run each call as it is read."""
        channel = self.channel
        try:
            while True:
                message = channel.next_frame()
                if message is None:
                    if self.spin_after_call:
                        self.spin_after_call = False
                        self.spin()
                    if not channel.read():  # no select: the reader thread watches for silence
                        return
                elif message[0] == Msg.CALL:
                    self.run_calls(message[1], message[2])
                    self.spin_after_call = self.polls.ready()
                else:
                    self.dispatch(*message)
        finally:
            self.shutdown()

    def spin(self):
        """Wait up to SPIN seconds for input without sleeping."""
        fds = [self.channel.rfd]
        end = _monotonic() + SPIN
        while not select.select(fds, (), (), 0)[0]:
            if _monotonic() > end:
                self.polls.in_vain()
                return
        self.polls.answered()

    def run_calls(self, req_id, payload):
        """Run a call, then those the reader thread queued meanwhile, in order, and take the
        pipe back."""
        self.run_call(req_id, payload)
        # Unlocked look: only the reader queues calls, and only while it has the pipe, which
        # only this thread takes from it.
        while self.pending or self.pipe == _READER:
            call = self.next_call()
            if call is None:
                return
            self.run_call(call[0], call[1])

    def next_call(self):
        """The next call the reader thread queued, or None once the main thread has the pipe."""
        while True:
            with self.state_lock:
                if self.pending:
                    return self.pending.popleft()
                if self.pipe != _READER:
                    self.pipe = _MAIN
                    return None
                wait = self.want_pipe = self.reader_busy
                if not wait:
                    self.pipe = _MAIN  # it is in select: it will see that and let go
            if wait:
                self.pipe_returned.acquire()
            else:
                os.write(self.wake_w, b"\0")  # at most a byte or two ever wait there
            # Loop: the reader may have queued calls before it gave the pipe back.

    def on_sigint(self, signum, frame):
        # A SIGINT sent by on_cancel may land after its call ended, or be one of its repeats
        # (keep_interrupting): only the target is interrupted, and once.
        call = self.current
        if call and self.cancelling == call and self.interrupted != call:
            self.interrupted = call
            raise KeyboardInterrupt("cancelled by the controller")

    def run_call(self, req_id, payload):
        """Run one call and send its answer."""
        kind = "exception"
        error = None
        try:
            try:
                self.channel.pinned = True  # the payload may be a view into the read buffer
                self.start_call(req_id)
                try:
                    call = payload if payload.__class__ is tuple else _unpickle(payload)
                finally:
                    self.channel.pinned = False
                if len(call) == 4:  # (module, qualname, args, kwargs): a callable by name
                    func = _resolve(call[0], call[1])
                    value = func(*call[2], **call[3])
                else:
                    func, args, kwargs = call
                    value = func(*args, **kwargs)
                kind = "encode"
                data = encode_result(value, self.bytes_apart)
                size = len(data) if data.__class__ is bytes else len(data[0]) + len(data[1])
                if size > MAX_MESSAGE:
                    raise EncodeError(
                        "the result takes %d bytes; one message may take %d (put and fetch "
                        "carry files of any size)" % (size, MAX_MESSAGE)
                    )
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
        except BaseException as exc:
            error = exc
        while True:  # the cancel of this call may land even now (once): end_call must run
            try:
                cancelled = self.end_call(req_id)
                break
            except KeyboardInterrupt:
                pass
        if error is None:
            self.channel.send(Msg.RESULT, req_id, data)
        else:
            if isinstance(error, KeyboardInterrupt) and cancelled:
                kind = "cancelled"
            self.send_error(req_id, error, kind)

    def start_call(self, req_id):
        """Lend the pipe to the reader thread while the call runs; wake it if it sleeps."""
        with self.state_lock:
            self.current = req_id
            self.calls_started += 1
            if self.pipe == _MAIN:
                self.pipe = _LENT
            wake = self.pipe == _LENT and self.reader_parked and self.signal_reader()
        if wake:
            self.wake_reader.release()

    def signal_reader(self):
        """Under state_lock: whether to release wake_reader (not if it already is)."""
        if self.signalled:
            return False
        self.signalled = True
        self.reader_parked = False
        return True

    def end_call(self, req_id):
        """The call is over (its output sent): nothing may interrupt it any more, and the
        reader thread, unless it already took the pipe, may not. True if it was cancelled."""
        with self.state_lock:
            cancelled = self.cancelling == req_id
            self.current = self.cancelling = 0
            if self.pipe == _LENT:
                self.pipe = _MAIN
        return cancelled

    # -- the reader thread -------------------------------------------------------------------------

    def read_loop(self):
        """Look for a running call to take the pipe for, and serve the pipe until the main
        thread takes it back. Also end the agent once the controller has been silent for
        idle_timeout (the main thread reads with no time limit)."""
        self.reader = _thread.get_ident()  # before serve() has it: ask() checks it
        channel = self.channel
        try:
            patrol = False
            seen = 0
            while True:
                timeout = READER_PATROL if patrol else channel.silence_left()
                if timeout == 0:
                    return
                woken = self.wake_reader.acquire(True, timeout)
                with self.state_lock:
                    if woken:
                        self.signalled = False
                    lent = self.pipe == _LENT
                    if lent:
                        self.pipe = _READER
                    elif seen == self.calls_started:
                        patrol = False  # calls stopped: sleep until one starts
                        self.reader_parked = True
                    else:
                        patrol, seen = True, self.calls_started
                if lent:
                    self.serve_pipe()
                    patrol, seen = True, self.calls_started
        finally:
            self.shutdown()

    def serve_pipe(self):
        """Read and dispatch frames until the main thread takes the pipe back."""
        channel = self.channel
        fds = [channel.rfd, self.wake_r]
        ready = ()  # first the frames the main thread left in the buffer (a cancel, say)
        while True:
            with self.state_lock:
                if self.pipe != _READER:
                    return
                self.reader_busy = True
            if channel.rfd in ready and not channel.read():
                self.shutdown()
            self.dispatch_read()
            with self.state_lock:
                self.reader_busy = False
                if self.want_pipe:
                    self.want_pipe = False
                    self.pipe = _MAIN
                    self.pipe_returned.release()
                    return
            ready = channel.wait(fds)
            if not ready:
                self.shutdown()  # silent for idle_timeout, even in the middle of a call
            if self.wake_r in ready:
                os.read(self.wake_r, 512)

    def dispatch_read(self):
        """Dispatch every complete frame in the buffer; queue calls for the main thread."""
        message = self.channel.next_frame()
        while message is not None:
            kind, req_id, payload = message
            if kind == Msg.CALL:
                if payload.__class__ is not tuple:  # CALL_BLOBS and CALL_CODEC: decoded already
                    payload = bytes(payload)  # the view dies with the next read
                with self.state_lock:
                    self.pending.append((req_id, payload))
            else:
                self.dispatch(kind, req_id, payload)
            message = self.channel.next_frame()

    # -- handlers (in whichever thread holds the pipe) --------------------------------------------

    def on_cancel(self, req_id, payload):
        with self.state_lock:
            if req_id == self.current and req_id != self.cancelling:
                self.cancelling = req_id
                signal.pthread_kill(self.main, signal.SIGINT)
                _thread.start_new_thread(self.keep_interrupting, (req_id,))
            else:
                for call in self.pending:
                    if call[0] == req_id:
                        self.pending.remove(call)  # a cancelled call waiting its turn: dropped
                        break
            stop = self.fetches.get(req_id)
        if stop is not None:
            stop[0] = True
        # A cancelled put sends no PUT_CLOSE: drop its temporary file now, not when the
        # connection ends (a long-lived tunnel would collect .part files). Data frames still
        # on their way find no upload and are ignored.
        upload = self.uploads.pop(req_id, None)
        if upload is not None:
            upload.abort()

    def keep_interrupting(self, req_id):
        """Repeat the SIGINT until its handler has run or the call ended. Python runs a handler
        between bytecodes: a signal that lands just before the call enters a blocking function
        (time.sleep) would otherwise wait for that function to return."""
        delay = 0.02
        while True:
            select.select([], [], [], delay)
            with self.state_lock:
                if self.current != req_id or self.interrupted == req_id:
                    return
                signal.pthread_kill(self.main, signal.SIGINT)
            delay = min(2 * delay, 0.5)

    def on_ping(self, req_id, payload):
        pass  # what matters is that the controller spoke (see _Channel.heard)

    def on_modules(self, req_id, records):
        self.finder.add(records)

    def on_reply(self, req_id, answer):
        with self.state_lock:
            slot = self.replies.pop(req_id, None)
        if slot is not None:
            slot[1] = answer
            slot[0].release()

    def on_put_open(self, req_id, args):
        try:
            self.uploads[req_id] = _Upload(args["path"], args["mode"])
        except Exception as exc:
            self.uploads[req_id] = None  # swallow the data frames already on their way
            self.send_error(req_id, exc)

    def on_put_data(self, req_id, payload):
        upload = self.uploads.get(req_id)
        if upload is None:
            return
        try:
            upload.write(payload)
        except Exception as exc:
            upload.abort()
            self.uploads[req_id] = None
            self.send_error(req_id, exc)

    def on_put_close(self, req_id, args):
        upload = self.uploads.pop(req_id, None)
        if upload is None:
            return
        try:
            result = upload.finish(args["size"], args["sha1"])
        except Exception as exc:
            self.send_error(req_id, exc)
        else:
            self.channel.send(Msg.RESULT, req_id, encode(result))

    def on_fetch(self, req_id, args):
        path = args["path"]
        stop = self.fetches[req_id] = [False]
        _thread.start_new_thread(self.stream_file, (req_id, path, stop))

    def stream_file(self, req_id, path, stop):
        import hashlib

        try:
            path = os.path.abspath(os.path.expanduser(path))
            sha1 = hashlib.sha1()
            size = 0
            with open(path, "rb") as f:
                while not stop[0]:
                    chunk = f.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    sha1.update(chunk)
                    size += len(chunk)
                    self.channel.send(Msg.FETCH_DATA, req_id, chunk)
            result = {"remote_path": path, "size": size, "sha1sum": sha1.hexdigest()}
            self.channel.send(Msg.RESULT, req_id, encode(result))
        except Exception as exc:
            self.send_error(req_id, exc)
        finally:
            self.fetches.pop(req_id, None)

    # -- relaying (see Msg.CHILD_START): the pump, sent with the first child, does the work -------

    def on_child_start(self, req_id, args):
        if self.pump is None:
            if args["pump"] is None:
                raise DecodeError("CHILD_START without the pump, which this agent has not got")
            namespace = {"__name__": "_chopsticks_nb_relay_pump", "__builtins__": __builtins__}
            exec(compile(args["pump"], "chopsticks_nb/_relay_pump.py", "exec"), namespace)
            self.pump = namespace["Pump"](self.channel.send, sys.modules[__name__])
        self.pump.start(req_id, args["argv"])

    def child_pump(self):
        if self.pump is None:
            raise DecodeError("a frame for a child, but no child was started")
        return self.pump

    def on_child_stdin(self, req_id, payload):
        self.child_pump().write(req_id, payload)

    def on_child_close(self, req_id, payload):
        self.child_pump().close_input(req_id)

    def on_child_signal(self, req_id, signum):
        self.child_pump().signal(req_id, signum)

    def on_child_read(self, req_id, count):
        self.child_pump().credit(req_id, count)


# ---------------------------------------------------------------------------------------------
# Rebuilding functions and classes that the controller sent as source (see _serialize.py).
# The pickle calls make_* to create the object, then fill_* with its globals and closure, so
# that functions referring to each other (or to themselves) can be rebuilt.


def _resolve(module, qualname):
    """The callable a call names, found as unpickling would find it (cheaper to send)."""
    found = sys.modules.get(module)
    if found is None:
        __import__(module)
        found = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _compile_source(source, filename, firstlineno):
    import __future__

    import linecache

    # Pad so tracebacks show the controller's line numbers, and let linecache show the lines.
    padded = "\n" * (firstlineno - 1) + source
    linecache.cache[filename] = (len(padded), None, padded.splitlines(True), filename)
    flags = getattr(getattr(__future__, "annotations", None), "compiler_flag", 0)
    return compile(padded, filename, "exec", flags, dont_inherit=True)


def make_function(source, filename, firstlineno, name, freevars, creation_globals):
    """Create a function from its source (with the globals its default values need at creation);
    its other globals and its closure cells are filled in later."""
    namespace = {"__builtins__": __builtins__, "__name__": "__main__"}
    namespace.update(creation_globals)
    if freevars:
        # An outer function whose parameters are the free variables recreates the closure cells.
        indented = "".join(
            "    " + line if line.strip() else line for line in source.splitlines(True)
        )
        source = "def __chopsticks_outer__(%s):\n%s\n    return %s\n" % (
            ", ".join(freevars),
            indented,
            name,
        )
        firstlineno -= 1
    exec(_compile_source(source, filename, max(firstlineno, 1)), namespace)
    if freevars:
        return namespace.pop("__chopsticks_outer__")(*[None] * len(freevars))
    return namespace[name]


def fill_function(func, state):
    globals_, closure, defaults, kwdefaults, qualname, module, attributes = state
    func.__globals__.update(globals_)
    for cell, value in zip(func.__closure__ or (), closure):
        _set_cell(cell, value)
    func.__defaults__ = defaults
    func.__kwdefaults__ = kwdefaults
    func.__qualname__ = qualname
    func.__module__ = module
    func.__dict__.update(attributes)


def _set_cell(cell, value):
    try:
        cell.cell_contents = value
    except AttributeError:  # Python 3.6: cells are read-only from Python
        import ctypes

        ctypes.pythonapi.PyCell_Set(ctypes.py_object(cell), ctypes.py_object(value))


def make_definition(source, filename, firstlineno, name, creation_globals):
    """Run a class (or decorated function) definition with the globals it needs at creation."""
    namespace = {"__builtins__": __builtins__, "__name__": "__main__"}
    namespace.update(creation_globals)
    exec(_compile_source(source, filename, firstlineno), namespace)
    return namespace[name]


def fill_class(cls, method_globals):
    """Give the class's methods the remaining globals they refer to."""
    for value in vars(cls).values():
        func = getattr(value, "__func__", getattr(value, "fget", value))
        if hasattr(func, "__globals__"):
            func.__globals__.update(method_globals)
            return


#: The persistent namespace of code run with run_cell (a notebook's %%remote cells).
CELL_NAMESPACE = {"__name__": "__main__"}


def run_cell(source, filename, names):
    """Run ``source`` in CELL_NAMESPACE, after binding ``names`` there (values sent along with
    the cell); return the value of its last line if that is an expression, else None."""
    import _ast  # not ast: it imports enum and contextlib, a first cell's largest part
    import linecache

    CELL_NAMESPACE.update(names)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = compile(source, filename, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    last = None
    if tree.body and isinstance(tree.body[-1], _ast.Expr):
        last = _ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), CELL_NAMESPACE)
    if last is not None:
        return eval(compile(last, filename, "eval"), CELL_NAMESPACE)
    return None


# Pickles name these helpers by a top-level alias of this module: unpickling
# "chopsticks_nb._agent.X" would import the whole chopsticks_nb package on the remote first.
ALIAS = "_chopsticks_nb_agent"
if __name__ in sys.modules:  # not when loaded by path for a test
    sys.modules.setdefault(ALIAS, sys.modules[__name__])
for _helper in (make_function, fill_function, make_definition, fill_class, run_cell):
    _helper.__module__ = ALIAS


def _qualified_name(cls):
    module = getattr(cls, "__module__", "builtins")
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "exceptions") else module + "." + name


MAX_NAME = 1024


def _cut(text, most):
    """``text``, cut to ``most`` characters with a notice of how many more there were."""
    if len(text) <= most:
        return text
    return "%s... (%d more characters)" % (text[:most], len(text) - most)


def _safe_str(exc):
    try:
        return str(exc)
    except Exception:
        return "<unprintable %s>" % type(exc).__name__


def _read_config(channel):
    message = channel.read_frame()
    if message is None or message[0] != Msg.CONFIG:
        os._exit(3)
    return load_payload(Msg.CONFIG, message[2])


def _cloudpickle_version():
    """The remote's cloudpickle version, read from its file without importing it, or re
    (None if absent): the handshake must stay cheap."""
    for entry in sys.path:
        try:
            with open(os.path.join(entry or ".", "cloudpickle", "__init__.py")) as f:
                lines = f.read().splitlines()
        except (IOError, OSError, ValueError):
            continue
        for line in lines:
            if line.startswith("__version__") and "=" in line:
                return line.split("=", 1)[1].strip().strip("\"'")
        return None
    return None


def _hello():
    return {
        "protocol": PROTOCOL_VERSION,
        "version": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "pid": os.getpid(),
        "executable": sys.executable,
        "platform": sys.platform,
        "hostname": os.uname()[1],
        "depth": DEPTH,
        "cloudpickle": _cloudpickle_version(),
    }


def serve():
    """Run the agent on the protocol pipes (fd 0 and 1), until the controller goes away."""
    global DEPTH, INHERITED_DEPTH_LIMIT
    # Keep the real pipes for the protocol; user code writing to fd 1 lands on stderr instead.
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process

    channel = _Channel(rfd, wfd, None)
    config = _read_config(channel)
    DEPTH = config["depth"]
    INHERITED_DEPTH_LIMIT = config["depth_limit"]
    channel.idle_timeout = config.get("idle_timeout")
    hello = encode(_hello())  # before the import hook: nothing may ask the controller yet
    agent = Agent(channel, config["poll"], config["bytes_in_place"])
    sys.stdout = _OutputStream(agent, Msg.STDOUT, "stdout")
    sys.stderr = _OutputStream(agent, Msg.STDERR, "stderr")
    sys.meta_path.append(agent.finder)
    signal.signal(signal.SIGINT, agent.on_sigint)

    with channel.lock:
        os.write(wfd, MAGIC)
    channel.send(Msg.HELLO, 0, hello)
    agent.reader = _thread.start_new_thread(agent.read_loop, ())
    agent.main_loop()
