"""Parameter grids: `--grid KEY=V1,V2,...`, `# grid:` lines in scenario files, expansion.

Values are YAML. Commas separate values only at the top level, so a value may
itself be a flow mapping or list: `network.topology={kind: ring},{kind: star}`.
A whole value text that is one YAML list gives its items as the values, so
`'network.stragglers=[{model: none}, {model: fraction, fraction: 0.3}]'` is
two values; to sweep over list-valued keys, nest the list:
`data.synthetic.modalities=[[image, audio], [image, audio, text]]`.

A scenario file may carry its default grid in comment lines (comments keep the
file a valid scenario for `parse-sim run` and `validate`)::

    # grid: method=parse,local
    # grid: network.churn.offline.mean_s=0.056,0.214,0.5

`--grid` on the command line replaces a key's values or adds a key.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parse_actors.errors import ScenarioError

GRID_LINE = re.compile(r"^\s*#\s*grid:\s*(.*?)\s*$")
MAX_POINTS = 10_000
_OPEN, _CLOSE = "[{(", "]})"


def split_values(raw: str) -> list[str]:
    """Split at commas outside brackets, braces and quotes."""
    out, buf, depth, quote = [], [], 0, None
    i = 0
    while i < len(raw):
        c = raw[i]
        if quote:
            buf.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(raw):
                buf.append(raw[i + 1])
                i += 1
            elif c == quote:
                if quote == "'" and raw[i + 1:i + 2] == "'":  # '' inside single quotes
                    buf.append("'")
                    i += 1
                else:
                    quote = None
        elif c in "'\"" and (not "".join(buf).strip() or "".join(buf).rstrip()[-1] in "[{,:-?"):
            quote = c
            buf.append(c)
        elif c in _OPEN:
            depth += 1
            buf.append(c)
        elif c in _CLOSE:
            depth = max(0, depth - 1)
            buf.append(c)
        elif c == "," and depth == 0:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out]


def _check_key(key: str, where: str) -> str:
    parts = [p.strip() for p in key.split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ScenarioError(where, key.strip(), "expected a dotted key path like network.link.bandwidth_mbps")
    key = ".".join(parts)
    if key == "seed":
        raise ScenarioError(where, key, "seeds are not a grid key: use --seeds N")
    return key


def parse_grid_arg(arg: str, where: str = "--grid") -> tuple[str, list]:
    """`KEY=V1,V2,...` -> (KEY, [values parsed as YAML])."""
    from parse_actors.scenario import parse_yaml

    if "=" not in arg:
        raise ScenarioError(where, "", f"expected KEY.PATH=V1,V2,..., got {_short(arg)}")
    key, _, raw = arg.partition("=")
    key = _check_key(key, where)
    raw = raw.strip()
    if not raw:
        raise ScenarioError(where, key, "no values given (expected KEY.PATH=V1,V2,...)")
    pieces = split_values(raw)
    values: list = []
    if len(pieces) == 1 and raw.startswith("["):
        try:
            whole = parse_yaml(raw, "value")
        except ScenarioError as e:
            raise ScenarioError(where, key, e.message) from None
        if not isinstance(whole, list):
            raise ScenarioError(where, key, f"expected a YAML list of values, got {_short(raw)}")
        values = whole
    else:
        for p in pieces:
            if not p:
                raise ScenarioError(where, key, f"empty value in {_short(raw)} (write '' for an empty string)")
            try:
                values.append(parse_yaml(p, "value"))
            except ScenarioError as e:
                raise ScenarioError(where, key, f"{_short(p)}: {e.message}") from None
    if not values:
        raise ScenarioError(where, key, "the list of values is empty")
    seen: list[str] = []
    for v in values:
        text = dump_value(v)
        if text in seen:
            raise ScenarioError(where, key, f"value {_short(text)} given twice")
        seen.append(text)
    return key, values


def file_grid(path: str | Path) -> dict[str, list]:
    """The default grid of a scenario file: its `# grid: KEY=V1,V2` comment lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}  # load_document reports the file itself
    grid: dict[str, list] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = GRID_LINE.match(line)
        if not m:
            continue
        try:
            key, values = parse_grid_arg(m.group(1), where="# grid")
        except ScenarioError as e:
            raise ScenarioError(str(path), f"line {n}", str(e)) from None
        if key in grid:
            raise ScenarioError(str(path), f"line {n}", f"# grid: key {key} given twice")
        grid[key] = values
    return grid


