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
and the line number.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TraceFormatError

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
    """The file as text; undecodable bytes are reported with their line number."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TraceFormatError(path, line, "not UTF-8 text") from None


def _data_lines(path: Path):
    """(line number, fields) of non-blank, non-comment lines."""
    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield lineno, [f for f in re.split(r"[,\s]+", line) if f]


def _csv_rows(path: Path):
    """(line number, fields) of a CSV file; syntax errors name the line."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
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


# --------------------------------------------------------------------------- bandwidth


class BandwidthTrace:
    """A looping piecewise-constant rate; transfers integrate across rate changes.

    Times are trace-local; a link reads it with an `offset` (its phase), i.e.
    at trace time `t + offset`.
    """

    def __init__(self, times, mbps, name: str = "", scale: float = 1.0):
        t = np.asarray(times, dtype=float)
        r = np.asarray(mbps, dtype=float) * 1e6 * scale
        if t.ndim != 1 or t.shape != r.shape or len(t) == 0:
            raise ValueError("times and rates must be equal-length non-empty sequences")
        t = t - t[0]
        last = float(np.mean(np.diff(t))) if len(t) > 1 else 1.0
        self.name = name
        self.starts = t
        self.bps = r
        self.period = float(t[-1] + last)
        ends = np.append(t[1:], self.period)
        self.cum = np.concatenate([[0.0], np.cumsum(r * (ends - t))])  # bits at each start, then total
        self.bits_per_period = float(self.cum[-1])
        if not self.bits_per_period > 0:
            raise ValueError(f"bandwidth trace {name!r} carries no data (all rates are zero)")
        self._bounds = np.append(t, self.period)

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
        """The first time strictly after t at which the rate changes (a sample boundary)."""
        tau = self._local(t + offset)
        bounds = self._bounds
        i = int(np.searchsorted(bounds, tau, "right"))
        laps = 0
        while True:
            if i >= len(bounds):  # wrap: boundary 0 of the next lap equals `period` of this one
                i, laps = 1, laps + 1
            cand = t + ((laps * self.period + float(bounds[i])) - tau)
            if cand > t:  # a boundary closer than one ulp of t is already behind us
                return cand
            i += 1

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
        """When a transfer of `bits` started at t0 completes."""
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
        if r < 0:
            raise TraceFormatError(path, lineno, f"rate must be >= 0 Mbit/s, got {r}")
        if times and t <= times[-1]:
            raise TraceFormatError(path, lineno, f"times must increase strictly ({t} after {times[-1]})")
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
    """Measured round-trip statistics between hosts, in milliseconds.

    Missing directions are filled from the reverse direction, a missing
    self-ping is 0; `complete_hosts` lists hosts with data to every other host.
    """

    def __init__(self, hosts: list[int], avg, mn, mdev, servers: dict[int, Server] | None, source: str = ""):
        self.hosts = list(hosts)
        self.index = {h: i for i, h in enumerate(self.hosts)}
        self.avg = avg
        self.min = mn
        self.mdev = mdev
        self.servers = servers
        self.source = source

    def __len__(self) -> int:
        return len(self.hosts)

    def complete_hosts(self) -> list[int]:
        """Hosts with a measurement to every other host and to themselves.

        Greedy: repeatedly drops the host with most gaps until the rest is complete.
        """
        have = ~np.isnan(self.avg)
        keep = np.ones(len(self.hosts), dtype=bool)
        while keep.any():
            sub = have[np.ix_(keep, keep)]
            gaps = (~sub).sum(axis=1)
            if gaps.max() == 0:
                break
            idx = np.flatnonzero(keep)[int(np.argmax(gaps))]
            keep[idx] = False
        return [h for h, k in zip(self.hosts, keep) if k]

    def rtt_ms(self, a: int, b: int) -> tuple[float, float, float]:
        """(min, avg, mdev) round trip between host ids a and b; KeyError if unmeasured."""
        i, j = self.index[a], self.index[b]
        if math.isnan(self.avg[i, j]):
            raise KeyError(f"no measurement between hosts {a} and {b}")
        return float(self.min[i, j]), float(self.avg[i, j]), float(self.mdev[i, j])


_PING_COLUMNS = ("source", "destination", "min", "avg", "max", "mdev")


