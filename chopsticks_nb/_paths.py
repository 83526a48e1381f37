"""The paths of group transfers: one per host from a ``{host}`` template, none outside it."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence

__all__ = ["local_paths", "make_parent_dirs", "remote_put_paths", "template_dir"]


def template_dir(template: str) -> str:
    """The directory part of ``template`` that no format field can change."""
    literal = ""
    for text, field, _spec, _conv in string.Formatter().parse(template):
        literal += text
        if field is not None:
            return os.path.dirname(literal)
    return os.path.dirname(template)


def _formatted(template: str, host: str, what: str) -> str:
    """``template`` with ``{host}`` replaced by ``host``, which must be one path component."""
    if not host or "/" in host or os.sep in host or "\0" in host or host in (".", ".."):
        raise ValueError(f"host name {host!r} cannot be used in a {what.replace('_', ' ')}")
    try:
        return template.format(host=host)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(f"{what} template {template!r} must use only {{host}}: {exc!r}") from None


def remote_put_paths(template: str | None, hosts: Sequence[str]) -> dict[str, str | None]:
    """Each host's remote path of a group put: ``{host}`` in ``template`` becomes its name.

    A template without ``{host}`` is every host's path; None stays None (a temporary file).
    Raises ValueError for a field other than ``{host}`` or a host name that is not one path
    component.
    """
    if template is None or "{" not in template:
        return dict.fromkeys(hosts, template)
    return {host: _formatted(template, host, "remote_path") for host in hosts}


def local_paths(
    template: str | os.PathLike[str] | None, hosts: Sequence[str]
) -> dict[str, str | None]:
    """Each host's local fetch path from ``template`` (None everywhere without a template).

    Raises ValueError for a host name that could climb out of the template's directory, a
    template naming a field other than ``{host}``, or two hosts given the same path.
    """
    if template is None:
        return dict.fromkeys(hosts)
    text = os.fspath(template)
    base = os.path.abspath(template_dir(text) or os.curdir)
    real_base = os.path.realpath(base)
    paths: dict[str, str | None] = {}
    for host in hosts:
        formatted = _formatted(text, host, "local_path")
        path = os.path.abspath(formatted)
        parent = os.path.realpath(os.path.dirname(path))
        if (
            os.path.commonpath([base, path]) != base
            or path == base
            or os.path.commonpath([real_base, parent]) != real_base
        ):
            raise ValueError(f"local_path {formatted!r} for host {host!r} leaves {base!r}")
        paths[host] = path
    if len(set(paths.values())) < len(paths):
        raise ValueError(
            f"local_path template {text!r} gives several hosts the same path: put {{host}} in it"
        )
    return paths


def make_parent_dirs(
    template: str | os.PathLike[str] | None, paths: Mapping[str, str | None]
) -> None:
    """Create the per-host directories a template like ``out/{host}/file`` needs."""
    if template is None:
        return
    base = os.path.abspath(template_dir(os.fspath(template)) or os.curdir)
    for path in paths.values():
        if path is not None and os.path.dirname(path) != base:
            os.makedirs(os.path.dirname(path), exist_ok=True)
