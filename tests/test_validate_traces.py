"""`parse-sim validate` on trace files netem cannot run: one line naming the
scenario, the key, the trace file and its line, exit 2 (netem's own checks at
load, rendered by parse_actors). And a fine-grained trace that validates runs."""

from __future__ import annotations

import pytest

from parse_actors.cli import main

PINGS = "source,destination,min,avg,max,mdev\n"
SERVERS = "id,title,latitude,longitude\n"

CASES = {
    "samples 1e-300 s apart": (
        "{link: {bandwidth: {trace: bw.tsv}}}", {"bw.tsv": "0 1\n1e-300 2\n"},
        "network.link.bandwidth.trace", "bw.tsv:2", "at least 1 ms apart"),
    "rate past 10 Tbit/s": (
        "{link: {bandwidth: {trace: bw.tsv}}}", {"bw.tsv": "0 1\n1 1e303\n"},
        "network.link.bandwidth.trace", "bw.tsv:2", "10 Tbit/s"),
    "scale past 10 Tbit/s": (
        "{link: {bandwidth: {trace: bw.tsv, scale: 1e300}}}", {"bw.tsv": "0 1\n1 2\n"},
        "network.link.bandwidth.scale", "bw.tsv", "10 Tbit/s"),
    "duplicate latency pair": (
        "{link: {latency: {dist: trace, file: p.csv}}}", {"p.csv": PINGS + "0,1,1,2,3,0\n0,1,1,2,3,0\n"},
        "network.link.latency.file", "p.csv:3", "given twice"),
    "round trip past one day": (
        "{link: {latency: {dist: trace, file: p.csv}}}", {"p.csv": PINGS + "0,1,1,2,1e12,0\n"},
        "network.link.latency.file", "p.csv:2", "one day"),
    "duplicate server id": (
        "{link: {latency: {dist: trace, file: p.csv, servers: s.csv}}}",
        {"p.csv": PINGS + "1,2,1,2,3,0\n", "s.csv": SERVERS + "1,Oslo,59.9,10.7\n1,Rome,41.9,12.5\n"},
        "network.link.latency.servers", "s.csv:3", "given twice"),
    "availability NaN": (
        "{churn: {model: trace, file: a.txt}}", {"a.txt": "n0 0 10\nn1 nan 5\n"},
        "network.churn.file", "a.txt:2", "finite"),
    "empty edge list": (
        "{topology: {kind: edge_list, path: e.txt}}", {"e.txt": "# u v\n"},
        "network.topology.path", "e.txt", "no edges"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_validate_names_key_file_and_line(name, tmp_path, capsys):
    network, files, key, where, words = CASES[name]
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
    f = tmp_path / "s.yaml"
    f.write_text(f"network: {network}\n")
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"{f}: {key}: {tmp_path / where}"), err
    assert words in err, err


def test_validate_a_latency_file_of_20000_hosts(tmp_path, capsys):
    """200 KB naming 20,000 hosts validates without hosts-squared tables (it died with MemoryError)."""
    rows = "".join(f"{i},{i + 10_000},1,2,3,0\n" for i in range(10_000))
    (tmp_path / "p.csv").write_text(PINGS + rows)
    f = tmp_path / "s.yaml"
    f.write_text("network: {link: {latency: {dist: trace, file: p.csv}}}\n")
    assert main(["validate", str(f)]) == 0, capsys.readouterr().err


def test_a_millisecond_trace_under_shared_access_runs(tmp_path, capsys):
    """The finest trace that validates runs to the end (samples 1e-300 s apart validated, then spun)."""
    (tmp_path / "bw.tsv").write_text("".join(f"{i / 1000:.3f} {1 + i % 3}\n" for i in range(2000)))
    f = tmp_path / "s.yaml"
    f.write_text("agents: {groups: [{modalities: [image], count: 2}, {modalities: [audio], count: 2}]}\n"
                 "protocol: {rounds: 1}\ntrain: {local_steps: 1}\ndata: {synthetic: {n_samples: 400}}\n"
                 "network: {topology: ring, access: {uplink_mbps: 2}, link: {bandwidth: {trace: bw.tsv}}}\n")
    assert main(["validate", str(f)]) == 0
    assert main(["-q", "run", str(f), "--backend", "inline", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "metrics.csv").is_file()
