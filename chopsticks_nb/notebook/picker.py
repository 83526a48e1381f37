"""HostPicker: choose hosts in a notebook, check which answer, and use the choice as a Group.

Shown, the picker is two outputs: a static rendering of its state (which hosts are selected,
what the check found: HTML and text, updated in place through its display id at each change),
then the widget. A live frontend draws the widget and hides the static rendering (a CSS rule
of the static output, matching only beside a drawn picker); where widgets do not render (a
saved notebook without its kernel, nbconvert's HTML offline, GitHub), the static rendering is
what shows, and it reads without styles too. The widget is a few models per host (rows share
their layouts and styles), so a saved notebook's widget state stays small.
"""

from __future__ import annotations

import fnmatch
import html
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Union

import ipywidgets as w
import traitlets
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from ..group import Group
from ..inventory import read_inventory
from ..render import fold_hosts
from ..result import ErrorResult, GroupResult, HostDone
from ..tunnel import BaseTunnel

__all__ = ["HostPicker"]

_GLOB_CHARS = ("*", "?", "[")
#: the group selector's first choice: no group, every host
_EVERY_HOST = ""
#: The static rendering lists its hosts open up to this many; more are folded in a details.
STATIC_OPEN_HOSTS = 20
#: Hosts listed one a line in the static text rendering; the rest are counted.
STATIC_TEXT_HOSTS = 50
#: Hides the static rendering of a picker in an output area where its widget is drawn.
_HIDE_BESIDE_WIDGET = (
    "<style>.jp-OutputArea:has(.chopsticks-nb-picker) > "
    ".jp-OutputArea-child:has(.chopsticks-nb-picker-static){display:none}</style>"
)

HostSpec = Union[str, BaseTunnel]


def _matches(host: str, query: str) -> bool:
    query = query.strip().lower()
    if not query:
        return True
    if any(c in query for c in _GLOB_CHARS):
        return fnmatch.fnmatchcase(host.lower(), query)
    return query in host.lower()


