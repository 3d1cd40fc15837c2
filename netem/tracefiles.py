"""Readers for measured traces, and the traces shipped with netem.

Formats (comments start with `#`, blank lines are skipped, columns may be
separated by whitespace or commas):

- bandwidth: `time_seconds  Mbit/s` per line, times strictly increasing. The
  rate is piecewise constant; the last sample lasts the mean sample spacing,
  and the trace loops after that (times are shifted to start at 0).
- latency: a CSV `source,destination,min,avg,max,mdev` of round-trip times in
  ms between measured hosts (WonderProxy format), optionally with a servers CSV
  (`id,...,title,...,country,...,latitude,longitude`) giving each host's city.
- availability: `node  start_s  end_s` per line, one online session each.
- edge list: `u  v` per line (further columns are ignored).

Every reader rejects a malformed line with a TraceFormatError naming the file
and the line number, and holds every file to netem.limits: a regular file of
at most 64 MiB and 1,000,000 lines; finite numbers; rates in [0, 10 Tbit/s];
bandwidth samples at least 1 ms apart; round-trip times in [0, one day];
timestamps in [0, 1e10] s; each latency pair and server id given once. Memory
grows with the lines of a file, never with the square of its hosts.
"""

from __future__ import annotations

import csv
import functools
import heapq
import io
import math
import os
import re
import stat
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TraceFormatError
from .limits import (MAX_FILE_BYTES, MAX_FILE_LINES, MAX_HOST_ID, MAX_LATENCY_MS, MAX_LINE_CHARS, MAX_RATE_MBPS,
                     MAX_TRACE_TIME_S, MIN_RATE_MBPS, MIN_SAMPLE_SPACING_S)

TRACE_DIR = Path(__file__).resolve().parent / "traces"

#: Shipped bandwidth traces, by the name scenarios use.
SHIPPED_BANDWIDTH: dict[str, str] = {
    "norway-3g-bus": "bandwidth/norway-3g-bus.tsv",
    "norway-3g-car": "bandwidth/norway-3g-car.tsv",
    "norway-3g-ferry": "bandwidth/norway-3g-ferry.tsv",
    "norway-3g-train": "bandwidth/norway-3g-train.tsv",
}

#: Shipped latency matrices: name -> (pings CSV, servers CSV).
SHIPPED_LATENCY: dict[str, tuple[str, str]] = {
    "wonderproxy-excerpt": (
        "latency/wonderproxy-excerpt-pings.csv",
        "latency/wonderproxy-excerpt-servers.csv",
    ),
}


def shipped_traces() -> dict[str, list[str]]:
    """Names usable in scenarios instead of a path."""
    return {"bandwidth": sorted(SHIPPED_BANDWIDTH), "latency": sorted(SHIPPED_LATENCY)}


def resolve_path(spec: str | Path, base_dir: str | Path | None) -> Path:
    """A user path: absolute as given, relative against `base_dir` (or the cwd)."""
    p = Path(spec).expanduser()
    if not p.is_absolute():
        p = Path(base_dir if base_dir is not None else Path.cwd()) / p
    return p


def _existing(p: Path, kind: str, shipped: dict) -> Path:
    if not p.is_file():
        if p.exists():
            raise TraceFormatError(p, None, f"{kind} trace is not a regular file")
        names = ", ".join(sorted(shipped))
        raise FileNotFoundError(f"{kind} trace {str(p)!r} not found (shipped names: {names})")
    return p


def resolve_bandwidth(spec: str, base_dir: str | Path | None = None) -> Path:
    """Path of a bandwidth trace given by shipped name or path."""
    if spec in SHIPPED_BANDWIDTH:
        return TRACE_DIR / SHIPPED_BANDWIDTH[spec]
    return _existing(resolve_path(spec, base_dir), "bandwidth", SHIPPED_BANDWIDTH)


def resolve_latency(
    spec: str, servers: str | None, base_dir: str | Path | None = None
) -> tuple[Path, Path | None]:
    """Paths (pings, servers-or-None) of a latency matrix given by shipped name or path."""
    if spec in SHIPPED_LATENCY:
        pings, srv = SHIPPED_LATENCY[spec]
        return TRACE_DIR / pings, (
            TRACE_DIR / srv if servers is None else _existing(resolve_path(servers, base_dir), "servers", {})
        )
    p = _existing(resolve_path(spec, base_dir), "latency", SHIPPED_LATENCY)
    s = _existing(resolve_path(servers, base_dir), "servers", {}) if servers is not None else None
    return p, s


