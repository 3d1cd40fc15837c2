"""netem's limits on the files it reads (netem.limits), checked at load.

A trace that passes must run: no sample spacing the clock cannot step
through, no rate or latency that overflows to inf or NaN, no memory that grows
with hosts squared, no file read without bound. Each bad file is one
TraceFormatError naming the file (and the line when there is one), or a
ConfigError at the key whose value is out of bounds.
"""

from __future__ import annotations

import os
import threading
import tracemalloc

import numpy as np
import pytest
from netem_helpers import build, send_at
from pydantic import ValidationError

from netem import ConfigError, NetworkConfig, TraceFormatError, check_network
from netem.limits import MAX_FILE_BYTES, MAX_FILE_LINES, MAX_LINE_CHARS
from netem.tracefiles import (
    BandwidthTrace,
    LatencyMatrix,
    load_availability,
    load_bandwidth_trace,
    load_edge_list,
    load_latency_matrix,
    load_servers,
)

PINGS_HEADER = "source,destination,min,avg,max,mdev\n"

#: Each reader, with a file it accepts.
SAMPLE = {
    "bandwidth": (load_bandwidth_trace, "0 1\n1 2\n"),
    "latency": (load_latency_matrix, PINGS_HEADER + "0,1,1,2,3,0.5\n"),
    "servers": (load_servers, "id,title,latitude,longitude\n1,Oslo,59.9,10.7\n"),
    "availability": (load_availability, "n0 0 10\n"),
    "edge list": (load_edge_list, "0 1\n"),
}


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


def _error(load, path) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as e:
        load(path)
    assert e.value.file == str(path) and "\n" not in str(e.value)
    return e.value


# --------------------------------------------------------------------------- bandwidth: spacing, count, rates


@pytest.mark.parametrize("gap", [1e-300, 1e-9, 0.0009])
def test_samples_closer_than_a_millisecond_are_refused(tmp_path, gap):
    p = _write(tmp_path, "bw.tsv", f"0 1\n{gap!r} 2\n1 3\n")
    e = _error(load_bandwidth_trace, p)
    assert e.line == 2 and "at least 1 ms apart" in e.message


def test_samples_a_millisecond_apart_load(tmp_path):
    # 0.003 - 0.002 is 0.000999... in float64: the bound allows for rounding
    times = [round(0.001 * i, 3) for i in range(50)]
    p = _write(tmp_path, "bw.tsv", "".join(f"{t} {1 + i % 2}\n" for i, t in enumerate(times)))
    tr = load_bandwidth_trace(p)
    assert len(tr) == 50 and tr.period == pytest.approx(0.05)


