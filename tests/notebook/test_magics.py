"""%remote / %%remote in an in-process IPython shell over real Local tunnels: arguments,
usage errors, targets, namespaces, shipped names, -o, --no-raise, --quiet, --timeout."""

from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from nbhelpers import run

from chopsticks_nb.errors import GroupError
from chopsticks_nb.group import Group
from chopsticks_nb.notebook import RemoteMagics, cell_names
from chopsticks_nb.notebook.magics import RemoteCellSyntaxError
from chopsticks_nb.result import ErrorResult, GroupResult
from chopsticks_nb.tunnel import Local
from fixtures.sshd import SSHHosts


@pytest.fixture
def pair(shell: InteractiveShell) -> InteractiveShell:
    """The shell with ``g``, a Group of two Local hosts."""
    run(shell, "from chopsticks_nb import Group, Local\ng = Group([Local('a'), Local('b')])")
    return shell


def test_load_ext_registers_and_unload_ext_removes_the_magics(ipython: InteractiveShell) -> None:
    magics = ipython.magics_manager.magics
    assert "remote" not in magics["cell"]
    ipython.run_line_magic("load_ext", "chopsticks_nb")
    try:
        assert "remote" in magics["cell"] and "remote" in magics["line"]
        assert isinstance(ipython.magics_manager.registry["RemoteMagics"], RemoteMagics)
        ipython.run_line_magic("load_ext", "chopsticks_nb")  # again: a no-op
    finally:
        ipython.run_line_magic("unload_ext", "chopsticks_nb")
    assert "remote" not in magics["cell"] and "remote" not in magics["line"]
    assert "RemoteMagics" not in ipython.magics_manager.registry


def test_cell_value_is_a_group_result_and_namespaces_persist(pair: InteractiveShell) -> None:
    result = run(pair, "%%remote g\nimport os\npid = os.getpid()\npid")
    assert isinstance(result, GroupResult) and list(result) == ["a", "b"]
    assert result["a"] != result["b"]
    # A later cell on the same hosts sees the names the first one defined, per host.
    again = run(pair, "%%remote g\npid")
    assert again == result
    assert run(pair, "%%remote g\nx = 1") == {"a": None, "b": None}  # no last expression


def test_names_used_from_the_notebook_are_shipped(pair: InteractiveShell) -> None:
    run(
        pair,
        "import json\nLIMIT = 3\n"
        "def clamp(v):\n    return min(v, LIMIT)\n"
        "class Box:\n    def __init__(self, v):\n        self.v = clamp(v)\n"
        "unused = object()",
    )
    result = run(pair, "%%remote g\njson.dumps(Box(10).v), clamp(1)")
    assert result == {"a": ("3", 1), "b": ("3", 1)}


def test_cell_names_skip_builtins_ipython_history_and_unknown_names() -> None:
    namespace = {
        "x": 1,
        "len": len,
        "_": 5,
        "_i3": "src",
        "_7": 2,
        "__": 0,
        "get_ipython": 0,
        "f": print,
    }
    found = cell_names(
        "y = x + len(_) + _7 + __ + get_ipython + undefined\nf", namespace, hidden={"get_ipython"}
    )
    assert found == {"x": 1, "f": print}
    with pytest.raises(SyntaxError):
        cell_names("def broken(:", {})


def test_line_form_evaluates_one_expression(pair: InteractiveShell) -> None:
    assert run(pair, "%remote g 6 * 7") == {"a": 42, "b": 42}
    assert run(pair, "%remote g -o stored 'x' + \"y z\"") == {"a": "xy z", "b": "xy z"}
    assert pair.user_ns["stored"] == {"a": "xy z", "b": "xy z"}
    assert run(pair, "%remote --quiet g -- -1") == {"a": -1, "b": -1}
    assert run(pair, "%remote g --timeout=30 -oz abs(-2)") == {"a": 2, "b": 2}
    assert pair.user_ns["z"] == {"a": 2, "b": 2}


