"""Checks that need the whole scenario, done by `load_scenario` before any work starts.

Each names the exact key path and says what is wrong. The default agent mix is
3 image + 3 audio + 2 image+audio = 8 agents.
"""

from __future__ import annotations

import textwrap

import pytest

from parse_actors.agents import METHODS
from parse_actors.cli import main
from parse_actors.errors import ScenarioError
from parse_actors.scenario import build_scenario, load_scenario


def error_of(tmp_path, text: str, files: dict[str, bytes | str] | None = None) -> ScenarioError:
    for name, content in (files or {}).items():
        p = tmp_path / name
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    f = tmp_path / "s.yaml"
    f.write_text(textwrap.dedent(text))
    with pytest.raises(ScenarioError) as ei:
        load_scenario(f)
    e = ei.value
    assert e.file == str(f)
    assert len(str(e).splitlines()) == 1
    return e


def loads(tmp_path, text: str, files: dict[str, str] | None = None):
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    f = tmp_path / "ok.yaml"
    f.write_text(textwrap.dedent(text))
    return load_scenario(f)


# ---------------------------------------------------------------------------- topology vs agent count


def test_grid_that_does_not_hold_the_agents(tmp_path):
    e = error_of(tmp_path, "network: {topology: {kind: grid, rows: 3, cols: 3}}\n")
    assert e.path == "network.topology.rows"
    assert "3 x 3" in e.message and "8 nodes" in e.message and "rows * cols must equal n" in e.message


def test_grid_cols_not_dividing_the_agents(tmp_path):
    e = error_of(tmp_path, "network: {topology: {kind: grid, cols: 3}}\n")
    assert e.path == "network.topology.cols" and "8 nodes" in e.message


def test_grid_that_fits(tmp_path):
    assert loads(tmp_path, "network: {topology: {kind: grid, rows: 2, cols: 4}}\n").n_agents == 8


def test_list_stragglers_of_the_wrong_length(tmp_path):
    e = error_of(tmp_path, "network: {stragglers: {model: list, speeds: [1.0, 0.5]}}\n")
    assert e.path == "network.stragglers.speeds"
    assert e.message == "gives 2 speeds for 8 nodes"


def test_edge_list_naming_nodes_beyond_the_agents(tmp_path):
    e = error_of(tmp_path, "network: {topology: {kind: edge_list, path: edges.txt}}\n",
                 {"edges.txt": "".join(f"{i} {i + 1}\n" for i in range(7)) + "7 12\n3 9\n"})
    assert e.path == "network.topology.path"
    assert "nodes [9, 12] out of range for 8 nodes" in e.message and "edges.txt" in e.message


def test_edge_list_that_fits(tmp_path):
    sc = loads(tmp_path, "network: {topology: {kind: edge_list, path: edges.txt}}\n",
               {"edges.txt": "".join(f"{i} {(i + 1) % 8}\n" for i in range(8))})
    assert sc.network.topology.path == "edges.txt"


@pytest.mark.parametrize("topology, path, words", [
    ("{kind: k_regular, degree: 8}", "network.topology.degree", "degree 8 is impossible with 8 nodes"),
    ("{kind: k_regular, degree: 40}", "network.topology.degree", "degree 40 is impossible with 8 nodes"),
    ("{kind: k_regular, degree: 3, connected: false}", "network.topology.degree", None),
    ("{kind: watts_strogatz, k: 8}", "network.topology.k", "k = 8 must be < n (8)"),
    ("{kind: barabasi_albert, m: 9}", "network.topology.m", "m = 9 must be < n (8)"),
    ("{kind: chordal_ring, chords: [2, 8]}", "network.topology.chords.1", "chord offset 8 must be < n (8)"),
    ("{kind: star, center: 8}", "network.topology.center", "node 8 does not exist (n=8)"),
])
def test_degree_larger_than_the_agents(tmp_path, topology, path, words):
    groups = "agents: {groups: [{modalities: [image], count: 4}, {modalities: [image, audio], count: 3}]}\n"
    if words is None:  # 3-regular on 7 nodes: degree * n odd
        e = error_of(tmp_path, groups + f"network: {{topology: {topology}}}\n")
        assert e.path == path and "degree * n must be even" in e.message
        return
    e = error_of(tmp_path, f"network: {{topology: {topology}}}\n")
    assert e.path == path and words in e.message


