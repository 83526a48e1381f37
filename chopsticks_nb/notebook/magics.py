"""The ``%remote`` / ``%%remote`` magics: thin wrappers around :meth:`Group.exec`.

Parse the arguments, find the target and the notebook names the code uses, run
``group.exec(...)`` (whose live view is the notebook's
:class:`~chopsticks_nb.notebook.live.LiveView`, registered with
:func:`~chopsticks_nb.progress.set_presenter` while the magics are loaded), hand the
:class:`~chopsticks_nb.result.GroupResult` to IPython's display. Nothing here that plain
Python cannot do.
"""

from __future__ import annotations

import ast
import builtins
import html
import io
import re
import sys
import tokenize
import weakref
from collections.abc import Container, Mapping, Sequence
from typing import Any, Callable, cast

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display as _display
from traitlets import CaselessStrEnum, Int, Unicode

from ..errors import ChopsticksError, GroupError, GroupInterrupted, HostRangeError
from ..group import Group
from ..hosts import expand, is_expression
from ..progress import Operation, Presenter, Watch, set_presenter
from ..render import summary
from ..result import GroupResult
from ..tunnel import BaseTunnel, SSHTunnel
from .live import LiveView, in_kernel

__all__ = ["RemoteMagics", "cell_names"]

#: IPython's history variables (_, __, _5, _i, _ii5...): never shipped.
_HISTORY = re.compile(r"_+\Z|_i+\d*\Z|_\d+\Z|_ih\Z|_oh\Z|_dh\Z")
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_TARGET_KINDS = "a Group, a tunnel, a HostPicker or a list of host names"
#: Stands in the magic's line for a literal list of host names (``%%remote ["a", "b"]``).
_LITERAL = "__chopsticks_nb_literal_target__"
#: the names a host range starts with (``web`` in ``web[01-04],db1``)
_RANGE_HEADS = re.compile(r"(?:\A|,)\s*([A-Za-z_]\w*)")


def cell_names(
    code: str, namespace: Mapping[str, Any], hidden: Container[str] = ()
) -> dict[str, Any]:
    """The names ``code`` reads that ``namespace`` defines (not builtins, nor IPython's own).

    These are what a ``%%remote`` cell ships with its code. Raises SyntaxError for bad code.
    """
    tree = ast.parse(code)
    used = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    return {
        name: namespace[name]
        for name in sorted(used)
        if name in namespace
        and name not in hidden
        and not _HISTORY.match(name)
        and not (hasattr(builtins, name) and namespace[name] is getattr(builtins, name))
    }


# IPython's display and magic_arguments are untyped: seen through typed names.
display = cast("Callable[..., None]", _display)
parse_argstring = cast("Callable[[Any, str], Any]", magic_arguments.parse_argstring)


def _cell_failure(result: GroupResult) -> GroupError:
    """The short error that fails a cell: which hosts failed and why, in one line each (the
    tracebacks are in the result table shown just before)."""
    return GroupError.from_failures(
        dict(result.failures()),
        len(result),
        max_hosts=10,
        max_tracebacks=0,
        hint="in the table above, or this error's .failures",
        result=result,
    )


def _discard(host: str, stream: str, text: str) -> None:
    """Remote output of a ``--quiet`` cell."""


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _ends_with_expression(code: str) -> bool:
    body = ast.parse(code).body
    return bool(body) and isinstance(body[-1], ast.Expr)


class StatementsResult(GroupResult):
    """The result of a ``%%remote`` cell without a last expression: every value is None, so it
    shows as its summary line (``4 hosts: 4 ok in 0.52 s``) rather than a table of None."""

    def __repr__(self) -> str:
        return summary(self)

    def _repr_html_(self) -> str:
        return f"<small>{html.escape(summary(self))}</small>"


class RemoteCellSyntaxError(Exception):
    """A syntax error in a ``%%remote`` cell, found before anything is sent. IPython shows it
    as it shows one in a local cell (where, the line, a caret, the message) and no library
    frames: it is not a SyntaxError, for which IPython would print the stack that raised it.
    ``error`` is the SyntaxError, its line numbered as in the cell."""

    def __init__(self, error: SyntaxError, cell: str) -> None:
        super().__init__(f"{error.msg} ({cell}, line {error.lineno})")
        self.error = error
        self.cell = cell

    def _render_traceback_(self) -> list[str]:
        error = self.error
        lines = [f"  {self.cell}, line {error.lineno}"]
        if error.text:
            text = error.text.rstrip("\n")
            stripped = text.lstrip()
            lines.append(f"    {stripped}")
            if error.offset:
                column = max(0, error.offset - 1 - (len(text) - len(stripped)))
                lines.append("    " + " " * column + "^")
        lines.append(f"{type(error).__name__}: {error.msg}")
        return lines