def test_output_option_stores_the_result(pair: InteractiveShell) -> None:
    result = run(pair, "%%remote g -o answer\n40 + 2")
    assert pair.user_ns["answer"] is result


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%remote nowhere\n1", r"no variable 'nowhere' in the notebook.*Group, a tunnel"),
        ("%%remote number\n1", r"'number' is an int: TARGET names a Group"),
        ("%%remote ['a', 1]\n1", r"must be a list of host names written as strings"),
        ("%%remote ['a', 'b'\n1", r"is not closed"),
        ("%%remote empty\n1", r"'empty' has no hosts"),
        ("%%remote g.missing\n1", r"no attribute 'missing'"),
        ("%%remote g[0]\n1", r"TARGET must be a variable name"),
        ("%%remote g --bogus\n1", r"unrecognized arguments: --bogus\nusage: %%remote \[-o NAME\]"),
        ("%%remote\n1", r"the following arguments are required: target"),
        ("%%remote g --timeout soon\n1", r"invalid float value: 'soon'"),
        ("%%remote g --timeout -1\n1", r"--timeout needs a positive number"),
        ("%%remote g -o 2x\n1", r"-o needs a variable name"),
        ("%remote g", r"%remote needs an expression"),
        ("%remote --bogus g 1", r"unknown option '--bogus'"),
        ("%%remote names\n1", r"'names': invalid host name '-oProxyCommand=x'"),
    ],
)
def test_bad_arguments_and_targets_are_usage_errors(
    pair: InteractiveShell, cell: str, message: str
) -> None:
    run(pair, "number = 3\nempty = Group([])\nnames = ['-oProxyCommand=x']")
    with pytest.raises(UsageError, match=message):
        run(pair, cell)