def merge_grids(base: dict[str, list], args: list[str]) -> dict[str, list]:
    """`base` (a file's grid) with `--grid` arguments replacing or adding keys."""
    grid = dict(base)
    given: set[str] = set()
    for a in args:
        key, values = parse_grid_arg(a)
        if key in given:
            raise ScenarioError("--grid", key, "given twice (list every value in one --grid)")
        given.add(key)
        grid[key] = values
    keys = list(grid)
    for a, b in itertools.permutations(keys, 2):
        if b.startswith(a + "."):
            raise ScenarioError("--grid", b, f"is inside {a}, which the grid also sets")
    return grid


LOG_GRID = (0.01, 0.3, 6)
"""The tuning default (`--tune KEY` with no values): 6 log-spaced values from 0.01 to 0.3,
a learning-rate grid wide enough for every method here; it extends itself past an edge
the choice lands on (tune.py)."""


def log_grid(lo: float, hi: float, n: int) -> list[float]:
    """`n` log-spaced values from `lo` to `hi`, rounded to 3 significant digits."""
    if n == 1:
        return [float(f"{lo:.3g}")]
    r = (hi / lo) ** (1.0 / (n - 1))
    return [float(f"{lo * r ** i:.3g}") for i in range(n)]


_LOG_SPEC = re.compile(r"^log:([^:]+):([^:]+):([^:]+)$")


def parse_tune_arg(arg: str) -> tuple[str, list]:
    """`KEY=V1,V2,...` (as --grid), `KEY=log:LO:HI:N` (N log-spaced values), or `KEY` alone
    (the default log grid, LOG_GRID)."""
    if "=" not in arg:
        return _check_key(arg, "--tune"), log_grid(*LOG_GRID)
    key, _, raw = arg.partition("=")
    m = _LOG_SPEC.match(raw.strip())
    if not m:
        return parse_grid_arg(arg, where="--tune")
    key = _check_key(key, "--tune")
    try:
        lo, hi, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
    except ValueError:
        raise ScenarioError("--tune", key, f"expected log:LO:HI:N with numbers, got {_short(raw)}") from None
    if not (0 < lo < hi and 2 <= n <= 50):
        raise ScenarioError("--tune", key, f"expected log:LO:HI:N with 0 < LO < HI and 2 <= N <= 50, got {_short(raw)}")
    values = log_grid(lo, hi, n)
    if len(set(values)) < n:
        raise ScenarioError("--tune", key, f"{_short(raw)}: values repeat at 3 significant digits; use fewer points")
    return key, values


def add_tune(grid: dict[str, list], tune_args: list[str], grid_args: list[str] = ()) -> tuple[dict[str, list], list[str]]:
    """`grid` with the `--tune` keys (parse_tune_arg) added last (swept like grid keys; a key of
    the file's `# grid:` lines is replaced); returns (grid, tune keys)."""
    cli_keys = {parse_grid_arg(a)[0] for a in grid_args}
    grid = {k: v for k, v in grid.items()}
    tune: list[str] = []
    for a in tune_args:
        key, values = parse_tune_arg(a)
        if key in tune:
            raise ScenarioError("--tune", key, "given twice (list every value in one --tune)")
        if key in cli_keys:
            raise ScenarioError("--tune", key, "is also a --grid key: sweep it with one of them")
        tune.append(key)
        grid.pop(key, None)
        grid[key] = values
    for a, b in itertools.permutations(list(grid), 2):
        if b.startswith(a + "."):
            raise ScenarioError("--tune" if b in tune or a in tune else "--grid", b,
                                f"is inside {a}, which the grid also sets")
    return grid, tune


