"""Scenario files: YAML in, one typed, fully defaulted `Scenario` out.

Loading is safe (a yaml.SafeLoader subclass only; no tags that build Python
objects), bounded (file size, nesting depth, nodes before and after alias
expansion: reading any file takes a few seconds at most), and strict (duplicate
keys, non-text keys and unreadable scalars are errors), `--set a.b.c=VALUE`
overrides any key, and every problem becomes a `ScenarioError` naming the file,
the key path as the user wrote it (empty for whole-document problems) and what
was expected, on one line.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import difflib
import math
import os
import re
import reprlib
import stat
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from netem import ConfigError as NetemConfigError
from netem import NetworkConfig
from parse_actors.agents import (
    METHODS,
    AggregationConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
)
from parse_actors.data import DataConfig, DataError
from parse_actors.errors import ScenarioError
from parse_actors.schema import StrictModel

MAX_NODES = 200_000  # YAML nodes after alias expansion; real scenarios use hundreds
MAX_COMPOSED = 50_000  # YAML nodes as written (before aliases): bounds parse time to ~2 s
MAX_NUMBER_CHARS = 1000  # longer int/float scalars are refused before conversion (base-60 ints are quadratic)
MAX_BYTES = 1024 * 1024  # real scenarios are a few KiB; the pure-Python parser reads ~100 KiB/s at worst
MAX_DEPTH = 64  # nesting levels; real scenarios use 6


class AgentGroup(StrictModel):
    """A set of agents sharing a modality set (and architectures)."""

    modalities: list[str] = Field(min_length=1)
    """Sensors of these agents, e.g. [image] or [image, audio]. The group label
    in the outputs is these names joined by '+', in this order."""
    count: int = Field(ge=1, le=100_000)
    """Number of agents in the group."""
    archs: dict[str, str] = Field(default_factory=dict)
    """Encoder architecture per modality (overrides model.archs), e.g. {image: cnn}."""
    name: Optional[str] = None
    """Label of the group in tables and plots; default: the modalities joined by '+'."""

    @field_validator("modalities")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"modalities must be distinct, got {v}")
        for m in v:
            if not m or "/" in m or "+" in m:
                raise ValueError(f"modality names may not be empty or contain '/' or '+', got {m!r}")
        return v

    @property
    def label(self) -> str:
        return self.name or "+".join(self.modalities)


class AgentsConfig(StrictModel):
    groups: list[AgentGroup] = Field(
        default_factory=lambda: [
            AgentGroup(modalities=["image"], count=3),
            AgentGroup(modalities=["audio"], count=3),
            AgentGroup(modalities=["image", "audio"], count=2),
        ],
        min_length=1,
    )
    """Agent groups; agents are numbered 0..n-1 in group order."""
    common_init: bool = True
    """Start every agent from the same initial parameters (as D-PSGD assumes); false: each its own."""


class TrainConfig(StrictModel):
    local_steps: int = Field(default=10, ge=0, le=100_000)
    """Local SGD steps per round (sync) or per cycle (async)."""
    batch_size: int = Field(default=32, ge=1, le=65_536)
    """Minibatch size of each local step."""


class ProtocolConfig(StrictModel):
    mode: Literal["sync", "async"] = "sync"
    """Gossip protocol: 'sync' = rounds with a barrier (D-PSGD style); 'async' = each agent
    loops train -> send -> merge at its own pace."""
    rounds: int = Field(default=15, ge=1, le=1_000_000)
    """Number of gossip rounds (sync), or of evaluation periods of eval_every_s (async)."""
    eval_every: int = Field(default=1, ge=1)
    """sync: evaluate every agent every this many rounds (and always after the last)."""
    send_buffer: Literal["latest", "all"] = "latest"
    """async: 'latest' does not queue a branch for a neighbour while its previous version to
    that neighbour is still in flight (fast agents on thin links send their newest state);
    'all' queues every version."""
    eval_every_s: float = Field(default=1.0, gt=0)
    """async: evaluate every agent every this many virtual seconds; the run lasts rounds x eval_every_s."""
    header_bytes: int = Field(default=64, ge=0, le=65_536)
    """Fixed per-message overhead counted on the wire (ids, round, branch index)."""
    round_timeout_s: Optional[float] = Field(default=None, gt=0)
    """Barrier deadline after a round starts; messages arriving later are merged
    the round after (within aggregation.staleness). None: wait for every message."""


class EngineConfig(StrictModel):
    backend: Literal["ray", "inline"] = "ray"
    """'ray': agents in Ray actors (AgentHost); 'inline': the same agent code in-process."""
    hosts: Optional[int] = Field(default=None, ge=1, le=4096)
    """Number of AgentHost actors; default one per CPU (capped by the agent count)."""
    torch_threads: int = Field(default=1, ge=1, le=256)
    """torch threads per host for agent math; results are bit-identical only for a fixed value."""
    ray_address: Optional[str] = None
    """Join an existing Ray cluster ('auto' or HOST:PORT) instead of starting a local one."""
    compute_time: Literal["cost", "measured"] = "cost"
    """'cost': virtual compute time from the cost model (steps x batch x cost per sample /
    speed): reproducible. 'measured': the wall time each local phase really took, divided
    by the agent's speed. NOT reproducible (it varies with the machine and its load);
    sync protocol only."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where agents train: 'auto' uses a GPU when Ray reports one (results then differ from CPU bits)."""
    checkpoint_every: int = Field(default=1, ge=0)
    """Ray: snapshot agent state into the object store every this many rounds; a host that
    dies is restarted from the last snapshot and the calls since are replayed. 0 turns it off."""


