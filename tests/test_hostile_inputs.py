"""Hostile scenario files: the loader accepts them or says what is wrong, in one line.

A property-based test (hypothesis, derandomized so CI is deterministic) mutates
valid documents (every scenarios/*.yaml, raw and fully resolved, and `{}`):
wrong types, missing and unknown keys, huge/negative/NaN numbers, empty lists,
deep nesting, non-text keys, long strings; then, on the YAML text, tags that
would build Python objects, alias bombs, recursive aliases, merge keys,
duplicate keys, invalid dates, non-UTF-8 bytes, NUL, tabs, truncation. For
every case `load_scenario` either returns a Scenario or raises ScenarioError
whose `.path` is a real dotted path into the document (or "" for
whole-document problems), within a time and memory bound. Run with `-s` to
see how many cases were generated.
"""

from __future__ import annotations

import collections
import copy
import re
import resource
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from parse_actors.cli import main
from parse_actors.errors import ScenarioError
from parse_actors.scenario import Scenario, build_scenario, json_schema, load_scenario, scenario_to_yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yaml"))

CASES: collections.Counter = collections.Counter()
OUTCOMES: collections.Counter = collections.Counter()
MAX_SECONDS = 5.0  # CPU seconds per case (the loader's own worst case is ~2 s: 50k YAML nodes)
MAX_GROWTH_KIB = 300 * 1024  # memory one case may use on top of what the process holds


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (resource.getpagesize() // 1024)

FUZZ = settings(
    derandomize=True,  # fixed seed: the same cases on every run and machine
    database=None,
    deadline=None,  # time is asserted per case below, with a clearer message
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


@pytest.fixture(scope="module", autouse=True)
def _report_case_count():
    yield
    total = sum(CASES.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(CASES.items()))
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(OUTCOMES.items()))
    print(f"\n[hostile inputs] {total} generated cases ({detail}); outcomes: {outcomes}")


# ---------------------------------------------------------------------------- bases


def _bases() -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = [("{}", {})]
    for p in SCENARIO_FILES:
        raw = yaml.safe_load(p.read_text()) or {}
        out.append((p.name, raw))
        # the resolved form holds every key, so mutations reach every section
        resolved = yaml.safe_load(scenario_to_yaml(load_scenario(p)))
        resolved.pop("base_dir", None)  # machine-specific; relative paths then resolve next to the case
        out.append((f"{p.name} (resolved)", resolved))
    return out


BASES = _bases()


def _annotations(root: type[BaseModel]):
    """(model, field name, annotation or one of its type arguments) for every
    field anywhere in the scenario model tree."""
    todo, seen = [root], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for name, f in m.model_fields.items():
            stack = [f.annotation]
            while stack:
                t = stack.pop()
                yield m, name, t
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo.append(t)
                stack.extend(a for a in typing.get_args(t) if not isinstance(a, (str, int, float, bool)))


def _field_names(root: type[BaseModel]) -> set[str]:
    """Every field name anywhere in the scenario model tree."""
    return {name for _, name, _ in _annotations(root)}


FIELD_NAMES = _field_names(Scenario)
WHOLE_DOCUMENT = ("invalid YAML", "not UTF-8", "larger than", "too large", "nested", "top level",
                  "cannot be validated", "values (a scenario")


def _key_texts(k) -> list[str]:
    if isinstance(k, bool):
        return ["true" if k else "false", str(k)]
    if k is None:
        return ["null", "None"]
    return [str(k)]


def path_is_real(doc, path: str) -> bool:
    """`path` walks keys and list indices of `doc`, then (for keys the
    document left to their defaults) names fields of the scenario schema."""
    node, rest = doc, path
    while rest:
        if isinstance(node, dict):
            cands = [(t, k) for k in node for t in _key_texts(k) if rest == t or rest.startswith(t + ".")]
            if cands:
                t, k = max(cands, key=lambda c: len(c[0]))
                node, rest = node[k], rest[len(t) + 1:]
                continue
        elif isinstance(node, (list, tuple)):
            head, _, tail = rest.partition(".")
            if head.isdigit() and int(head) < len(node):
                node, rest = node[int(head)], tail
                continue
        break
    return not rest or all(p in FIELD_NAMES or p.isdigit() for p in rest.split("."))


# ---------------------------------------------------------------------------- the check


def check_case(tmp_path: Path, data: bytes, kind: str, overrides: list[str] | None = None,
               files: dict[str, bytes] | None = None) -> None:
    CASES[kind] += 1
    f = tmp_path / f"case{sum(CASES.values())}.yaml"
    f.write_bytes(data)
    for name, content in (files or {}).items():
        (tmp_path / name).write_bytes(content)
    # The process's peak RSS may only pass its old value if the case used less
    # than MAX_GROWTH_KIB on top of the memory held before it.
    ceiling = max(_peak_kib(), _rss_kib() + MAX_GROWTH_KIB)
    t0 = time.process_time()  # CPU time: a busy machine does not make it flaky
    try:
        load_scenario(f, overrides)
        outcome = "accepted"
    except ScenarioError as e:
        outcome = "ScenarioError"
        err = e
    except BaseException as e:  # noqa: BLE001 - the property under test
        raise AssertionError(f"{type(e).__name__} escaped load_scenario: {e!r:.300}\ninput: {data[:600]!r}") from e
    finally:
        elapsed = time.process_time() - t0
        f.unlink()
    OUTCOMES[outcome] += 1
    assert elapsed < MAX_SECONDS, f"{elapsed:.1f} s for input {data[:300]!r}"
    assert _peak_kib() <= ceiling, f"more than {MAX_GROWTH_KIB >> 10} MiB for input {data[:300]!r}"
    if outcome == "accepted":
        return
    line = str(err)
    assert line and len(line.splitlines()) == 1 and "\n" not in line, repr(line)
    assert err.message.strip(), repr(line)
    if err.file == "--set":
        return  # names the override's own key path; checked in test_override_fuzz
    assert err.file == str(f), line
    if err.path == "":
        if err.message.startswith("unknown key ''"):
            return  # the empty key at the top level: its path is ""
        assert any(w in err.message for w in WHOLE_DOCUMENT), f"no key path for a key problem: {line}"
        return
    doc = yaml.safe_load(data.decode("utf-8"))  # it parsed, or the path would be empty
    assert path_is_real(doc, err.path), f"path {err.path!r} is not in the document: {line}\ninput: {data[:600]!r}"


# ---------------------------------------------------------------------------- strategies

NUMBERS = [0, -1, 1, 2, 3, -(2**63), 2**63, 2**64 + 1, 10**30, -(10**30), 10**400, 1e308, -1e308, 1e-320,
           0.5, -0.5, float("nan"), float("inf"), float("-inf"), True, False]
TAG_VALUES = ["ring", "grid", "k_regular", "erdos_renyi", "watts_strogatz", "barabasi_albert", "complete", "star",
              "edge_list", "chordal_ring", "constant", "normal", "lognormal", "uniform", "trace", "none", "bernoulli",
              "gilbert_elliott", "sessions", "fraction", "list", "dist", "static", "resample", "markov", "mobility",
              "synthetic", "av_digits", "watch_imu", "uci_har", "avmnist", "cremad", "npz", "harmony", "parse",
              "dsgd_full", "local", "inline", "ray", "iid", "dirichlet", "quantity", "natural", "nearest_city",
              "seeded", "ordered", "reliable", "hold", "cnn", "gru", "conv1d", "mlp"]
PATHISH = ["/etc", "/dev/null", "/dev/zero", "/proc/self/mem", "/proc/self/status", "nope.txt", "~nouser_zz/x",
           "a" * 5000, "a\x00b", "..", "/", "wonderproxy-excerpt", "norway-3g-bus", "C:\\x", "../../etc/passwd"]
KEY_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(sorted(FIELD_NAMES)),
                     st.sampled_from(["a.b", "a\nb", "\x1b[31m", "\u2028", "<<", "=", "?", " ", "-", "#x"]))