def test_the_constructor_holds_library_callers_to_the_same_limits():
    """What spun forever (next_change on samples 1e-300 s apart) and what gave NaN (a rate
    that overflows to inf once in bit/s) cannot be built."""
    with pytest.raises(ValueError, match="1 ms apart"):
        BandwidthTrace([0.0, 1e-300], [1.0, 2.0])
    with pytest.raises(ValueError, match="10 Tbit/s"):
        BandwidthTrace([0.0, 1.0], [1.0, 1e303])
    with pytest.raises(ValueError, match="finite"):
        BandwidthTrace([0.0, 1.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="10 Tbit/s"):
        BandwidthTrace([0.0, 1.0], [1.0, 2.0], scale=1e300)
    with pytest.raises(ValueError, match="below 1 bit/s"):
        BandwidthTrace([0.0, 1.0], [1.0, 2.0], scale=1e-300)


def test_a_huge_rate_is_caught_by_validation_not_by_the_run(tmp_path):
    _write(tmp_path, "bw.tsv", "0 1\n1 1e303\n")
    cfg = NetworkConfig.model_validate({"link": {"bandwidth": {"trace": "bw.tsv"}}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, base_dir=tmp_path)
    assert e.value.path == "link.bandwidth.trace" and "bw.tsv:2" in e.value.message


@pytest.mark.parametrize("scale,words", [(1e300, "10 Tbit/s"), (1e-300, "below 1 bit/s")])
def test_a_scale_that_takes_a_good_trace_out_of_bounds_is_blamed(tmp_path, scale, words):
    _write(tmp_path, "bw.tsv", "0 1\n1 2\n")
    cfg = NetworkConfig.model_validate({"link": {"bandwidth": {"trace": "bw.tsv", "scale": scale}}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, base_dir=tmp_path)
    assert e.value.path == "link.bandwidth.scale" and words in e.value.message


def test_scaled_trace_is_the_same_as_one_loaded_at_that_scale(tmp_path):
    p = _write(tmp_path, "bw.tsv", "3 1.5\n3.7 0\n4.1 2.25\n")
    a, b = load_bandwidth_trace(p, scale=0.3), load_bandwidth_trace(p).scaled(0.3)
    assert list(a.bps) == list(b.bps) and list(a.cum) == list(b.cum) and a.period == b.period


def test_next_change_moves_forward_or_says_why_not(tmp_path):
    tr = load_bandwidth_trace(_write(tmp_path, "bw.tsv", "0 1\n0.001 2\n0.002 3\n"))
    for t in [0.0, 0.0005, 0.001, 0.0029999999, 1e6 + 0.0004, 2.0**40 + 0.25]:
        nxt = tr.next_change(t)
        assert t < nxt <= t + 0.001 + 1e-9
    # where float64 cannot resolve a millisecond, the old loop walked forever in place
    with pytest.raises(ValueError, match="too large to resolve"):
        tr.next_change(2.0**60)


# --------------------------------------------------------------------------- delivery over a 1 ms trace, by hand

# 8 Mbit/s for 1 ms, then 16 Mbit/s for 1 ms (the last sample lasts the mean spacing), looping;
# offset 0, latency 0.
MS_TRACE = "0 8\n0.001 16\n"


def _deliveries(tmp_path, access: dict | None, sends: list[tuple[int, int, int]]):
    _write(tmp_path, "ms.tsv", MS_TRACE)
    doc = {
        "topology": "complete",
        "link": {"latency": {"dist": "constant", "ms": 0}, "bandwidth": {"trace": "ms.tsv", "offset_s": 0}},
    }
    if access:
        doc["access"] = access
    env, net, log = build(doc, n=3, base_dir=tmp_path)
    for src, dst, nbytes in sends:
        send_at(env, net, 0.0, src, dst, nbytes)
    env.run()
    return sorted(r.t_arrive for r in log.records)


def test_delivery_time_over_a_millisecond_trace_by_hand(tmp_path):
    # 40,000 bits: 8,000 + 16,000 in the first period (2 ms), 8,000 in [2, 3) ms, the last 8,000 at
    # 16 Mbit/s in 0.5 ms: done at 3.5 ms, on the plain path and on the shared-access path alike.
    assert _deliveries(tmp_path, None, [(0, 1, 5000)]) == [pytest.approx(0.0035, rel=1e-12)]
    assert _deliveries(tmp_path, {"uplink_mbps": 100}, [(0, 1, 5000)]) == [pytest.approx(0.0035, rel=1e-12)]


def test_shared_access_over_a_millisecond_trace_by_hand(tmp_path):
    # A 12 Mbit/s uplink caps the 16 Mbit/s samples: 8,000 + 12,000 bits per 2 ms. 36,000 bits:
    # 20,000 by 2 ms, 8,000 in [2, 3) ms, the last 8,000 at 12 Mbit/s: 3 ms + 2/3 ms.
    assert _deliveries(tmp_path, {"uplink_mbps": 12}, [(0, 1, 4500)]) == [
        pytest.approx(0.003 + 8000 / 12e6, rel=1e-12)
    ]
    # Two sends share the uplink: 6 Mbit/s each (below every sample): 36,000 bits each in 6 ms.
    assert _deliveries(tmp_path, {"uplink_mbps": 12}, [(0, 1, 4500), (0, 2, 4500)]) == [
        pytest.approx(0.006, rel=1e-12)
    ] * 2


# --------------------------------------------------------------------------- latency: sparse, bounded


def _dense_complete_hosts(hosts, pairs) -> list[int]:
    """The greedy of the dense implementation netem had before (drop the host with most gaps)."""
    idx = {h: i for i, h in enumerate(hosts)}
    m = len(hosts)
    have = np.eye(m, dtype=bool)
    for a, b in pairs:
        have[idx[a], idx[b]] = have[idx[b], idx[a]] = True
    keep = np.ones(m, dtype=bool)
    while keep.any():
        gaps = (~have[np.ix_(keep, keep)]).sum(axis=1)
        if gaps.max() == 0:
            break
        keep[np.flatnonzero(keep)[int(np.argmax(gaps))]] = False
    return [h for h, k in zip(hosts, keep) if k]


@pytest.mark.parametrize("seed", range(8))
def test_sparse_complete_hosts_is_the_dense_greedy(tmp_path, seed):
    g = np.random.default_rng(seed)
    hosts = sorted(int(h) for h in g.choice(1000, 25, replace=False))
    pairs = [(a, b) for a in hosts for b in hosts if a != b and g.random() < 0.93]
    p = _write(tmp_path, "p.csv", PINGS_HEADER + "".join(f"{a},{b},1,2,3,0.5\n" for a, b in pairs))
    m = load_latency_matrix(p)
    used = sorted({h for pr in pairs for h in pr})
    assert m.hosts == used
    assert m.complete_hosts() == _dense_complete_hosts(used, pairs)


def test_a_latency_file_naming_20000_hosts_loads_in_proportion_to_its_rows(tmp_path):
    """200 KB naming 20,000 hosts: dense tables were three 20000 x 20000 float64 arrays (9.6 GB)."""
    rows = "".join(f"{i},{i + 10_000},{1 + i % 7},{2 + i % 7},{3 + i % 7},0.5\n" for i in range(10_000))
    p = _write(tmp_path, "p.csv", PINGS_HEADER + rows)
    assert p.stat().st_size < 250_000
    tracemalloc.start()
    try:
        m = load_latency_matrix(p)
        complete = m.complete_hosts()
        cfg = NetworkConfig.model_validate({"link": {"latency": {"dist": "trace", "file": "p.csv"}}})
        check_network(cfg, 4, base_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, peak
    assert len(m) == 20_000 and m.n_pairs == 10_000
    assert len(complete) == 2 and complete[1] == complete[0] + 10_000
    a, b = complete
    assert m.rtt_ms(a, b) == m.rtt_ms(b, a) == (1 + a % 7, 2 + a % 7, 0.5)  # reverse direction filled
    assert m.rtt_ms(a, a) == (0.0, 0.0, 0.0)  # no self-ping: co-located
    with pytest.raises(KeyError):
        m.rtt_ms(0, 1)
    doc = {"topology": "complete", "link": {"latency": {"dist": "trace", "file": "p.csv", "jitter": False}}}
    env, net, log = build(doc, n=4, base_dir=tmp_path)
    send_at(env, net, 0.0, 0, 1, 0)
    env.run()
    hosts = [net._latency.matrix.hosts[i] for i in net._latency.hosts]
    assert log.records[0].delay == m.rtt_ms(hosts[0], hosts[1])[1] / 2000


def test_a_latency_scale_past_one_day_is_blamed(tmp_path):
    _write(tmp_path, "p.csv", PINGS_HEADER + "0,1,100,200,300,5\n")
    cfg = NetworkConfig.model_validate({"link": {"latency": {"dist": "trace", "file": "p.csv", "scale": 1e6}}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 2, base_dir=tmp_path)
    assert e.value.path == "link.latency.scale" and "one day" in e.value.message


def test_library_latency_matrix_has_no_dense_tables(tmp_path):
    p = _write(tmp_path, "p.csv", PINGS_HEADER + "5,9,1,2,3,0.5\n")
    m = load_latency_matrix(p)
    assert isinstance(m, LatencyMatrix)
    assert not [k for k, v in vars(m).items() if isinstance(v, np.ndarray) and v.ndim > 1]


def test_availability_lines_may_come_in_any_order(tmp_path):
    ordered = load_availability(_write(tmp_path, "a.txt", "n0 0 10\nn0 5 20\nn0 30 40\nn1 0 1\n"))
    shuffled = load_availability(_write(tmp_path, "b.txt", "n0 30 40\nn1 0 1\nn0 5 20\nn0 0 10\n"))
    assert ordered == shuffled == {"n0": [(0.0, 20.0), (30.0, 40.0)], "n1": [(0.0, 1.0)]}


# --------------------------------------------------------------------------- values, per kind of file

P = PINGS_HEADER
BAD_VALUES = [
    ("bandwidth", "0 1\n1 1e303\n", 2, "10 Tbit/s"),  # 1e303 Mbit/s is inf in bit/s: NaN delivery times
    ("bandwidth", "0 1\n1 10000001\n", 2, "10 Tbit/s"),
    ("bandwidth", "0 1\n1 inf\n", 2, "finite"),
    ("bandwidth", "0 1\n1e11 1\n", 2, "<= 1e+10 s"),
    ("bandwidth", "0 1\n1 1\n1 2\n", 3, "increase strictly"),  # duplicate timestamp
    ("bandwidth", "0 1\n2 1\n1 2\n", 3, "increase strictly"),  # non-monotonic
    ("bandwidth", "0 1e-9\n1 0\n", None, "below 1 bit/s"),
    ("bandwidth", "", None, "no samples"),
    ("bandwidth", "time rate\n", None, "no samples"),
    ("latency", P + "0,1,1,2,3,0.5\n0,1,1,2,3,0.5\n", 3, "given twice (first on line 2)"),
    ("latency", P + "0,1,1,2,3,0.5\n1,0,1,2,3,0.5\n2,1,1,2,3,0.5\n1,0,4,5,6,0\n", 5,
     "1 -> 0 given twice (first on line 3)"),
    ("latency", P + "0,1,1,2,1e9,0.5\n", 2, "one day"),
    ("latency", P + "0,1,1,2,3,1e300\n", 2, "one day"),
    ("latency", P + "0,1,1,nan,3,0.5\n", 2, "finite"),
    ("latency", P + "0,1,-1,2,3,0.5\n", 2, ">= 0"),
    ("latency", P + "-3,1,1,2,3,0.5\n", 2, "source must be in [0, 2**62]"),
    ("latency", P + "0,99999999999999999999,1,2,3,0.5\n", 2, "destination must be in [0, 2**62]"),
    ("latency", P + "0,x,1,2,3,0.5\n", 2, "integer host id"),
    ("latency", P + "0,1,1,2,3\n", 2, "expected 6 fields"),
    ("latency", "src,dst,rtt\n0,1,5\n", 1, "missing ['source', 'destination', 'min', 'avg', 'max', 'mdev']"),
    ("latency", P, None, "no measurements"),
    ("servers", "id,title,latitude,longitude\n1,Oslo,59.9,10.7\n2,Paris,48.8,2.3\n1,Rome,41.9,12.5\n", 4,
     "server id 1 given twice (first on line 2)"),
    ("servers", "id,title,latitude,longitude\n1,Oslo,91,10.7\n", 2, "out of range"),
    ("availability", "n0 0 10\nn0 nan 20\n", 2, "finite"),
    ("availability", "n0 0 10\nn0 5 inf\n", 2, "finite"),
    ("availability", "n0 -1 10\n", 1, "start_s must be in [0, 1e+10] s"),
    ("availability", "n0 0 1e11\n", 1, "end_s must be in [0, 1e+10] s"),
    ("availability", "n0 20 15\n", 1, "start_s < end_s"),
    ("availability", "n0 5 5\n", 1, "start_s < end_s"),
    ("availability", "n0 0\n", 1, "expected 3 columns"),
    ("availability", "n0 0 10 3\n", 1, "expected 3 columns"),
    ("availability", "", None, "no sessions"),
    ("edge list", "0 1\n2\n", 2, "expected 'u v'"),
    ("edge list", "0 1\n1 x\n", 2, "must be integers"),
    ("edge list", "0 1\n-1 2\n", 2, ">= 0"),
    ("edge list", "0 1\n2 2\n", 2, "self-loop"),
    ("edge list", "# nothing\n\n", None, "no edges"),
]


@pytest.mark.parametrize("kind,text,line,words", BAD_VALUES)
def test_values_out_of_bounds(tmp_path, kind, text, line, words):
    e = _error(SAMPLE[kind][0], _write(tmp_path, "f", text))
    assert e.line == line and words in e.message


# --------------------------------------------------------------------------- every reader: the file itself


@pytest.mark.parametrize("kind", list(SAMPLE))
def test_every_reader_accepts_its_sample(tmp_path, kind):
    load, text = SAMPLE[kind]
    load(_write(tmp_path, "f", text))


@pytest.mark.parametrize("kind", list(SAMPLE))
def test_every_reader_refuses_binary_junk(tmp_path, kind):
    load, text = SAMPLE[kind]
    p = tmp_path / "f"
    p.write_bytes(text.encode() + b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    e = _error(load, p)
    assert e.message == "not UTF-8 text" and e.line == text.count("\n") + 1


@pytest.mark.parametrize("kind", list(SAMPLE))
def test_every_reader_refuses_a_file_past_the_size_limit(tmp_path, kind):
    load, text = SAMPLE[kind]
    p = _write(tmp_path, "f", text)
    with open(p, "r+b") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    e = _error(load, p)
    assert e.line is None and "larger than 64 MiB" in e.message


@pytest.mark.parametrize("kind", list(SAMPLE))
def test_every_reader_refuses_more_lines_than_the_limit(tmp_path, kind):
    load, text = SAMPLE[kind]
    p = tmp_path / "f"
    p.write_text(text + "\n" * (MAX_FILE_LINES - text.count("\n") + 1))
    e = _error(load, p)
    assert e.line == MAX_FILE_LINES + 1 and "more than 1,000,000 lines" in e.message


@pytest.mark.parametrize("kind", list(SAMPLE))
def test_every_reader_refuses_an_overlong_line(tmp_path, kind):
    load, text = SAMPLE[kind]
    e = _error(load, _write(tmp_path, "f", text + " " * (MAX_LINE_CHARS + 1) + "\n"))
    assert e.line == text.count("\n") + 1 and "line longer than 4,096 characters" in e.message


@pytest.mark.parametrize("kind", list(SAMPLE))
def test_every_reader_refuses_a_fifo_without_waiting_on_it(tmp_path, kind):
    load, _ = SAMPLE[kind]
    p = tmp_path / "fifo"
    os.mkfifo(p)
    got: list = []

    def attempt():
        try:
            load(p)
        except Exception as e:  # noqa: BLE001 - the test asserts which one
            got.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout=30)
    if t.is_alive():  # the reader blocks in open(): give it a writer that closes at once
        os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        t.join(timeout=30)
        pytest.fail("the reader blocked on a FIFO")
    assert len(got) == 1 and isinstance(got[0], TraceFormatError), got
    assert "not a regular file" in got[0].message


# --------------------------------------------------------------------------- config scalars: same physical bounds


@pytest.mark.parametrize(
    "doc",
    [
        {"link": {"bandwidth_mbps": 1e-320}},  # gave a NaN virtual time
        {"link": {"bandwidth_mbps": 1e8}},
        {"access": {"uplink_mbps": 1e308}},
        {"access": {"downlink_mbps": [5, 1e-9]}},
        {"dynamics": {"model": "mobility", "bandwidth_far_mbps": 1e-12}},
        {"link": {"latency": {"dist": "constant", "ms": 1e300}}},
        {"link": {"latency": {"dist": "normal", "mean_ms": 10, "std_ms": 1e12}}},
        {"link": {"latency": {"dist": "uniform", "low_ms": 0, "high_ms": 1e9}}},
        {"dynamics": {"model": "mobility", "latency_far_ms": 1e9}},
    ],
)
def test_configured_rates_and_latencies_share_the_bounds(doc):
    with pytest.raises(ValidationError):
        NetworkConfig.model_validate(doc)


def test_a_message_larger_than_float64_counts_exactly_is_refused():
    env, net, _ = build({}, n=2)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        net.send(0, 1, 2**53 + 1, "x")
    net.send(0, 1, 2**53, "x")
