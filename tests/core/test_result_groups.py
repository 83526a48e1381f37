"""GroupResult.groups() and the grouped views, on results built here (no hosts needed)."""

from __future__ import annotations

import html
import math
import re
import tracemalloc
from collections.abc import Callable

import pytest
from test_render import SAFE_TAGS, tags_of
from test_report import MARKDOWN_TAGS, markdown_html

from chopsticks_nb import _grouping
from chopsticks_nb._capture import OutputCapture
from chopsticks_nb.errors import ConnectError, RemoteException
from chopsticks_nb.render import STDERR_STYLE
from chopsticks_nb.result import ErrorResult, GroupResult


def remote_error(host: str, message: str = "boom", kind: str = "ValueError") -> ErrorResult:
    tb = f"Traceback (most recent call last):\n{kind}: {message}\n"
    return ErrorResult.from_exception(RemoteException(message, host, kind, tb))


def unreachable(host: str, message: str) -> ErrorResult:
    return ErrorResult.from_exception(ConnectError(message, host))


def web(n: int) -> str:
    return f"web{n:03d}"


def fleet(total: int = 200) -> GroupResult:
    """195 hosts say 'ok', web007 says 'fail', four say 'other'."""
    values = {web(i): "ok" for i in range(1, total + 1)}
    values[web(7)] = "fail"
    for i in (10, 11, 12, 13):
        values[web(i)] = "other"
    timings = {host: 0.010 + i / 1000 for i, host in enumerate(values)}
    return GroupResult(values, timings=timings, elapsed=1.5)


def test_groups_put_the_outliers_first_with_their_hosts_in_order() -> None:
    groups = fleet().groups()
    assert [(value, len(hosts)) for value, hosts in groups] == [
        ("fail", 1),
        ("other", 4),
        ("ok", 195),
    ]
    assert groups[1][1] == ["web010", "web011", "web012", "web013"]
    assert groups[2][1][:7] == [
        "web001",
        "web002",
        "web003",
        "web004",
        "web005",
        "web006",
        "web008",
    ]


def test_groups_of_one_size_keep_the_order_of_their_first_host() -> None:
    result = GroupResult({"a": 2, "b": 1, "c": 2, "d": 1, "e": 3})
    assert result.groups() == [(3, ["e"]), (2, ["a", "c"]), (1, ["b", "d"])]


def test_equal_values_of_different_types_are_different_answers() -> None:
    result = GroupResult(
        {"int": 1, "bool": True, "float": 1.0, "int2": 1, "str": "1", "bytes": b"1", "none": None}
    )
    groups = {tuple(hosts): value for value, hosts in result.groups()}
    assert groups[("int", "int2")] == 1 and type(groups[("int", "int2")]) is int
    for host in ("bool", "float", "str", "bytes", "none"):
        assert (host,) in groups
    # ... all the way down, in every kind of container
    nested = GroupResult(
        {
            "a": [1, (2, {"k": 1})],
            "b": [True, (2, {"k": 1})],
            "c": [1, (2, {"k": 1.0})],
            "d": [1, [2, {"k": 1}]],
            "e": {1: "x"},
            "f": {True: "x"},
            "g": {1, 2},
            "h": frozenset({1, 2}),
            "i": [1, (2, {"k": 1})],
        }
    )
    assert [hosts for _, hosts in nested.groups() if len(hosts) > 1] == [["a", "i"]]


def test_unhashable_values_group_and_a_dicts_key_order_does_not_matter() -> None:
    result = GroupResult(
        {
            "a": {"x": [1, 2], "y": {"z": None}},
            "b": {"y": {"z": None}, "x": [1, 2]},
            "c": {"x": [1, 2], "y": {"z": 0}},
            "d": [{"x": 1}, {"y": [2]}],
            "e": [{"x": 1}, {"y": [2]}],
            "f": {"a", "b"},
            "g": {"b", "a"},
            "h": {"load": 0.5, "cpus": 4, "name": "h"},
            "i": {"name": "h", "cpus": 4, "load": 0.5},
        }
    )
    assert sorted(hosts for _, hosts in result.groups()) == [
        ["a", "b"],
        ["c"],
        ["d", "e"],
        ["f", "g"],
        ["h", "i"],
    ]


def test_nan_is_one_answer_and_too_large_a_value_stands_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = GroupResult({"a": math.nan, "b": float("nan"), "c": 0.0, "d": -0.0})
    assert [sorted(hosts) for _, hosts in result.groups()] == [["a", "b"], ["c", "d"]]
    # A value nested past the interpreter's recursion limit cannot be keyed: it stands alone.
    chains: list[list[object]] = [[], []]
    for _ in range(10_000):
        chains = [[chains[0]], [chains[1]]]
    deep = GroupResult({"a": chains[0], "b": chains[1], "c": [[1]], "d": [[1]]})
    assert [hosts for _, hosts in deep.groups()] == [["a"], ["b"], ["c", "d"]]
    monkeypatch.setattr(_grouping, "MAX_STEPS", 50)
    nested = [[[i]] for i in range(100)]
    big = GroupResult({"a": nested, "b": [list(x) for x in nested], "c": [[1]], "d": [[1]]})
    assert [hosts for _, hosts in big.groups()] == [["a"], ["b"], ["c", "d"]]