NON_TEXT_KEYS = st.one_of(st.integers(-5, 10**20), st.booleans(), st.none(), st.floats(allow_nan=False),
                          st.dates())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40), st.floats(),
    st.sampled_from(NUMBERS), st.text(max_size=20), st.sampled_from(TAG_VALUES), st.sampled_from(PATHISH),
    st.integers(1000, 200_000).map(lambda n: "x" * n), st.dates(), st.datetimes(), st.binary(max_size=16),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEY_TEXT, inner, max_size=3)),
    max_leaves=8,
)


# Trace files next to the scenario: what netem's readers get to parse.
TRACE_CONTENTS = [
    b"", b"# only a comment\n", b"0 1\n1 2\n2 3\n", b"\xff\xfe\x00garbage\n", b"0 1\x00\n",
    b"0 " + b"9" * 5000 + b"\n", b"0 1e308\n1e308 1e308\n", b"nan nan nan\n", b"0 0 10\n1 0 10\n",
    b"source,destination,min,avg,max,mdev\n1,2,1,1,1,1\n2,1,1,1,1,1\n",
    b"source,destination,min,avg,max,mdev\n1,2," + b"1" * 140_000 + b",1,1,1\n",
    b"id,city,latitude,longitude\n1,X,91,181\n", b"\xef\xbb\xbf0 1\n", b"0\t1\r\n",
]
FILE_FIELDS = [
    ("network", "topology", lambda p: {"kind": "edge_list", "path": p}),
    ("network", "churn", lambda p: {"model": "trace", "file": p}),
    ("network", "link", lambda p: {"latency": {"dist": "trace", "file": p}}),
    ("network", "link", lambda p: {"latency": {"dist": "trace", "servers": p, "mapping": "nearest_city",
                                               "locations": ["London"] * 8}}),
    ("network", "link", lambda p: {"bandwidth": {"trace": p}}),
    ("data", None, lambda p: {"name": "npz", "path": p}),
    (None, "base_dir", lambda p: p),
]


