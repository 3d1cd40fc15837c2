"""Bad input: one clear error naming the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parse_actors.data import DataConfig, DataError, build_federated_data

GROUPS = [("image",), ("audio",), ("audio", "image")]


def loc_of(doc):
    with pytest.raises(ValidationError) as e:
        DataConfig.model_validate(doc)
    err = e.value.errors()[0]
    return ".".join(str(p) for p in err["loc"]), err["msg"]


def data_error(doc, groups=GROUPS, n_agents=8, base_dir=None):
    with pytest.raises(DataError) as e:
        DataConfig.model_validate(doc).check(groups, n_agents, base_dir)
    assert str(e.value) == f"{e.value.path}: {e.value.message}" and "\n" not in str(e.value)
    return e.value.path, e.value.message


def test_defaults_validate_and_roundtrip():
    cfg = DataConfig.model_validate({})
    assert cfg.name == "synthetic" and cfg.synthetic.preset == "mixed" and cfg.partition.kind == "iid"
    assert DataConfig.model_validate(cfg.model_dump()) == cfg
    cfg.check(GROUPS, 8)
    assert DataConfig.model_json_schema()["properties"]["name"]["description"]


@pytest.mark.parametrize(
    "doc, loc",
    [
        ({"name": "mnist"}, "name"),
        ({"partition": {"alpha": 0}}, "partition.alpha"),
        ({"partition": {"alpha": -1.0}}, "partition.alpha"),
        ({"partition": {"kind": "label_skew"}}, "partition.kind"),
        ({"partition": {"alfa": 0.3}}, "partition.alfa"),
        ({"partition": {"test_fraction": 1.0}}, "partition.test_fraction"),
        ({"synthetic": {"preset": "unique"}}, "synthetic.preset"),
        ({"synthetic": {"num_classes": 1}}, "synthetic.num_classes"),
        ({"synthetic": {"modalities": ["image", "image"]}}, "synthetic.modalities"),
        ({"synthetic": {"noise": float("nan")}}, "synthetic.noise"),
        ({"global_test_size": 1.5}, "global_test_size"),
        ({"missing_modality_rate": 1.0}, "missing_modality_rate"),
        ({"schedule": [{"modality": "audio", "at_s": 3}]}, "schedule.0"),
        ({"schedule": [{"agent": 1, "agents": [2], "modality": "audio", "at_s": 3}]}, "schedule.0"),
        ({"schedule": [{"agent": 1, "modality": "audio", "at_s": -1}]}, "schedule.0.at_s"),
    ],
)
def test_field_errors_have_key_paths(doc, loc):
    got, _ = loc_of(doc)
    assert got == loc


def test_options_for_another_dataset_or_stray_path():
    _, msg = loc_of({"name": "synthetic", "av_digits": {"pairs_per_image": 2}})
    assert "av_digits" in msg
    _, msg = loc_of({"name": "synthetic", "path": "/x"})
    assert "path" in msg


def test_modality_the_dataset_lacks():
    path, msg = data_error({"name": "av_digits"}, groups=[("image",), ("text",)])
    assert path == "name" and "'text'" in msg and "audio, image" in msg.replace("image, audio", "audio, image")
    path, _ = data_error({}, groups=[("image", "depth")])
    assert path == "synthetic.modalities"


def test_missing_path(tmp_path):
    assert data_error({"name": "uci_har"})[0] == "path"
    path, msg = data_error({"name": "npz", "path": "nope.npz"}, base_dir=tmp_path)
    assert path == "path" and "does not exist" in msg


def test_dataset_too_small_for_partition():
    assert data_error({"synthetic": {"n_samples": 50}})[0] == "partition.min_samples"
    assert data_error({"partition": {"samples_per_agent": 2000}})[0] == "partition.samples_per_agent"
    assert data_error({"global_test_size": 12000})[0] == "global_test_size"
    # the real builder says the same thing
    with pytest.raises(DataError) as e:
        build_federated_data(DataConfig.model_validate({"name": "av_digits", "partition": {"samples_per_agent": 500}}),
                             [("image",)] * 8)
    assert e.value.path == "partition.samples_per_agent"


def test_synthetic_semantics():
    assert data_error({"synthetic": {"preset": "synergy", "modalities": ["image"]}}, groups=[("image",)])[0] == "synthetic.preset"
    assert data_error({"synthetic": {"synergy_order": 3}})[0] == "synthetic.synergy_order"
    assert data_error({"synthetic": {"shapes": {"image": [1, 4, 4]}}})[0] == "synthetic.shapes.image"
    assert data_error({"synthetic": {"dim": {"image": 8}}})[0] == "synthetic.dim"


def test_lists_must_match_agent_count_and_schedule_refs():
    assert data_error({"missing_modality_rate": [0.1, 0.2]})[0] == "missing_modality_rate"
    assert data_error({"partition": {"kind": "quantity", "ratios": [1, 2]}})[0] == "partition.ratios"
    assert data_error({"schedule": [{"agent": 9, "modality": "audio", "at_s": 1}]})[0] == "schedule[0].agent"
    assert data_error({"schedule": [{"agents": [1, 8], "modality": "audio", "at_s": 1}]})[0] == "schedule[0].agents"
    assert data_error({"schedule": [{"agent": 1, "modality": "text", "at_s": 1}]})[0] == "schedule[0].modality"
    assert data_error({"schedule": [{"group": ["text"], "modality": "audio", "at_s": 1}]})[0] == "schedule[0].group"


@pytest.mark.parametrize("seed", [-1, -(2**70)])
def test_negative_task_seed_is_a_validation_error(seed):
    with pytest.raises(ValidationError) as e:
        DataConfig.model_validate({"synthetic": {"task_seed": seed}})
    assert e.value.errors()[0]["loc"] == ("synthetic", "task_seed")
