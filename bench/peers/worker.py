"""One contender in a process of its own, driven by the runner (bench/bench_peers.py).

Usage: python worker.py CONTENDER TRANSPORT_JSON

Reads one JSON request per line on stdin (``{"op": "round_trip", "args": {...}}``) and answers
one JSON line each (``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``) on the
stdout it started with; whatever the libraries print goes to stderr instead. Each contender has
its own process so that no library's threads, signal handlers or import hooks touch another's
measurements, and so that the original chopsticks can run on an older Python.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback


def main() -> None:
    name, transport = sys.argv[1], json.loads(sys.argv[2])
    # Answers go to a private copy of stdout; fd 1 (and print) now lead to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from contenders import CONTENDERS

    contender = CONTENDERS[name](transport)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "info":
                result = contender.info()
            else:
                gc.collect()
                result = getattr(contender, op)(**request.get("args", {}))
            answer = {"ok": True, "result": result}
        except Exception as exc:
            answer = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        answers.write(json.dumps(answer) + "\n")
    shutdown = getattr(contender, "shutdown", None)
    if shutdown is not None:
        shutdown()


if __name__ == "__main__":
    main()