def dump_value(v: Any) -> str:
    """One-line YAML text of a plain value (parsing it gives `v` back)."""
    if isinstance(v, float) and not math.isfinite(v):
        return ".nan" if v != v else (".inf" if v > 0 else "-.inf")
    text = yaml.safe_dump(v, default_flow_style=True, width=2**31, allow_unicode=True, sort_keys=False)
    if text.endswith("\n...\n"):
        text = text[:-5]
    return text.strip()


def _short(s: str, n: int = 60) -> str:
    s = " ".join(str(s).split())
    return repr(s if len(s) <= n else s[: n - 3] + "...")


# ---------------------------------------------------------------------------
# expansion
# ---------------------------------------------------------------------------


@dataclass
class GridPoint:
    """One run of a sweep: grid values (in grid order), seed, run-directory name."""

    params: dict[str, Any]
    seed: int
    name: str
    overrides: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        parts = [f"{k}={dump_value(v)}" for k, v in self.params.items()]
        return ", ".join(parts + [f"seed={self.seed}"])


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._+-]+", "-", text)
    return re.sub(r"-{2,}", "-", s).strip("-") or "x"


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def value_slugs(values: list) -> list[str]:
    """Directory-name-safe, distinct labels of a key's values."""
    texts = [dump_value(v) for v in values]
    slugs = [_slug(t)[:40] for t in texts]
    if len(set(slugs)) < len(slugs) or any(len(_slug(t)) > 40 for t in texts):
        slugs = [f"{s}-{_digest(t)}" if (slugs.count(s) > 1 or len(_slug(t)) > 40) else s
                 for s, t in zip(slugs, texts)]
    return slugs


def _points(params: dict[str, Any], parts: list[str], seeds: list[int]) -> list[GridPoint]:
    out = []
    for s in seeds:
        name = "__".join(parts + [f"seed={s}"])
        if len(name) > 200:
            name = f"{name[:180]}-{_digest(name, 12)}"
        out.append(GridPoint(params, s, name, [f"{k}={dump_value(v)}" for k, v in params.items()]))
    return out


def expand_grid(grid: dict[str, list], seeds: list[int]) -> list[GridPoint]:
    """Every combination of the grid's values (first key outermost), each with every seed."""
    keys = list(grid)
    slugs = {k: value_slugs(grid[k]) for k in keys}
    n = math.prod(len(v) for v in grid.values()) * len(seeds)
    if n > MAX_POINTS:
        raise ScenarioError("--grid", "", f"{n} runs: more than {MAX_POINTS}; sweep a smaller grid")
    points = []
    for combo in itertools.product(*(range(len(grid[k])) for k in keys)):
        params = {k: copy.deepcopy(grid[k][i]) for k, i in zip(keys, combo)}
        points += _points(params, [f"{_slug(k)}={slugs[k][i]}" for k, i in zip(keys, combo)], seeds)
    return points


def extra_points(grid: dict[str, list], params: dict[str, Any], seeds: list[int]) -> list[GridPoint]:
    """The runs of one point outside the grid's product (a tune value added past an edge):
    named like grid points, a value not in the grid named as if it were appended to it."""
    keys = list(grid)
    parts = []
    for k in keys:
        texts = [dump_value(v) for v in grid[k]]
        t = dump_value(params[k])
        slugs = value_slugs(grid[k]) if t in texts else value_slugs(grid[k] + [params[k]])
        parts.append(f"{_slug(k)}={slugs[texts.index(t) if t in texts else -1]}")
    return _points({k: copy.deepcopy(params[k]) for k in keys}, parts, seeds)


def is_numeric(values: list) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def value_text(v: Any) -> str:
    """Short text of a grid value for tables and legends: `0.3`, `ring`,
    `chordal_ring chords=[3]` for {kind: chordal_ring, chords: [3]}."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict) and v:
        tag = next((k for k in ("kind", "model", "dist") if isinstance(v.get(k), str)), None)
        rest = [f"{k}={value_text(x)}" for k, x in v.items() if k != tag]
        return " ".join(([str(v[tag])] if tag else []) + rest)
    return dump_value(v)