def load_latency_matrix(pings: str | Path, servers: str | Path | None = None) -> LatencyMatrix:
    """Read a WonderProxy-style ping CSV (and optionally its servers CSV)."""
    pings = Path(pings)
    rows: list[tuple[int, int, float, float, float]] = []
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
        try:
            a, b = int(rec[col["source"]]), int(rec[col["destination"]])
        except ValueError:
            raise TraceFormatError(pings, lineno, "source and destination must be integer host ids") from None
        mn, av, mx, md = (_number(pings, lineno, rec[col[c]], c) for c in ("min", "avg", "max", "mdev"))
        if min(mn, av, mx, md) < 0:
            raise TraceFormatError(pings, lineno, "round-trip times must be >= 0")
        if not mn <= av <= mx:
            raise TraceFormatError(pings, lineno, f"expected min <= avg <= max, got {mn}, {av}, {mx}")
        rows.append((a, b, mn, av, md))
    if header is None or not rows:
        raise TraceFormatError(pings, None, "no measurements")
    hosts = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {h: i for i, h in enumerate(hosts)}
    m = len(hosts)
    avg = np.full((m, m), np.nan)
    mnm = np.full((m, m), np.nan)
    mdev = np.full((m, m), np.nan)
    for a, b, mn, av, md in rows:
        i, j = index[a], index[b]
        avg[i, j], mnm[i, j], mdev[i, j] = av, mn, md
    gap = np.isnan(avg) & ~np.isnan(avg.T)
    for arr in (avg, mnm, mdev):
        arr[gap] = arr.T[gap]
        # A host without a self-ping: two nodes on it are next to each other.
        diag = np.isnan(np.diagonal(arr))
        arr[np.flatnonzero(diag), np.flatnonzero(diag)] = 0.0
    srv = load_servers(servers) if servers is not None else None
    if srv is not None:
        hosts_known = [h for h in hosts if h in srv]
        if not hosts_known:
            raise TraceFormatError(Path(servers), None, f"no server id matches a host of {pings}")
    return LatencyMatrix(hosts, avg, mnm, mdev, srv, source=str(pings))


def load_servers(path: str | Path) -> dict[int, Server]:
    """Read a WonderProxy servers CSV: id, title/name, country, latitude, longitude."""
    path = Path(path)
    out: dict[int, Server] = {}
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

        try:
            sid = int(get("id"))
        except ValueError:
            raise TraceFormatError(path, lineno, f"server id must be an integer, got {get('id')!r}") from None
        lat = _number(path, lineno, get("latitude"), "latitude")
        lon = _number(path, lineno, get("longitude"), "longitude")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise TraceFormatError(path, lineno, f"latitude/longitude out of range: {lat}, {lon}")
        city = get("title") or get("name") or get("location")
        out[sid] = Server(sid, get("name") or city, city, get("country"), lat, lon)
    if not out:
        raise TraceFormatError(path, None, "no servers")
    return out


# --------------------------------------------------------------------------- availability, edge lists


def _label_key(label: str):
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def load_availability(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Online sessions per node label, merged and sorted; labels in natural order."""
    path = Path(path)
    sessions: dict[str, list[tuple[float, float]]] = {}
    for lineno, fields in _data_lines(path):
        if len(fields) != 3:
            raise TraceFormatError(path, lineno, f"expected 3 columns 'node start_s end_s', got {len(fields)}")
        if not sessions and not _is_number(fields[1]) and not _is_number(fields[2]):
            continue  # a header line
        a = _number(path, lineno, fields[1], "start_s")
        b = _number(path, lineno, fields[2], "end_s")
        if a < 0 or b <= a:
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
    return edges


# --------------------------------------------------------------------------- caching


def _stamp(path: str | Path | None) -> tuple | None:
    if path is None:
        return None
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _cached_bw(stamp: tuple, scale: float, name: str | None) -> BandwidthTrace:
    return load_bandwidth_trace(stamp[0], scale=scale, name=name)


@functools.lru_cache(maxsize=8)
def _cached_lat(pings: tuple, servers: tuple | None) -> LatencyMatrix:
    return load_latency_matrix(pings[0], servers[0] if servers else None)


def cached_bandwidth_trace(path: str | Path, scale: float = 1.0, name: str | None = None) -> BandwidthTrace:
    """`load_bandwidth_trace`, memoised per file version (treat the result as read-only)."""
    return _cached_bw(_stamp(path), scale, name)


def cached_latency_matrix(pings: str | Path, servers: str | Path | None = None) -> LatencyMatrix:
    """`load_latency_matrix`, memoised per file version (treat the result as read-only)."""
    return _cached_lat(_stamp(pings), _stamp(servers))
