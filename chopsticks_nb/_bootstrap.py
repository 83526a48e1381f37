"""Stage 1 of a connection: the short command line that loads the agent on the far side.

The far side runs ``python3 -c STAGE1``; STAGE1 reads exactly the compressed agent source from
stdin, whatever the fragmentation, and serves. It is valid Python 2 so that an old interpreter
answers with a readable refusal instead of a syntax error.

When the far side is this very interpreter (a ``Local`` tunnel), compiling the agent there again
is wasted work (the largest part of an agent's start): the controller also sends the agent's
code object compiled here (:func:`compiled_agent`) after the source, and passes its length as
the one argument after STAGE1. STAGE1 loads it if its bytecode magic number equals ours, and
otherwise ignores it (it compiles the source, as everywhere else).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import marshal
import sys
import zlib

from . import _agent, _speedups

COMPILED = _speedups.enabled("compiled")

#: Exit statuses of stage 1, so the controller can explain a failed start.
EXIT_TOO_OLD = 86
EXIT_EOF = 87

#: The agent's file name in remote tracebacks.
AGENT_FILENAME = "chopsticks_nb/_agent.py"

# The source stays compressed on the far side (SOURCE_ZLIB) unless it is compiled there: only a
# tunnel started from the agent needs it (agent_source below). A compiled agent goes
# uncompressed, and its start then imports no zlib (an extension module: 0.35 ms of a start).
_STAGE1 = """\
import sys
if sys.version_info<(3,6):sys.stderr.write("chopsticks_nb: the agent needs Python 3.6 or newer, \
this is Python %%d.%%d\\n"%%sys.version_info[:2]);sys.exit(%(too_old)d)
import os
def r(n):
 b=bytearray()
 while len(b)<n:
  c=os.read(0,n-len(b))
  if not c:sys.exit(%(eof)d)
  b+=c
 return bytes(b)
n=%(length)d;b=r(n);m=type(sys)("chopsticks_nb._agent");sys.modules[m.__name__]=m;c=None
if len(sys.argv)>1:
 k=r(int(sys.argv[1]))
 if getattr(sys.modules.get("_frozen_importlib_external"),"MAGIC_NUMBER",0)==bytes.fromhex("\
%(magic)s"):import marshal;c=marshal.loads(k)
 del sys.argv[1:]
if c is None:import zlib;c=compile(zlib.decompress(b),"%(filename)s","exec")
exec(c,m.__dict__);m.SOURCE_ZLIB=b;m.serve()"""


def agent_source() -> bytes:
    """The agent's source: from its file here, or as received when this process is an agent."""
    if _agent.SOURCE is None and _agent.SOURCE_ZLIB is not None:
        _agent.SOURCE = zlib.decompress(_agent.SOURCE_ZLIB)
    source = _agent.SOURCE
    if source is None:
        source = defer_later_section(inspect.getsource(_agent)).encode("utf-8")
    return source


def defer_later_section(source: str) -> str:
    """The agent's source with its LATER section (the encoders of the types outside the core)
    turned into a string the agent compiles the first time it needs them (_agent.LATER); the
    lines after it keep their numbers, for remote tracebacks."""
    begin = source.index("# -- BEGIN LATER")
    end = source.index("# -- END LATER")
    section = source[begin:end]
    line = source.count("\n", 0, begin) + 1
    replacement = f"LATER = {(line, section)!r}" + "\n" * section.count("\n")
    return source[:begin] + replacement + source[end:]


@functools.lru_cache(maxsize=1)
def _compressed_agent() -> bytes:
    if _agent.SOURCE_ZLIB is not None:
        return _agent.SOURCE_ZLIB  # this process is an agent: pass on what it received
    return zlib.compress(agent_source(), 9)


def stage1() -> str:
    """The ``-c`` program that loads the agent."""
    return _STAGE1 % {
        "length": len(_compressed_agent()),
        "too_old": EXIT_TOO_OLD,
        "eof": EXIT_EOF,
        "magic": importlib.util.MAGIC_NUMBER.hex(),
        "filename": AGENT_FILENAME,
    }


def compiled_agent_for(python: str) -> bytes | None:
    """The agent compiled here, if ``python`` is this very interpreter (the ``compiled``
    speed-up, see _speedups: compiling the agent is most of an agent's start); else None."""
    if python != sys.executable or not COMPILED:
        return None
    return compiled_agent()


@functools.lru_cache(maxsize=1)
def compiled_agent() -> bytes:
    """The agent compiled by this interpreter, for a far side that runs this same interpreter."""
    return compile_for_stage1(agent_source())


def compile_for_stage1(source: bytes) -> bytes:
    """``source`` compiled here, as STAGE1 reads it: the marshal of the code, uncompressed (it
    goes through a local pipe only, where decompressing took a third of loading it: 0.5 ms
    of each agent's start)."""
    code = compile(source, AGENT_FILENAME, "exec", dont_inherit=True)
    return marshal.dumps(code)


def first_bytes(config: dict[str, object], compiled: bytes | None = None) -> bytes:
    """What the controller writes to a fresh pipe: the agent (and its code object compiled here,
    when STAGE1 was given its length), then its configuration."""
    config_frame = _agent.frame(_agent.Msg.CONFIG, 0, _agent.encode(config))
    return _compressed_agent() + (compiled or b"") + config_frame
