"""The switches of the measured speed-ups: each lives in a module of its own and can be off.

A speed-up makes something faster without changing what it does, so the library works the same
with any of them off; the core tests also run with all of them off (``scripts/test.sh``).
``CHOPSTICKS_NB_SPEEDUPS_OFF`` names the ones to turn off, separated by commas, or ``all``.
What each one saves is measured in bench/README.md.

=================  ===============================================================================
``lend``           large bytes are lent to the agent's pipe by vmsplice, not copied (_lending)
``align``          large pieces copied into the pipe are lined up to 64 bytes first (_lending)
``callers_read``   a caller waiting for its answer reads it from the pipe itself (_caller_reads)
``poll``           both ends poll briefly before sleeping while answers come fast (_caller_reads)
``by_name``        importable callables and plain arguments skip the source pickler (_call_frames)
``blobs``          large bytes arguments follow the pickle, read straight into place (_call_frames)
``codec_first``    a connection's first call goes in the codec: the agent starts without pickle
``compiled``       a Local agent is sent compiled by this very interpreter, and the modules it
                   imports too (_bootstrap, _modserver)
``push_modules``   the user's module goes with a call of its function, unasked (_call_frames)
``bytes_in_place`` a large bytes result is written uncopied and read into the object it becomes
                   (_agent.encode_result, _bytes_in_place)
=================  ===============================================================================
"""

from __future__ import annotations

import os

__all__ = ["NAMES", "enabled"]

NAMES = frozenset(
    (
        "lend",
        "align",
        "callers_read",
        "poll",
        "by_name",
        "blobs",
        "codec_first",
        "compiled",
        "push_modules",
        "bytes_in_place",
    )
)


def _off() -> frozenset[str]:
    words = {w.strip() for w in os.environ.get("CHOPSTICKS_NB_SPEEDUPS_OFF", "").split(",")}
    words.discard("")
    if "all" in words:
        return NAMES
    unknown = words - NAMES
    if unknown:
        raise ValueError(
            f"CHOPSTICKS_NB_SPEEDUPS_OFF names unknown speed-ups {sorted(unknown)}; "
            f"known: {', '.join(sorted(NAMES))} or all"
        )
    return frozenset(words)


_OFF = _off()


def enabled(name: str) -> bool:
    """Whether the speed-up ``name`` is on (as the environment said when this was imported)."""
    assert name in NAMES, name
    return name not in _OFF