@pytest.mark.parametrize("network, path, words", [
    ("{access: {uplink_mbps: [10, 10, 10]}}", "network.access.uplink_mbps", "gives 3 values for 8 nodes"),
    ("{loss: {model: bernoulli, outages: [{src: 0, dst: 8, start_s: 0, end_s: 1}]}}", "network.loss.outages.0.dst",
     "node 8 does not exist (n=8)"),
    ("{churn: {model: none, late_join: {nodes: [1, 8, 20]}}}", "network.churn.late_join.nodes",
     "nodes [8, 20] do not exist (n=8)"),
    ("{link: {latency: {dist: trace, mapping: nearest_city, locations: [London]}}}", "network.link.latency.locations",
     "one location per node: 1 for 8 nodes"),
])
def test_per_node_lists_must_match_the_agents(tmp_path, network, path, words):
    e = error_of(tmp_path, f"network: {network}\n")
    assert e.path == path and words in e.message


def test_churn_trace_with_fewer_nodes_than_agents(tmp_path):
    e = error_of(tmp_path, "network: {churn: {model: trace, file: avail.txt}}\n",
                 {"avail.txt": "0 0 10\n1 0 10\n"})
    assert e.path == "network.churn.file" and "describes 2 nodes, the scenario has 8" in e.message


# ---------------------------------------------------------------------------- methods vs agents


def test_harmony_needs_multimodal_agents(tmp_path):
    e = error_of(tmp_path, """
        method: harmony
        agents: {groups: [{modalities: [image], count: 3}, {modalities: [audio], count: 3}]}
        """)
    assert e.path == "method"
    assert e.message == "harmony needs at least one multimodal agent group, found none"


def test_harmony_with_multimodal_agents_is_fine(tmp_path):
    assert loads(tmp_path, "method: harmony\n").method == "harmony"


@pytest.mark.parametrize("method", [m for m in METHODS if m != "harmony"])
def test_no_other_method_needs_multimodal_agents(method):
    """Only harmony shares nothing without multimodal agents; every other method
    (PARSE and its ablations included) has red/uni or encoder/head branches that
    unimodal agents share, so there is no 'every branch is syn-only' method to refuse."""
    doc = {"method": method, "agents": {"groups": [{"modalities": ["image"], "count": 2},
                                                   {"modalities": ["audio"], "count": 2}]}}
    assert build_scenario(doc, "x.yaml").method == method


def test_unknown_encoder_architecture_in_a_group(tmp_path):
    e = error_of(tmp_path, """
        agents: {groups: [{modalities: [image], count: 2, archs: {image: cnnn}}, {modalities: [audio], count: 2}]}
        """)
    assert e.path == "agents.groups.0.archs.image"
    assert "expected one of mlp, cnn, conv1d, gru, got 'cnnn'" in e.message and "did you mean 'cnn'" in e.message


def test_arch_for_a_modality_the_group_lacks(tmp_path):
    e = error_of(tmp_path, "agents: {groups: [{modalities: [image], count: 2, archs: {audio: gru}}]}\n")
    assert e.path == "agents.groups.0.archs.audio" and "names a modality the group lacks" in e.message


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("network, path, words", [
    ("{topology: {kind: edge_list, path: missing.txt}}", "network.topology.path", "edge list"),
    ("{churn: {model: trace, file: missing.txt}}", "network.churn.file", "availability trace"),
    ("{link: {latency: {dist: trace, file: missing.csv}}}", "network.link.latency.file", "latency trace"),
    ("{link: {latency: {dist: trace, servers: missing.csv}}}", "network.link.latency.servers", "servers file"),
    ("{link: {bandwidth: {trace: missing.tsv}}}", "network.link.bandwidth.trace", "bandwidth trace"),
])
def test_trace_file_that_does_not_exist(tmp_path, network, path, words):
    e = error_of(tmp_path, f"network: {network}\n")
    assert e.path == path
    assert words in e.message and "not found" in e.message and str(tmp_path / "missing") in e.message


