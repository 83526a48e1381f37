"""Host ranges: expanding ``web[01-20]`` to names and folding names back to ranges."""

from __future__ import annotations

import inspect
import pickle
import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chopsticks_nb import hosts
from chopsticks_nb.hosts import MAX_HOSTS, HostRangeError, expand, fold, is_expression


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("db1", ["db1"]),
        ("web[1-3]", ["web1", "web2", "web3"]),
        ("web[01-03]", ["web01", "web02", "web03"]),
        ("web[08-11]", ["web08", "web09", "web10", "web11"]),
        ("web[098-101]", ["web098", "web099", "web100", "web101"]),
        ("web[09-100]", ["web09", *(f"web{n}" for n in range(10, 101))]),
        ("db-[1-3,7]", ["db-1", "db-2", "db-3", "db-7"]),
        ("n[1-9/4]", ["n1", "n5", "n9"]),
        ("n[0-10/5].x", ["n0.x", "n5.x", "n10.x"]),
        ("[1-2]web", ["1web", "2web"]),
        ("web[7]", ["web7"]),
        ("web[007]", ["web007"]),
        (
            "rack[1-2]-n[01-03]",
            [f"rack{r}-n0{n}" for r in (1, 2) for n in (1, 2, 3)],
        ),
        ("web[1-2],db1", ["web1", "web2", "db1"]),
        (" web[1-2] ,\tdb1 ", ["web1", "web2", "db1"]),
        ("a[3,1,2]", ["a3", "a1", "a2"]),  # the order written
        ("a[1-3,2],a1,b", ["a1", "a2", "a3", "b"]),  # each name once
        ("a[1,01]", ["a1", "a01"]),  # different names
        ("user@web[1-2]:22", ["user@web1:22", "user@web2:22"]),  # brackets only are syntax
        ("10.0.0.[1-2]", ["10.0.0.1", "10.0.0.2"]),
    ],
)
def test_expand(expression: str, names: list[str]) -> None:
    assert expand(expression) == names


@pytest.mark.parametrize(
    ("expression", "reason", "position"),
    [
        ("web[3-1]", "the range 3-1 goes down", 4),
        ("web[", "this '[' is never closed", 3),
        ("web[1-2", "this '[' is never closed", 3),
        ("web[1-2],db[3", "this '[' is never closed", 11),
        ("web[a-b]", "expected a number, found 'a'", 4),
        ("web[1-b]", "expected a number after '-', found 'b'", 6),
        ("web[1-]", "expected a number after '-', found ']'", 6),
        ("web[1-2x]", "expected ',' or ']' in the range, found 'x'", 7),
        ("web[1,]", "expected a number, found ']'", 6),
        ("web[]", "an empty range", 4),
        ("web[[1]]", "a '[' inside a range", 4),
        ("web]", "']' without '['", 3),
        ("web[1]]", "']' without '['", 6),
        ("web[01-5]", "5 is not padded like 01", 7),
        ("web[1-010]", "010 is not padded like 1", 6),
        ("web[1-9/0]", "the step must be 1 or more", 8),
        ("web[1-9/]", "expected a step after '/', found ']'", 8),
        ("web[1234567890123456789]", "a number longer than 18 digits", 4),
        ("web1,,db1", "a host name is missing after a comma", 5),
        ("web1,", "a host name is missing after a comma", 5),
        (",web1", "a host name is missing before the first comma", 0),
        ("", "an empty host expression", 0),
        ("  ", "an empty host expression", 0),
        ("web 1", "a space inside a host name", 3),
        ("web1 db1", "a space inside a host name", 4),
    ],
)
def test_bad_expressions_point_at_the_position(expression: str, reason: str, position: int) -> None:
    with pytest.raises(HostRangeError) as caught:
        expand(expression)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.reason, error.expression, error.position) == (reason, expression, position)
    # Shown as Python shows a SyntaxError: the expression, and a caret under the position.
    assert str(error) == f"{reason}\n  {expression}\n  {' ' * position}^"


def test_the_error_survives_pickling() -> None:
    with pytest.raises(HostRangeError) as caught:
        expand("web[3-1]")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)


def test_a_typo_that_stands_for_millions_of_names_fails_at_once() -> None:
    with pytest.raises(HostRangeError) as caught:
        expand("web[1-99999999]")
    assert caught.value.reason == (
        f"this stands for 99,999,999 names, more than the limit of {MAX_HOSTS:,}"
    )
    # The product of several ranges counts, and so do the parts of a list together.
    with pytest.raises(HostRangeError, match="1,000,000 names"):
        expand("r[1-1000]-n[1-1000]")
    with pytest.raises(HostRangeError) as caught:
        expand("a[1-6],b[1-6]", limit=10)
    assert caught.value.position == 7  # the part that goes over the limit
    assert len(expand("a[1-5],b[1-5]", limit=10)) == 10


