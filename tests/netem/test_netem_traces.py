"""Shipped and measured traces: loading, error reporting, use from scenarios."""

from __future__ import annotations

import pytest
from netem_helpers import build, send_at
from netem.checks import check_network

from netem import ConfigError, NetworkConfig, TraceFormatError, shipped_traces
from netem.tracefiles import (
    TRACE_DIR,
    load_availability,
    load_bandwidth_trace,
    load_latency_matrix,
    resolve_bandwidth,
    resolve_latency,
)


def test_shipped_traces_load():
    names = shipped_traces()
    assert names["bandwidth"] == ["norway-3g-bus", "norway-3g-car", "norway-3g-ferry", "norway-3g-train"]
    for name in names["bandwidth"]:
        tr = load_bandwidth_trace(resolve_bandwidth(name))
        assert len(tr) > 50 and tr.period > 30 and 0 < tr.bits_per_period
    m = load_latency_matrix(*resolve_latency("wonderproxy-excerpt", None))
    assert len(m) == 48 and len(m.complete_hosts()) == 48
    assert {"Oslo", "Tokyo", "Sao Paulo", "Nairobi"} <= {m.servers[h].city for h in m.hosts}
    assert (TRACE_DIR / "README.md").read_text().count("MIT") >= 1


def test_shipped_data_is_small():
    total = sum(p.stat().st_size for p in TRACE_DIR.rglob("*") if p.is_file())
    assert total < 200_000


def test_scenarios_use_traces_by_name():
    doc = {
        "topology": "complete",
        "link": {
            "latency": {
                "dist": "trace",
                "file": "wonderproxy-excerpt",
                "mapping": "nearest_city",
                "locations": ["Oslo", [48.85, 2.35], "tokyo"],
            },
            "bandwidth": {"trace": "norway-3g-bus"},
        },
    }
    env, net, log = build(doc, n=3)
    m = net._latency.matrix
    assert [m.servers[m.hosts[i]].city for i in net._latency.hosts] == ["Oslo", "Paris", "Tokyo"]
    send_at(env, net, 0.0, 0, 2, 50_000)
    env.run()
    assert log.records[0].status == "delivered"
    assert log.records[0].delay > m.rtt_ms(m.hosts[net._latency.hosts[0]], m.hosts[net._latency.hosts[2]])[0] / 2000


def test_unknown_city_is_a_config_error():
    cfg = NetworkConfig.model_validate(
        {"link": {"latency": {"dist": "trace", "mapping": "nearest_city", "locations": ["Oslo", "Atlantis"]}}}
    )
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 2)
    assert e.value.path == "link.latency.locations" and "Atlantis" in e.value.message


def test_malformed_bandwidth_line_names_file_and_line(tmp_path):
    (tmp_path / "bw.tsv").write_text("0.0\t1.5\n0.5\t2.0\n1.0\tfast\n")
    cfg = NetworkConfig.model_validate({"link": {"bandwidth": {"trace": "bw.tsv"}}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, base_dir=tmp_path)
    assert e.value.path == "link.bandwidth.trace"
    assert "bw.tsv:3" in e.value.message and "fast" in e.value.message


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("0 1\n1 2 3\n", 2, "2 columns"),
        ("0 1\n0 2\n", 2, "increase"),
        ("0 1\n1 -2\n", 2, ">= 0"),
        ("0 1\n1 nan\n", 2, "finite"),
        ("0 0\n1 0\n", None, "no data"),
        ("# only a comment\n", None, "no samples"),
    ],
)
def test_bandwidth_trace_validation(tmp_path, text, line, words):
    p = tmp_path / "t.tsv"
    p.write_text(text)
    with pytest.raises(TraceFormatError) as e:
        load_bandwidth_trace(p)
    assert e.value.line == line and words in str(e.value)


def test_malformed_ping_and_availability_lines(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("source,destination,min,avg,max,mdev\n0,1,1,2,3,0.1\n1,0,1,2\n")
    with pytest.raises(TraceFormatError, match=r"p.csv:3: expected 6 fields"):
        load_latency_matrix(p)
    p.write_text("source,destination,min,avg,max,mdev\n0,1,5,2,3,0.1\n")
    with pytest.raises(TraceFormatError, match=r"p.csv:2: expected min <= avg <= max"):
        load_latency_matrix(p)
    a = tmp_path / "a.txt"
    a.write_text("n0 0 10\nn0 20 15\n")
    with pytest.raises(TraceFormatError, match=r"a.txt:2"):
        load_availability(a)


def test_missing_trace_lists_shipped_names(tmp_path):
    cfg = NetworkConfig.model_validate({"link": {"bandwidth": {"trace": "norway-5g"}}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, base_dir=tmp_path)
    assert "not found" in e.value.message and "norway-3g-bus" in e.value.message


def test_relative_paths_resolve_against_base_dir(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bw.tsv").write_text("0 5\n")
    doc = {"link": {"bandwidth": {"trace": "sub/bw.tsv", "offset_s": 0}}}
    env, net, log = build(doc, n=3, base_dir=tmp_path)
    send_at(env, net, 0.0, 0, 1, 625_000)  # 5 Mbit at 5 Mbit/s
    env.run()
    assert log.records[0].t_arrive == pytest.approx(1.0 + 0.01)


def test_reads_the_shared_measured_traces(shared_traces):
    bus = load_bandwidth_trace(shared_traces / "bandwidth/norway-3g/norway_bus_1")
    shipped = load_bandwidth_trace(resolve_bandwidth("norway-3g-bus"))
    assert list(bus.bps) == list(shipped.bps) and bus.period == shipped.period
    for p in sorted((shared_traces / "bandwidth/norway-3g-long").iterdir()):
        assert load_bandwidth_trace(p).bits_per_period > 0
    lat = shared_traces / "latency"
    m = load_latency_matrix(lat / "pings-2020-07-19-2020-07-20-grouped.csv", lat / "servers-2020-07-19.csv")
    assert len(m) == 250 and len(m.complete_hosts()) > 150
    assert m.rtt_ms(0, 1)[1] == pytest.approx(288.722)
    # A scenario can point at the full files.
    cfg = NetworkConfig.model_validate(
        {
            "link": {
                "latency": {
                    "dist": "trace",
                    "file": str(lat / "pings-2020-07-19-2020-07-20-grouped.csv"),
                    "servers": str(lat / "servers-2020-07-19.csv"),
                    "mapping": "nearest_city",
                    "locations": ["Melbourne", "Toronto"],
                }
            }
        }
    )
    check_network(cfg, 2)


def test_binary_and_nul_files_are_reported_with_their_line(tmp_path):
    p = tmp_path / "bw.bin"
    p.write_bytes(b"0 1\n1 2\n\xff\xfe\x00\n")
    with pytest.raises(TraceFormatError, match=r"bw.bin:3: not UTF-8"):
        load_bandwidth_trace(p)
    c = tmp_path / "p.csv"
    c.write_bytes(b"source,destination,min,avg,max,mdev\n0,1,1,2,3,0\n0,\x00,1,2,3,0\n")
    with pytest.raises(TraceFormatError, match=r"p.csv:3"):
        load_latency_matrix(c)
    cfg = NetworkConfig.model_validate({"link": {"bandwidth": {"trace": "bw.bin"}}})
    with pytest.raises(ConfigError, match="not UTF-8"):
        check_network(cfg, 3, base_dir=tmp_path)