def test_help_is_the_docstring_with_the_options(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell("%%remote?")
    shown = capsys.readouterr().out
    for text in (
        "Run Python on several hosts at once",
        "%%remote group",
        "-o NAME",
        "--timeout SECONDS",
        "--no-raise",
        "--quiet",
        "group.exec(code, names)",
    ):
        assert text in shown


def test_a_failed_host_fails_the_cell_after_showing_every_result(
    pair: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    run(pair, "a_only = g['a']")
    run(pair, "%%remote a_only\nbroken = True")
    cell = (
        "%%remote g -o partial\nif globals().get('broken'):\n    raise ValueError('no <good>')\n1"
    )
    with pytest.raises(GroupError) as info:
        run(pair, cell)
    error = info.value
    assert list(error.failures) == ["a"]
    assert str(error).startswith("1 of 2 hosts failed: a")
    # Outside a kernel (no HTML table) the remote traceback is in the error itself.
    assert "ValueError: no <good>" in str(error) and "<remote-cell-" in str(error)
    shown = capsys.readouterr().out
    assert "'b': 1" in shown  # every host's result was displayed first
    partial = pair.user_ns["partial"]
    assert partial["b"] == 1 and isinstance(partial["a"], ErrorResult)
    assert partial["a"].status == "error"


def test_no_raise_returns_the_result_with_its_failures(pair: InteractiveShell) -> None:
    result = run(pair, "%%remote g --no-raise\n1 / 0")
    assert not result.ok
    assert {error.msg for _, error in result.failures()} == {"ZeroDivisionError: division by zero"}


def test_syntax_errors_are_raised_here_before_anything_is_sent(pair: InteractiveShell) -> None:
    with pytest.raises(RemoteCellSyntaxError) as info:
        run(pair, "%%remote g\nx = 1\ndef broken(:\n    pass")
    assert info.value.error.lineno == 3  # the editor's line: the magic's own is line 1
    assert info.value._render_traceback_()[-1] == "SyntaxError: invalid syntax"
    assert not any(tunnel.connected for tunnel in pair.user_ns["g"])


def test_a_cell_of_statements_shows_its_summary_not_a_table_of_none(
    pair: InteractiveShell,
) -> None:
    result = run(pair, "%%remote g\nx = 1")
    assert isinstance(result, GroupResult) and result == {"a": None, "b": None}
    assert re.fullmatch(r"2 hosts: 2 ok in \d+ ms", repr(result))
    assert "<table" not in result._repr_html_()
    assert "<table" in run(pair, "%%remote g\nx")._repr_html_()  # an expression: the table


def test_timeout_cancels_slow_hosts(pair: InteractiveShell) -> None:
    result = run(pair, "%%remote g --timeout 0.5 --no-raise -q\nimport time\ntime.sleep(30)")
    assert {error.status for _, error in result.failures()} == {"timeout"}
    assert run(pair, "%remote g 'still usable'") == {"a": "still usable", "b": "still usable"}


def test_live_output_is_printed_with_host_prefixes_and_quiet_drops_it(
    pair: InteractiveShell, capfd: pytest.CaptureFixture[str]
) -> None:
    run(pair, "%%remote g\nimport sys\nprint('to out')\nprint('to err', file=sys.stderr)")
    out, err = capfd.readouterr()
    assert "[a] to out" in out and "[b] to out" in out
    assert "[a] to err" in err and "[b] to err" in err
    run(pair, "%%remote g -q\nprint('hushed')")
    out, err = capfd.readouterr()
    assert "hushed" not in out + err


def test_targets_tunnel_list_and_anything_with_a_group(pair: InteractiveShell) -> None:
    run(
        pair,
        "one = g['b']\nmixed = [g['a'], Local('c')]\n"
        "class Holder:\n    group = Group([g['a']])\nholder = Holder()",
    )
    assert list(run(pair, "%remote one 1")) == ["b"]
    assert list(run(pair, "%remote mixed 1")) == ["a", "c"]
    assert list(run(pair, "%remote holder 1")) == ["a"]
    assert list(run(pair, "%remote holder.group 1")) == ["a"]


def test_a_literal_list_of_host_names_is_a_target(
    shell: InteractiveShell, sshd_hosts: SSHHosts
) -> None:
    shell.run_line_magic("config", f"RemoteMagics.ssh_config = {str(sshd_hosts.config_path)!r}")
    try:
        cell = run(shell, '%%remote ["web1", "web2"] -q\nimport os\nmine = os.getpid()\nmine')
        assert list(cell) == ["web1", "web2"] and cell.ok, cell
        line = run(shell, "%remote ( 'web2' , 'web1' ) --timeout 30 mine")
        assert line == {"web2": cell["web2"], "web1": cell["web1"]}  # the same tunnels
    finally:
        shell.run_line_magic("config", "RemoteMagics.ssh_config = None")


def test_host_names_become_ssh_tunnels_that_are_reused(
    shell: InteractiveShell, sshd_hosts: SSHHosts
) -> None:
    shell.run_line_magic("config", f"RemoteMagics.ssh_config = {str(sshd_hosts.config_path)!r}")
    try:
        run(shell, "hosts = ['web1', 'web2']")
        first = run(shell, "%%remote hosts -q\nimport os\nmine = os.getpid()\nmine")
        assert list(first) == ["web1", "web2"] and first.ok, first
        assert run(shell, "%remote hosts -q mine") == first  # same connections, same namespaces
        magics = shell.magics_manager.registry["RemoteMagics"]
        assert len(magics._named) == 2
    finally:
        shell.run_line_magic("config", "RemoteMagics.ssh_config = None")


def test_magic_is_thin_group_exec_does_the_same(pair: InteractiveShell) -> None:
    group: Group = pair.user_ns["g"]
    run(pair, "%%remote g\nshared = 5")
    assert group.exec("shared * 2") == {"a": 10, "b": 10}
    assert group.exec("shared + n", {"n": 1}) == {"a": 6, "b": 6}
    assert isinstance(group["a"], Local)


def test_a_name_that_cannot_travel_is_named(pair: InteractiveShell) -> None:
    run(pair, "import threading\nlock = threading.Lock()")
    result = run(pair, "%%remote g --no-raise -q\nlock")
    assert {e.msg for _, e in result.failures()} == {
        "cannot send 'lock' (_thread.lock) from the notebook: cannot pickle '_thread.lock' object"
    }
    assert {e.status for _, e in result.failures()} == {"failed"}
