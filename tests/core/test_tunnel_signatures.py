"""Every tunnel's signature names its options, inherited ones included (help(), IPython's ``?``
and tab completion read it); the kernel's completion is tested in tests/notebook."""

from __future__ import annotations

import inspect

import pytest

from chopsticks_nb.slurm import Srun
from chopsticks_nb.tunnel import (
    BaseTunnel,
    Docker,
    Local,
    Podman,
    SSHTunnel,
    SubprocessTunnel,
    Sudo,
)

BASE_OPTIONS = [
    name
    for name, param in inspect.signature(BaseTunnel).parameters.items()
    if param.kind is param.KEYWORD_ONLY
]


class Custom(SubprocessTunnel):
    """A user's own tunnel, as tunnel.py's docstring tells them to write it."""

    def __init__(self, host: str, *, flavour: str = "plain", **options: object) -> None:
        super().__init__(host, **options)  # type: ignore[arg-type]
        self.flavour = flavour


@pytest.mark.parametrize("tunnel", [Local, Sudo, SSHTunnel, Docker, Podman, Srun, Custom])
def test_a_tunnels_signature_names_every_option(tunnel: type[BaseTunnel]) -> None:
    params = inspect.signature(tunnel).parameters
    assert not [p for p in params.values() if p.kind is p.VAR_KEYWORD], params
    assert set(BASE_OPTIONS) >= {"connect_timeout", "call_timeout", "keepalive", "via"}
    assert [name for name in BASE_OPTIONS if name not in params] == []
    assert "python3" in params


def test_the_options_named_take_effect_and_others_are_refused() -> None:
    tunnel = Custom("c1", flavour="spicy", call_timeout=3, python3="/opt/py")
    assert (tunnel.flavour, tunnel.call_timeout, tunnel.python3) == ("spicy", 3, "/opt/py")
    with pytest.raises(TypeError, match="conect_timeout"):
        Local("l1", conect_timeout=3)  # type: ignore[call-arg]