def test_values_of_other_types_group_when_hashable_and_else_stand_alone() -> None:
    class Thing:
        __hash__ = None  # type: ignore[assignment]

    one, two = Thing(), Thing()
    result = GroupResult({"a": one, "b": two, "c": 1 + 2j, "d": 1 + 2j})
    assert [hosts for _, hosts in result.groups()] == [["a"], ["b"], ["c", "d"]]


def test_failures_group_by_status_remote_type_and_message() -> None:
    result = GroupResult(
        {
            "web1": remote_error("web1"),
            "web2": remote_error("web2"),
            "web3": remote_error("web3", kind="KeyError"),
            "web4": remote_error("web4", message="other"),
            "web5": unreachable("web5", "ssh: Could not resolve hostname web5: not known"),
            "web6": unreachable("web6", "ssh: Could not resolve hostname web6: not known"),
            "web7": unreachable("web7", "boom"),
            "web8": "fine",
        }
    )
    groups = [
        (value.status if isinstance(value, ErrorResult) else value, hosts)
        for value, hosts in result.groups()
    ]
    assert groups == [
        ("error", ["web3"]),
        ("error", ["web4"]),
        ("unreachable", ["web7"]),
        ("fine", ["web8"]),
        ("error", ["web1", "web2"]),
        ("unreachable", ["web5", "web6"]),
    ]
    # The group shows its hosts' common message, each one's own name written {host}.
    text = repr(result)
    assert (
        "2 hosts web[5-6]: unreachable: ssh: Could not resolve hostname {host}: not known" in text
    )
    message = _grouping.failure_message("web1", "web10 and web1.x and xweb1")
    assert message == "web10 and {host}.x and xweb1"
    assert _grouping.failure_message("web1", "at web1: web1") == "at {host}: {host}"


def test_text_view_is_grouped_when_values_repeat_with_folded_hosts_and_times() -> None:
    text = repr(fleet())
    lines = text.splitlines()
    assert lines[0] == (
        "GroupResult (200 hosts: 200 ok in 1.50 s), grouped by value; times min / median / max:"
    )
    assert lines[1].startswith("    1 host  web007: 'fail'  [16 ms]")
    assert lines[2].startswith("    4 hosts web[010-013]: 'other'  [19 ms / 20 ms / 22 ms]")
    assert lines[3].startswith("  195 hosts web[001-006,008-009,014-200]: 'ok'  [10 ms / ")
    assert len(lines) == 4
    # Every host, on request; the per-host form when nothing repeats.
    every = fleet().to_text(grouped=False)
    assert every.startswith("GroupResult({\n    'web001': 'ok',\n") and "'web200': 'ok'" in every
    assert fleet().view(grouped=False).__repr__() == every
    assert repr(GroupResult({"a": 1, "b": 2})) == "GroupResult({'a': 1, 'b': 2})"
    assert GroupResult({"a": 1, "b": 2}).to_text(grouped=True).splitlines()[1:] == [
        "  1 host  a: 1",
        "  1 host  b: 2",
    ]


def test_host_names_that_cannot_fold_are_listed_plainly() -> None:
    result = GroupResult({"a b": 1, "c,d": 1, "e": 2})
    assert "  2 hosts a b, c,d: 1" in repr(result)
    assert "<code>a b, c,d</code>" in result._repr_html_()


def test_a_very_long_host_list_is_cut_in_the_group_row_but_every_host_is_one_click_away() -> None:
    result = GroupResult({f"n{i * 2}": "same" for i in range(1000)})
    line = repr(result).splitlines()[1]
    assert len(line) < 400 and line.endswith("...: 'same'")
    page = result._repr_html_()
    every = page.split('<details class="chopsticks-nb-every-host">')[1]
    assert every.count("<tr>") == 1001 and "<code>n1998</code>" in every


def table_rows(page: str) -> list[str]:
    """The rows of the first table (the groups), not those in the every-host details."""
    first = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", first, re.S)