def _nested(depth: int, mapping: bool):
    v: object = 1
    for _ in range(depth):
        v = {"a": v} if mapping else [v]
    return v


def _paths(doc) -> list[tuple]:
    out, stack = [], [((), doc)]
    while stack:
        p, node = stack.pop()
        out.append(p)
        if isinstance(node, dict):
            stack.extend((p + (k,), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((p + (i,), v) for i, v in enumerate(node))
    return sorted(out, key=lambda p: [str(x) for x in p])


def _get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


@st.composite
def mutated_documents(draw):
    name, base = draw(st.sampled_from(BASES))
    doc = copy.deepcopy(base)
    files: dict[str, bytes] = {}
    filed = draw(st.integers(0, 2)) == 0
    if filed:  # point a file key at something hostile (few other mutations: reach the file checks)
        section, key, make = draw(st.sampled_from(FILE_FIELDS))
        if draw(st.booleans()):
            target = "trace.txt"
            files[target] = draw(st.sampled_from(TRACE_CONTENTS))
        else:
            target = draw(st.sampled_from(PATHISH))
        if section is None:
            doc[key] = target
        elif key is None:
            doc[section] = make(target)
        else:
            doc.setdefault(section, {})
            if isinstance(doc[section], dict):
                doc[section][key] = make(target)
    for _ in range(draw(st.integers(0, 1) if filed else st.integers(1, 4))):
        paths = _paths(doc) if isinstance(doc, (dict, list)) else [()]
        path = draw(st.sampled_from(paths))
        node = _get(doc, path)
        op = draw(st.sampled_from(["replace", "replace", "number", "delete", "unknown_key", "non_text_key", "empty",
                                   "wrap", "deep", "tag", "long_list"]))
        if op == "replace":
            doc = _set(doc, path, draw(values))
        elif op == "number":
            doc = _set(doc, path, draw(st.sampled_from(NUMBERS)))
        elif op == "delete" and path:
            del _get(doc, path[:-1])[path[-1]]
        elif op == "unknown_key" and isinstance(node, dict):
            node[draw(KEY_TEXT)] = draw(values)
        elif op == "non_text_key" and isinstance(node, dict):
            node[draw(NON_TEXT_KEYS)] = draw(scalars)
        elif op == "empty":
            doc = _set(doc, path, draw(st.sampled_from([[], {}, "", None])))
        elif op == "wrap":
            doc = _set(doc, path, draw(st.sampled_from([[node], {"x": node}, [[node]]])))
        elif op == "deep":
            doc = _set(doc, path, _nested(draw(st.integers(5, 90)), draw(st.booleans())))
        elif op == "tag":
            doc = _set(doc, path, draw(st.sampled_from(TAG_VALUES)))
        elif op == "long_list":
            item = draw(st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=8)))
            doc = _set(doc, path, [item] * draw(st.integers(0, 2_000)))
    return name, doc, files


