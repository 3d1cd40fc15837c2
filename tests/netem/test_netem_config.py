"""The `network:` schema: defaults, rejections, key paths, documentation."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from netem import ConfigError, NetworkConfig
from netem.checks import check_network

EXAMPLE = """
network:
  topology: {kind: chordal_ring, chords: [3]}
  link:
    latency: {dist: normal, mean_ms: 20, std_ms: 5}
    bandwidth: {trace: norway-3g-bus}
  access: {uplink_mbps: 20, downlink_mbps: 50}
  loss: {model: gilbert_elliott, p_gb: 0.01, p_bg: 0.3, mtu_bytes: 1400,
         outages: [{src: 0, dst: 1, start_s: 100, end_s: 160}]}
  transport: {mode: reliable, retry_timeout_ms: 250, max_retries: 5}
  churn:
    model: sessions
    online: {dist: weibull, mean_s: 1800, shape: 0.6}
    offline: {dist: lognormal, mean_s: 300, sigma: 1.0}
    permanent_failure_p: 0.05
    late_join: {fraction: 0.1, min_s: 0, max_s: 600}
    offline_policy: hold
  stragglers: {model: fraction, fraction: 0.2, slowdown: 4,
               transient: {mean_interval_s: 600, mean_duration_s: 60, slowdown: 2}}
  dynamics: {model: markov, p_off: 0.05, p_on: 0.5, period_s: 30}