def test_html_view_groups_rows_and_keeps_every_host_in_a_details() -> None:
    page = fleet()._repr_html_()
    assert re.findall(r"<th[^>]*>([^<]+)</th>", page)[:4] == [
        "hosts",
        "status",
        "value",
        "time (min / median / max)",
    ]
    rows = table_rows(page)
    assert len(rows) == 3
    assert "<code>web007</code>" in rows[0] and "&#x27;fail&#x27;" in rows[0]
    assert "4 hosts <code>web[010-013]</code>" in rows[1] and "19 ms / 20 ms / 22 ms" in rows[1]
    assert "195 hosts <code>web[001-006,008-009,014-200]</code>" in rows[2]
    every = page.split('<details class="chopsticks-nb-every-host">')[1]
    assert every.startswith("<summary>every host (200)</summary>")
    host_rows = re.findall(r"<tr>(.*?)</tr>", every.split("<tbody>")[1], re.S)
    assert len(host_rows) == 200
    assert "<code>web007</code>" in host_rows[6] and "&#x27;fail&#x27;" in host_rows[6]
    assert "<script" not in page and "200 hosts: 200 ok in 1.50 s" in page
    # Not grouped on request, nor when nothing repeats: the per-host table with full values.
    flat = fleet().to_html(grouped=False)
    assert "every-host" not in flat and len(table_rows(flat)) == 200


def test_grouped_failures_show_their_message_and_a_traceback_in_html() -> None:
    result = GroupResult(
        {"a1": remote_error("a1"), "a2": remote_error("a2"), "a3": 5},
        timings={"a1": 0.5, "a2": 1.5, "a3": 0.1},
    )
    rows = table_rows(result._repr_html_())
    assert "<code>a3</code>" in rows[0]
    assert "2 hosts <code>a[1-2]</code>" in rows[1] and ">error<" in rows[1]
    assert (
        "ValueError: boom" in rows[1] and "<details><summary>remote traceback</summary>" in rows[1]
    )
    assert "500 ms / 1.00 s / 1.50 s" in rows[1]


def test_remote_text_is_escaped_in_every_grouped_view() -> None:
    hostile = "<script>alert(1)</script>"
    result = GroupResult(
        {
            "x1": hostile,
            "x2": hostile,
            "x3": remote_error("x3", hostile),
            "x4": remote_error("x4", hostile),
        }
    )
    capture = OutputCapture()
    capture.handler("x1", lambda *_: None)("stderr", hostile + "\n")
    result._outputs = capture.close()
    page = result._repr_html_()
    assert tags_of(page) <= SAFE_TAGS, page
    assert html.escape(hostile) in page and "<script" not in page
    markdown = result.to_markdown()
    assert "`'<script>alert(1)</script>'`" in markdown
    # Rendered, the remote text is text: in code spans and fenced blocks, never a tag.
    rendered = markdown_html(markdown)
    assert tags_of(rendered) <= MARKDOWN_TAGS, rendered
    assert "<script" not in rendered and rendered.count(html.escape(hostile)) == 4


def test_markdown_report_is_a_table_grouped_as_the_display() -> None:
    result = fleet()
    result[web(20)] = ErrorResult.from_exception(ConnectError("no | route `x`", web(20)))
    lines = result.to_markdown().splitlines()
    assert lines[0] == "**GroupResult**: 200 hosts: 199 ok, 1 unreachable in 1.50 s"
    assert lines[2:4] == [
        "| hosts | status | value | time (min / median / max) |",
        "| --- | --- | --- | --- |",
    ]
    assert lines[4] == "| `web007` | ok | `'fail'` | 16 ms |"
    assert lines[5] == "| `web020` | **unreachable** | `` no \\| route `x` `` | 29 ms |"
    assert lines[7].startswith("| 194 hosts `web[001-006,008-009,014-019,021-200]` | ok | `'ok'` |")
    flat = result.to_markdown(grouped=False).splitlines()
    assert flat[2] == "| host | status | value | time |" and len(flat) == 204
    assert flat[4] == "| `web001` | ok | `'ok'` | 10 ms |"


def test_output_is_kept_bounded_and_folded_in_the_views() -> None:
    capture = OutputCapture()
    seen: list[tuple[str, ...]] = []
    for i in range(1, 13):
        handler = capture.handler(f"web{i:02d}", lambda *piece: seen.append(piece))
        handler("stdout", "one\ntwo\n")
        handler("stderr", "three\n")
    loud = capture.handler("web13", lambda *piece: seen.append(piece))
    for i in range(10_000):
        loud("stdout", f"line {i}\n")
    result = GroupResult({f"web{i:02d}": 0 for i in range(1, 15)}, outputs=capture.close())
    assert len(seen) == 12 * 2 + 10_000  # the handler it passes on to got everything
    assert result.output("web01") == "one\ntwo\nthree\n"
    assert result.output("web01", "stderr") == "three\n"
    assert result.output("web14") == ""
    loud_text = result.output("web13")
    assert loud_text.startswith("line 0\n") and loud_text.endswith("line 9999\n")
    assert "... 9,900 more lines hidden; the last 20:\n" in loud_text and len(loud_text) < 3_000
    assert result.output_groups()[0][1] == ["web13"]
    assert result.output_groups()[1] == ("one\ntwo\nthree\n", [f"web{i:02d}" for i in range(1, 13)])
    text = repr(result)
    assert "1 host web13 printed 10000 lines" in text
    assert "12 hosts web[01-12] printed the same 3 lines" in text
    page = result._repr_html_()
    assert "12 hosts web[01-12] printed the same 3 lines</summary>" in page
    assert f'<span style="{STDERR_STYLE}">three&#10;</span>' in page
    assert (
        "<details><summary>12 hosts web[01-12] printed the same 3 lines</summary>\n\n"
        "```text\none\ntwo\nthree\n```\n"
    ) in result.to_markdown()
    with pytest.raises(KeyError):
        result.output("nowhere")


