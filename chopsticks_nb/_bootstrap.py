"""Stage 1 of a connection: the short command line that loads the agent on the far side.

The far side runs ``python3 -c STAGE1``; STAGE1 reads exactly the compressed agent source from
stdin, whatever the fragmentation, and serves. It is valid Python 2 so that an old interpreter
answers with a readable refusal instead of a syntax error.
"""

from __future__ import annotations

import functools
import inspect
import zlib

from . import _agent

#: Exit statuses of stage 1, so the controller can explain a failed start.
EXIT_TOO_OLD = 86
EXIT_EOF = 87

_STAGE1 = """\
import sys
if sys.version_info<(3,6):sys.stderr.write("chopsticks_nb: the agent needs Python 3.6 or newer, \
this is Python %%d.%%d\\n"%%sys.version_info[:2]);sys.exit(%(too_old)d)
import os,types,zlib
n=%(length)d;b=bytearray()
while len(b)<n:
 c=os.read(0,n-len(b))
 if not c:sys.exit(%(eof)d)
 b+=c
s=zlib.decompress(bytes(b));m=types.ModuleType("chopsticks_nb._agent");sys.modules[m.__name__]=m
exec(compile(s,"chopsticks_nb/_agent.py","exec"),m.__dict__);m.SOURCE=s;m.serve()"""


def agent_source() -> bytes:
    """The agent's source: from its file here, or as received when this process is an agent."""
    source = _agent.SOURCE
    if source is None:
        source = inspect.getsource(_agent).encode("utf-8")
    return source


@functools.lru_cache(maxsize=1)
def _compressed_agent() -> bytes:
    return zlib.compress(agent_source(), 9)


def stage1() -> str:
    """The ``-c`` program that loads the agent."""
    return _STAGE1 % {"length": len(_compressed_agent()), "too_old": EXIT_TOO_OLD, "eof": EXIT_EOF}


def first_bytes(config: dict[str, object]) -> bytes:
    """What the controller writes to a fresh pipe: the agent, then its configuration."""
    return _compressed_agent() + _agent.frame(_agent.Msg.CONFIG, 0, _agent.encode(config))
