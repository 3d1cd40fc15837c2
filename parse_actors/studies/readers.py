"""The files a report reads, checked as they are read: a hand-edited table is one line.

A run directory's tables (metrics.csv, comm.csv, conflict.csv, slice_drop.csv)
and summary.json, and a sweep's sweep.json, are written by parse-sim, but a
report reads whatever is there. Each has a schema below: the columns (or keys)
the report uses, with their types. A cell that is not of its column's type,
a missing column, a row with more or fewer fields than the header, an empty
file, bytes that are not UTF-8, a JSON value of the wrong type: each is a
ReportError naming the file, the line and the column (or the key path).
NaN stays allowed where parse-sim writes it (the accuracy of a diverged run);
never in a round, a time or a count. Columns a table may add later (metrics.csv
"+ extra columns") are read as numbers where they are numbers, as text
otherwise.

(sweep.csv and tuned.csv are outputs of `parse-sim sweep`, rebuilt from the
run directories; a report never reads them.)
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from parse_actors import memory
from parse_actors.data import files
from parse_actors.data.errors import DataError
from parse_actors.metrics.rundir import RunDirError


class ReportError(RunDirError):
    """A run or sweep directory that a report cannot read (one line: file, place, what was expected)."""


# ----------------------------------------------------------------- cells


def _int(v: str) -> int:
    t = v.strip()
    if not t.lstrip("+-").isdigit():
        raise ValueError("an integer")
    return int(t)


def _nonneg_int(v: str) -> int:
    i = _int(v)
    if i < 0:
        raise ValueError("an integer >= 0")
    return i


def _float(v: str, nan_ok: bool) -> float:
    what = "a number (or nan)" if nan_ok else "a finite number"
    try:
        x = float(v)
    except ValueError:
        raise ValueError(what) from None
    if math.isinf(x) or (math.isnan(x) and not nan_ok):
        raise ValueError(what)
    return x


def _finite(v: str) -> float:
    return _float(v, nan_ok=False)


def _number(v: str) -> float:
    """A number, NaN allowed (a diverged run's accuracy or loss); integers stay integers."""
    x = _float(v, nan_ok=True)
    return int(v) if v.strip().lstrip("+-").isdigit() else x


def _text(v: str) -> str:
    if not v.strip():
        raise ValueError("a non-empty name")
    return v


Cell = Callable[[str], Any]

# column -> (how its cells are read, may a cell be empty)
TABLES: dict[str, dict[str, tuple[Cell, bool]]] = {
    "metrics.csv": {"round": (_nonneg_int, False), "t": (_finite, False), "agent": (_nonneg_int, False),
                    "group": (_text, False), "acc": (_number, True), "loss": (_number, True),
                    "acc_local": (_number, True), "acc_val": (_number, True), "loss_local": (_number, True),
                    "loss_val": (_number, True), "acc_gval": (_number, True), "loss_gval": (_number, True), "online": (_number, True), "train_loss": (_number, True),
                    "updates": (_number, True)},
    "comm.csv": {"src": (_nonneg_int, False), "dst": (_nonneg_int, False), "kind": (_text, False),
                 "messages": (_nonneg_int, False), "bytes_sent": (_nonneg_int, False),
                 "bytes_delivered": (_nonneg_int, False), "bytes_dropped": (_nonneg_int, False),
                 "deferred": (_nonneg_int, True), "oversize": (_nonneg_int, True)},
    "conflict.csv": {"round": (_nonneg_int, False), "t": (_finite, False), "branch": (_text, False),
                     "cosine": (_number, True), "frac_negative": (_number, True), "n_uni": (_nonneg_int, False),
                     "n_multi": (_nonneg_int, False)},
    "slice_drop.csv": {"round": (_nonneg_int, False), "t": (_finite, False), "agent": (_nonneg_int, False),
                       "group": (_text, False), "acc": (_number, False),
                       **{f"acc_without_{k}": (_number, True) for k in ("red", "uni", "syn")}},
}
REQUIRED = {
    "metrics.csv": ("round", "t", "agent", "group", "acc"),
    "comm.csv": ("src", "dst", "kind", "messages", "bytes_sent", "bytes_delivered", "bytes_dropped"),
    "conflict.csv": ("round", "t", "branch", "cosine"),
    "slice_drop.csv": ("round", "t", "agent", "group", "acc"),
}
_BYTES_PER_CELL_READ = 32  # a Python object per cell, about: what a table costs in memory per byte of file


def _extra(v: str) -> Any:
    """A column the schema does not name: a number where it is one, else the text."""
    if v == "":
        return None
    try:
        return _number(v)
    except ValueError:
        return v


def _open_text(path: Path) -> str:
    """A regular file's text (a FIFO or device is refused, not waited on), bounded by memory."""
    try:
        with files.open_regular(path) as (fh, size):
            why = memory.over_limit(size * _BYTES_PER_CELL_READ, f"reading {path.name} ({memory.fmt_bytes(size)})")
            if why:
                raise ReportError(f"{path}: {why}")
            return fh.read().decode("utf-8")
    except DataError as e:
        raise ReportError(e.message) from None
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ReportError(f"{path}: cannot be read ({e.strerror or e})") from None


def read_table(path: Path) -> list[dict]:
    """The rows of a run table (schema TABLES[path.name]); [] when the file does not exist."""
    if not os.path.lexists(path):
        return []
    schema = TABLES[path.name]
    text = _open_text(path)
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ReportError(f"{path}: empty; expected a header line ({','.join(REQUIRED[path.name])}, ...)")
        dup = [h for h in header if header.count(h) > 1]
        if dup:
            raise ReportError(f"{path}: line 1: column {dup[0]!r} appears twice")
        missing = [c for c in REQUIRED[path.name] if c not in header]
        if missing:
            raise ReportError(f"{path}: line 1: no column {missing[0]!r} (expected {','.join(REQUIRED[path.name])}"
                              ", ...)")
        cells = [(h, schema.get(h, (_extra, True))) for h in header]
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != len(header):
                raise ReportError(f"{path}: line {line}: {len(fields)} fields, the header has {len(header)}")
            row = {}
            for (col, (read, empty_ok)), v in zip(cells, fields):
                if v == "":
                    if not empty_ok:
                        raise ReportError(f"{path}: line {line}, column {col!r}: empty, expected a value")
                    row[col] = None
                    continue
                try:
                    row[col] = read(v)
                except ValueError as e:
                    raise ReportError(f"{path}: line {line}, column {col!r}: expected {e}, got {v[:40]!r}") from None
            rows.append(row)
    except csv.Error as e:
        raise ReportError(f"{path}: line {reader.line_num}: not valid CSV ({e})") from None
    return rows


def read_message_bytes(path: Path) -> list[tuple[float, int]] | None:
    """(send time, bytes) of every `message` event of an events.jsonl, in file order; None
    when the file is not there or holds no message event (`output.log_messages: false`)."""
    if not os.path.lexists(path):
        return None
    out = []
    for n, line in enumerate(_open_text(path).splitlines(), 1):
        if '"message"' not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError as e:
            raise ReportError(f"{path}: line {n}: not valid JSON ({e})") from None
        if not isinstance(ev, dict) or ev.get("event") != "message":
            continue
        t, b = ev.get("t_send"), ev.get("bytes")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                or isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise ReportError(f"{path}: line {n}: a message event needs t_send (a number) and bytes (an integer "
                              ">= 0)")
        out.append((float(t), b))
    return out or None


# ----------------------------------------------------------------- JSON documents

NUM, INT, STR, BOOL, ANY = "a number", "an integer", "a string", "true or false", "any value"


class Opt:
    """`spec`, or null."""

    def __init__(self, spec) -> None:
        self.spec = spec


class Each:
    """An object with any keys, each value `spec`."""

    def __init__(self, spec) -> None:
        self.spec = spec


class ListOf:
    def __init__(self, spec) -> None:
        self.spec = spec


_ACC = Opt({"mean": Opt(NUM), "by_group": Opt(Each(Opt(NUM)))})
SUMMARY = {
    "name": STR, "seed": INT, "method": STR, "rounds": INT, "complete": BOOL, "virtual_time_s": NUM,
    "wall_time_s": NUM, "agents": INT, "groups": Each(INT), "final_acc": _ACC, "final_acc_val": _ACC,
    "final_acc_gval": _ACC,
    "final_acc_local": _ACC, "bytes_by_kind": Each(NUM), "bytes_total": NUM, "messages": Each(INT),
    "protocol": STR,
    "gradient_conflict": Opt(Each({"mean_cosine": NUM, "mean_frac_negative": NUM, "rounds": INT})),
    "slice_drop": Opt(Each({"acc": NUM, "acc_without_red": NUM, "acc_without_uni": NUM, "acc_without_syn": NUM})),
}
"""What a report reads of summary.json (other keys are not looked at); keys may be absent."""
SWEEP = {
    "name": STR, "scenario": STR, "grid": Each(ListOf(ANY)), "grid_text": Each(ListOf(STR)), "tune": ListOf(STR),
    "seeds": ListOf(INT), "overrides": ListOf(STR),
    "runs": ListOf({"dir": STR, "params": Opt(Each(ANY)), "seed": INT, "derived": Opt(Each(Opt(NUM)))}),
    "extensions": ListOf({"setting": Each(ANY), "key": STR, "edge": STR, "from": ANY, "values": Each(ANY)}),
    "reference": STR, "early_stop": BOOL, "time_budget": NUM,
}
"""What a report reads of sweep.json."""


def _type_name(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def check_json(v, spec, file: Path, where: str = "") -> None:
    """`v` against `spec`; ReportError naming the key path of the first mismatch."""
    def bad(expected: str):
        shown = json.dumps(v)[:40] if not isinstance(v, (dict, list)) else _type_name(v)
        return ReportError(f"{file}: {where or 'top level'}: expected {expected}, got {shown}")

    if isinstance(spec, Opt):
        if v is not None:
            check_json(v, spec.spec, file, where)
        return
    if spec is ANY:
        return
    if spec is NUM:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isinf(v)):
            raise bad("a number")
        return
    if spec is INT:
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("an integer")
        return
    if spec is STR:
        if not isinstance(v, str):
            raise bad("a string")
        return
    if spec is BOOL:
        if not isinstance(v, bool):
            raise bad("true or false")
        return
    if isinstance(spec, ListOf):
        if not isinstance(v, list):
            raise bad("a list")
        for i, x in enumerate(v):
            check_json(x, spec.spec, file, f"{where}[{i}]")
        return
    if not isinstance(v, dict):
        raise bad("an object")
    if isinstance(spec, Each):
        for k, x in v.items():
            check_json(x, spec.spec, file, f"{where}.{k}" if where else k)
        return
    for k, s in spec.items():
        if k in v:
            check_json(v[k], s, file, f"{where}.{k}" if where else k)


def read_json(path: Path, spec) -> dict:
    """A JSON document checked against `spec` (NaN, which parse-sim writes for a diverged
    run, parses; where the spec wants a number, infinity does not pass)."""
    text = _open_text(path)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ReportError(f"{path}: nested too deeply to be a parse-sim file") from None
    except ValueError as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from None
    check_json(doc, spec, path)
    return doc


def check_sweep_manifest(doc: dict, path: Path) -> None:
    """What the schema cannot say: run folders inside the sweep, parameters from the grid."""
    grid = {k: list(v) for k, v in (doc.get("grid") or {}).items()}
    for e in doc.get("extensions") or []:  # tune values added past a grid edge (tune.py) are values too
        for k, v in (e.get("values") or {}).items():
            if k in grid:
                grid[k].append(v)
    for i, entry in enumerate(doc.get("runs") or []):
        d = PurePosixPath(entry["dir"]) if "dir" in entry else None
        if d is None:
            raise ReportError(f"{path}: runs[{i}]: no 'dir'")
        if d.is_absolute() or ".." in d.parts or not d.parts or "\\" in entry["dir"]:
            raise ReportError(f"{path}: runs[{i}].dir: expected a folder inside the sweep directory, got "
                              f"{entry['dir'][:60]!r}")
        for k, v in (entry.get("params") or {}).items():
            if k in grid and v not in grid[k]:
                raise ReportError(f"{path}: runs[{i}].params.{k}: {json.dumps(v)[:40]} is not one of the grid's "
                                  "values")
