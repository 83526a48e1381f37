"""Results of real group operations: grouping on 32 Local hosts, reruns where it failed,
retries of unreachable hosts, and the remote output kept on the result."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import result_funcs

from chopsticks_nb.errors import ConnectError, ConnectionLost, GroupInterrupted
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult, HostDone
from chopsticks_nb.tunnel import Local
from fixtures.interrupts import sigint_after
from fixtures.system import process_alive, wait_until

ODD = {"n05", "n17", "n30"}  # return another value
BROKEN = {"n11", "n23"}  # raise
CONFIG = "listen 80\nworkers 4\nlog /var/log/app\n"


def flaky_python(tmp_path: Path, name: str, failures: int) -> str:
    """An "interpreter" that exits with an error the first ``failures`` times it is started
    (the host is unreachable), then runs this Python: a real failed start, then a real agent."""
    count = tmp_path / f"{name}.starts"
    script = tmp_path / f"{name}-python"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat '{count}' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '{count}'\n"
        f'if [ "$n" -le {failures} ]; then echo "connection refused (start $n)" >&2; exit 1; fi\n'
        f"exec '{sys.executable}' \"$@\"\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Group]:
    """32 Local hosts n00..n31, each knowing its name (HOST) and a config file of its own."""
    group = Group([Local(f"n{i:02d}", output=lambda *_: None) for i in range(32)])
    try:
        for tunnel in group:
            text = CONFIG.replace("workers 4", "workers 8") if tunnel.host in ODD else CONFIG
            (tmp_path / f"{tunnel.host}.conf").write_text(text)
            tunnel.exec(f"HOST = {tunnel.host!r}; CONFDIR = {str(tmp_path)!r}")
        yield group
    finally:
        group.close()


def test_32_hosts_group_by_value_with_outliers_first(fleet: Group) -> None:
    result = fleet.exec(
        "import os, sys\n"
        "print('starting'); print('done')\n"
        "if HOST in ('n11', 'n23'): raise KeyError('missing ' + HOST)\n"
        "if HOST == 'n30': print('odd one', file=sys.stderr)\n"
        "'odd' if HOST in ('n05', 'n17', 'n30') else 'ok'"
    )
    groups = result.groups()
    assert [len(hosts) for _, hosts in groups] == [2, 3, 27]
    failures, odd, ok = groups
    assert isinstance(failures[0], ErrorResult) and failures[1] == ["n11", "n23"]
    assert failures[0].remote_type == "KeyError"  # "missing n11" and "missing n23" group
    assert odd == ("odd", ["n05", "n17", "n30"]) and ok[0] == "ok"

    text = repr(result)
    assert "  2 hosts n[11,23]: error: KeyError: 'missing {host}'" in text
    assert "  3 hosts n[05,17,30]: 'odd'" in text
    assert "27 hosts n[00-04,06-10,12-16,18-22,24-29,31]: 'ok'" in text
    assert "31 hosts n[00-29,31] printed the same 2 lines" in text
    assert "1 host n30 printed 3 lines" in text
    assert result.output("n30") == "starting\ndone\nodd one\n"
    page = result._repr_html_()
    assert "every host (32)" in page and page.count("<code>n30</code>") == 1

    # Run again where it failed: the same tunnels, still connected (the same agents).
    pids = {tunnel.host: tunnel.remote_info["pid"] for tunnel in fleet}
    again = result.failed
    assert again.hosts == ["n11", "n23"]
    assert all(again[host] is fleet[host] for host in again.hosts)
    rerun = again.exec("import os; os.getpid()")
    assert rerun == {host: pids[host] for host in ("n11", "n23")}
    assert result.succeeded.hosts == [t.host for t in fleet if t.host not in BROKEN]


def test_32_hosts_configs_diffed_against_the_majority(fleet: Group) -> None:
    result = fleet.exec("open(f'{CONFDIR}/{HOST}.conf').read()")
    diff = result.diff()
    assert len(diff.majority_hosts) == 29 and diff.majority == CONFIG
    (odd,) = diff.groups
    assert odd.hosts == sorted(ODD)
    assert odd.lines[:2] == ["--- n[00-04,06-16,18-29,31] (29 hosts)", "+++ n[05,17,30] (3 hosts)"]
    assert "-workers 4" in odd.lines and "+workers 8" in odd.lines

    facts = fleet.exec("{'host': 'same', 'workers': 8 if HOST in ('n05', 'n17', 'n30') else 4}")
    frame = facts.to_pandas()
    assert len(frame) == 32
    assert list(frame.columns) == [
        "host",
        "status",
        "value.host",
        "workers",
        "remote_type",
        "message",
        "elapsed",
    ]
    assert sorted(frame.loc[frame["workers"] == 8, "host"]) == sorted(ODD)
    (changed,) = facts.diff().groups
    assert changed.keys == ["workers"]


def test_a_result_does_not_keep_a_deleted_groups_tunnels_alive() -> None:
    """As chopsticks 1.0 documents, deleting a Group disconnects it, even while a result of it
    is kept (a notebook keeps every shown result as Out[n])."""
    group = Group([Local("a"), Local("b")])
    result = group.call(result_funcs.fail_always, "no")
    assert result.failed.hosts == ["a", "b"]
    pid = group["a"].remote_info["pid"]
    tunnel = weakref.ref(group["a"])
    del group
    gc.collect()
    assert tunnel() is None
    wait_until(lambda: not process_alive(pid), timeout=10, what="the agent to exit")
    with pytest.raises(ValueError, match=r"the tunnels of a,b are gone .*keep the Group"):
        result.failed  # noqa: B018


def test_remote_output_is_kept_and_still_reaches_the_handlers(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    quiet = Local("quiet", output=lambda stream, text: seen.append((stream, text)))
    loud = Local("loud", output=lambda *_: None)
    group = Group([quiet, loud])
    routed: list[tuple[str, str, str]] = []
    try:
        # No output= given: each tunnel's own handler still gets its host's output.
        result = group.exec("import sys\nprint('hello'); print('oops', file=sys.stderr)\n1")
        assert "".join(text for _, text in seen) == "hello\noops\n"
        assert result.output("quiet") == "hello\noops\n" == result.output("loud")
        assert result.output("quiet", "stderr") == "oops\n"
        # With output=, that handler gets everything, however much, and the result keeps
        # the first and last lines.
        many = group.exec(
            "for i in range(5000): print('line', i)\n", output=lambda *piece: routed.append(piece)
        )
    finally:
        group.close()
    assert sum(text.count("\n") for host, _, text in routed if host == "loud") == 5000
    kept = many.output("loud")
    assert kept.startswith("line 0\n") and kept.endswith("line 4999\n")
    assert "... 4,900 more lines hidden; the last 20:\n" in kept and kept.count("\n") < 130
    assert "2 hosts loud,quiet printed the same 5000 lines" in repr(many)


def test_a_remote_progress_bar_is_kept_as_its_last_state() -> None:
    """A host redraws a line with \\r 200,000 times: the result keeps the line as a terminal
    last showed it, beside the complete lines."""
    group = Group([Local("bar", output=lambda *_: None)])
    try:
        result = group.exec(
            "import sys\n"
            "print('start')\n"
            "for i in range(200_000):\n"
            "    sys.stdout.write(f'\\r{i // 2000}% done')\n"
            "sys.stdout.write('\\rfinished\\n')\n"
            "sys.stdout.write('no newline at the end')\n"
        )
    finally:
        group.close()
    assert result.output("bar") == "start\nfinished\nno newline at the end\n"


def test_unreachable_hosts_are_retried_until_they_answer(tmp_path: Path) -> None:
    group = Group(
        [
            Local("steady"),
            Local("flaky", python3=flaky_python(tmp_path, "flaky", failures=2)),
            Local("down", python3=flaky_python(tmp_path, "down", failures=99)),
        ]
    )
    events: list[HostDone] = []
    try:
        result = group.run(os.getpid, retries=2, retry_delay=0.05, progress=events.append)
    finally:
        group.close()
    assert isinstance(result["steady"], int) and isinstance(result["flaky"], int)
    assert result.attempts == {"steady": 1, "flaky": 3, "down": 3}
    down = result["down"]
    assert isinstance(down, ErrorResult) and down.status == "unreachable"
    assert isinstance(down.exception, ConnectError) and "start 3" in down.msg
    assert sorted(event.host for event in events) == ["down", "flaky", "steady"]
    assert [event.done for event in events] == [1, 2, 3]
    # Without retries, one attempt.
    once = Group([Local("later", python3=flaky_python(tmp_path, "later", failures=1))])
    with contextlib.closing(once):
        first = once.call(os.getpid)
        assert first.attempts == {"later": 1} and first["later"].status == "unreachable"
        assert isinstance(once.call(os.getpid)["later"], int)  # it answers now


def test_a_lost_connection_is_retried_but_remote_errors_and_timeouts_are_not(
    tmp_path: Path,
) -> None:
    group = Group([Local("a")])
    try:
        lost = group.call(result_funcs.die_once, str(tmp_path / "died"), retries=1, retry_delay=0)
        assert lost == {"a": "survived"} and lost.attempts == {"a": 2}
        raised = group.call(result_funcs.fail_always, "no", retries=3, retry_delay=0)
        assert raised.attempts == {"a": 1} and raised["a"].status == "error"
        slow = group.run(result_funcs.nap, (30,), timeout=0.5, retries=3, retry_delay=0)
        assert slow.attempts == {"a": 1} and slow["a"].status == "timeout"
        # Without retries, the loss is the host's outcome: a ConnectionLost.
        once = group.call(result_funcs.die_once, str(tmp_path / "died-again"))
    finally:
        group.close()
    assert once.attempts == {"a": 1} and once["a"].status == "lost"
    assert isinstance(once["a"].exception, ConnectionLost)


def test_puts_and_fetches_are_retried_too(tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"payload\n" * 1000)
    group = Group(
        [
            Local("steady"),
            Local("flaky", python3=flaky_python(tmp_path, "flaky", failures=1)),
        ]
    )
    with contextlib.closing(group):
        put = group.put(source, str(tmp_path / "put.txt"), retries=1, retry_delay=0)
        assert put.ok and put.attempts == {"steady": 1, "flaky": 2}
        group.close()  # the next connection of flaky starts: it fails once more
        (tmp_path / "flaky.starts").write_text("0")
        fetched = group.fetch(str(source), str(tmp_path / "got-{host}"), retries=1, retry_delay=0)
    assert fetched.ok and fetched.attempts == {"steady": 1, "flaky": 2}
    assert (tmp_path / "got-flaky").read_bytes() == source.read_bytes()


def test_no_retry_starts_after_the_deadline(tmp_path: Path) -> None:
    group = Group([Local("down", python3=flaky_python(tmp_path, "down", failures=99))])
    with contextlib.closing(group):
        result = group.run(os.getpid, timeout=1, retries=5, retry_delay=30)
    assert result.attempts == {"down": 1} and result["down"].status == "unreachable"


def test_ctrl_c_while_a_host_waits_for_its_retry(tmp_path: Path) -> None:
    """The waiting host keeps its last failure; the host still running is interrupted."""
    group = Group(
        [
            Local("busy"),
            Local("down", python3=flaky_python(tmp_path, "down", failures=99)),
        ]
    )
    with contextlib.closing(group):
        group["busy"].connect()
        with sigint_after(1.0), pytest.raises(GroupInterrupted) as caught:
            group.run(result_funcs.nap, (30,), retries=3, retry_delay=30)
        partial = caught.value.result
        assert partial.attempts == {"busy": 1, "down": 1}
        assert partial["down"].status == "unreachable" and partial["busy"].status == "interrupted"
        assert sorted(partial.failed.hosts) == ["busy", "down"]


@pytest.mark.parametrize(
    ("retries", "retry_delay"), [(-1, 1.0), (1.5, 1.0), (True, 1.0), (1, -1.0), (1, float("nan"))]
)
def test_bad_retry_options_are_refused_before_anything_starts(
    retries: int, retry_delay: float
) -> None:
    group = Group([Local("never")])
    with pytest.raises(ValueError, match="retr"):
        group.call(os.getpid, retries=retries, retry_delay=retry_delay)
    assert not group["never"].connected


@pytest.fixture
def numpy_fleet() -> Iterator[Group]:
    """6 Local hosts d0..d5 running this Python (which has numpy and pandas), each knowing its
    name (HOST)."""
    group = Group([Local(f"d{i}", python3=sys.executable) for i in range(6)])
    try:
        for tunnel in group:
            tunnel.exec(f"HOST = {tunnel.host!r}")
        yield group
    finally:
        group.close()


FRAME = (
    "import numpy as np, pandas as pd\n"
    "df = pd.DataFrame({'load': [0.5, np.nan, 2.0], 'name': ['a', None, 'c'],\n"
    "                   'when': pd.to_datetime(['2020-01-01', None, '2021-01-01'])},\n"
    "                  index=pd.Index([1, 2, 3], name='id'))\n"
    "if HOST == 'd4': df.loc[3, 'load'] = 3.0\n"
    "if HOST == 'd5': df.index.name = 'other'\n"
)


def test_equal_pandas_results_from_real_hosts_group_and_diff_only_the_others(
    numpy_fleet: Group,
) -> None:
    import pandas as pd

    result = numpy_fleet.exec(FRAME + "df.describe()")
    assert [hosts for _, hosts in result.groups()] == [["d4"], ["d0", "d1", "d2", "d3", "d5"]]
    assert isinstance(result.groups()[0][0], pd.DataFrame)
    assert "5 hosts d[0-3,5]:" in repr(result)
    diff = result.diff()
    assert diff.majority_hosts == ["d0", "d1", "d2", "d3", "d5"]
    assert [group.hosts for group in diff.groups] == [["d4"]]

    frames = numpy_fleet.exec(FRAME + "df")  # d4's values and d5's index name differ
    assert [hosts for _, hosts in frames.groups()] == [["d4"], ["d5"], ["d0", "d1", "d2", "d3"]]
    series = numpy_fleet.exec(FRAME + "df['load'] if HOST != 'd1' else df['load'].astype('f4')")
    assert [hosts for _, hosts in series.groups()] == [["d1"], ["d4"], ["d5"], ["d0", "d2", "d3"]]
    index = numpy_fleet.exec(FRAME + "df.index")
    assert [hosts for _, hosts in index.groups()] == [["d5"], ["d0", "d1", "d2", "d3", "d4"]]


def test_arrays_and_nan_inside_values_from_real_hosts_are_one_answer(numpy_fleet: Group) -> None:
    arrays = numpy_fleet.exec(
        "import numpy as np\n"
        "a = np.asfortranarray(np.arange(6.0).reshape(2, 3)); a[0, 1] = np.nan\n"
        "a if HOST != 'd2' else a.astype('f4')"
    )
    assert [hosts for _, hosts in arrays.groups()] == [["d2"], ["d0", "d1", "d3", "d4", "d5"]]
    for expression in ("{'t': float('nan')}", "[1.0, float('nan')]", "np.float64('nan')"):
        nans = numpy_fleet.exec(f"import numpy as np\n{expression}")
        assert [hosts for _, hosts in nans.groups()] == [numpy_fleet.hosts], expression
