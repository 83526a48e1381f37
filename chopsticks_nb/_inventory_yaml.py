"""Reads an Ansible inventory in YAML (or JSON) form into an ``InventoryGraph``.

::

    all:
      hosts:
        mail.example.com:
      vars:
        ansible_user: deploy
      children:
        web:
          hosts:
            web[01:20].lan:
            web-old:
              ansible_host: 10.0.0.5
              ansible_port: 2222
          vars:
            ansible_become: yes

A group maps ``hosts`` (names or patterns, each with its variables or nothing), ``vars`` and
``children`` (more groups). PyYAML's safe loader reads it (YAML 1.1: ``yes``/``no`` are
booleans); PyYAML is imported only when a YAML inventory is read. Errors keep PyYAML's line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._inventory_model import InventoryGraph, Origin, Variable, expand_host_pattern

if TYPE_CHECKING:
    import yaml

__all__ = ["read_yaml"]

_GROUP_KEYS = ("hosts", "vars", "children")


def read_yaml(text: str, path: str, graph: InventoryGraph) -> None:
    """Add what a YAML inventory's ``text`` (read from ``path``) defines to ``graph``."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _Reader(loader, path, graph).top(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not YAML"
        raise _at(path, mark, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise Origin(path).error(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    graph.finish()


def _at(path: str, mark: yaml.Mark | None, message: str) -> Exception:
    return Origin(path, None if mark is None else mark.line + 1).error(message)


class _Reader:
    """Walks the node tree, so every group, host and variable knows its line."""

    def __init__(self, loader: yaml.SafeLoader, path: str, graph: InventoryGraph) -> None:
        self.loader = loader
        self.path = path
        self.graph = graph

    def origin(self, node: yaml.Node) -> Origin:
        return Origin(self.path, node.start_mark.line + 1)

    def top(self, root: yaml.Node) -> None:
        for key, value in self.mapping(root, "a YAML inventory maps group names to groups"):
            self.group(self.name(key, "group"), key, value, parent=None)

    def group(self, name: str, key: yaml.Node, node: yaml.Node, *, parent: str | None) -> None:
        origin = self.origin(key)
        self.graph.define_group(name, origin)
        if parent is not None:
            self.graph.add_child(parent, name, origin)
        expected = f"group {name!r} maps hosts, vars and children"
        for part, value in self.mapping(node, expected):
            section = self.name(part, "section")
            if section == "hosts":
                self.hosts(name, value)
            elif section == "vars":
                variables = self.variables(value, f"the vars of group {name!r}")
                self.graph.set_group_vars(name, variables, self.origin(part), define=True)
            elif section == "children":
                for child, child_node in self.mapping(value, f"children of {name!r} are groups"):
                    self.group(self.name(child, "group"), child, child_node, parent=name)
            else:
                raise self.origin(part).error(
                    f"unknown key {section!r} in group {name!r}: hosts, vars or children"
                )

    def hosts(self, group: str, node: yaml.Node) -> None:
        expected = f"the hosts of {group!r} map host names to their variables"
        for key, value in self.mapping(node, expected):
            origin = self.origin(key)
            pattern = self.name(key, "host")
            variables = self.variables(value, f"the variables of host {pattern!r}")
            names, port = expand_host_pattern(pattern, origin)
            if port is not None:
                variables.setdefault("ansible_port", Variable(port, origin))
            for host in names:
                self.graph.add_host(host, group, variables, origin)

    def variables(self, node: yaml.Node, what: str) -> dict[str, Variable]:
        variables: dict[str, Variable] = {}
        for key, value in self.mapping(node, f"{what} are a mapping of names to values"):
            name = self.value(key)
            if not isinstance(name, str):
                raise self.origin(key).error(f"a variable name must be text, not {name!r}")
            variables[name] = Variable(self.value(value), self.origin(value))
        return variables

    def mapping(self, node: yaml.Node, expected: str) -> list[tuple[yaml.Node, yaml.Node]]:
        """The key and value nodes of a mapping (merge keys applied); none for an empty value."""
        import yaml

        if isinstance(node, yaml.ScalarNode) and self.value(node) is None:
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.origin(node).error(f"{expected}, not {_kind(node)}")
        if node.tag != yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG:  # never constructed
            raise self.origin(node).error(f"{expected}, not a value tagged {node.tag}")
        self.loader.flatten_mapping(node)
        return list(node.value)

    def name(self, node: yaml.Node, what: str) -> str:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
            raise self.origin(node).error(f"expected a {what} name, not {_kind(node)}")
        return str(value)

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)


def _kind(node: yaml.Node) -> str:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"
