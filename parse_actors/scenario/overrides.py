"""`--set a.b.c=VALUE` overrides applied to the raw document before validation."""

from __future__ import annotations

from typing import Any

from parse_actors.errors import ScenarioError

from .errors import _fmt_value
from .yaml_safe import parse_yaml


def apply_override(doc: dict, assignment: str) -> None:
    """Apply one `a.b.c=VALUE` (VALUE parsed as YAML) to the raw document."""
    if "=" not in assignment:
        raise ScenarioError("--set", "", f"expected KEY.PATH=VALUE, got {_fmt_value(assignment)}")
    key, _, raw = assignment.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p.strip() for p in parts):
        raise ScenarioError("--set", key, "expected a dotted key path like network.link.bandwidth_mbps")
    parts = [p.strip() for p in parts]
    key = ".".join(parts)
    try:
        value = parse_yaml(raw, "value")
    except ScenarioError as e:
        raise ScenarioError("--set", key, e.message) from None
    node: Any = doc
    for i, p in enumerate(parts[:-1]):
        nxt = _child(node, p, ".".join(parts[: i + 1]))
        if nxt is None:
            nxt = {}
            _set_child(node, p, nxt, ".".join(parts[: i + 1]))
        elif not isinstance(nxt, (dict, list)):
            raise ScenarioError("--set", ".".join(parts[: i + 1]), f"is a value ({_fmt_value(nxt)}), not a section")
        node = nxt
    _set_child(node, parts[-1], value, key)


def _index(node: list, part: str, where: str) -> int:
    if not (part.isascii() and part.isdigit()):
        raise ScenarioError("--set", where, f"is a list: expected an item number 0..{len(node) - 1}, got {part!r}"
                            if node else f"is an empty list: there is no item {part!r} to set")
    i = int(part)
    if i >= len(node):
        raise ScenarioError("--set", where, f"list index {i} out of range (0..{len(node) - 1})"
                            if node else "the list is empty: there is no item to set")
    return i


def _child(node: Any, part: str, where: str = "") -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    return node.get(part)


def _set_child(node: Any, part: str, value: Any, key: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, key)] = value
    else:
        node[part] = value