def dump(doc) -> bytes:
    if doc == {}:
        return b""
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode("utf-8")


@given(case=mutated_documents())
@settings(FUZZ, max_examples=300)
def _fuzz_mutated_documents(case, tmp_path_factory):
    _, doc, files = case
    check_case(tmp_path_factory.mktemp("m"), dump(doc), "mutated document", files=files)


def test_mutated_documents(tmp_path_factory):
    before = CASES["mutated document"]
    _fuzz_mutated_documents(tmp_path_factory=tmp_path_factory)
    assert CASES["mutated document"] - before >= 200, CASES  # the fuzzer really generated its cases


# -- byte/text level: what a YAML serializer never writes

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10)
)
VALUE_SNIPPETS = [
    "!!python/object/apply:os.system ['echo pwned > /tmp/parse-sim-pwned']",
    "!!python/object/apply:subprocess.check_output [['id']]",
    "!!python/object/new:subprocess.Popen [['true']]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:collections.OrderedDict {}",
    "!!python/tuple [1, 2]",
    "!!python/bytes aGk=",
    "!!binary aGVsbG8=",
    "!!binary '!!!'",
    "!!set {a, b}",
    "!!omap [{a: 1}, {b: 2}]",
    "!!pairs [[a, 1]]",
    "!!timestamp 2020-13-45",
    "2020-02-30",
    "2001-12-14t21:59:43.10-05:00",
    "!!int abc",
    "!!float x",
    "!!bool maybe",
    "!!str {a: 1}",
    "!!null x",
    "!custom 1",
    "!<tag:example.com,2000:x> 1",
    "&r [*r]",
    "&m {a: *m}",
    "*undefined_alias",
    "0x" + "f" * 1200,
    "1" * 1200,
    "1" + ":59" * 400,
    "'" + "x" * 20_000 + "'",
    "[" * 70 + "]" * 70,
    "{a: " * 70 + "1" + "}" * 70,
    "[" * 5_000,
    ".nan",
    "-.inf",
    "~",
    "''",
    "[]",
    "{}",
    "[" + ", ".join(["1"] * 3_000) + "]",
]
DOC_SNIPPETS = [
    BOMB,
    "x: &x {seed: 1}\n<<: *x\n",
    "<<: [*x]\n",
    "seed: 1\nseed: 2\n",
    "network: {}\nnetwork: {}\n",
    "---\nseed: 1\n",
    "%YAML 1.1\n---\nseed: 1\n",
    "%TAG !p! tag:yaml.org,2002:python/\n---\nx: !p!object/apply:os.system ['true']\n",
    "seed:\t1\n",
    "seed: 1\x00\n",
    "seed: 1\x1b[2J\n",
    "? [a, b]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "".join("  " * i + "a:\n" for i in range(80)) + "  " * 80 + "1\n",
    "".join(" " * i + "-\n" for i in range(80)),
    "x: |\n  text\n y: 1\n",
    "x: 'unterminated\n",
    "on: 1\nyes: 2\n",
    "null: 1\n",
    "1: 2\n",
    "# " + "c" * 20_000 + "\n",
    "".join(f"k{i}: {i}\n" for i in range(1_500)),
]


@st.composite
def hostile_texts(draw):
    doc = draw(mutated_documents())[1] if draw(st.booleans()) else draw(st.sampled_from(BASES))[1]
    text = dump(doc).decode("utf-8")
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "value", "doc", "doc", "bytes", "truncate", "bom", "utf16", "tabs",
                                   "crlf"]))
        lines = text.splitlines(keepends=True)
        if op == "value":
            snippet = draw(st.sampled_from(VALUE_SNIPPETS))
            slots = [i for i, ln in enumerate(lines) if re.match(r"^\s*[^\s#:][^:]*: \S", ln)]
            if slots:
                i = draw(st.sampled_from(slots))
                key = lines[i].split(": ", 1)[0]
                lines[i] = f"{key}: {snippet}\n"
                text = "".join(lines)
            else:
                text += f"seed: {snippet}\n"
        elif op == "doc":
            text = text + draw(st.sampled_from(DOC_SNIPPETS))
        elif op == "bytes":
            raw = text.encode("utf-8")
            pos = draw(st.integers(0, len(raw)))
            junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xfe\xff", b"\x80\x80"]))
            return raw[:pos] + junk + raw[pos:]
        elif op == "truncate" and text:
            text = text[: draw(st.integers(0, len(text) - 1))]
        elif op == "bom":
            text = "\ufeff" + text
        elif op == "utf16":
            return text.encode("utf-16")
        elif op == "tabs":
            text = text.replace("  ", "\t")
        elif op == "crlf":
            text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


