"""OutputLog: a host's output kept within bounds (lines, characters), \\r read as a terminal
reads it; printable(): remote text that cannot drive a terminal."""

from __future__ import annotations

import tracemalloc

import pytest

from chopsticks_nb.outputlog import OutputLog, printable


def test_the_first_lines_then_a_count_and_the_last_lines() -> None:
    log = OutputLog(max_lines=3, tail_lines=2)
    assert log.add("stdout", "a\nb\n") == [("stdout", "a"), ("stdout", "b")]
    assert log.add("stderr", "c\nd\ne\n") == [("stderr", "c")]
    assert log.add("stdout", "f\ng") == []
    assert log.finish() == []
    assert log.head == [("stdout", "a"), ("stdout", "b"), ("stderr", "c")]
    assert list(log.tail) == [("stdout", "f"), ("stdout", "g")]
    assert (log.hidden, log.lines, log.stderr_lines) == (4, 7, 3)
    assert log.hidden_notice() == "... 4 more lines hidden; the last 2:"
    assert log.text() == "a\nb\nc\n... 4 more lines hidden; the last 2:\nf\ng\n"


def test_a_carriage_return_starts_the_line_again_as_in_a_terminal() -> None:
    log = OutputLog()
    log.add("stdout", "10%\r20%\r30%\n")
    log.add("stdout", "crlf\r")
    log.add("stdout", "\nbar 1")  # the \r was half of a \r\n split between pieces
    assert log.last_line == ("stdout", "bar 1")
    log.add("stdout", "\rbar 2\r")
    assert log.last_line == ("stdout", "bar 2")  # what the terminal shows meanwhile
    log.add("stdout", "bar 3\n")
    assert [text for _, text in log.head] == ["30%", "crlf", "bar 3"]


def test_long_lines_are_cut_and_the_rest_counted() -> None:
    log = OutputLog(max_line_chars=10)
    log.add("stdout", "x" * 25)
    log.add("stdout", "y" * 5 + "\nshort\n")
    assert log.head == [("stdout", "x" * 10 + " ... (20 more characters)"), ("stdout", "short")]


def test_the_head_is_bounded_in_characters_too() -> None:
    log = OutputLog(max_lines=100, tail_lines=1, max_line_chars=1000, max_chars=2500)
    log.add("stdout", ("z" * 1000 + "\n") * 5)
    assert len(log.head) == 2 and log.hidden == 3


def test_a_million_lines_past_the_head_keep_only_the_count_and_the_tail() -> None:
    log = OutputLog(max_lines=2, tail_lines=3)
    text = "".join(f"{i}\n" for i in range(1_000_000))
    log.add("stdout", text[:7])  # part of a line left open before the flood
    log.add("stderr", "err\n")
    log.add("stdout", text[7:] + "rest")
    log.finish()
    assert [t for _, t in log.head] == ["0", "1"]
    assert [t for _, t in log.tail] == ["999998", "999999", "rest"]
    assert log.lines == 1_000_000 + 2  # every line counted: the flood's, err and rest


def test_the_tail_past_the_head_is_exact() -> None:
    log = OutputLog(max_lines=2, tail_lines=3)
    log.add("stdout", "".join(f"{i}\n" for i in range(10)) + "rest")
    log.finish()
    assert [t for _, t in log.head] == ["0", "1"]
    assert [t for _, t in log.tail] == ["8", "9", "rest"]
    assert log.hidden == 9


def test_a_newline_free_flood_keeps_a_bounded_amount() -> None:
    """64 MiB of a progress bar that never ends its line: one bounded line is kept."""
    log = OutputLog(max_line_chars=200)
    piece = ("\r" + "#" * 50 + " 12345678") * 2000
    tracemalloc.start()
    try:
        received = 0
        while received < 64 * 2**20:
            log.add("stdout", piece)
            received += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert log.chars == received
    assert log.last_line == ("stdout", "#" * 50 + " 12345678")
    assert log.lines == 0 and log.head == []
    assert peak < 4 * len(piece)  # no more than a few pieces' worth, whatever the flood


def test_keep_head_false_returns_lines_without_keeping_them() -> None:
    log = OutputLog(max_lines=10, keep_head=False)
    assert log.add("stdout", "a\nb\n") == [("stdout", "a"), ("stdout", "b")]
    assert log.head == [] and log.lines == 2


def test_a_stream_must_be_stdout_or_stderr() -> None:
    with pytest.raises(ValueError, match="stdout' or 'stderr"):
        OutputLog().add("stdin", "x")


@pytest.mark.parametrize(
    ("remote", "shown"),
    [
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # window title
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen
        ("\x1b]52;c;aGVsbG8=\x07", "\\x1b]52;c;aGVsbG8=\\x07"),  # OSC 52: write the clipboard
        ("\x9b31m", "\\x9b31m"),  # an 8-bit CSI
        ("a\rb", "a\\x0db"),
        ("tab\tand newline\n", "tab\tand newline\n"),
        ("\u202eevil", "\\u202eevil"),  # right-to-left override: reorders what is read
        ("lone \udc80", "lone \\udc80"),
        ("héllo ✓", "héllo ✓"),
    ],
)
def test_printable_shows_control_characters_as_escapes(remote: str, shown: str) -> None:
    assert printable(remote) == shown
