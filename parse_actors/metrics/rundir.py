"""The run directory: every table written atomically, nothing overwritten by accident.

Layout (the contract later tools read; add freely, never rename):
scenario.yaml, events.jsonl, metrics.csv, comm.csv, summary.json, plots/.

Opening a run directory checks, before any work starts, that it can be used:
an existing non-empty one needs `force` (and even then only a directory that
looks like a run directory is deleted), and a 64 KiB probe write catches an
unwritable location or a full disk. A write that fails later raises
RunDirError naming the file (the file keeps its previous content).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from parse_actors import atomic

METRICS_HEADER = ["round", "t", "agent", "group", "acc", "loss"]
COMM_HEADER = ["src", "dst", "kind", "messages", "bytes_sent", "bytes_delivered", "bytes_dropped"]


class RunDirError(Exception):
    """The output directory cannot be used (exists, unwritable, disk full)."""


class RunDir:
    def __init__(self, path: Path, force: bool = False, reuse: bool = False):
        self.path = Path(path)
        try:
            if self.path.exists() and not self.path.is_dir():
                raise RunDirError(f"{self.path}: exists and is not a directory")
            if reuse:
                pass  # resuming: the run directory is ours
            elif self.path.exists() and any(self.path.iterdir()):
                if not force:
                    raise RunDirError(f"{self.path}: run directory exists and is not empty (use --force to overwrite)")
                if not _looks_like_run_dir(self.path):
                    raise RunDirError(f"{self.path}: exists and does not look like a run directory (no scenario.yaml);"
                                      " not deleting it, even with --force")
                shutil.rmtree(self.path)
        except OSError as e:
            raise RunDirError(f"{self.path}: cannot use the run directory: {e.strerror or e}") from None
        try:
            (self.path / "plots").mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            atomic.write_bytes(probe, b"x" * 65536)
            probe.unlink()
        except OSError as e:
            raise RunDirError(f"{self.path}: cannot write the run directory: {e.strerror or e}") from None
        self.extra_metric_columns: list[str] = []
        self._growing: dict[str, _GrowingText] = {}

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    def write_scenario(self, text: str) -> None:
        with _writing(self.path / "scenario.yaml"):
            atomic.write_text(self.path / "scenario.yaml", text)

    def write_metrics(self, rows: list[dict]) -> None:
        """metrics.csv: the standard columns, then every other key of `rows`, sorted.
        `rows` only grows between calls (see `write_table`'s `growing`)."""
        self.write_table("metrics.csv", METRICS_HEADER, rows, growing=True, more_columns=True)

    def write_table(self, name: str, header: list[str], rows: list[dict], growing: bool = False,
                    more_columns: bool = False) -> None:
        """Write a table atomically. `growing`: `rows` is the same list at every call and
        only gains rows at its end, so only those are formatted (the text of earlier
        ones is kept): flushing after each of R rounds costs O(rows) in all, not
        O(R x rows). `more_columns`: keys of `rows` beyond `header` follow it, sorted."""
        path = self.path / name
        if growing:
            table = self._growing.get(name)
            if table is None or table.rows is not rows or len(rows) < table.n:
                table = self._growing[name] = _GrowingText(rows)
            text = table.render(header, more_columns)
        else:
            if more_columns:
                header = list(header) + sorted({k for r in rows for k in r} - set(header))
            text = _csv_text(header, rows)
        with _writing(path):
            atomic.write_text(path, text)

    def write_comm(self, rows: list[dict], extra: tuple[str, ...] = ()) -> None:
        """`extra`: columns after the standard ones (deferred, oversize with a payload budget)."""
        self.write_table("comm.csv", COMM_HEADER + list(extra), rows)

    def write_summary(self, summary: dict) -> None:
        with _writing(self.path / "summary.json"):
            atomic.write_json(self.path / "summary.json", summary)

    def write_run_info(self, info: dict) -> None:
        with _writing(self.path / "run.json"):
            atomic.write_json(self.path / "run.json", info)


class _writing:
    """An OSError while writing `path` becomes a RunDirError naming the file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and issubclass(et, OSError):
            raise RunDirError(f"{self.path}: cannot write: {ev.strerror or ev}") from None
        return False


# What a run writes: a directory holding only these (or a scenario.yaml) may be
# deleted by --force; anything else is somebody's data.
_RUN_ENTRIES = {"plots", ".write-test", "events.jsonl", "metrics.csv", "comm.csv", "conflict.csv", "slice_drop.csv",
                "summary.json", "run.json", "checkpoint.pt", "final_weights.pt", "pid_audit.csv",
                "pid_audit.json"}


def _looks_like_run_dir(path: Path) -> bool:
    if (path / "scenario.yaml").is_file():
        return True
    return all(e.name in _RUN_ENTRIES or (e.name.startswith(".") and e.name.endswith(".tmp")) for e in path.iterdir())


class _GrowingText:
    """The CSV text of a list of rows that only grows: rows already rendered are kept
    as text; a new column (with `more_columns`) renders everything again."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.n = 0  # rows rendered
        self.keys: set[str] = set()
        self.header: list[str] | None = None
        self.text = ""

    def render(self, header: list[str], more_columns: bool) -> str:
        new = self.rows[self.n:]
        if more_columns:
            for r in new:
                self.keys.update(r)
            header = list(header) + sorted(self.keys - set(header))
        if header != self.header:
            self.header, self.text, new = header, _csv_text(header, ()), self.rows
        if new:
            self.text += _csv_text(None, new, header)
        self.n = len(self.rows)
        return self.text


def _csv_text(header: list[str] | None, rows, columns: list[str] | None = None) -> str:
    """CSV lines of `rows` (dicts; cells in `columns`' order, default `header`'s), after the header line if given."""
    columns = header if columns is None else columns
    return atomic.csv_text(header, ([_cell(r.get(k)) for k in columns] for r in rows))


def _cell(v):
    if isinstance(v, float):
        return repr(round(v, 10)) if v == v else "nan"
    return "" if v is None else v


def default_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    import datetime as _dt

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}-{stamp}"
    i = 1
    while path.exists():
        i += 1
        path = Path(root) / f"{name}-{stamp}-{i}"
    return path
