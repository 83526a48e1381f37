"""Time and peak RSS of receiving one large bytes result, for comparing two checkouts.

Usage: python bench/large_result.py SIZE_MIB [CHECKOUT]

Runs in this process a Local call returning SIZE_MIB MiB of bytes, with the chopsticks_nb of
CHECKOUT (default: this one), and prints the seconds it took and the controller's peak RSS
growth (ru_maxrss, so run it once per process). bench_core.py (g) runs it and sets it against
``cat``; given CHECKOUT, it measures an older checkout the same way (bench/README.md).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

size_mib = int(sys.argv[1])
checkout = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parents[1])
sys.path.insert(0, str(checkout))

from chopsticks_nb.tunnel import Local  # noqa: E402 - from the checkout named above

size = size_mib * 1024 * 1024
with Local("large") as tunnel:
    tunnel.call(bytes, 10)
    before = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    start = time.perf_counter()
    value = tunnel.call(bytes, size)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert len(value) == size
print(
    json.dumps(
        {
            "checkout": str(checkout),
            "size_mib": size_mib,
            "seconds": seconds,
            "peak_rss_growth_mib": (peak - before) / 2**20,
        }
    )
)