def _read_text(path: Path) -> str:
    """The file as text: a regular file of at most MAX_FILE_BYTES, in UTF-8
    (undecodable bytes are reported with their line number). Opened without
    blocking, so a FIFO or device is refused instead of waited on."""
    too_large = f"larger than {MAX_FILE_BYTES >> 20} MiB"
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise TraceFormatError(path, None, "not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise TraceFormatError(path, None, too_large)
        chunks, total = [], 0  # in pieces: read(n) would reserve n bytes up front
        while chunk := fh.read(min(1 << 20, MAX_FILE_BYTES + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_FILE_BYTES:  # it grew since the stat
                raise TraceFormatError(path, None, too_large)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TraceFormatError(path, line, "not UTF-8 text") from None


def _lines(path: Path):
    """The file's lines (ends kept), at most MAX_FILE_LINES of at most MAX_LINE_CHARS each."""
    for lineno, line in enumerate(io.StringIO(_read_text(path), newline=""), 1):
        if lineno > MAX_FILE_LINES:
            raise TraceFormatError(path, lineno, f"more than {MAX_FILE_LINES:,} lines")
        if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
            raise TraceFormatError(path, lineno, f"line longer than {MAX_LINE_CHARS:,} characters")
        yield line


def _data_lines(path: Path):
    """(line number, fields) of non-blank, non-comment lines."""
    for lineno, raw in enumerate(_lines(path), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield lineno, [f for f in re.split(r"[,\s]+", line) if f]


def _csv_rows(path: Path):
    """(line number, fields) of a CSV file; syntax errors name the line."""
    reader = csv.reader(_lines(path))
    try:
        for rec in reader:
            yield reader.line_num, rec
    except csv.Error as e:
        raise TraceFormatError(path, reader.line_num, f"bad CSV: {e}") from None


def _number(path: Path, lineno: int, text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise TraceFormatError(path, lineno, f"{what} is not a number: {text!r}") from None
    if not math.isfinite(v):
        raise TraceFormatError(path, lineno, f"{what} must be finite, got {text!r}")
    return v


def _bounded(path: Path, lineno: int, text: str, what: str, high: float, unit: str) -> float:
    """A number in [0, high]; the error says which bound and in what unit."""
    v = _number(path, lineno, text, what)
    if not 0.0 <= v <= high:
        raise TraceFormatError(path, lineno, f"{what} must be in [0, {high:g}] {unit}, got {text}")
    return v


def _host_id(path: Path, lineno: int, text: str, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise TraceFormatError(path, lineno, f"{what} must be an integer host id, got {text.strip()[:40]!r}") from None
    if not 0 <= v <= MAX_HOST_ID:
        raise TraceFormatError(path, lineno, f"{what} must be in [0, 2**62], got {text.strip()[:40]}")
    return v


# --------------------------------------------------------------------------- bandwidth


class BandwidthTrace:
    """A looping piecewise-constant rate; transfers integrate across rate changes.

    Times are trace-local; a link reads it with an `offset` (its phase), i.e.
    at trace time `t + offset`. A delivery time is a binary search on the
    cumulative volume, whatever the number of samples. The constructor
    enforces netem's limits (netem.limits) on the arrays it is given; the file
    reader checks each line first, so its errors name the line.
    """

    def __init__(self, times, mbps, name: str = "", scale: float = 1.0):
        t = np.asarray(times, dtype=float)
        mb = np.asarray(mbps, dtype=float)
        if t.ndim != 1 or t.shape != mb.shape or len(t) == 0:
            raise ValueError("times and rates must be equal-length non-empty sequences")
        _check_samples(t, mb, scale)
        r = mb * 1e6 * scale
        t = t - t[0]
        last = float(np.mean(np.diff(t))) if len(t) > 1 else 1.0
        self.name = name
        self.scale = scale
        self.starts = t
        self.bps = r
        self._mbps = mb
        self.period = float(t[-1] + last)
        ends = np.append(t[1:], self.period)
        self.cum = np.concatenate([[0.0], np.cumsum(r * (ends - t))])  # bits at each start, then total
        self.bits_per_period = float(self.cum[-1])
        if not self.bits_per_period > 0:
            raise ValueError(f"bandwidth trace {name!r} carries no data (all rates are zero)")
        mean = self.bits_per_period / self.period
        if mean < MIN_RATE_MBPS * 1e6:
            raise ValueError(f"mean rate {mean:.3g} bit/s is below {MIN_RATE_MBPS * 1e6:g} bit/s"
                             + (f" (rates times scale {scale:g})" if scale != 1.0 else ""))
        self._bounds = np.append(t, self.period)

    def scaled(self, scale: float) -> BandwidthTrace:
        """The same trace with every rate multiplied by `scale` (ValueError past netem's limits)."""
        return BandwidthTrace(self.starts, self._mbps, name=self.name, scale=self.scale * scale)

    def __len__(self) -> int:
        return len(self.starts)

    def _local(self, t: float) -> float:
        return t % self.period

    def rate_at(self, t: float, offset: float = 0.0) -> float:
        """Rate in bit/s at time t."""
        tau = self._local(t + offset)
        i = int(np.searchsorted(self.starts, tau, "right")) - 1
        return float(self.bps[i])

    def next_change(self, t: float, offset: float = 0.0) -> float:
        """The first time strictly after t at which the rate changes (a sample boundary).

        A binary search, then at most two more boundaries: one closer than an
        ulp of t is already behind us, and the next is MIN_SAMPLE_SPACING_S
        further, which the clock resolves for any t below 2**42 s. So every
        call moves time forward by about a sample spacing, never by nothing.
        """
        tau = self._local(t + offset)
        bounds = self._bounds
        i = int(np.searchsorted(bounds, tau, "right"))
        laps = 0
        for _ in range(3):
            if i >= len(bounds):  # wrap: boundary 0 of the next lap equals `period` of this one
                i, laps = 1, laps + 1
            cand = t + ((laps * self.period + float(bounds[i])) - tau)
            if cand > t:
                return cand
            i += 1
        raise ValueError(f"virtual time {t!r} s is too large to resolve the samples of bandwidth trace {self.name!r}")

    def _cum_at(self, tau: float) -> float:
        i = int(np.searchsorted(self.starts, tau, "right")) - 1
        return float(self.cum[i] + self.bps[i] * (tau - self.starts[i]))

    def bits_between(self, t0: float, t1: float, offset: float = 0.0) -> float:
        """Bits a link on this trace carries in [t0, t1]."""
        a, b = t0 + offset, t1 + offset
        ka, kb = math.floor(a / self.period), math.floor(b / self.period)
        return (kb - ka) * self.bits_per_period + self._cum_at(b - kb * self.period) - self._cum_at(
            a - ka * self.period
        )

    def finish_time(self, t0: float, bits: float, offset: float = 0.0) -> float:
        """When a transfer of `bits` started at t0 completes.

        `target / w` below is finite: the constructor keeps every rate within
        MAX_RATE_MBPS and the mean rate at least MIN_RATE_MBPS, and a
        message is at most MAX_MESSAGE_BYTES.
        """
        if bits <= 0:
            return t0
        tau0 = self._local(t0 + offset)
        target = self._cum_at(tau0) + bits
        w = self.bits_per_period
        k = math.floor(target / w)
        rem = target - k * w
        if rem <= 0.0:  # ends on a period boundary: finish at the last useful sample of period k-1
            k -= 1
            rem = w
        j = int(np.searchsorted(self.cum, rem, "left"))
        if self.cum[j] == rem:
            # Earliest instant with this cumulative volume: end of the last positive segment.
            tau1 = float(self._bounds[j]) if j > 0 else 0.0
            while j > 0 and self.bps[j - 1] == 0.0:
                j -= 1
                tau1 = float(self._bounds[j])
        else:
            tau1 = float(self.starts[j - 1] + (rem - self.cum[j - 1]) / self.bps[j - 1])
        return t0 + ((k * self.period + tau1) - tau0)


def _check_samples(t: np.ndarray, mbps: np.ndarray, scale: float) -> None:
    """netem's limits on a bandwidth trace's arrays (ValueError naming the first bad sample)."""
    if not (np.isfinite(t).all() and np.isfinite(mbps).all()):
        raise ValueError("times and rates must be finite")
    if len(t) > MAX_FILE_LINES:
        raise ValueError(f"{len(t):,} samples, at most {MAX_FILE_LINES:,}")
    if t.min() < 0 or t.max() > MAX_TRACE_TIME_S:
        raise ValueError(f"times must be in [0, {MAX_TRACE_TIME_S:g}] s")
    gaps = np.diff(t)
    if len(gaps) and gaps.min() < MIN_SAMPLE_SPACING_S * (1 - 1e-9):
        i = int(np.argmin(gaps))
        raise ValueError(f"samples {i} and {i + 1} are {gaps[i]:.3g} s apart; "
                         f"they must be at least {MIN_SAMPLE_SPACING_S * 1e3:g} ms apart")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if mbps.min() < 0:
        raise ValueError("rates must be >= 0")
    top = float(mbps.max()) * scale
    if top > MAX_RATE_MBPS:
        raise ValueError(f"peak rate {top:.3g} Mbit/s" + (f" (rates times scale {scale:g})" if scale != 1.0 else "")
                         + f" exceeds {MAX_RATE_MBPS:g} Mbit/s (10 Tbit/s)")


def load_bandwidth_trace(path: str | Path, scale: float = 1.0, name: str | None = None) -> BandwidthTrace:
    """Read a `time_seconds Mbit/s` trace; see the module docstring."""
    path = Path(path)
    times: list[float] = []
    rates: list[float] = []
    for lineno, fields in _data_lines(path):
        if len(fields) != 2:
            raise TraceFormatError(path, lineno, f"expected 2 columns 'time_seconds Mbit/s', got {len(fields)}")
        if not times and not _is_number(fields[0]) and not _is_number(fields[1]):
            continue  # a header line
        t = _number(path, lineno, fields[0], "time")
        r = _number(path, lineno, fields[1], "rate")
        if t < 0:
            raise TraceFormatError(path, lineno, f"time must be >= 0, got {t}")
        if t > MAX_TRACE_TIME_S:
            raise TraceFormatError(path, lineno, f"time must be <= {MAX_TRACE_TIME_S:g} s, got {fields[0]}")
        if r < 0:
            raise TraceFormatError(path, lineno, f"rate must be >= 0 Mbit/s, got {r}")
        if r > MAX_RATE_MBPS:
            raise TraceFormatError(path, lineno, f"rate must be <= {MAX_RATE_MBPS:g} Mbit/s (10 Tbit/s), "
                                   f"got {fields[1]}")
        if times and t <= times[-1]:
            raise TraceFormatError(path, lineno, f"times must increase strictly ({t} after {times[-1]})")
        if times and t - times[-1] < MIN_SAMPLE_SPACING_S * (1 - 1e-9):
            raise TraceFormatError(path, lineno, f"sample {t - times[-1]:.3g} s after the previous one; samples "
                                   f"must be at least {MIN_SAMPLE_SPACING_S * 1e3:g} ms apart")
        times.append(t)
        rates.append(r)
    if not times:
        raise TraceFormatError(path, None, "no samples")
    try:
        return BandwidthTrace(times, rates, name=name or path.stem, scale=scale)
    except ValueError as e:
        raise TraceFormatError(path, None, str(e)) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class Server:
    """A measured host: id and where it is."""

    id: int
    name: str
    city: str
    country: str
    lat: float
    lon: float


class LatencyMatrix:
    """Measured round-trip statistics between hosts, in milliseconds, kept sparse.

    Only the measured pairs are stored (sorted keys `i * len(hosts) + j` over
    host indices, and one value array per statistic), so memory grows with the
    rows of the file, not with hosts squared. A missing direction is read from
    the reverse direction, a missing self-ping is 0; `complete_hosts` lists
    hosts with data to every other host.
    """

    def __init__(self, hosts, keys, mn, avg, mdev, servers: dict[int, Server] | None, source: str = ""):
        self.hosts = [int(h) for h in hosts]  # sorted host ids
        self._ids = np.asarray(self.hosts, dtype=np.int64)
        self._keys = np.asarray(keys, dtype=np.int64)  # sorted, unique
        self._min = np.asarray(mn, dtype=float)
        self._avg = np.asarray(avg, dtype=float)
        self._mdev = np.asarray(mdev, dtype=float)
        self.servers = servers
        self.source = source
        self._complete: list[int] | None = None
        self._adj: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.hosts)

    @property
    def n_pairs(self) -> int:
        """Directed pairs measured in the file."""
        return len(self._keys)

    def max_ms(self) -> float:
        """The largest avg or mdev round trip of the file, ms (what scaling may overflow)."""
        return float(max(self._avg.max(), self._mdev.max())) if len(self._keys) else 0.0

    def index_of(self, host: int) -> int:
        """Index of a host id in `hosts`; KeyError if the file does not name it."""
        i = int(np.searchsorted(self._ids, host))
        if i >= len(self._ids) or self._ids[i] != host:
            raise KeyError(host)
        return i

    def _find(self, i: int, j: int) -> int:
        key = i * len(self.hosts) + j
        p = int(np.searchsorted(self._keys, key))
        return p if p < len(self._keys) and self._keys[p] == key else -1

    def stats(self, i: int, j: int) -> tuple[float, float, float] | None:
        """(min, avg, mdev) round trip between host indices i and j: as measured,
        else the reverse direction, else 0 for a host with itself; None if unmeasured."""
        p = self._find(i, j)
        if p < 0:
            p = self._find(j, i)
        if p < 0:
            return (0.0, 0.0, 0.0) if i == j else None
        return float(self._min[p]), float(self._avg[p]), float(self._mdev[p])

    def _neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """Undirected adjacency of measured pairs (self-pairs left out), CSR (indptr, indices)."""
        if self._adj is None:
            m = len(self.hosts)
            i, j = np.divmod(self._keys, max(m, 1))
            off = i != j
            lo, hi = np.minimum(i[off], j[off]), np.maximum(i[off], j[off])
            und = np.unique(lo * m + hi)
            a, b = np.divmod(und, max(m, 1))
            src, dst = np.concatenate([a, b]), np.concatenate([b, a])
            order = np.lexsort((dst, src))
            indptr = np.zeros(m + 1, dtype=np.int64)
            np.cumsum(np.bincount(src, minlength=m), out=indptr[1:])
            self._adj = (indptr, dst[order])
        return self._adj

    def complete_hosts(self) -> list[int]:
        """Hosts with a measurement to every other host and to themselves.

        Greedy: repeatedly drops the host with most gaps (fewest measured
        partners among those kept; the lowest id on a tie) until the rest is
        complete. A heap over partner counts: O(pairs log hosts).
        """
        if self._complete is None:
            m = len(self.hosts)
            indptr, nbr = self._neighbours()
            deg = (np.diff(indptr) + 1).tolist()  # partners among the kept hosts, itself included
            alive = [True] * m
            kept = m
            if min(deg, default=m) < m:
                heap = [(d, i) for i, d in enumerate(deg)]
                heapq.heapify(heap)
                while heap:
                    d, i = heap[0]
                    if not alive[i] or d != deg[i]:
                        heapq.heappop(heap)  # a stale entry
                        continue
                    if d == kept:
                        break  # the host with fewest partners has all of them: the rest is complete
                    heapq.heappop(heap)
                    alive[i] = False
                    kept -= 1
                    for j in nbr[indptr[i]:indptr[i + 1]].tolist():
                        if alive[j]:
                            deg[j] -= 1
                            heapq.heappush(heap, (deg[j], j))
            self._complete = [h for h, a in zip(self.hosts, alive) if a]
        return list(self._complete)

    def missing_pair(self, idx: list[int]) -> tuple[int, int] | None:
        """The first pair (a, b) of these host indices, in sorted order, without a measurement."""
        chosen = sorted(set(idx))
        members = set(chosen)
        indptr, nbr = self._neighbours()
        for a in chosen:
            have = {a, *(b for b in nbr[indptr[a]:indptr[a + 1]].tolist() if b in members)}
            if len(have) < len(chosen):
                return a, min(members - have)
        return None

    def rtt_ms(self, a: int, b: int) -> tuple[float, float, float]:
        """(min, avg, mdev) round trip between host ids a and b; KeyError if unmeasured."""
        got = self.stats(self.index_of(a), self.index_of(b))
        if got is None:
            raise KeyError(f"no measurement between hosts {a} and {b}")
        return got


_PING_COLUMNS = ("source", "destination", "min", "avg", "max", "mdev")


def load_latency_matrix(pings: str | Path, servers: str | Path | None = None) -> LatencyMatrix:
    """Read a WonderProxy-style ping CSV (and optionally its servers CSV).

    Each (source, destination) pair may appear once; round-trip times are
    finite, in [0, MAX_LATENCY_MS] and ordered min <= avg <= max.
    """
    pings = Path(pings)
    src, dst, lines = array("q"), array("q"), array("q")
    mns, avgs, mdevs = array("d"), array("d"), array("d")
    header = None
    for lineno, rec in _csv_rows(pings):
        if not rec or not "".join(rec).strip() or rec[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in rec]
            missing = [c for c in _PING_COLUMNS if c not in header]
            if missing:
                raise TraceFormatError(
                    pings, lineno, f"header must name columns {','.join(_PING_COLUMNS)}; missing {missing}"
                )
            col = {c: header.index(c) for c in _PING_COLUMNS}
            continue
        if len(rec) != len(header):
            raise TraceFormatError(pings, lineno, f"expected {len(header)} fields, got {len(rec)}")
        a = _host_id(pings, lineno, rec[col["source"]], "source")
        b = _host_id(pings, lineno, rec[col["destination"]], "destination")
        mn, av, mx, md = (_number(pings, lineno, rec[col[c]], c) for c in ("min", "avg", "max", "mdev"))
        if min(mn, av, mx, md) < 0:
            raise TraceFormatError(pings, lineno, "round-trip times must be >= 0")
        if max(mx, md) > MAX_LATENCY_MS:
            raise TraceFormatError(pings, lineno, f"round-trip times must be <= {MAX_LATENCY_MS:g} ms (one day)")
        if not mn <= av <= mx:
            raise TraceFormatError(pings, lineno, f"expected min <= avg <= max, got {mn}, {av}, {mx}")
        src.append(a)
        dst.append(b)
        lines.append(lineno)
        mns.append(mn)
        avgs.append(av)
        mdevs.append(md)
    if header is None or not src:
        raise TraceFormatError(pings, None, "no measurements")
    n = len(src)
    ids, inv = np.unique(np.concatenate([np.frombuffer(src, np.int64), np.frombuffer(dst, np.int64)]),
                         return_inverse=True)
    m = len(ids)
    keys = inv[:n] * m + inv[n:]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    dup = np.flatnonzero(keys[1:] == keys[:-1])
    if len(dup):
        line_of = np.frombuffer(lines, np.int64)[order]
        k = dup[int(np.argmin(line_of[dup + 1]))]
        raise TraceFormatError(pings, int(line_of[k + 1]), f"measurement {src[order[k]]} -> {dst[order[k]]} "
                               f"given twice (first on line {int(line_of[k])})")
    srv = load_servers(servers) if servers is not None else None
    if srv is not None and not any(int(h) in srv for h in ids):
        raise TraceFormatError(Path(servers), None, f"no server id matches a host of {pings}")
    return LatencyMatrix(ids, keys, np.frombuffer(mns)[order], np.frombuffer(avgs)[order],
                         np.frombuffer(mdevs)[order], srv, source=str(pings))


def load_servers(path: str | Path) -> dict[int, Server]:
    """Read a WonderProxy servers CSV: id, title/name, country, latitude, longitude."""
    path = Path(path)
    out: dict[int, Server] = {}
    first_line: dict[int, int] = {}
    header = None
    for lineno, rec in _csv_rows(path):
        if not rec or not "".join(rec).strip():
            continue
        if header is None:
            header = [c.strip().lower() for c in rec]
            for need in ("id", "latitude", "longitude"):
                if need not in header:
                    raise TraceFormatError(path, lineno, f"servers header lacks column {need!r}")
            col = {c: i for i, c in enumerate(header) if c}
            continue
        if len(rec) < len(col):
            raise TraceFormatError(path, lineno, f"expected at least {len(col)} fields, got {len(rec)}")

        def get(name: str, rec=rec) -> str:
            return rec[col[name]].strip() if name in col and col[name] < len(rec) else ""

        sid = _host_id(path, lineno, get("id"), "server id")
        if sid in out:
            raise TraceFormatError(path, lineno, f"server id {sid} given twice (first on line {first_line[sid]})")
        lat = _number(path, lineno, get("latitude"), "latitude")
        lon = _number(path, lineno, get("longitude"), "longitude")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise TraceFormatError(path, lineno, f"latitude/longitude out of range: {lat}, {lon}")
        city = get("title") or get("name") or get("location")
        out[sid] = Server(sid, get("name") or city, city, get("country"), lat, lon)
        first_line[sid] = lineno
    if not out:
        raise TraceFormatError(path, None, "no servers")
    return out


# --------------------------------------------------------------------------- availability, edge lists


def _label_key(label: str):
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def load_availability(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Online sessions per node label, merged and sorted; labels in natural order.

    Lines may come in any order: each is one session, and a node's sessions
    that overlap or touch are merged into one.
    """
    path = Path(path)
    sessions: dict[str, list[tuple[float, float]]] = {}
    for lineno, fields in _data_lines(path):
        if len(fields) != 3:
            raise TraceFormatError(path, lineno, f"expected 3 columns 'node start_s end_s', got {len(fields)}")
        if not sessions and not _is_number(fields[1]) and not _is_number(fields[2]):
            continue  # a header line
        a = _bounded(path, lineno, fields[1], "start_s", MAX_TRACE_TIME_S, "s")
        b = _bounded(path, lineno, fields[2], "end_s", MAX_TRACE_TIME_S, "s")
        if b <= a:
            raise TraceFormatError(path, lineno, f"need 0 <= start_s < end_s, got {a}, {b}")
        sessions.setdefault(fields[0], []).append((a, b))
    if not sessions:
        raise TraceFormatError(path, None, "no sessions")
    out = {}
    for label in sorted(sessions, key=_label_key):
        merged: list[list[float]] = []
        for a, b in sorted(sessions[label]):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[label] = [(a, b) for a, b in merged]
    return out


def load_edge_list(path: str | Path) -> list[tuple[int, int]]:
    """Undirected edges `u v` (non-negative integers) of an edge-list file."""
    path = Path(path)
    edges = []
    for lineno, fields in _data_lines(path):
        if len(fields) < 2:
            raise TraceFormatError(path, lineno, "expected 'u v' (two node ids)")
        try:
            u, v = int(fields[0]), int(fields[1])
        except ValueError:
            msg = f"node ids must be integers, got {fields[0]!r} {fields[1]!r}"
            raise TraceFormatError(path, lineno, msg) from None
        if u < 0 or v < 0:
            raise TraceFormatError(path, lineno, "node ids must be >= 0")
        if u == v:
            raise TraceFormatError(path, lineno, f"self-loop {u}-{v}")
        edges.append((u, v))
    if not edges:
        raise TraceFormatError(path, None, "no edges")
    return edges


# --------------------------------------------------------------------------- caching


def _stamp(path: str | Path | None) -> tuple | None:
    if path is None:
        return None
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _cached_bw(stamp: tuple, scale: float, name: str | None) -> BandwidthTrace:
    if scale != 1.0:  # the file is read once, whatever the scales asked of it
        return _cached_bw(stamp, 1.0, name).scaled(scale)
    return load_bandwidth_trace(stamp[0], name=name)


@functools.lru_cache(maxsize=8)
def _cached_lat(pings: tuple, servers: tuple | None) -> LatencyMatrix:
    return load_latency_matrix(pings[0], servers[0] if servers else None)


def cached_bandwidth_trace(path: str | Path, scale: float = 1.0, name: str | None = None) -> BandwidthTrace:
    """`load_bandwidth_trace`, memoised per file version (treat the result as read-only).

    A scale past netem's limits raises a plain ValueError (the file is fine).
    """
    return _cached_bw(_stamp(path), scale, name)


def cached_latency_matrix(pings: str | Path, servers: str | Path | None = None) -> LatencyMatrix:
    """`load_latency_matrix`, memoised per file version (treat the result as read-only)."""
    return _cached_lat(_stamp(pings), _stamp(servers))