"""


def test_defaults_are_a_valid_network():
    cfg = NetworkConfig()
    check_network(cfg, n_nodes=8)
    assert cfg.topology.kind == "ring" and cfg.link.latency.ms == 10 and cfg.link.bandwidth_mbps == 100
    models = (cfg.loss.model, cfg.churn.model, cfg.stragglers.model, cfg.dynamics.model)
    assert models == ("none", "none", "none", "static")
    assert NetworkConfig.model_validate({}) == cfg


def test_full_yaml_example_validates_and_checks():
    doc = yaml.safe_load(EXAMPLE)["network"]
    cfg = NetworkConfig.model_validate(doc)
    check_network(cfg, n_nodes=10)
    assert cfg.churn.online.shape == 0.6 and cfg.loss.outages[0].end_s == 160
    # Round trip through a dump.
    assert NetworkConfig.model_validate(cfg.model_dump()) == cfg


def test_omitted_tag_means_default_and_strings_are_shorthand():
    cfg = NetworkConfig.model_validate({"loss": {"mtu_bytes": 9000}, "topology": "complete", "churn": "none"})
    assert cfg.loss.model == "none" and cfg.loss.mtu_bytes == 9000 and cfg.topology.kind == "complete"


@pytest.mark.parametrize(
    "doc,loc",
    [
        ({"link": {"bandwidth_mbps": 0}}, ("link", "bandwidth_mbps")),
        ({"link": {"bandwidth_mbps": -5}}, ("link", "bandwidth_mbps")),
        ({"link": {"bandwidth_mbps": float("nan")}}, ("link", "bandwidth_mbps")),
        ({"link": {"bandwidth_mbps": float("inf")}}, ("link", "bandwidth_mbps")),
        ({"loss": {"model": "bernoulli", "p_packet": 1.5}}, ("loss", "bernoulli", "p_packet")),
        ({"loss": {"model": "gilbert_elliott", "p_bg": 0}}, ("loss", "gilbert_elliott", "p_bg")),
        ({"topology": {"kind": "hypercube"}}, ("topology",)),
        ({"link": {"latency": {"dist": "pareto"}}}, ("link", "latency")),
        ({"link": {"latency": {"dist": "constant", "ms": -1}}}, ("link", "latency", "constant", "ms")),
        ({"link": {"latency": {"dist": "uniform", "low_ms": 5, "high_ms": 1}}}, ("link", "latency", "uniform")),
        (
            {"churn": {"model": "sessions", "online": {"dist": "exponential", "mean_s": 0}}},
            ("churn", "sessions", "online", "exponential", "mean_s"),
        ),
        ({"churn": {"permanent_failure_p": 2}}, ("churn", "none", "permanent_failure_p")),
        ({"stragglers": {"model": "fraction", "slowdown": 0.5}}, ("stragglers", "fraction", "slowdown")),
        ({"topology": {"kind": "ring", "degree": 3}}, ("topology", "ring", "degree")),
        ({"bandwidth": 10}, ("bandwidth",)),
        ({"link": {"bandwidth_mbps": 10, "bandwidth": {"trace": "norway-3g-bus"}}}, ("link",)),
        ({"loss": {"outages": [{"src": 0, "dst": 1, "start_s": 5, "end_s": 5}]}}, ("loss", "none", "outages", 0)),
        ({"transport": {"mode": "tcp"}}, ("transport", "mode")),
    ],
)
def test_bad_values_are_rejected_at_validation(doc, loc):
    with pytest.raises(ValidationError) as e:
        NetworkConfig.model_validate(doc)
    assert e.value.errors()[0]["loc"] == loc


def test_yaml_on_off_keys_are_not_used():
    # YAML 1.1 reads `on`/`off` as booleans, so session lengths are `online`/`offline`.
    doc = yaml.safe_load("churn: {model: sessions, on: {mean_s: 5}}")
    with pytest.raises(ValidationError):
        NetworkConfig.model_validate(doc)


@pytest.mark.parametrize(
    "doc,n,path",
    [
        ({"topology": {"kind": "k_regular", "degree": 5}}, 5, "topology.degree"),
        ({"stragglers": {"model": "list", "speeds": [1, 0.5]}}, 3, "stragglers.speeds"),
        ({"access": {"uplink_mbps": [1, 2]}}, 3, "access.uplink_mbps"),
        ({"loss": {"outages": [{"src": 0, "dst": 9, "start_s": 1, "end_s": 2}]}}, 4, "loss.outages.0.dst"),
        ({"churn": {"late_join": {"nodes": [7]}}}, 4, "churn.late_join.nodes"),
        ({"churn": {"model": "trace", "file": "missing.txt"}}, 4, "churn.file"),
        ({"topology": {"kind": "edge_list", "path": "missing.txt"}}, 4, "topology.path"),
        ({"link": {"latency": {"dist": "trace", "mapping": "nearest_city"}}}, 4, "link.latency.locations"),
        ({"link": {"latency": {"dist": "trace", "locations": ["Oslo"]}}}, 1, "link.latency.locations"),
    ],
)
def test_check_reports_key_paths(tmp_path, doc, n, path):
    cfg = NetworkConfig.model_validate(doc)
    with pytest.raises(ConfigError) as e:
        check_network(cfg, n_nodes=n, base_dir=tmp_path)
    assert e.value.path == path
    assert str(e.value).startswith(path + ": ")


def test_config_error_shape():
    e = ConfigError("link.bandwidth_mbps", "must be > 0")
    assert (e.path, e.message, str(e)) == ("link.bandwidth_mbps", "must be > 0", "link.bandwidth_mbps: must be > 0")
    assert isinstance(e, Exception)


def _walk(schema, defs, seen, where="network"):
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        if name not in seen:
            seen.add(name)
            _walk(defs[name], defs, seen, name)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            _walk(sub, defs, seen, where)
    if "items" in schema:
        _walk(schema["items"], defs, seen, where)
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{where}.{name} has no description"
        _walk(prop, defs, seen, f"{where}.{name}")


def test_every_field_is_documented_in_the_json_schema():
    schema = NetworkConfig.model_json_schema()
    seen: set[str] = set()
    _walk(schema, schema.get("$defs", {}), seen)
    assert len(seen) > 30


def test_readme_example_is_a_valid_network():
    from pathlib import Path

    import netem

    text = (Path(netem.__file__).parent / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = NetworkConfig.model_validate(yaml.safe_load(block)["network"])
    check_network(cfg, n_nodes=10)


def test_file_fields_lists_user_files_only():
    cfg = NetworkConfig.model_validate({
        "topology": {"kind": "edge_list", "path": "g.txt"},
        "link": {"latency": {"dist": "trace", "servers": "srv.csv"}, "bandwidth": {"trace": "norway-3g-car"}},
        "churn": {"model": "trace", "file": "avail.txt"},
    })
    # the shipped latency matrix and bandwidth trace are not user files
    assert cfg.file_fields() == [("topology.path", "g.txt"), ("link.latency.servers", "srv.csv"),
                                 ("churn.file", "avail.txt")]
    cfg = NetworkConfig.model_validate({"link": {"latency": {"dist": "trace", "file": "p.csv"},
                                                 "bandwidth": {"trace": "bw.log"}}})
    assert cfg.file_fields() == [("link.latency.file", "p.csv"), ("link.bandwidth.trace", "bw.log")]
    assert NetworkConfig().file_fields() == []


def test_servers_file_problems_name_the_servers_key(tmp_path):
    cfg = NetworkConfig.model_validate({"link": {"latency": {"dist": "trace", "servers": "srv.csv"}}})
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, tmp_path)
    assert (e.value.path, e.value.message) == ("link.latency.servers", f"servers file {str(tmp_path / 'srv.csv')!r} not found")
    (tmp_path / "srv.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError) as e:
        check_network(cfg, 4, tmp_path)
    assert e.value.path == "link.latency.servers" and e.value.message.startswith(f"{tmp_path / 'srv.csv'}:1: ")