def test_shipped_trace_names_need_no_file(tmp_path):
    sc = loads(tmp_path, "network: {link: {latency: {dist: trace}, bandwidth: {trace: norway-3g-bus}}}\n")
    assert sc.network.link.bandwidth.trace == "norway-3g-bus"


def test_dataset_path_that_does_not_exist(tmp_path):
    e = error_of(tmp_path, "data: {name: npz, path: nowhere}\n")
    assert e.path == "data.path" and e.message == f"{tmp_path / 'nowhere'} does not exist"


@pytest.mark.parametrize("field, yaml_value", [
    ("network.topology.path", "{topology: {kind: edge_list, path: f.txt}}"),
    ("network.churn.file", "{churn: {model: trace, file: f.txt}}"),
    ("network.link.latency.file", "{link: {latency: {dist: trace, file: f.txt}}}"),
    ("network.link.bandwidth.trace", "{link: {bandwidth: {trace: f.txt}}}"),
])
def test_trace_file_that_is_not_text(tmp_path, field, yaml_value):
    e = error_of(tmp_path, f"network: {yaml_value}\n", {"f.txt": b"0 1\n\xff\xfe\x00garbage\n"})
    assert e.path == field and e.message == f"{tmp_path / 'f.txt'}: not UTF-8 text (byte 4)"


def test_malformed_servers_file_names_the_servers_key(tmp_path):
    e = error_of(tmp_path, "network: {link: {latency: {dist: trace, servers: srv.csv}}}\n", {"srv.csv": "a,b\n1,2\n"})
    assert e.path == "network.link.latency.servers" and e.message.startswith(f"{tmp_path / 'srv.csv'}:1: ")


@pytest.mark.parametrize("target, words", [(".", "is a directory, expected a file"),
                                           ("/dev/zero", "is not a regular file")])
def test_trace_file_that_is_not_a_file(tmp_path, target, words):
    e = error_of(tmp_path, f"network: {{link: {{latency: {{dist: trace, servers: {target}}}}}}}\n")
    assert e.path == "network.link.latency.servers" and words in e.message


def test_file_name_with_an_unknown_user(tmp_path):
    e = error_of(tmp_path, "network: {topology: {kind: edge_list, path: '~no_such_user_zz/edges.txt'}}\n")
    assert e.path == "network.topology.path" and "no such user" in e.message


def test_file_name_too_long(tmp_path):
    e = error_of(tmp_path, f"data: {{name: npz, path: {'a' * 5000}}}\n")
    assert e.path == "data.path" and "File name too long" in e.message


def test_file_name_with_nul(tmp_path):
    e = error_of(tmp_path, 'network: {churn: {model: trace, file: "a\\0b"}}\n')
    assert e.path == "network.churn.file" and "NUL" in e.message


@pytest.mark.parametrize("files", ["network: {topology: {kind: edge_list, path: e.txt}}",
                                   "data: {name: npz, path: x}", "network: {churn: {model: trace, file: x}}"])
def test_base_dir_with_nul(tmp_path, files):
    e = error_of(tmp_path, f'base_dir: "a\\0b"\n{files}\n')
    assert e.path == "base_dir" and "NUL" in e.message


def test_kernel_pseudo_file_is_not_read(tmp_path):
    e = error_of(tmp_path, "network: {topology: {kind: edge_list, path: /proc/self/status}}\n")
    assert e.path == "network.topology.path" and "pseudo-file" in e.message


