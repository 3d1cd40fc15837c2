"""Hardened YAML loading: plain data only, bounded work, strict keys.

Loading is safe (a yaml.SafeLoader subclass only; no tags that build Python
objects), bounded (file size, nesting depth, nodes before and after alias
expansion: reading any file takes a few seconds at most), and strict (duplicate
keys, non-text keys and unreadable scalars are errors); every problem is a
`ScenarioError` with a line and column where YAML gives one.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from parse_actors.errors import ScenarioError

from .errors import _fmt_value

MAX_NODES = 200_000  # YAML nodes after alias expansion; real scenarios use hundreds
MAX_COMPOSED = 50_000  # YAML nodes as written (before aliases): bounds parse time to ~2 s
MAX_NUMBER_CHARS = 1000  # longer int/float scalars are refused before conversion (base-60 ints are quadratic)
MAX_BYTES = 1024 * 1024  # real scenarios are a few KiB; the pure-Python parser reads ~100 KiB/s at worst
MAX_DEPTH = 64  # nesting levels; real scenarios use 6


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` (plain data only: no tag builds a Python object) with limits.

    The pure-Python parser is slow (tens of microseconds per node) and its
    look-ahead is quadratic in the nesting depth, so the limits act while the
    text is being read, not after: nesting deeper than MAX_DEPTH and more than
    MAX_COMPOSED nodes stop the parse early. Scalars that match a YAML type but
    cannot be built (`2020-13-45`, `!!int abc`, a 5000-digit integer) and
    duplicate keys are YAML errors with a line and column, like any other.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._composed = 0
        self._dup_checked: set[int] = set()

    # -- scanner: refuse deep nesting before the look-ahead gets expensive
    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        if self.indent < column and len(self.indents) >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        return super().add_indent(column)

    # -- composer: bound the work before aliases are even expanded
    def compose_node(self, parent: Any, index: Any) -> Any:
        self._composed += 1
        if self._composed > MAX_COMPOSED:
            raise yaml.composer.ComposerError(None, None, f"more than {MAX_COMPOSED} values (a scenario has hundreds)",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    # -- constructor: every failure is a YAML error with a position
    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if (isinstance(node, yaml.ScalarNode) and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
                and len(node.value) > MAX_NUMBER_CHARS):
            raise yaml.constructor.ConstructorError(
                None, None, f"a number written with more than {MAX_NUMBER_CHARS} characters", node.start_mark
            )
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, IndexError) as e:
            what = str(node.tag).rsplit(":", 1)[-1]
            if isinstance(e, ValueError) and "digits" in str(e):
                why = "too many digits"
            elif isinstance(e, (ValueError, OverflowError)) and str(e):
                why = str(e)
            else:
                why = "not in a form YAML accepts"
            hint = " (quote it to make it text)" if what == "timestamp" else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_fmt_value(node.value)} as {what}: {why}{hint}", node.start_mark
            ) from None

    def flatten_mapping(self, node: Any) -> None:
        # First visit of a mapping: its own keys, before merge keys (`<<`) add theirs.
        if id(node) not in self._dup_checked:
            self._dup_checked.add(id(node))
            seen: set = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in (
                    "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"
                ):
                    continue
                key = self.construct_object(key_node)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: PyYAML reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {_fmt_value(key)} (the later value would silently win)", key_node.start_mark,
                    )
                seen.add(key)
        super().flatten_mapping(node)


def _children(node: Any) -> list:
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            out.append(k)
            out.append(v)
        return out
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    return []


def _count_nodes(obj: Any, limit: int) -> None:
    """Walk the loaded document with aliases expanded; refuse exponential ones."""
    seen = 0
    stack = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > limit:
            raise ScenarioError(None, "", f"document too large after expanding aliases (more than {limit} nodes)")
        if depth > MAX_DEPTH:
            raise ScenarioError(None, "", f"document nested more than {MAX_DEPTH} levels deep")
        stack.extend((c, depth + 1) for c in _children(node))


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _char_name(c: Any) -> str:
    return f"#x{c:04x}" if isinstance(c, int) else repr(c)


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def parse_yaml(text: str | bytes, what: str = "document") -> Any:
    """Safe-load YAML; any problem becomes a ScenarioError."""
    if len(text) > MAX_BYTES:
        raise ScenarioError(None, "", f"{what} larger than {MAX_BYTES} bytes (a scenario is a few KiB)")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ScenarioError(None, "", f"not UTF-8 text (byte {e.start})") from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass: plain data only
    except yaml.reader.ReaderError as e:
        raise ScenarioError(
            None, "", f"invalid YAML {what}: {_position(text, e.position)}: "
            f"character {_char_name(e.character)} is not allowed (special characters must be escaped in quotes)"
        ) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(None, "", f"invalid YAML {what}: {where}{_clip(str(e.problem or e))}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(None, "", f"invalid YAML {what}: {_clip(str(e))}") from None
    except RecursionError:
        raise ScenarioError(None, "", f"YAML {what} nested too deeply") from None
    except MemoryError:
        raise ScenarioError(None, "", f"YAML {what} too large to load") from None
    _count_nodes(doc, MAX_NODES)
    return doc


def _key_text(k: Any) -> str:
    """A key as it appears in a dotted path (YAML spelling for booleans and null)."""
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    if isinstance(k, str):
        return k
    if isinstance(k, int) and k.bit_length() > 200:
        return _fmt_value(k)
    return str(k) if isinstance(k, (int, float, datetime.date)) else _fmt_value(k)


def _check_keys(doc: Any, file: str | None) -> None:
    """Every mapping key is text (YAML turns `on:`, `1:`, `null:` into other types)."""
    stack: list[tuple[Any, tuple]] = [(doc, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    hint = ""
                    if isinstance(k, bool):
                        hint = " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the key)"
                    elif k is None:
                        hint = " (an empty or `null` key)"
                    where = ".".join(path + (_key_text(k),))
                    raise ScenarioError(file, where, f"keys must be text, got {_fmt_value(k)}{hint}")
            stack.extend((v, path + (k,)) for k, v in reversed(list(node.items())))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, path + (str(i),)) for i, v in reversed(list(enumerate(node))))


def load_document(path: str | Path, regular_only: bool = False) -> dict:
    """The YAML mapping in file `path`. `regular_only`: refuse a link, a FIFO or a device
    (a run directory's own scenario.yaml, read on resume); a scenario named on the
    command line may be anything readable, `<(...)` included."""
    path = Path(path)
    try:
        if regular_only:
            from parse_actors.regular_file import read_regular

            raw = read_regular(path, MAX_BYTES)
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(str(path), "", "is a directory, expected a YAML file") from None
    except OSError as e:
        raise ScenarioError(str(path), "", f"cannot read: {e.strerror}") from None
    try:
        doc = parse_yaml(raw)
    except ScenarioError as e:
        raise ScenarioError(str(path), e.path, e.message) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ScenarioError(str(path), "", f"expected a mapping of keys at the top level, got {type(doc).__name__}")
    return doc
