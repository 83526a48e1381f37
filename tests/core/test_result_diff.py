"""GroupResult.diff(): each minority group against the majority value, as text and HTML."""

from __future__ import annotations

import html
import re

from test_render import SAFE_TAGS, tags_of

from chopsticks_nb.render import _DIFF_STYLES
from chopsticks_nb.result import ErrorResult, GroupResult

CONFIG = "user = app\nport = 8080\nworkers = 4\nlog = /var/log/app\n"


def configs() -> GroupResult:
    values = {f"web{i}": CONFIG for i in range(1, 9)}
    values["web3"] = CONFIG.replace("8080", "9090")
    values["web7"] = values["web8"] = CONFIG.replace("workers = 4\n", "")
    values["web9"] = ErrorResult("PermissionError: /etc/app.conf", status="error")
    return GroupResult(values)


def test_text_values_give_a_unified_diff_per_minority_group() -> None:
    diff = configs().diff()
    assert diff.majority == CONFIG and diff.majority_hosts == [
        "web1",
        "web2",
        "web4",
        "web5",
        "web6",
    ]
    assert [group.hosts for group in diff.groups] == [["web3"], ["web7", "web8"]]
    first, second = diff.groups
    assert first.lines[:2] == ["--- web[1-2,4-6] (5 hosts)", "+++ web3 (1 host)"]
    assert "-port = 8080" in first.lines and "+port = 9090" in first.lines
    assert " user = app" in first.lines  # context
    assert second.lines[1] == "+++ web[7-8] (2 hosts)" and "-workers = 4" in second.lines
    assert not [line for line in second.lines if line.startswith("+") and line[1:2] != "+"]
    text = str(diff)
    assert text.startswith("against the majority value: 5 hosts web[1-2,4-6]\n")
    assert text.endswith("\n1 host web9 failed (not compared)")
    assert repr(diff) == text == diff.text


def test_bytes_are_diffed_as_text_and_undecodable_bytes_shown_escaped() -> None:
    result = GroupResult({"a": b"x\ny\n", "b": b"x\ny\n", "c": b"x\n\xff\n"})
    lines = result.diff().groups[0].lines
    assert "-y" in lines and "+\\xff" in lines


def test_dicts_give_the_keys_whose_values_differ() -> None:
    base = {"kernel": "6.1", "python": "3.11", "cpus": 4}
    result = GroupResult(
        {
            "n1": base,
            "n2": dict(base),
            "n3": {**base, "kernel": "5.10", "extra": True},
            "n4": {"python": "3.11", "cpus": 4.0},
        }
    )
    diff = result.diff()
    odd, other = diff.groups
    assert odd.hosts == ["n3"] and odd.keys == ["kernel", "extra"]
    assert odd.lines[2:] == ["-'kernel': '6.1'", "+'kernel': '5.10'", "+'extra': True"]
    assert other.keys == ["kernel", "cpus"]  # 4.0 is not 4
    assert other.lines[2:] == ["-'kernel': '6.1'", "-'cpus': 4", "+'cpus': 4.0"]


def test_other_values_show_both_and_identical_results_say_so() -> None:
    result = GroupResult({"a": [1, 2], "b": [1, 2], "c": (1, 2)})
    assert result.diff().groups[0].lines[2:] == ["-[1, 2]", "+(1, 2)"]
    same = GroupResult({"a": "x", "b": "x"}).diff()
    assert same.groups == [] and str(same).startswith("every host that succeeded returned")
    assert str(GroupResult({"a": ErrorResult("no")}).diff()).startswith("no host succeeded")
    ends = GroupResult({"a": "x\n", "b": "x\n", "c": "x"}).diff()
    assert "differ only in line endings" in ends.groups[0].lines[-1]


def test_html_diff_is_coloured_and_escaped() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    result = GroupResult({"a": "same\n", "b": "same\n", "c": f"same\n{hostile}\n"})
    page = result.diff()._repr_html_()
    assert tags_of(page) <= SAFE_TAGS | {"strong"}, page
    added = _DIFF_STYLES["+"]
    assert f'<span style="{added}">+{html.escape(hostile)}&#10;</span>' in page
    assert "<strong>--- a,b (2 hosts)&#10;</strong>" in page
    # Without styles, the +/- marks still say which side a line is from.
    plain = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"+{hostile}" in plain