@given(data=hostile_texts())
@settings(FUZZ, max_examples=250)
def _fuzz_hostile_yaml_text(data, tmp_path_factory):
    check_case(tmp_path_factory.mktemp("t"), data, "hostile YAML text")


def test_hostile_yaml_text(tmp_path_factory):
    before = CASES["hostile YAML text"]
    _fuzz_hostile_yaml_text(tmp_path_factory=tmp_path_factory)
    assert CASES["hostile YAML text"] - before >= 150, CASES


# -- --set KEY.PATH=VALUE

OVERRIDE_KEYS = st.one_of(
    st.sampled_from(["seed", "protocol.rounds", "agents.groups.0.count", "agents.groups.9.count",
                     "agents.groups.-1.count", "agents.groups.x.count", "agents.groups.0", "agents.groups",
                     "network.topology.kind", "network.topology", "network.link.bandwidth_mbps",
                     "network.link.bandwidth_mbps.x", "seed.x", "data.schedule.0.agent", "a..b", ".a", "a.",
                     "", " ", "network.stragglers.speeds.0", "agents.groups.0.modalities.5",
                     "agents.groups.\u0661.count", "agents.groups. 0.count"]),
    st.lists(KEY_TEXT, min_size=1, max_size=4).map(".".join),
)
OVERRIDE_VALUES = st.one_of(st.sampled_from(VALUE_SNIPPETS[:30] + ["", "=", "1", "-1", "[]", "{}", "null", "x: 1",
                                                                   "{kind: grid, rows: 3}", BOMB]),
                            values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))


@given(assignments=st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", OVERRIDE_KEYS, OVERRIDE_VALUES),
                                      st.text(max_size=20)), min_size=1, max_size=3))
@settings(FUZZ, max_examples=120)
def _fuzz_overrides(assignments):
    quick = (ROOT / "scenarios" / "quickstart.yaml").read_bytes()
    CASES["--set override"] += 1
    t0 = time.process_time()
    try:
        build_scenario(yaml.safe_load(quick), "q.yaml", assignments)
    except ScenarioError as e:
        line = str(e)
        assert len(line.splitlines()) == 1 and e.message.strip()
        assert e.file in ("--set", "q.yaml"), line
        if e.file == "--set" and e.path:
            keys = [a.partition("=")[0].strip() for a in assignments]
            assert any(k == e.path or k.startswith(e.path + ".") or e.path.startswith(k)
                       or ".".join(p.strip() for p in k.split(".")).startswith(e.path) for k in keys), line
    except BaseException as e:  # noqa: BLE001
        raise AssertionError(f"{type(e).__name__} escaped: {e!r:.300} for {assignments!r:.300}") from e
    assert time.process_time() - t0 < MAX_SECONDS


def test_override_fuzz():
    before = CASES["--set override"]
    _fuzz_overrides()
    assert CASES["--set override"] - before >= 80, CASES


# ---------------------------------------------------------------------------- fixed worst cases


WORST = {
    "alias bomb": BOMB.encode(),
    "recursive alias": b"a: &a [*a]\n",
    "50k-item flow list": b"x: [" + b"1," * 120_000 + b"1]\n",
    "block list at the node limit": b"x:\n" + b"- 1\n" * 60_000,
    "60k keys": b"".join(b"k%d: %d\n" % (i, i) for i in range(60_000)),
    "1 MiB comment": b"# " + b"c" * (1024 * 1024 - 100) + b"\n",
    "1 MiB string": b"description: " + b"a" * (1024 * 1024 - 100) + b"\n",
    "over 1 MiB": b"description: " + b"a" * (1024 * 1024 + 10) + b"\n",
    "deep flow nesting": b"x: " + b"[" * 200_000 + b"\n",
    "deep block nesting": b"".join(b" " * i + b"a:\n" for i in range(1300)),
    "base-60 integer": b"seed: 1" + b":59" * 300 + b"\n",
    "5000-digit integer": b"seed: " + b"7" * 5000 + b"\n",
    "huge hex": b"seed: 0x" + b"f" * 900 + b"\n",
    "python object": b"seed: !!python/object/apply:os.system ['touch /tmp/parse-sim-pwned']\n",
}


