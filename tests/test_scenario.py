"""Scenario loading: defaults, overrides, and one-line errors naming file and key path."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from parse_actors.errors import ScenarioError
from parse_actors.scenario import (
    Scenario,
    build_scenario,
    json_schema,
    load_scenario,
    scenario_to_yaml,
)


def write(tmp_path, text: str, name="s.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path, text: str, overrides=None) -> ScenarioError:
    p = write(tmp_path, text)
    with pytest.raises(ScenarioError) as ei:
        load_scenario(p, overrides)
    return ei.value


def test_quickstart_loads_with_defaults(quickstart_path):
    sc = load_scenario(quickstart_path)
    assert sc.n_agents == 8
    labels = [g.label for g in sc.agent_groups()]
    assert labels.count("image") == 3 and labels.count("audio") == 3 and labels.count("image+audio") == 2
    assert sc.network.topology.kind == "ring"


def test_empty_file_gives_full_defaults(tmp_path):
    sc = load_scenario(write(tmp_path, ""))
    assert sc.method == "parse" and sc.seed == 0 and sc.n_agents == 8


def test_resolved_yaml_round_trips(quickstart_path, tmp_path):
    sc = load_scenario(quickstart_path, ["seed=7", "protocol.rounds=3"])
    again = load_scenario(write(tmp_path, scenario_to_yaml(sc)))
    assert again.model_dump() == sc.model_dump()


def test_negative_bandwidth_names_file_and_key(tmp_path):
    e = error_of(tmp_path, """
        network:
          link:
            bandwidth_mbps: -3
        """)
    assert str(e) == f"{tmp_path / 's.yaml'}: network.link.bandwidth_mbps: expected a positive number, got -3"


def test_unknown_key_suggests_closest(tmp_path):
    e = error_of(tmp_path, """
        protocol:
          rouds: 5
        """)
    assert e.path == "protocol.rouds"
    assert "unknown key 'rouds'" in e.message and "did you mean 'rounds'" in e.message


def test_unknown_top_level_key(tmp_path):
    e = error_of(tmp_path, "netwrok: {}\n")
    assert e.path == "netwrok" and "did you mean 'network'" in e.message


def test_wrong_type_in_list_item(tmp_path):
    e = error_of(tmp_path, """
        agents:
          groups:
            - modalities: [image]
              count: many
        """)
    assert e.path == "agents.groups.0.count"
    assert "expected an integer" in e.message and "'many'" in e.message


def test_unknown_method_suggests(tmp_path):
    e = error_of(tmp_path, "method: prase\n")
    assert e.path == "method" and "did you mean 'parse'" in e.message


def test_not_a_mapping(tmp_path):
    e = error_of(tmp_path, "- 1\n- 2\n")
    assert "expected a mapping" in e.message


def test_invalid_yaml_reports_line(tmp_path):
    e = error_of(tmp_path, "seed: [1, 2\nname: x\n")
    assert "invalid YAML" in e.message and "line" in e.message


def test_python_tags_are_refused(tmp_path):
    e = error_of(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\n")
    assert "invalid YAML" in e.message


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    e = error_of(tmp_path, "\n".join(lines) + "\n")
    assert "too large" in e.message


def test_nan_is_refused(tmp_path):
    e = error_of(tmp_path, "optim: {lr: .nan}\n")
    assert e.path == "optim.lr" and "finite" in e.message


def test_missing_file():
    with pytest.raises(ScenarioError) as ei:
        load_scenario("does/not/exist.yaml")
    assert "no such file" in str(ei.value)


def test_set_overrides_any_key(quickstart_path):
    sc = load_scenario(quickstart_path, ["network.link.bandwidth_mbps=5", "agents.groups.0.count=4",
                                         "protocol.rounds=2"])
    assert sc.network.link.bandwidth_mbps == 5
    assert sc.agents.groups[0].count == 4 and sc.n_agents == 9
    assert sc.protocol.rounds == 2


def test_set_bad_value_names_key(quickstart_path):
    with pytest.raises(ScenarioError) as ei:
        load_scenario(quickstart_path, ["network.link.bandwidth_mbps=0"])
    assert ei.value.path == "network.link.bandwidth_mbps"


def test_set_without_equals():
    with pytest.raises(ScenarioError) as ei:
        build_scenario({}, "x.yaml", ["protocol.rounds"])
    assert "KEY.PATH=VALUE" in str(ei.value)


def test_duplicate_modalities_rejected():
    with pytest.raises(ScenarioError) as ei:
        build_scenario({"agents": {"groups": [{"modalities": ["image", "image"], "count": 1}]}}, "x.yaml")
    assert ei.value.path == "agents.groups.0.modalities"


def test_arch_for_missing_modality_rejected():
    doc = {"agents": {"groups": [{"modalities": ["image"], "count": 2, "archs": {"audio": "mlp"}}]}}
    with pytest.raises(ScenarioError) as ei:
        build_scenario(doc, "x.yaml")
    assert ei.value.path == "agents.groups.0.archs.audio"


def test_json_schema_is_json_and_documents_fields():
    schema = json_schema()
    text = json.dumps(schema)
    assert schema["title"] == "parse-sim scenario"
    assert "Local SGD steps per round" in text
    assert "properties" in schema and "network" in schema["properties"]


def test_safe_dump_is_valid_yaml(quickstart_path):
    sc = load_scenario(quickstart_path)
    doc = yaml.safe_load(scenario_to_yaml(sc))
    assert Scenario.model_validate(doc).n_agents == sc.n_agents


def test_unknown_arch_is_a_schema_error_not_a_later_check():
    from parse_actors.scenario import Scenario
    from pydantic import ValidationError

    doc = {"agents": {"groups": [{"modalities": ["image"], "count": 1, "archs": {"image": "cnnn"}}]}}
    with pytest.raises(ValidationError):
        Scenario.model_validate(doc)  # the schema alone rejects it, before check_scenario
    with pytest.raises(ScenarioError) as ei:
        build_scenario(doc, "x.yaml", check=False)
    assert (ei.value.path, ei.value.message) == ("agents.groups.0.archs.image",
                                                 "expected one of mlp, cnn, conv1d, gru, got 'cnnn'; did you mean 'cnn'?")
