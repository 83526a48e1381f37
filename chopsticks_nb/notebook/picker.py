"""HostPicker: choose hosts in a notebook, check which answer, and use the choice as a Group."""

from __future__ import annotations

import fnmatch
import html
import os
from collections.abc import Iterable, Mapping
from typing import Any, Union

import ipywidgets as w
import traitlets

from ..group import Group
from ..inventory import read_inventory
from ..result import ErrorResult, GroupResult, HostDone
from ..tunnel import BaseTunnel

__all__ = ["HostPicker"]

_GLOB_CHARS = ("*", "?", "[")
#: the group selector's first choice: no group, every host
_EVERY_HOST = ""

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
        self._boxes: dict[str, w.Checkbox] = {}
        self._status: dict[str, w.HTML] = {}
        self._rows: dict[str, w.HBox] = {}
        for name in self._all.hosts:
            box = w.Checkbox(
                value=False, description=name, indent=False, layout=w.Layout(width="auto")
            )
            box.observe(self._on_box, "value")
            status = w.HTML(value="")
            row = w.HBox([box, status])
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
            layout=w.Layout(width="auto", display=None if self._groups else "none"),
        )
        self.group_selector.observe(self._on_filter, "value")
        narrow = w.Layout(width="auto")
        self.all_button = w.Button(
            description="all", tooltip="select every host shown", layout=narrow
        )
        self.none_button = w.Button(
            description="none", tooltip="unselect every host shown", layout=narrow
        )
        self.check_button = w.Button(
            description="check",
            icon="plug",
            layout=narrow,
            tooltip="connect to the hosts shown; show their Python",
        )
        self.all_button.on_click(lambda _: self._select_shown(True))
        self.none_button.on_click(lambda _: self._select_shown(False))
        self.check_button.on_click(lambda _: self._check_clicked())
        self.summary = w.HTML(value="")
        toolbar = w.HBox(
            [
                self.group_selector,
                self.filter_box,
                self.all_button,
                self.none_button,
                self.check_button,
            ]
        )
        rows = w.VBox(
            list(self._rows.values()), layout=w.Layout(max_height="20em", overflow="auto")
        )
        super().__init__([toolbar, rows, self.summary])
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
            self._status[host].value = "<em>checking...</em>"
        limit = self.check_timeout if timeout is None else timeout
        # quiet: the picker shows each host's state itself (and a click runs outside any cell)
        return targets.connect(timeout=limit, progress=self._show_check, quiet=True)

    def close(self) -> None:
        """Close every tunnel and the widget (and the widgets inside it)."""
        group = self.__dict__.get("_all")  # absent if __init__ failed (Widget.__del__ closes)
        if group is not None:
            group.close()
        for widget in self._parts():
            widget.close()
        super().close()

    def _parts(self) -> list[w.Widget]:
        parts: list[w.Widget] = []
        for name in ("_boxes", "_status", "_rows"):
            parts += self.__dict__.get(name, {}).values()
        for name in (
            "group_selector",
            "filter_box",
            "all_button",
            "none_button",
            "check_button",
            "summary",
        ):
            if name in self.__dict__:
                parts.append(self.__dict__[name])
        if self.__dict__.get("_built"):
            parts += self.children
        return parts

    def __repr__(self) -> str:
        return f"HostPicker(hosts={self.hosts!r}, selected={list(self.selected)!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget, plus a static HTML list for where widgets do not render (GitHub)."""
        bundle: dict[str, Any] | None = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            chosen = set(self.selected)
            items = "".join(
                f"<li>{'☑' if host in chosen else '☐'} <code>{html.escape(host)}</code> "
                f"{self._status[host].value}</li>"
                for host in self.hosts
            )
            bundle["text/html"] = f"<div><small>HostPicker</small><ul>{items}</ul></div>"
        return bundle

    # -- widget events -----------------------------------------------------------------------

    def _show_check(self, done: HostDone) -> None:
        self._status[done.host].value = _check_html(done.value)

    def _check_clicked(self) -> None:
        try:
            self.check()
        except Exception as exc:  # a button handler's exception would only reach a log
            for host in self.shown:
                self._status[host].value = _status_html(False, f"check failed: {exc}")

    def _select_shown(self, value: bool) -> None:
        shown = set(self.shown)
        chosen = set(self.selected)
        chosen = chosen | shown if value else chosen - shown
        self.selected = [host for host in self.hosts if host in chosen]

    def _on_filter(self, change: dict[str, Any]) -> None:
        shown = set(self.shown)
        for host, row in self._rows.items():
            row.layout.display = None if host in shown else "none"
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

    def _update_summary(self) -> None:
        shown = len(self.shown)
        hidden = ""
        if shown < len(self.hosts):
            hidden = f" ({len(self.hosts) - shown} hidden by the filter)"
        self.summary.value = (
            f"<small>{len(self.selected)} of {len(self.hosts)} hosts selected{hidden}</small>"
        )


def _status_html(ok: bool, text: str) -> str:
    mark, colour = ("✓", "#1b5e20") if ok else ("✗", "#b00020")
    return f'<span style="color:{colour}">{mark} {html.escape(text)}</span>'


def _check_html(value: Any) -> str:
    if isinstance(value, ErrorResult):
        return _status_html(False, f"{value.status}: {value.msg}")
    info = value if isinstance(value, dict) else {}
    version = ".".join(str(part) for part in info.get("version", ()))
    where = info.get("hostname")
    text = f"Python {version}" + (f" on {where}" if where else "")
    return _status_html(True, text)