@pytest.mark.parametrize("name", list(WORST))
def test_worst_cases_are_bounded(name, tmp_path):
    check_case(tmp_path, WORST[name], "fixed worst case")
    assert not Path("/tmp/parse-sim-pwned").exists()


# ---------------------------------------------------------------------------- CLI


CLI_FILES = {
    "python tag": b"seed: !!python/object/apply:os.system ['true']\n",
    "non-UTF-8": b"seed: 1\n\xff\xfe\n",
    "alias bomb": BOMB.encode(),
    "key with a newline": b'network: {"a\\nb\\x1b[2J": 1}\n',
    "bad date": b"seed: 2020-13-45\n",
    "boolean key": b"network:\n  on: 1\n",
    "duplicate key": b"seed: 1\nseed: 2\n",
    "deep nesting": b"x: " + b"[" * 5000 + b"\n",
    "wrong type deep": b"network: {link: {latency: {dist: trace, locations: [[1, 2, 3]]}}}\n",
    "missing trace": b"network: {churn: {model: trace, file: /nonexistent/trace.txt}}\n",
}


@pytest.mark.parametrize("name", list(CLI_FILES))
def test_cli_validate_hostile_file_one_line_exit_2(name, tmp_path, capsys):
    f = tmp_path / "hostile.yaml"
    f.write_bytes(CLI_FILES[name])
    assert main(["validate", str(f)]) == 2
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert out.err.count("\n") == 1 and len(out.err.splitlines()) == 1, repr(out.err)
    assert out.err.startswith(f"{f}: "), out.err


def test_cli_subprocess_hostile_file(tmp_path):
    """The real process: exit 2, one stderr line, no traceback, nothing executed."""
    marker = tmp_path / "pwned"
    f = tmp_path / "hostile.yaml"
    f.write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    proc = subprocess.run([sys.executable, "-m", "parse_actors.cli", "validate", str(f)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not marker.exists()


# ---------------------------------------------------------------------------- no code from scenario files


def test_loader_is_a_safe_loader(monkeypatch, tmp_path):
    used = []
    real_load = yaml.load

    def spy(stream, Loader):  # noqa: N803 - PyYAML's name
        used.append(Loader)
        return real_load(stream, Loader=Loader)

    monkeypatch.setattr(yaml, "load", spy)
    f = tmp_path / "s.yaml"
    f.write_text("seed: 3\n")
    load_scenario(f, ["protocol.rounds=2"])
    assert used, "the scenario loader no longer goes through yaml.load: re-check how it parses"
    for loader in used:
        assert issubclass(loader, yaml.SafeLoader)
        assert not issubclass(loader, (yaml.FullLoader, yaml.UnsafeLoader)) and loader is not yaml.Loader
        tags = list(loader.yaml_constructors) + list(loader.yaml_multi_constructors)
        assert not [t for t in tags if t and "python" in t], tags
        assert loader.yaml_constructors.get(None) is yaml.SafeLoader.yaml_constructors.get(None)


def test_no_unsafe_yaml_anywhere():
    """No code in the project reads YAML with a loader that can build objects."""
    bad = re.compile(r"yaml\.(unsafe_load|full_load|load_all)\b|Loader=yaml\.(Loader|FullLoader|UnsafeLoader)\b"
                     r"|yaml\.load\([^)]*\)\s*$")
    hits = []
    for p in list((ROOT / "parse_actors").rglob("*.py")) + list((ROOT / "netem").rglob("*.py")):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if bad.search(line) or ("yaml.load(" in line and "Loader=" not in line):
                hits.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, hits


# Every free-form text field of the schema, reviewed: none names code to import.
# A new one must be added here after checking that it is only ever used as
# data (a name, a label, a file read as data) or checked against an allow-list.
REVIEWED_TEXT_FIELDS = {
    "name": "run name (pattern-checked)",
    "description": "free text",
    "method": "checked against the METHODS allow-list",
    "base_dir": "directory for relative paths",
    "agents.groups[].name": "label",
    "agents.groups[].modalities[]": "modality name",
    "agents.groups[].archs.*": "checked against the ARCHS allow-list",
    "data.path": "dataset file/folder, read with numpy allow_pickle=False",
    "data.npz.modalities[]": "array name",
    "data.npz.label_key": "array name",
    "data.npz.groups_key": "array name",
    "data.cremad.modalities.*": "sub-folder name",
    "data.schedule[].group[]": "modality name",
    "data.schedule[].modality": "modality name",
    "data.synthetic.modalities[]": "modality name",
    "engine.ray_address": "'auto' or HOST:PORT",
    "network.topology.path": "edge-list text file",
    "network.link.latency.file": "latency CSV or shipped name",
    "network.link.latency.servers": "servers CSV",
    "network.link.latency.locations[]": "city name",
    "network.link.bandwidth.trace": "bandwidth trace file or shipped name",
    "network.churn.file": "availability trace file",
}
SUSPICIOUS_NAME = re.compile(r"(^|_)(class|cls|module|import|callable|func|function|factory|target|hook|plugin|"
                             r"entry_?point|loader|constructor|code|exec|eval|script|command|cmd|object)(_|$)", re.I)
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?$")


def _text_fields(schema: dict) -> dict[str, dict]:
    defs = schema.get("$defs", {})
    out: dict[str, dict] = {}

    def walk(node, path, seen):
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].split("/")[-1]
            if name not in seen:
                walk(defs[name], path, seen | {name})
            return
        if node.get("type") == "string" and "enum" not in node and "const" not in node:
            out[path] = node
        for k in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(k, []):
                walk(sub, path, seen)
        if "items" in node:
            walk(node["items"], path + "[]", seen)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], path + ".*", seen)
        for k, v in node.get("properties", {}).items():
            walk(v, f"{path}.{k}" if path else k, seen)

    walk(schema, "", frozenset())
    return out


