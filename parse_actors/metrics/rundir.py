"""The run directory: every table written atomically, nothing overwritten by accident.

Layout (the contract later tools read; add freely, never rename):
scenario.yaml, events.jsonl, metrics.csv, comm.csv, summary.json, plots/
(dirguard.CONTRACT_FILES lists every file).

Opening a run directory checks, before any work starts, that it can be used
(dirguard.py has the rule): a directory that is or holds a symbolic link is
refused; an existing non-empty one needs parse-sim's marker, and `force` to be
reused (and then only the contract's entries are deleted); the directory is
locked for the life of the run; a 64 KiB probe write and the disk-full
reserve (reserve.py) catch an unwritable location or a full disk. A write
that fails later raises RunDirError naming the file (the file keeps its
previous content).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from parse_actors import atomic
from parse_actors.metrics import dirguard
from parse_actors.metrics.dirguard import MARKER, RunDirError, refuse
from parse_actors.metrics.reserve import Space

METRICS_HEADER = ["round", "t", "agent", "group", "acc", "loss"]
COMM_HEADER = ["src", "dst", "kind", "messages", "bytes_sent", "bytes_delivered", "bytes_dropped"]


class DiskFull(RunDirError):
    """The disk filled during a run; the message says what was kept and what to free."""


class NoSpaceStop(Exception):
    """Raised at the end of the round in which a write found the disk full, after the
    checkpoint: the run stops there (the runner turns it into DiskFull)."""


class RunDir:
    """A run directory, open (and locked) until `close` (or the end of a `with` block).
    `force`: reuse a non-empty run directory of parse-sim's, deleting its contract
    entries; `reuse`: keep its contents (`--resume`; the directory must exist)."""

    def __init__(self, path: Path, force: bool = False, reuse: bool = False):
        self.path = Path(path)
        self.lock: dirguard.Lock | None = None
        self.space: Space | None = None
        self.extra_metric_columns: list[str] = []
        self._growing: dict[str, _GrowingText] = {}
        try:
            self._open(force, reuse)
        except BaseException:
            self.close()
            raise

    def _open(self, force: bool, reuse: bool) -> None:
        path = self.path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise RunDirError(f"{path}: cannot write the run directory: {e.strerror or e}") from None
        if st is not None and not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            raise RunDirError(f"{path}: exists and is not a directory")
        if st is None and reuse:
            raise RunDirError(f"{path}: no such run directory")
        dirguard.check_entries(path)
        try:
            if st is None:
                path.mkdir(parents=True, exist_ok=True)
            dfd = atomic.open_dir(path)
        except OSError as e:
            raise RunDirError(f"{path}: cannot write the run directory: {e.strerror or e}") from None
        try:
            self._claim(dfd, force, reuse)
        finally:
            os.close(dfd)
        try:
            if not dirguard.has_marker_at(path):
                dirguard.write_marker(path)
            (path / "plots").mkdir(exist_ok=True)
            probe = path / ".write-test"
            atomic.write_bytes(probe, b"x" * 65536)
            probe.unlink()
            self.space = Space(path)
            self.space.create()
        except OSError as e:
            raise RunDirError(f"{path}: cannot write the run directory: {e.strerror or e}") from None

    def _claim(self, dfd: int, force: bool, reuse: bool) -> None:
        """Lock the directory; then, unless it is empty or `reuse`, `force` cleans it."""
        path = self.path
        entries = [e for e in os.listdir(dfd) if e != dirguard.LOCK]
        ours = dirguard.has_marker(dfd)
        if reuse:
            dirguard.require_run_dir(path, dfd)
        elif entries and not ours:
            raise refuse(f"{path}: exists, is not empty and is not a parse-sim run directory (no {MARKER}): "
                         "choose another --out (--force deletes only what parse-sim wrote, in its own directories)")
        self.lock = dirguard.Lock(path, dfd)
        if entries and ours and not reuse:
            if not force:
                raise RunDirError(f"{path}: run directory exists and is not empty (use --force to overwrite)")
            try:
                dirguard.clean(path, dfd)
            except OSError as e:
                raise RunDirError(f"{path}: cannot clean the run directory: {e.strerror or e}") from None

    def close(self) -> None:
        """Release the reserve and the lock (idempotent)."""
        if self.space is not None:
            self.space.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit, modules may be gone
            pass

    # ------------------------------------------------------------------ a full disk
    @property
    def disk_full(self) -> bool:
        """A write found the disk full: the run stops at the end of the round."""
        return self.space is not None and self.space.full_at is not None

    def expect_state(self, param_bytes: int) -> None:
        """Size the reserve for the agents' state (`param_bytes` of parameters), before the
        first round; a disk too full for it is a RunDirError naming the reserve."""
        if self.space is not None:
            try:
                self.space.expect_state(param_bytes)
            except OSError as e:
                raise RunDirError(f"{e.filename}: cannot write the run directory: {e.strerror or e}") from None

    def disk_full_error(self) -> DiskFull:
        """The one line for a run that found the disk full, from what is on disk now."""
        s = self.space
        summary = _read_json(self.path / "summary.json")
        if summary is not None and summary.get("complete"):
            state = "the run finished and its tables are written"
            step = "run it again for what was not written" if s.unwritten else ""
        elif (self.path / "checkpoint.pt").is_file():
            rounds = summary.get("rounds") if summary else None
            state = ("the run stopped" + (f" after {rounds} rounds" if rounds is not None else "")
                     + "; the finished rounds' tables and a checkpoint are kept")
            step = f"continue with: parse-sim run --resume {self.path}"
        else:
            state = "the run stopped before a checkpoint could be written"
            step = "run it again"
        return DiskFull(s.message(state, step))

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
            hint = " (parse-sim's reserve for a full disk is used up)" if atomic.is_no_space(ev) else ""
            raise RunDirError(f"{self.path}: cannot write: {ev.strerror or ev}{hint}") from None
        return False


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


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