def test_a_progress_bar_redrawn_without_newlines_keeps_the_result_small() -> None:
    """64 MiB of ``\\r`` redraws and never a newline: the result keeps one line, its last
    state, and holds no more than a few pieces' worth of memory while it comes."""
    capture = OutputCapture()
    write = capture.handler("bar", lambda *_: None)
    piece = "".join(f"\r[{'#' * (i % 50):<50}] {i:>7}" for i in range(1000))
    tracemalloc.start()
    try:
        for _ in range(64 * 2**20 // len(piece)):
            write("stdout", piece)
        write("stdout", "\rdone")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = GroupResult({"bar": None, "quiet": None}, outputs=capture.close())
    assert result.output("bar") == "done\n"
    assert result.output("quiet") == ""
    assert peak < 4 * len(piece)
    assert "1 host bar printed 1 line" in repr(result)


def test_long_lines_are_cut_and_the_output_of_a_host_is_bounded() -> None:
    capture = OutputCapture()
    write = capture.handler("long", lambda *_: None)
    for _ in range(1000):
        write("stdout", "x" * 100_000 + "\n")
    text = GroupResult({"long": 1}, outputs=capture.close()).output("long")
    assert text.startswith("x" * 1000 + " ... (99,000 more characters)\n")
    assert len(text) < 40 * 1024


def test_a_result_keeps_its_extras_through_pickle_but_not_its_tunnels() -> None:
    import pickle

    capture = OutputCapture()
    capture.handler("a", lambda *_: None)("stdout", "hi\n")
    result = GroupResult({"a": 1}, attempts={"a": 2}, outputs=capture.close(), tunnels={})
    copy = pickle.loads(pickle.dumps(result))
    assert copy == {"a": 1} and copy.attempts == {"a": 2} and copy.output("a") == "hi\n"
    with pytest.raises(ValueError, match="knows no tunnels"):
        copy.failed  # noqa: B018


def test_a_result_built_by_hand_cannot_make_groups() -> None:
    result = GroupResult({"a": 1, "b": ErrorResult("no")})
    with pytest.raises(ValueError, match="only the results of Group operations"):
        result.failed  # noqa: B018
    with pytest.raises(ValueError, match="hosts that succeeded"):
        result.succeeded  # noqa: B018


def test_a_nan_inside_a_value_or_a_nan_like_scalar_is_one_answer() -> None:
    import collections

    import numpy as np

    nan = float("nan")
    made: list[Callable[[], object]] = [
        lambda: {"t": float("nan")},
        lambda: [1.0, float("nan")],
        lambda: ("x", float("nan")),
        lambda: {float("nan"), 1},
        lambda: {"nested": [{"t": float("nan")}]},
        lambda: complex(float("nan"), 1),
        lambda: np.float64("nan"),
        lambda: {"t": np.float64("nan")},
        lambda: np.datetime64("NaT"),
        lambda: collections.Counter(a=1),
    ]
    for make in made:
        result = GroupResult({host: make() for host in "abcd"})
        assert [hosts for _, hosts in result.groups()] == [["a", "b", "c", "d"]], make()
    point = collections.namedtuple("point", "x y")  # one type, as the codec makes it
    points = GroupResult({host: point(1.0, float("nan")) for host in "abcd"})
    assert len(points.groups()) == 1
    # NaN is still told apart from other values, and equal-looking values of other types.
    apart = GroupResult({"a": [1.0, nan], "b": [1.0, 2.0], "c": [1.0, np.float64("nan")]})
    assert [hosts for _, hosts in apart.groups()] == [["a"], ["b"], ["c"]]
    ordered = GroupResult(
        {
            "a": collections.OrderedDict(x=1, y=2),
            "b": collections.OrderedDict(y=2, x=1),
            "c": collections.OrderedDict(x=1, y=2),
        }
    )
    assert [hosts for _, hosts in ordered.groups()] == [["b"], ["a", "c"]]