class HostPicker(w.VBox):  # type: ignore[misc]
    """A widget to pick hosts: a filter box, select all/none, a reachability check.

    ``hosts`` are tunnels, host names and host ranges such as ``"web[01-20]"`` (names become
    :class:`~chopsticks_nb.tunnel.SSHTunnel` with ``ssh_config`` and the other keyword options);
    without ``hosts``, the names are the concrete ``Host`` entries of ``ssh_config`` (default
    ``~/.ssh/config``, Includes followed). ``groups`` (a mapping of group names to host names)
    adds a selector showing one group's hosts at a time; :meth:`from_inventory` fills it with an
    Ansible inventory's groups. ``selected`` names the hosts ticked at first (``True``: all).
    :attr:`group` is the selection as a :class:`~chopsticks_nb.group.Group`, and the picker
    itself is a ``%%remote`` target::

        picker = HostPicker(ssh_config="~/.ssh/config")
        picker            # shown: tick hosts, press "check"

    then, in a later cell::

        %%remote picker
        import platform
        platform.node()

    The picker keeps one tunnel per host, so work done through :attr:`group` reuses the same
    connections (and the same ``%%remote`` namespace); :meth:`close` closes them.
    """

    #: the names of the ticked hosts, in the order of :attr:`hosts` (settable, observable)
    selected = traitlets.List(traitlets.Unicode())
    #: seconds the "check" button waits for every host to answer
    check_timeout = traitlets.Float(10.0)

    def __init__(
        self,
        hosts: str | Iterable[HostSpec] | None = None,
        *,
        ssh_config: str | os.PathLike[str] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
        selected: Iterable[str] | bool = (),
        check_timeout: float = 10.0,
        **tunnel_options: Any,
    ) -> None:
        config = None if ssh_config is None else os.path.expanduser(os.fspath(ssh_config))
        if hosts is None:
            self._all = Group.from_ssh_config(path=config, **tunnel_options)
        elif isinstance(hosts, BaseTunnel):
            raise TypeError("HostPicker() takes a list of hosts or tunnels, not a single tunnel")
        else:  # names and ranges become SSHTunnels; duplicate names are refused
            self._all = Group(hosts, ssh_config=config, **tunnel_options)
        self._groups = self._group_members(groups or {})
        self._syncing = False
        self._display_id = f"chopsticks-nb-picker-{uuid.uuid4().hex}"
        self._static_shown = False
        #: per host: (True ok, False failed, None checking) and the check's text
        self._checks: dict[str, tuple[bool | None, str]] = {}
        # Shared by every row: a widget's own layout and style are models of their own,
        # each saved in the notebook.
        auto, plain = w.Layout(width="auto"), w.Layout()
        box_style, html_style, button_style = CheckboxStyle(), HTMLStyle(), w.ButtonStyle()
        self._shared = [auto, plain, box_style, html_style, button_style]
        self._boxes: dict[str, w.Checkbox] = {}
        self._status: dict[str, w.HTML] = {}
        self._rows: dict[str, w.HBox] = {}
        for name in self._all.hosts:
            box = w.Checkbox(
                value=False,
                description=name,
                indent=False,
                layout=auto,
                style=box_style,
            )
            box.observe(self._on_box, "value")
            status = w.HTML(value="", layout=plain, style=html_style)
            row = w.HBox([box, status], layout=plain)
            row.add_class("chopsticks-nb-picker-row")
            self._boxes[name], self._status[name], self._rows[name] = box, status, row
        self.filter_box = w.Text(
            placeholder="filter: part of a name, or a glob like web*",
            continuous_update=True,
            layout=w.Layout(width="20em"),
        )
        self.filter_box.observe(self._on_filter, "value")
        self.group_selector = w.Dropdown(
            options=[("every host", _EVERY_HOST)]
            + [(f"{name} ({len(members)})", name) for name, members in self._groups.items()],
            value=_EVERY_HOST,
            description="group",
            layout=auto if self._groups else w.Layout(display="none"),
        )
        self.group_selector.observe(self._on_filter, "value")
        self.all_button = w.Button(
            description="all", tooltip="select every host shown", layout=auto, style=button_style
        )
        self.none_button = w.Button(
            description="none",
            tooltip="unselect every host shown",
            layout=auto,
            style=button_style,
        )
        self.check_button = w.Button(
            description="check",
            icon="plug",
            layout=auto,
            style=button_style,
            tooltip="connect to the hosts shown; show their Python",
        )
        self.all_button.on_click(lambda _: self._select_shown(True))
        self.none_button.on_click(lambda _: self._select_shown(False))
        self.check_button.on_click(lambda _: self._check_clicked())
        self.summary = w.HTML(value="", layout=plain, style=html_style)
        toolbar = w.HBox(
            [
                self.group_selector,
                self.filter_box,
                self.all_button,
                self.none_button,
                self.check_button,
            ],
            layout=plain,
        )
        self._list = w.VBox(
            list(self._rows.values()), layout=w.Layout(max_height="20em", overflow="auto")
        )
        super().__init__([toolbar, self._list, self.summary], layout=plain)
        self._built = True
        self.add_class("chopsticks-nb-picker")
        self.check_timeout = check_timeout
        self.observe(self._on_selection, "selected")
        chosen = self._all.hosts if selected is True else [] if selected is False else selected
        self.selected = list(chosen)
        self._update_summary()

    @classmethod
    def from_inventory(
        cls,
        path: str | os.PathLike[str],
        group: str = "all",
        *,
        selected: Iterable[str] | bool = (),
        check_timeout: float = 10.0,
        **tunnel_options: Any,
    ) -> HostPicker:
        """A picker over the hosts of an Ansible inventory's ``group``, with a selector for
        its groups. The tunnels are :meth:`Group.from_inventory`'s (``tunnel_options`` go to it).
        """
        tunnels = Group.from_inventory(path, group, **tunnel_options).tunnels
        inventory = read_inventory(path)
        names = {tunnel.host for tunnel in tunnels}
        groups = {
            name: members
            for name in inventory.groups
            if name not in ("all", group)
            and (members := [h for h in inventory.host_names(name) if h in names])
        }
        return cls(tunnels, groups=groups, selected=selected, check_timeout=check_timeout)

    @classmethod
    def from_ssh_config(
        cls,
        pattern: str = "*",
        path: str | os.PathLike[str] | None = None,
        *,
        selected: Iterable[str] | bool = (),
        check_timeout: float = 10.0,
        **tunnel_options: Any,
    ) -> HostPicker:
        """A picker over the concrete ``Host`` entries of an ssh config matching ``pattern``
        (the tunnels of :meth:`Group.from_ssh_config`, which ``tunnel_options`` go to)."""
        tunnels = Group.from_ssh_config(pattern, path, **tunnel_options).tunnels
        return cls(tunnels, selected=selected, check_timeout=check_timeout)

    def _group_members(self, groups: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        known = set(self._all.hosts)
        members: dict[str, list[str]] = {}
        for name, hosts in groups.items():
            if isinstance(hosts, str):
                raise TypeError(f"group {name!r}: a list of host names, not a string")
            listed = set(hosts)
            unknown = listed - known
            if unknown:
                raise ValueError(
                    f"group {name!r} names hosts the picker does not have: "
                    + ", ".join(sorted(unknown))
                )
            members[name] = [host for host in self._all.hosts if host in listed]
        return members

    # -- what the user sees and picks ------------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        """Every host name, in order."""
        return self._all.hosts

    @property
    def tunnels(self) -> list[BaseTunnel]:
        """Every tunnel, in order."""
        return self._all.tunnels

    @property
    def groups(self) -> dict[str, list[str]]:
        """The groups the selector offers, each with its hosts."""
        return {name: list(hosts) for name, hosts in self._groups.items()}

    @property
    def shown(self) -> list[str]:
        """The hosts that pass the filter (and are in the group the selector shows)."""
        chosen = self.group_selector.value
        members = set(self._groups[chosen]) if chosen != _EVERY_HOST else None
        return [
            host
            for host in self.hosts
            if _matches(host, self.filter_box.value) and (members is None or host in members)
        ]

    @property
    def group(self) -> Group:
        """The selected hosts as a Group (the same tunnels every time)."""
        chosen = set(self.selected)
        return Group([tunnel for tunnel in self._all if tunnel.host in chosen])

    def select(self, hosts: Iterable[str] | str | bool = True) -> None:
        """Select hosts: a list of names, a filter (substring or glob), or True/False for all."""
        if hosts is True or hosts is False:
            self.selected = self.hosts if hosts else []
        elif isinstance(hosts, str):
            self.selected = [host for host in self.hosts if _matches(host, hosts)]
        else:
            self.selected = list(hosts)

    def check(self, timeout: float | None = None) -> GroupResult:
        """Connect to the hosts shown, in parallel, and show whether each answers and its Python.

        Returns the GroupResult of :meth:`Group.connect`: what each agent said of itself
        (``version``, ``hostname``, ...) or an ErrorResult. Waits ``timeout`` seconds at most
        (default :attr:`check_timeout`).
        """
        shown = set(self.shown)
        targets = Group([tunnel for tunnel in self._all if tunnel.host in shown])
        for host in targets.hosts:
            self._set_status(host, None, "checking...")
        limit = self.check_timeout if timeout is None else timeout
        try:
            # quiet: the picker shows each host's state itself (a click runs outside any cell)
            return targets.connect(timeout=limit, progress=self._show_check, quiet=True)
        finally:
            self._refresh_static()  # once, at the end: not once per host

    def close(self) -> None:
        """Close every tunnel and the widget (and the widgets inside it)."""
        group = self.__dict__.get("_all")  # absent if __init__ failed (Widget.__del__ closes)
        if group is not None:
            group.close()
        for widget in self._parts():
            widget.close()
        super().close()

    def _parts(self) -> list[w.Widget]:
        parts: list[w.Widget] = list(self.__dict__.get("_shared", ()))
        for name in ("_boxes", "_status", "_rows"):
            parts += self.__dict__.get(name, {}).values()
        for name in (
            "group_selector",
            "filter_box",
            "all_button",
            "none_button",
            "check_button",
            "summary",
            "_list",
        ):
            if name in self.__dict__:
                parts.append(self.__dict__[name])
        if self.__dict__.get("_built"):
            parts += self.children
        return parts

    def __repr__(self) -> str:
        return f"HostPicker(hosts={self.hosts!r}, selected={list(self.selected)!r})"

    def _ipython_display_(self) -> None:
        """Two outputs: the static rendering (kept up to date through its display id), then,
        in a kernel, the widget (see the module's docstring)."""
        from IPython import get_ipython
        from IPython.display import display

        show: Any = display
        show(self._static_bundle(), raw=True, display_id=self._display_id)
        self._static_shown = True
        widget = super()._repr_mimebundle_()
        if widget is not None and getattr(get_ipython(), "kernel", None) is not None:
            # No text of its own: the static rendering stands for it where widgets do not
            # render (nbconvert falls back to this when the notebook saved no widget state).
            show({**widget, "text/plain": ""}, raw=True)

    def static_html(self) -> str:
        """The picker's state as HTML that needs no widgets, no script and no styles: the
        selection, then every host with its check mark and what the check found."""
        chosen = set(self.selected)
        items = "".join(
            f"<li>{'☑' if host in chosen else '☐'} <code>{html.escape(host)}</code>"
            f"{self._status_of(host, html_form=True)}</li>"
            for host in self.hosts
        )
        hosts = f"<ul>{items}</ul>"
        if len(self.hosts) > STATIC_OPEN_HOSTS:
            hosts = f"<details><summary>every host ({len(self.hosts)})</summary>{hosts}</details>"
        return (
            f'<div class="chopsticks-nb-picker-static">{_HIDE_BESIDE_WIDGET}'
            f"<strong>HostPicker</strong>: {html.escape(self._selection_line())}{hosts}</div>"
        )

    def static_text(self) -> str:
        """The same as text: the selection, then a host a line (``[x] web1  ✓ Python 3.12``)."""
        chosen = set(self.selected)
        lines = [f"HostPicker: {self._selection_line()}"]
        for host in self.hosts[:STATIC_TEXT_HOSTS]:
            mark = "[x]" if host in chosen else "[ ]"
            lines.append(f"  {mark} {host}{self._status_of(host, html_form=False)}")
        if len(self.hosts) > STATIC_TEXT_HOSTS:
            lines.append(f"  ... {len(self.hosts) - STATIC_TEXT_HOSTS} more hosts")
        return "\n".join(lines)

    def _selection_line(self) -> str:
        count = f"{len(self.selected)} of {len(self.hosts)} hosts selected"
        return f"{count}: {fold_hosts(self.selected)}" if self.selected else count

    def _status_of(self, host: str, *, html_form: bool) -> str:
        check = self._checks.get(host)
        if check is None:
            return ""
        ok, text = check
        if html_form:
            return " " + (f"<em>{html.escape(text)}</em>" if ok is None else _status_html(ok, text))
        return "  " + (text if ok is None else f"{'✓' if ok else '✗'} {text}")

    def _static_bundle(self) -> dict[str, str]:
        return {"text/html": self.static_html(), "text/plain": self.static_text()}

    def _refresh_static(self) -> None:
        """Bring the static rendering, wherever it is shown, up to date."""
        if not self._static_shown:
            return
        from IPython.display import update_display

        update: Any = update_display
        update(self._static_bundle(), raw=True, display_id=self._display_id)

    def _set_status(self, host: str, ok: bool | None, text: str) -> None:
        text = " ".join(text.split())  # one line, in every rendering
        self._checks[host] = (ok, text)
        self._status[host].value = (
            f"<em>{html.escape(text)}</em>" if ok is None else _status_html(ok, text)
        )

    # -- widget events -----------------------------------------------------------------------

    def _show_check(self, done: HostDone) -> None:
        self._set_status(done.host, *_check_outcome(done.value))

    def _check_clicked(self) -> None:
        try:
            self.check()
        except Exception as exc:  # a button handler's exception would only reach a log
            for host in self.shown:
                self._set_status(host, False, f"check failed: {exc}")
            self._refresh_static()

    def _select_shown(self, value: bool) -> None:
        shown = set(self.shown)
        chosen = set(self.selected)
        chosen = chosen | shown if value else chosen - shown
        self.selected = [host for host in self.hosts if host in chosen]

    def _on_filter(self, change: dict[str, Any]) -> None:
        # The rows shown are the list's children (rows share one layout: none hides alone).
        self._list.children = [self._rows[host] for host in self.shown]
        self._update_summary()

    def _on_box(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.selected = [host for host, box in self._boxes.items() if box.value]

    @traitlets.validate("selected")
    def _valid_selection(self, proposal: dict[str, Any]) -> list[str]:
        chosen = set(proposal["value"])
        unknown = chosen - set(self._boxes)
        if unknown:
            raise traitlets.TraitError(f"not hosts of this picker: {', '.join(sorted(unknown))}")
        return [host for host in self.hosts if host in chosen]  # the hosts' order, once each

    def _on_selection(self, change: dict[str, Any]) -> None:
        chosen = set(change["new"])
        self._syncing = True
        try:
            for host, box in self._boxes.items():
                box.value = host in chosen
        finally:
            self._syncing = False
        self._update_summary()
        self._refresh_static()

    def _update_summary(self) -> None:
        shown = len(self.shown)
        hidden = ""
        if shown < len(self.hosts):
            hidden = f" ({len(self.hosts) - shown} hidden by the filter)"
        self.summary.value = (
            f"<small>{len(self.selected)} of {len(self.hosts)} hosts selected{hidden}</small>"
        )


def _status_html(ok: bool, text: str) -> str:
    """The mark on a green or red background (the theme's error background for a failure),
    in the page's text colour: no theme colour reads as text in both light and dark themes
    (JupyterLab Light's green is 4.1:1 on white); then the text."""
    mark, background = (
        ("✓", "rgba(46,160,67,0.2)")
        if ok
        else ("✗", "var(--jp-rendermime-error-background,rgba(244,67,54,0.16))")
    )
    return (
        f'<span><span style="background:{background};padding:0 2px">{mark}'
        f"</span> {html.escape(text)}</span>"
    )


def _check_outcome(value: Any) -> tuple[bool, str]:
    """What a check found: answered (with its Python), or why not."""
    if isinstance(value, ErrorResult):
        return False, f"{value.status}: {value.msg}"
    info = value if isinstance(value, dict) else {}
    version = ".".join(str(part) for part in info.get("version", ()))
    where = info.get("hostname")
    return True, f"Python {version}" + (f" on {where}" if where else "")