class OutputConfig(StrictModel):
    log_messages: bool = True
    """Write one `message` event per message to events.jsonl (tables stay exact when off)."""
    plots: bool = True
    """Write PNG plots into plots/."""
    checkpoint_every: int = Field(default=10, ge=0)
    """Write checkpoint.pt (for `parse-sim run --resume`) every this many rounds; a stop by
    SIGINT/SIGTERM always writes one. 0: only on a stop."""
    slice_drop: Literal["off", "final", "every"] = "final"
    """Also evaluate every agent with the red, uni or syn logits removed (slice_drop.csv)."""
    gradient_conflict_every: int = Field(default=1, ge=0)
    """Every this many rounds, record the uni- vs multimodal update conflict per shared
    branch (conflict.csv); 0 turns it off."""


class Scenario(StrictModel):
    """A PARSE simulation: who the agents are, what they learn, over which network."""

    name: str = Field(default="scenario", min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name; the default run directory is runs/<name>-<timestamp>/."""
    description: str = ""
    """Free text kept with the run."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Root of the seed tree every random draw comes from."""
    method: str = "parse"
    """Sharing method: parse, local, dsgd_full, dsgd_modality, dsgd_task, dsgd_hybrid, harmony, or a parse ablation."""
    base_dir: Optional[str] = None
    """Directory relative file paths resolve against; default: the scenario file's directory."""
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in METHODS:
            hint = difflib.get_close_matches(v, METHODS, n=1) if len(v) <= 200 else []
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(f"expected one of {', '.join(METHODS)}, got {_fmt_value(v)}{extra}")
        return v

    @model_validator(mode="after")
    def _agent_limit(self) -> "Scenario":
        if self.n_agents > 100_000:
            raise ValueError(f"at most 100000 agents, got {self.n_agents}")
        return self

    # -- derived views ---------------------------------------------------
    @property
    def n_agents(self) -> int:
        return sum(g.count for g in self.agents.groups)

    def agent_groups(self) -> list[AgentGroup]:
        """The group of every agent, in agent-id order."""
        return [g for g in self.agents.groups for _ in range(g.count)]


# ---------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# validation errors -> one line
# ---------------------------------------------------------------------------


def _members(tp: Any) -> list[tuple[Any, Optional[str]]]:
    """The concrete types a field annotation may hold, each with its union tag
    (discriminated unions carry one): Optional/Union/Annotated peeled."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        args = typing.get_args(tp)
        tag = next((getattr(m, "tag") for m in args[1:] if type(m).__name__ == "Tag"), None)
        return [(t, tag if t_tag is None else t_tag) for t, t_tag in _members(args[0])]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out = []
        for a in typing.get_args(tp):
            if a is not type(None):
                out.extend(_members(a))
        return out
    return [(tp, None)]


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types a field annotation may hold (Optional/Union/Annotated peeled)."""
    return [t for t, _ in _members(tp)]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _walk_loc(loc: tuple, root: type[BaseModel]) -> tuple[list, list[Any]]:
    """A pydantic error location as the key path the user wrote, and the types there.

    Pydantic inserts the member of a union it tried into locations ('ring' for
    a discriminated union, 'int' or 'list[constrained-float]' otherwise) and
    '[key]' for dict keys; those are not keys of the document and are dropped.
    A union with two or more members is always followed by such a tag.
    """
    out: list = []
    current: list[Any] = [root]
    tag_next = False
    for part in loc:
        if tag_next:
            tag_next = False
            members = [(t, tag) for a in current for t, tag in _members(a)]
            tagged = [t for t, tag in members if tag is not None and tag == part]
            current = tagged or [t for t, _ in members]
            continue
        nxt: list[Any] = []
        for t in (t for a in current for t in _unwrap(a)):
            origin = typing.get_origin(t)
            if _is_model(t):
                if isinstance(part, str) and part in t.model_fields:
                    nxt.append(t.model_fields[part].annotation)
            elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
                args = typing.get_args(t)
                nxt.append(args[0] if args else Any)
            elif origin is dict and isinstance(part, str) and part != "[key]":
                args = typing.get_args(t)
                nxt.append(args[1] if len(args) == 2 else Any)
            elif t is Any:
                nxt.append(Any)
        if not nxt:
            continue  # not a key of any candidate: a tag pydantic inserted
        out.append(part)
        current = nxt
        tag_next = any(len(_members(a)) >= 2 for a in current)
    return out, current


def _models_at(loc: tuple, root: type[BaseModel]) -> list[type[BaseModel]]:
    """Candidate model classes whose fields live at `loc` (for key suggestions)."""
    _, current = _walk_loc(loc, root)
    out: list[type[BaseModel]] = []
    for t in (t for a in current for t in _unwrap(a)):
        if _is_model(t) and t not in out:
            out.append(t)
    return out


class _ShortRepr(reprlib.Repr):
    """repr() that stays short whatever the value (huge lists, 10^5-digit integers)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = 60
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdict = 6

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<integer with {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)

    def repr_bool(self, x: bool, level: int) -> str:
        return repr(x)


_SHORT = _ShortRepr()


def _fmt_value(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    r = _SHORT.repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


_COMPARATORS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _describe(err: dict) -> str:
    typ, ctx, inp = err["type"], err.get("ctx") or {}, err.get("input")
    got = f", got {_fmt_value(inp)}"
    if typ in _COMPARATORS:
        bound = next(iter(ctx.values()))
        if typ == "greater_than" and bound == 0:
            return f"expected a positive number{got}"
        return f"expected a number {_COMPARATORS[typ]} {bound}{got}"
    if typ == "missing":
        return "required key is missing"
    if typ == "finite_number":
        return f"expected a finite number{got}"
    if typ in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return f"expected an integer{got}"
    if typ in ("float_parsing", "float_type"):
        return f"expected a number{got}"
    if typ in ("bool_parsing", "bool_type"):
        return f"expected true or false{got}"
    if typ in ("string_type", "string_unicode"):
        return f"expected a string{got}"
    if typ == "string_too_short":
        return f"expected at least {ctx.get('min_length')} character(s){got}"
    if typ == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters{got}"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys{got}"
    if typ in ("list_type", "tuple_type", "set_type"):
        return f"expected a list{got}"
    if typ == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s){got}"
    if typ == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s){got}"
    if typ == "literal_error":
        expected = ctx.get("expected", "")
        return f"expected one of {expected}{got}" + _suggest_literal(inp, expected)
    if typ == "union_tag_invalid":
        return (f"expected {ctx.get('discriminator')} to be one of {ctx.get('expected_tags')}"
                f", got {_fmt_value(ctx.get('tag'))}")
    if typ == "union_tag_not_found":
        return f"expected a {ctx.get('discriminator')} key"
    if typ == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}{got}"
    if typ == "value_error":
        msg = str(ctx.get("error", err.get("msg", "")))
        return msg
    msg = err.get("msg", typ)
    if msg.startswith("Input should be "):
        msg = "expected " + msg[len("Input should be "):]
    return f"{msg}{got}"


def _suggest_literal(inp: Any, expected: str) -> str:
    if not isinstance(inp, str) or len(inp) > 200:
        return ""
    options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
    hint = difflib.get_close_matches(inp, options, n=1)
    return f"; did you mean '{hint[0]}'?" if hint else ""


def format_validation_error(exc: ValidationError, file: str | None, root: type[BaseModel] = None,
                            prefix: tuple = ()) -> ScenarioError:
    """The first (most specific) pydantic error as a ScenarioError."""
    root = root or Scenario
    errors = exc.errors(include_url=False)
    # prefer an unknown-key or value error over the noise pydantic adds for unions
    errors.sort(key=lambda e: (e["type"].startswith("union_tag") is False and "." in e["type"], len(e["loc"])))
    err = errors[0] if len(errors) == 1 else _best(errors)
    loc = prefix + tuple(err["loc"])
    if err["type"] == "extra_forbidden" and loc:
        key = loc[-1]
        valid = sorted({f for m in _models_at(loc[:-1], root) for f in m.model_fields})
        hint = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5) if len(str(key)) <= 200 else []
        msg = f"unknown key {_fmt_value(str(key))}"
        msg += f"; did you mean '{hint[0]}'?" if hint else (f" (valid keys: {', '.join(valid)})" if valid else "")
        path = ".".join(str(p) for p in _clean_loc(loc[:-1], root) + [key])
        return ScenarioError(file, path, msg)
    path = ".".join(str(p) for p in _clean_loc(loc, root))
    return ScenarioError(file, path, _describe(err))


def _best(errors: list[dict]) -> dict:
    for kind in ("extra_forbidden", "missing"):
        for e in errors:
            if e["type"] == kind:
                return e
    # deepest location first: it names the actual key
    return max(errors, key=lambda e: len(e["loc"]))


def _clean_loc(loc: tuple, root: type[BaseModel]) -> list:
    """Drop discriminator tags / union member names pydantic inserts into locations."""
    return _walk_loc(loc, root)[0]


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------


def load_document(path: str | Path) -> dict:
    path = Path(path)
    try:
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


def build_scenario(doc: dict, file: str | None = None, overrides: list[str] | None = None,
                   base_dir: Path | None = None, check: bool = True) -> Scenario:
    """Validate a raw document (after overrides) into a Scenario."""
    import copy

    doc = copy.deepcopy(doc)
    for assignment in overrides or []:
        apply_override(doc, assignment)
    _check_keys(doc, file)
    try:
        sc = Scenario.model_validate(doc)
    except ValidationError as e:
        raise format_validation_error(e, file) from None
    except (RecursionError, OverflowError, MemoryError) as e:
        raise ScenarioError(file, "", f"document cannot be validated ({type(e).__name__})") from None
    if sc.base_dir is None:
        sc.base_dir = str((base_dir or Path(".")).resolve())
    if check:
        check_scenario(sc, file)
    return sc


def load_scenario(path: str | Path, overrides: list[str] | None = None, check: bool = True) -> Scenario:
    """Read, override, validate and semantically check a scenario file."""
    path = Path(path)
    doc = load_document(path)
    return build_scenario(doc, str(path), overrides, base_dir=path.parent, check=check)


def check_scenario(sc: Scenario, file: str | None = None) -> None:
    """Checks that need the whole scenario (sizes, files), before any work starts."""
    if sc.base_dir is not None and "\x00" in sc.base_dir:
        raise ScenarioError(file, "base_dir", "a directory name cannot contain a NUL character")
    base = Path(sc.base_dir or ".")
    n = sc.n_agents
    files = _file_fields(sc)
    _check_files(files, base, file)
    try:
        sc.network.check(n_nodes=n, base_dir=base)
    except NetemConfigError as e:
        path = _join("network", e.path)
        servers = [str(Path(v).expanduser() if Path(v).expanduser().is_absolute() else base / v)
                   for k, v, _ in files if k == "network.link.latency.servers"]
        if path == "network.link.latency.file" and servers and e.message.startswith(servers[0]):
            path = "network.link.latency.servers"  # netem names `file` for errors in the servers CSV too
        raise ScenarioError(file, path, e.message) from None
    except _UNEXPECTED as e:  # a reader failing on a file it should have reported on
        where = [k for k, _, _ in files if k.startswith("network.")]
        raise ScenarioError(file, where[0] if len(where) == 1 else "network", _unexpected(e)) from None
    groups = [tuple(g.modalities) for g in sc.agents.groups]
    try:
        sc.data.check(groups=groups, n_agents=n, base_dir=base)
    except DataError as e:
        raise ScenarioError(file, _join("data", e.path), e.message) from None
    except _UNEXPECTED as e:
        raise ScenarioError(file, "data.path" if sc.data.path is not None else "data", _unexpected(e)) from None
    if sc.engine.compute_time == "measured" and sc.protocol.mode != "sync":
        raise ScenarioError(file, "engine.compute_time", "measured compute time needs protocol.mode: sync")
    if sc.method == "harmony" and not any(len(g) > 1 for g in groups):
        raise ScenarioError(file, "method", "harmony needs at least one multimodal agent group, found none")
    from parse_actors.agents import ARCHS

    for i, g in enumerate(sc.agents.groups):
        for m, arch in g.archs.items():
            if m not in g.modalities:
                raise ScenarioError(file, f"agents.groups.{i}.archs.{m}",
                                    f"names a modality the group lacks (group has {', '.join(g.modalities)})")
            if arch not in ARCHS:
                hint = difflib.get_close_matches(arch, list(ARCHS), n=1) if len(arch) <= 200 else []
                raise ScenarioError(file, f"agents.groups.{i}.archs.{m}",
                                    f"expected one of {', '.join(ARCHS)}, got {_fmt_value(arch)}"
                                    + (f"; did you mean '{hint[0]}'?" if hint else ""))


# Errors a semantic check of netem/ or data/ may leak on a hostile file instead
# of its own ConfigError/DataError; they still become one line naming the key.
_UNEXPECTED = (OSError, ValueError, RuntimeError, OverflowError, csv.Error)
_MAX_TRACE_BYTES = 256 * 1024 * 1024


def _unexpected(e: BaseException) -> str:
    return f"could not be checked: {type(e).__name__}: {e}"


def _join(section: str, path: str) -> str:
    """`section.path` with list indices written `.i` (data/ says `schedule[2]`)."""
    path = re.sub(r"\[(\d+)\]", r".\1", path or "").strip(".")
    return f"{section}.{path}" if path else section


def _file_fields(sc: Scenario) -> list[tuple[str, str, bool]]:
    """(key path, value, is a text file) of every scenario key naming a file."""
    from netem import config as nc
    from netem.tracefiles import SHIPPED_BANDWIDTH, SHIPPED_LATENCY

    net = sc.network
    out: list[tuple[str, str, bool]] = []
    if isinstance(net.topology, nc.EdgeListTopology):
        out.append(("network.topology.path", net.topology.path, True))
    lat = net.link.latency
    if isinstance(lat, nc.TraceLatency):
        if lat.file not in SHIPPED_LATENCY:
            out.append(("network.link.latency.file", lat.file, True))
        if lat.servers is not None:
            out.append(("network.link.latency.servers", lat.servers, True))
    if net.link.bandwidth is not None and net.link.bandwidth.trace not in SHIPPED_BANDWIDTH:
        out.append(("network.link.bandwidth.trace", net.link.bandwidth.trace, True))
    if isinstance(net.churn, nc.TraceChurn):
        out.append(("network.churn.file", net.churn.file, True))
    if sc.data.path is not None:
        out.append(("data.path", sc.data.path, False))
    return out


def _check_files(files: list[tuple[str, str, bool]], base: Path, file: str | None) -> None:
    """Paths that cannot even be looked up, and text files that are not UTF-8.

    A missing file is left to netem/data, whose messages list the shipped names.
    """
    import errno

    for key, spec, text in files:
        if "\x00" in spec:
            raise ScenarioError(file, key, "a file name cannot contain a NUL character")
        try:
            p = Path(spec).expanduser()
        except RuntimeError:
            raise ScenarioError(file, key,
                                f"cannot expand {_fmt_value(spec)}: no such user or home directory") from None
        if not p.is_absolute():
            p = base / p
        try:
            st = p.stat()
        except ValueError as e:  # embedded NUL and the like
            raise ScenarioError(file, key, f"cannot use {_fmt_value(str(p))}: {e}") from None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                if key == "network.link.latency.servers":  # netem reports it under link.latency.file
                    raise ScenarioError(file, key, f"servers file {str(p)!r} not found") from None
                continue
            raise ScenarioError(file, key, f"cannot use {_fmt_value(str(p))}: {e.strerror or e}") from None
        if not text:
            continue
        if stat.S_ISDIR(st.st_mode):
            raise ScenarioError(file, key, f"{p} is a directory, expected a file")
        if not stat.S_ISREG(st.st_mode):
            raise ScenarioError(file, key, f"{p} is not a regular file")
        real = os.path.realpath(p)
        if real.startswith(("/proc/", "/sys/")):
            raise ScenarioError(file, key, f"{real} is a kernel pseudo-file, not a trace file")
        if st.st_size > _MAX_TRACE_BYTES:
            raise ScenarioError(file, key, f"{p}: larger than {_MAX_TRACE_BYTES >> 20} MiB")
        try:
            with open(p, "rb") as fh:
                decoder = codecs.getincrementaldecoder("utf-8")()
                offset = 0
                while chunk := fh.read(1 << 20):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as e:
                        raise ScenarioError(file, key, f"{p}: not UTF-8 text (byte {offset + e.start})") from None
                    offset += len(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ScenarioError(file, key, f"{p}: not UTF-8 text (it ends inside a character)") from None
        except OSError as e:
            raise ScenarioError(file, key, f"cannot read {p}: {e.strerror or e}") from None


def scenario_to_yaml(sc: Scenario) -> str:
    """The resolved scenario as YAML; loading it again gives the same Scenario."""
    return yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


def json_schema() -> dict:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "parse-sim scenario"
    return schema
