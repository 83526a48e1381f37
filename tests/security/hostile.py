"""HostileTunnel: a real tunnel whose far side is hostile_agent.py instead of the agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chopsticks_nb._agent import PROTOCOL_VERSION
from chopsticks_nb.tunnel import SubprocessTunnel

__all__ = ["HONEST_HELLO", "HOSTILE_AGENT", "HostileTunnel"]

HOSTILE_AGENT = Path(__file__).with_name("hostile_agent.py")

#: A handshake of the right shape (as a real agent's).
HONEST_HELLO = {
    "protocol": PROTOCOL_VERSION,
    "version": [3, 11, 0],
    "implementation": "cpython",
    "pid": 1,
    "executable": "/usr/bin/python3",
    "platform": "linux",
    "hostname": "hostile",
    "depth": 1,
    "cloudpickle": None,
}


class HostileTunnel(SubprocessTunnel):
    """Runs ``hostile_agent.py SCENARIO ARGS`` with this interpreter, through the same
    Connection, broker and bootstrap bytes as a ``Local`` tunnel (see hostile_agent.py)."""

    python3 = sys.executable

    def __init__(self, name: str, scenario: str, **args: Any) -> None:
        tunnel_options = ("connect_timeout", "keepalive", "serve", "deny")
        options = {k: args.pop(k) for k in list(args) if k in tunnel_options}
        super().__init__(name, output=lambda stream, text: None, **options)
        self.scenario = scenario
        self.args = args

    def cmd_args(self) -> list[str]:
        return [
            sys.executable,
            str(HOSTILE_AGENT),
            self.scenario,
            json.dumps(self.args),
            *self.python_args()[1:],  # "-c STAGE1": the hostile side reads its length there
        ]