def _literal_span(line: str) -> tuple[int, int] | None:
    """Where a literal list or tuple of host names is in the magic's line, if there is one."""
    found = re.search(r"(?:^|\s)([\[(])", line)
    if found is None:
        return None
    start = found.start(1)
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(line[start:]).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
                if depth == 0:
                    return start, start + token.end[1]
    except (tokenize.TokenError, SyntaxError):
        pass
    raise UsageError(
        f'TARGET {line[start:].strip()!r} is not closed: give a list such as ["a", "b"]'
    )


def _host_names(text: str) -> list[str]:
    """A literal list of host names written in the magic's line."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(h, str) for h in value):
        raise UsageError(
            f"TARGET {text} must be a list of host names written as strings, such as "
            '["web1", "web2"] (or the name of a Group, tunnel or list in the notebook)'
        )
    return list(value)


@magics_class
class RemoteMagics(Magics):
    """``%remote`` and ``%%remote``. Settings (``%config RemoteMagics.view = "html"``) below."""

    view = CaselessStrEnum(
        ["auto", "widgets", "html", "text"],
        default_value="auto",
        help="How live output is shown in a kernel: html (a live view; widgets is its old "
        "name) or text (the cell's output, with no live view).",
    ).tag(config=True)
    max_lines = Int(
        500, help="Lines of remote output shown per host and cell (later ones are counted)."
    ).tag(config=True)
    ssh_config = Unicode(
        None, allow_none=True, help="ssh_config file for targets given as lists of host names."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        #: tunnels made for targets given as host names, reused so their namespaces last
        self._named: dict[tuple[str, str | None], BaseTunnel] = {}
        #: the agent (its pid) each tunnel's last %%remote cell ran in: a new one has lost the
        #: names earlier cells defined there, which the user is told once
        self._agents: weakref.WeakKeyDictionary[BaseTunnel, object] = weakref.WeakKeyDictionary()
        self._literal: list[str] | None = None
        self._previous_presenter: Presenter | None = set_presenter(self._present)

    def _present(self, operation: Operation) -> Watch | None:
        """The live view of every group operation while the magics are loaded (a presenter)."""
        return LiveView.for_operation(operation, max_lines=self.max_lines, mode=self.view)

    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None, "RemoteMagics needs a shell"
        return self.shell

    def close(self) -> None:
        """Close the tunnels made for host names (``%unload_ext`` does this)."""
        tunnels, self._named = list(self._named.values()), {}
        set_presenter(self._previous_presenter)
        for tunnel in tunnels:
            tunnel.close()

    @line_cell_magic
    def remote(self, line: str, cell: str | None = None) -> GroupResult:
        """Run Python on several hosts at once, in parallel; the result is a GroupResult.

        Cell form: every host runs the cell's code, in a namespace of its own that lasts
        as long as the host's connection, so a later ``%%remote`` cell on the same hosts sees
        what earlier ones defined::

            %%remote group
            import os
            pid = os.getpid()
            pid * 2              # the last expression's value, per host

        Line form: ``%remote group os.getpid()`` evaluates one expression on each host.

        The value of the last line (if it is an expression) on each host forms a
        GroupResult (a dict of host -> value), shown as a table and returned as the cell's
        value. The names the code uses from the notebook are sent with it: functions and
        classes defined in the notebook as source (they work on any remote Python), modules
        by name (the host imports them), other values by pickle. Once the code has run about a
        second, a live view under the cell shows every host's state, time and output (click a
        host for its latest lines; the box filters hosts); at the end it settles into a
        transcript, hosts with the same output folded. A cell without a last expression shows
        a summary line rather than a table of None.

        If a host fails (raises, cannot be reached, times out), the cell fails after showing
        every host's result, naming the failed hosts; ``--no-raise`` returns the result
        instead. Interrupting the kernel cancels the remote work on every host that has not
        finished; the hosts stay connected.

        TARGET names a Group, a tunnel, a HostPicker (its selection) or a list of host names
        or ranges in the notebook, or is a host range itself: ``%%remote web[01-04]``,
        ``%%remote web1,db1`` (brackets or commas; a bare word is a variable name), or a list
        written in place (``%%remote ["web1", "web2"]``). Host names become SSH tunnels, reused
        from cell to cell (for an ssh_config file of your own:
        ``%config RemoteMagics.ssh_config = "path"``). When a host has reconnected since the
        last cell, the cell says so: what earlier cells defined there is gone. Settings:
        ``%config RemoteMagics`` lists them (``view``: html or text; ``max_lines``).

        The same from plain Python: ``group.exec(code, names)`` (with its live view too, while
        the extension is loaded).
        """
        line, self._literal = self._take_literal(line)
        if cell is None:
            header, code = self._split_line(line)
            code = code.strip()
            if not code:
                raise UsageError(
                    "%remote needs an expression: %remote TARGET EXPRESSION "
                    "(use %%remote TARGET for a cell of statements)"
                )
        else:
            header, code = line, cell
        magic = cast(Any, self).remote
        try:
            args = parse_argstring(magic, header)
        except UsageError as exc:
            usage = " ".join(magic.parser.format_usage().replace("::", "").split())
            form = f"%{usage}\n    CELL" if cell is not None else f"{usage} EXPRESSION"
            raise UsageError(f"{exc}\nusage: {form}\n(%%remote? for help)") from None
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o needs a variable name, not {args.output!r}")
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError(f"--timeout needs a positive number of seconds, not {args.timeout}")
        group = self._target(args.target)
        number = self._cell_number()
        if cell is not None:
            code = "\n" + code  # line numbers as the editor shows them: the magic is line 1
        try:
            names = cell_names(code, self._shell.user_ns, self._shell.user_ns_hidden)
        except SyntaxError as exc:
            raise RemoteCellSyntaxError(exc, f"Cell In[{number}]") from None
        return self.run(group, code, names, filename=f"<remote-cell-{number}>", **vars(args))

    def run(
        self,
        group: Group,
        code: str,
        names: Mapping[str, Any],
        *,
        filename: str,
        output: str | None = None,
        timeout: float | None = None,
        no_raise: bool = False,
        quiet: bool = False,
        **_: Any,
    ) -> GroupResult:
        """What the magic does once its arguments are understood."""
        try:
            result = group.exec(
                code,
                names,
                filename=filename,
                timeout=timeout,
                output=_discard if quiet else None,
                quiet=quiet,
            )
        except GroupInterrupted as interrupted:
            self._store(output, interrupted.result)
            display(interrupted.result)
            raise
        self._note_new_agents(group)
        if result.ok and not _ends_with_expression(code):
            result.__class__ = StatementsResult  # keeps whatever else the result carries
        self._store(output, result)
        if not result.ok and not no_raise:
            display(result)
            if not in_kernel():  # a terminal showed only text: add the remote tracebacks
                result.raise_failures()
            raise _cell_failure(result)
        return result

    def _note_new_agents(self, group: Group) -> None:
        """Tell the user, once, of each host whose agent is not the one the last cell ran in
        (it reconnected): the names earlier cells defined there are gone."""
        notes = []
        for tunnel in group:
            if not tunnel.connected:
                continue
            try:
                agent = tunnel.remote_info.get("pid")
            except ChopsticksError:
                continue
            before = self._agents.get(tunnel)
            self._agents[tunnel] = agent
            if before is not None and before != agent:
                notes.append(tunnel.host)
        if notes:
            hosts = ", ".join(notes)
            print(
                f"Note: {hosts} reconnected since the last %%remote cell there (a new agent, "
                "with a fresh namespace): the names earlier cells defined on "
                f"{'it' if len(notes) == 1 else 'them'} are gone.",
                file=sys.stderr,
            )

    def _cell_number(self) -> int:
        """The number of the cell running now (In[N]); IPython counts a cell before it runs."""
        shell = self._shell
        running = getattr(shell.displayhook, "exec_result", None)
        number = getattr(running, "execution_count", None)
        return number if isinstance(number, int) else int(shell.execution_count)

    # -- arguments -----------------------------------------------------------------------------

    def _split_line(self, line: str) -> tuple[str, str]:
        """``%remote``'s line: the options and target, then the expression, kept verbatim."""
        takes_value: dict[str, bool] = {}
        for action in cast(Any, self).remote.parser._actions:
            for option in action.option_strings:
                takes_value[option] = action.nargs != 0
        target_seen = expect_value = False
        for token in re.finditer(r"\S+", line):
            word = token.group()
            if expect_value:
                expect_value = False
            elif word == "--":
                return line[: token.start()], line[token.end() :]
            elif word.split("=", 1)[0] in takes_value:
                expect_value = takes_value[word.split("=", 1)[0]] and "=" not in word
            elif takes_value.get(word[:2]) and not word.startswith("--"):
                pass  # a short option with its value attached: -oresult
            elif word.startswith("-") and not target_seen:
                raise UsageError(f"%remote: unknown option {word!r}; see %remote?")
            elif not target_seen:
                target_seen = True
            else:
                return line[: token.start()], line[token.start() :]
        return line, ""

    def _take_literal(self, line: str) -> tuple[str, list[str] | None]:
        """A literal list of host names in the line, replaced by a name standing for it."""
        span = _literal_span(line)
        if span is None:
            return line, None
        start, end = span
        return f"{line[:start]}{_LITERAL}{line[end:]}", _host_names(line[start:end])

    def _target(self, spec: str) -> Group:
        """The Group that TARGET names in the user's namespace, or that it writes as a range."""
        if spec == _LITERAL and self._literal is not None:
            return self._as_group(repr(self._literal), self._literal)
        if not _TARGET.match(spec):
            if is_expression(spec):
                return self._range_target(spec)
            raise UsageError(f"TARGET must be a variable name ({_TARGET_KINDS}), not {spec!r}")
        first, *attributes = spec.split(".")
        if first not in self._shell.user_ns:
            raise UsageError(f"no variable {first!r} in the notebook: TARGET names {_TARGET_KINDS}")
        value = self._shell.user_ns[first]
        for attribute in attributes:
            try:
                value = getattr(value, attribute)
            except AttributeError:
                raise UsageError(f"{spec!r}: no attribute {attribute!r}") from None
        group = self._as_group(spec, value)
        if not len(group):
            raise UsageError(
                f"{spec!r} has no hosts"
                + (" selected" if not isinstance(value, (Group, list, tuple)) else "")
            )
        return group

    def _range_target(self, spec: str) -> Group:
        """``web[01-04]`` written as TARGET: those hosts. Not if it reads as Python on a
        notebook variable (``hosts[0]``, ``a,b``): that would reach hosts named ``hosts0``."""
        variables = [name for name in _RANGE_HEADS.findall(spec) if name in self._shell.user_ns]
        if variables:
            raise UsageError(
                f"TARGET must be a variable name or a host range such as web[01-04], not Python "
                f"code: {spec!r} starts with the notebook variable {variables[0]!r} "
                f"(put what you mean in a variable first: target = {spec})"
            )
        try:
            names = expand(spec)
        except HostRangeError as exc:
            raise UsageError(f"TARGET {spec!r} is not a host range: {exc}") from None
        return self._names_group(spec, names)

    def _names_group(self, spec: str, names: Sequence[str | BaseTunnel]) -> Group:
        try:
            return Group([self._tunnel(h) if isinstance(h, str) else h for h in names])
        except ValueError as exc:
            raise UsageError(f"{spec!r}: {exc}") from None

    def _as_group(self, spec: str, value: Any) -> Group:
        if isinstance(value, Group):
            return value
        if isinstance(value, BaseTunnel):
            return Group([value])
        if isinstance(value, (list, tuple)) and all(
            isinstance(host, (str, BaseTunnel)) for host in value
        ):
            hosts: list[str | BaseTunnel] = []
            for host in value:  # ranges stand for their names
                try:
                    hosts += (
                        expand(host) if isinstance(host, str) and is_expression(host) else [host]
                    )
                except HostRangeError as exc:
                    raise UsageError(f"{spec!r}: {exc}") from None
            return self._names_group(spec, hosts)
        picked = getattr(value, "group", None)  # a HostPicker, or anything with a .group
        if isinstance(picked, Group):
            return picked
        kind = type(value).__name__
        raise UsageError(f"{spec!r} is {_article(kind)} {kind}: TARGET names {_TARGET_KINDS}")

    def _tunnel(self, host: str) -> BaseTunnel:
        key = (host, self.ssh_config)
        tunnel = self._named.get(key)
        if tunnel is None:
            tunnel = self._named[key] = SSHTunnel(host, ssh_config=self.ssh_config)
        return tunnel

    def _store(self, name: str | None, result: GroupResult) -> None:
        if name is not None:
            self._shell.user_ns[name] = result


#: ``%remote``'s arguments, applied below (magic_arguments is untyped: as decorators they would
#: hide ``remote`` from mypy). They make its parser and the usage part of ``%%remote?``.
_ARGUMENTS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("target",),
        {
            "help": "the hosts: the name of a Group, a tunnel, a HostPicker or a list of host "
            "names (or tunnels) in the notebook; a dotted name such as picker.group works too"
        },
    ),
    (("-o", "--output"), {"metavar": "NAME", "help": "also store the GroupResult in NAME"}),
    (
        ("--timeout",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "give up on hosts that have not finished after SECONDS (they are cancelled)",
        },
    ),
    (
        ("--no-raise",),
        {
            "action": "store_true",
            "help": "do not fail the cell when hosts fail (by default it fails after showing "
            "every result, so that Run All stops)",
        },
    ),
    (
        ("-q", "--quiet"),
        {"action": "store_true", "help": "no progress and no remote output: only the result"},
    ),
]


def _add_arguments(func: Callable[..., Any]) -> None:
    helpers: Any = magic_arguments
    for names, options in reversed(_ARGUMENTS):
        helpers.argument(*names, **options)(func)
    helpers.magic_arguments()(func)


_add_arguments(RemoteMagics.remote)