def test_reader_crash_still_names_the_key(tmp_path, monkeypatch):
    """If a netem/data reader leaks a non-ConfigError exception, it is still one line at the file's key."""
    import csv

    from parse_actors.scenario import checks

    def boom(cfg, n_nodes, base_dir=None):
        raise csv.Error("field larger than field limit (131072)")

    monkeypatch.setattr(checks, "check_network", boom)
    e = error_of(tmp_path, "network: {link: {latency: {dist: trace, file: lat.csv}}}\n", {"lat.csv": "x\n"})
    assert e.path == "network.link.latency.file" and "field larger than field limit" in e.message


# ---------------------------------------------------------------------------- data sizes


def test_dataset_too_small_for_the_partition(tmp_path):
    e = error_of(tmp_path, "data: {synthetic: {n_samples: 60}}\n")
    assert e.path == "data.partition.min_samples"
    assert "8 agents x 10 samples needs 80, the dataset leaves 48 for agents" in e.message


def test_samples_per_agent_too_many(tmp_path):
    e = error_of(tmp_path, "data: {synthetic: {n_samples: 1000}, partition: {samples_per_agent: 500}}\n")
    assert e.path == "data.partition.samples_per_agent" and "needs 4000, the dataset leaves 800" in e.message


def test_global_test_set_larger_than_the_dataset(tmp_path):
    e = error_of(tmp_path, "data: {synthetic: {n_samples: 100}, global_test_size: 100}\n")
    assert e.path == "data.global_test_size" and "100 samples asked, the dataset has 100" in e.message


def test_shipped_dataset_too_small(tmp_path):
    e = error_of(tmp_path, "agents: {groups: [{modalities: [image, audio], count: 1000}]}\ndata: {name: av_digits}\n")
    assert e.path == "data.partition.min_samples" and "1000 agents x 10 samples" in e.message


def test_quantity_ratios_of_the_wrong_length(tmp_path):
    e = error_of(tmp_path, "data: {partition: {kind: quantity, ratios: [1, 2, 3]}}\n")
    assert e.path == "data.partition.ratios" and e.message == "3 ratios for 8 agents"


def test_missing_modality_rates_of_the_wrong_length(tmp_path):
    e = error_of(tmp_path, "data: {missing_modality_rate: [0.1, 0.2]}\n")
    assert e.path == "data.missing_modality_rate" and e.message == "2 rates for 8 agents"


def test_schedule_naming_an_agent_that_does_not_exist(tmp_path):
    e = error_of(tmp_path, """
        data:
          schedule:
            - {agent: 1, modality: audio, at_s: 5}
            - {agent: 8, modality: audio, at_s: 5}
        """)
    assert e.path == "data.schedule.1.agent"  # dotted like every other path (data/ says schedule[1])
    assert e.message == "agent 8 does not exist (8 agents)"


def test_agents_using_a_modality_the_dataset_lacks(tmp_path):
    e = error_of(tmp_path, "data: {synthetic: {modalities: [image, text]}}\n")
    assert e.path == "data.synthetic.modalities" and "'audio'" in e.message


# ---------------------------------------------------------------------------- before any work