def test_schema_has_no_import_path_fields():
    schema = json_schema()
    fields = _text_fields(schema)
    new = sorted(set(fields) - set(REVIEWED_TEXT_FIELDS))
    assert not new, f"new free-text scenario fields {new}: review that none is imported or executed, then list them"
    for path in fields:
        leaf = re.split(r"[.\[\]*]+", path.strip(".[]*"))[-1]
        assert not SUSPICIOUS_NAME.search(leaf), path

    def defaults(node):
        if isinstance(node, dict):
            if isinstance(node.get("default"), str):
                yield node["default"]
            for v in node.values():
                yield from defaults(v)
        elif isinstance(node, list):
            for v in node:
                yield from defaults(v)

    assert not [d for d in defaults(schema) if IMPORT_PATH.match(d)]
    described = [v.get("description", "") for v in fields.values()]
    assert not [d for d in described if re.search(r"import|dotted path to|python object|callable", d, re.I)]


def test_no_field_type_can_import_or_call():
    """No annotation in the model tree is an ImportString, a callable or a type."""
    import pydantic

    forbidden = {getattr(pydantic, "ImportString", None), typing.Callable, type}
    checked = 0
    for m, name, t in _annotations(Scenario):
        origin = typing.get_origin(t)
        assert t not in forbidden and origin not in forbidden, f"{m.__name__}.{name}: {t}"
        assert "ImportString" not in repr(t) and "Callable" not in repr(t), f"{m.__name__}.{name}: {t}"
        checked += 1
    assert checked > 100  # the walk really covers the model tree


@pytest.mark.parametrize("doc, path", [
    ({"method": "os.system"}, "method"),
    ({"method": "parse_actors.agents.methods:ParsePolicy"}, "method"),
    ({"agents": {"groups": [{"modalities": ["image"], "count": 2, "archs": {"image": "torch.nn.Transformer"}}]}},
     "agents.groups.0.archs.image"),
    ({"data": {"name": "builtins.eval"}}, "data.name"),
    ({"network": {"topology": {"kind": "networkx.complete_graph"}}}, "network.topology"),
    ({"network": {"link": {"latency": {"dist": "scipy.stats.norm"}}}}, "network.link.latency"),
    ({"model": {"default_arch": "torch.nn.LSTM"}}, "model.default_arch"),
])
def test_names_resolving_to_code_are_allow_listed(doc, path):
    """Every scenario value that picks an implementation is checked against a fixed list."""
    with pytest.raises(ScenarioError) as ei:
        build_scenario(doc, "x.yaml")
    assert ei.value.path == path
    assert "expected one of" in ei.value.message, ei.value.message
