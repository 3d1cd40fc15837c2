"""The package layering: what each layer may import, checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_actor_import_loads_no_simulation_machinery():
    """Every Ray actor imports parse_actors.engine.host: it must not pay for SimPy,
    netem, networkx, YAML or the coordinator."""
    code = ("import sys, parse_actors.engine.host; "
            "print(sorted(m for m in ('simpy', 'netem', 'networkx', 'yaml', 'parse_actors.engine.coordinator', "
            "'parse_actors.scenario') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def _module_graph() -> dict[str, set[str]]:
    mods: dict[str, Path] = {}
    for pkg in ("parse_actors", "netem"):
        for f in (ROOT / pkg).rglob("*.py"):
            n = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            mods[n[:-9] if n.endswith(".__init__") else n] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for t in names:
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != m and not m.startswith(t + ".") and not t.startswith(m + "."):
                    graph[m].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert _cycles(_module_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_only_downwards():
    """netem <- agents/data <- engine <- cli/studies: no layer imports one above it."""
    graph = _module_graph()
    above = {
        "netem": ("parse_actors",),
        "parse_actors.agents": ("parse_actors.engine", "parse_actors.studies", "parse_actors.cli", "netem",
                                "parse_actors.scenario"),
        "parse_actors.data": ("parse_actors.engine", "parse_actors.studies", "parse_actors.cli", "netem",
                              "parse_actors.agents"),
        "parse_actors.engine": ("parse_actors.studies", "parse_actors.cli"),
    }
    bad = [(m, t) for m, targets in graph.items() for layer, banned in above.items()
           if m == layer or m.startswith(layer + ".") for t in targets if t.startswith(banned)]
    assert bad == []