def test_run_refuses_before_creating_the_run_directory(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("network: {topology: {kind: grid, rows: 3, cols: 3}}\n")
    out = tmp_path / "run"
    assert main(["run", str(f), "--out", str(out), "--backend", "inline"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"{f}: network.topology.rows: grid 3 x 3 does not fit 8 nodes "
                                        "(rows * cols must equal n)"]
    assert not out.exists()


# -- rules a run used to find only when it reached them: now caught by validate (exit 2)


def test_negative_task_seed_fails_validate(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("data: {synthetic: {task_seed: -1}}\n")
    assert main(["validate", str(f)]) == 2
    assert capsys.readouterr().err.strip() == f"{f}: data.synthetic.task_seed: expected a number >= 0, got -1"


@pytest.mark.parametrize("name", ["synthetic", "av_digits"])
def test_natural_partition_needs_groups(tmp_path, name):
    e = error_of(tmp_path, f"data: {{name: {name}, partition: {{kind: natural}}}}\n")
    assert (e.path, e.message) == ("data.partition.kind",
                                   "natural partition needs a dataset with groups (subjects or speakers)")


def test_natural_partition_with_groups_passes(tmp_path):
    sc = loads(tmp_path, """
        agents: {groups: [{modalities: [acc], count: 2}, {modalities: [acc, gyro], count: 2}]}
        data: {name: watch_imu, partition: {kind: natural}}
        """)
    assert sc.data.partition.kind == "natural"


def test_schedule_losing_a_modality_the_agent_lacks(tmp_path):
    # agent 0 is in the default image-only group: it cannot lose audio
    e = error_of(tmp_path, "data: {schedule: [{agent: 0, modality: audio, at_s: 1}]}\n")
    assert (e.path, e.message) == ("data.schedule.0", "agent 0 loses 'audio' at 1 s but does not hold it then")


def test_schedule_losing_the_last_modality(tmp_path):
    e = error_of(tmp_path, "data: {schedule: [{agent: 0, modality: image, at_s: 2.5}]}\n")
    assert (e.path, e.message) == ("data.schedule.0", "agent 0 would hold no modality after losing 'image' at 2.5 s")


def test_npz_groups_key_missing_fails_validate(tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", image=np.zeros((40, 3), np.float32), audio=np.zeros((40, 2), np.float32),
             y=np.arange(40) % 2)
    e = error_of(tmp_path, "data: {name: npz, path: d.npz, npz: {groups_key: subject}}\n")
    assert (e.path, e.message) == ("data.npz.groups_key", "d.npz has no array 'subject'")


@pytest.mark.parametrize("bad", ["a.b", "a/b", "a+b", "1a", "a-b", ""])
def test_one_modality_name_rule_for_agent_groups(tmp_path, bad):
    e = error_of(tmp_path, f"agents: {{groups: [{{modalities: ['{bad}'], count: 1}}]}}\n")
    assert (e.path, e.message) == ("agents.groups.0.modalities",
                                   f"modality name {bad!r} must be an identifier (letters, digits, _)")


def test_repeated_modality_names(tmp_path):
    e = error_of(tmp_path, "agents: {groups: [{modalities: [image, image], count: 1}]}\n")
    assert (e.path, e.message) == ("agents.groups.0.modalities", "modality names repeat: ['image', 'image']")


@pytest.mark.parametrize("text, path, message", [
    ("model: {default_arch: cnn}\n", "model.default_arch",
     "architecture 'cnn' takes inputs of rank 2 or 3, modality 'image' has shape (32,)"),
    ("data: {name: av_digits}\nmodel: {archs: {audio: cnn, image: gru}}\n", "model.archs.image",
     "architecture 'gru' takes inputs of rank 1 or 2, modality 'image' has shape (1, 8, 8)"),
    ("data: {name: av_digits}\n"
     "agents: {groups: [{modalities: [image], count: 2, archs: {image: conv1d}}, {modalities: [audio], count: 2}]}\n",
     "agents.groups.0.archs.image", "architecture 'conv1d' takes inputs of rank 1 or 2, modality 'image' has shape (1, 8, 8)"),
])
def test_encoder_must_accept_the_data_rank(tmp_path, text, path, message):
    e = error_of(tmp_path, text)
    assert (e.path, e.message) == (path, message)


def test_encoders_matching_the_data_pass(tmp_path):
    sc = loads(tmp_path, "data: {name: av_digits}\nmodel: {archs: {image: cnn, audio: gru}}\n")
    assert sc.model.archs == {"image": "cnn", "audio": "gru"}