def test_expand_takes_strings_only() -> None:
    with pytest.raises(TypeError):
        expand(["web1"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("names", "folded"),
    [
        (["web01", "web02", "web03", "web05"], "web[01-03,05]"),
        ([f"rack1-n{n:02}" for n in range(1, 17)], "rack1-n[01-16]"),
        ([f"rack{r}-n{n:02}" for r in (1, 2) for n in range(1, 17)], "rack[1-2]-n[01-16]"),
        (["web08", "web09", "web10", "web11"], "web[08-11]"),
        (["web9", "web10", "web11"], "web[9-11]"),
        (["web1", "web01", "web2", "web02"], "web[1-2,01-02]"),
        (["db10", "db2", "web1", "db"], "db,db[2,10],web1"),
        (["a1.b2", "a2.b2", "a1.b3", "a2.b3", "a3.b3"], "a[1-2].b[2-3],a3.b3"),
        (["x"], "x"),
        (["web1", "web1"], "web1"),
        ([], ""),
    ],
)
def test_fold(names: list[str], folded: str) -> None:
    assert fold(names) == folded
    assert set(expand(folded)) == set(names) if names else folded == ""


def test_fold_depends_only_on_the_set_of_names() -> None:
    names = expand("rack[1-3]-n[01-16],db[1-4],login,web[08-12]")
    shuffled = random.Random(4).sample(names, len(names))
    assert fold(shuffled) == fold(names) == fold(reversed(names)) == fold(iter(set(names)))
    assert fold(names) == "db[1-4],login,rack[1-3]-n[01-16],web[08-12]"


@pytest.mark.parametrize("name", ["", "web 1", "web,1", "web[1]", "a]"])
def test_fold_refuses_names_an_expression_cannot_hold(name: str) -> None:
    with pytest.raises(HostRangeError, match="not a host name that a range expression can hold"):
        fold(["ok1", name])


def test_fold_takes_a_list_not_a_string() -> None:
    with pytest.raises(TypeError, match="takes a list of names"):
        fold("web1")
    with pytest.raises(TypeError, match="host names are strings"):
        fold(["web1", 2])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("text", "is_range"),
    [("web[01-20]", True), ("a,b", True), ("a]", True), ("web01", False), ("10.0.0.1", False)],
)
def test_is_expression(text: str, is_range: bool) -> None:
    assert is_expression(text) is is_range


def test_all_lists_exactly_the_public_names() -> None:
    defined_here = {
        name
        for name, value in vars(hosts).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", hosts.__name__) == hosts.__name__
    }
    # HostRangeError lives in the one error tree (errors.py); it is named here, where it is raised.
    assert sorted(hosts.__all__) == sorted({*defined_here, "HostRangeError"})
    assert hosts.HostRangeError.__module__ == "chopsticks_nb.errors"


# -- properties ---------------------------------------------------------------------------------

#: Names as hosts are named: letters, digits (often zero-padded), dots, dashes, underscores.
name_chars = st.sampled_from("abcxyz-._0123456789") | st.characters(
    blacklist_categories=("Cs", "Z", "Cc"), blacklist_characters="[],"
)
host_names = st.text(name_chars, min_size=1, max_size=12)
numbered = st.builds(
    "{}{}{}".format,
    st.sampled_from(["web", "db-", "rack1-n", "", "n"]),
    st.integers(0, 120).map(str) | st.integers(0, 120).map("{:03}".format),
    st.sampled_from(["", ".dc1", "-b"]),
)


@given(st.lists(host_names | numbered, max_size=60))
@example(["web9", "web10", "web09"])
@example(["a0", "a00", "a1", "a01", "a10"])
@example(["1", "01", "001", "2", "002"])
def test_expand_of_fold_gives_back_the_names(names: list[str]) -> None:
    folded = fold(names)
    expanded = expand(folded) if names else []
    assert len(expanded) == len(set(expanded))
    assert set(expanded) == set(names)
    assert fold(expanded) == folded  # folding is canonical


@st.composite
def ranges(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A one-bracket expression and, built independently, the names it stands for."""
    prefix = draw(st.sampled_from(["web", "n-", ""]))
    width = draw(st.sampled_from([0, 2, 3]))
    first = draw(st.integers(0, 50))
    last = draw(st.integers(first, 60))
    step = draw(st.integers(1, 4))
    low, high = str(first).zfill(width), str(last).zfill(width)
    names = [f"{prefix}{str(n).zfill(width)}" for n in range(first, last + 1, step)]
    return f"{prefix}[{low}-{high}/{step}]", names


@given(ranges())
def test_expand_matches_a_plain_loop(case: tuple[str, list[str]]) -> None:
    expression, names = case
    assert expand(expression) == names


@given(st.text(st.sampled_from("ab019-[],/ \t:"), max_size=24))
def test_any_text_expands_or_says_where_it_is_wrong(text: str) -> None:
    try:
        names = expand(text, limit=1000)
    except HostRangeError as exc:
        assert 0 <= exc.position <= len(text)
        assert str(exc).splitlines()[1:] == [f"  {text}", f"  {' ' * exc.position}^"]
    else:
        assert names and all(name and not is_expression(name) for name in names)
        assert not any(char.isspace() for name in names for char in name)
