"""Scenario sections: defaults valid and documented, bad values refused, method overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parse_actors.agents import METHODS, AggregationConfig, LossConfig, ModelConfig, OptimConfig, method_spec
from parse_actors.agents.methods import resolve

SECTIONS = [ModelConfig, LossConfig, OptimConfig, AggregationConfig]


@pytest.mark.parametrize("cls", SECTIONS)
def test_defaults_and_docs(cls):
    cls()  # defaults validate
    schema = cls.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{cls.__name__}.{name} has no docstring"


@pytest.mark.parametrize(
    "cls,bad",
    [
        (ModelConfig, {"slice_width": 0}),
        (ModelConfig, {"fission": "chunk"}),
        (ModelConfig, {"default_arch": "transformer"}),
        (ModelConfig, {"archs": {"image": "resnet"}}),
        (ModelConfig, {"backbone_widths": {"audio": -1}}),
        (ModelConfig, {"split_ratio": {"red": 0, "uni": 1, "syn": 1}}),
        (ModelConfig, {"cost_scale": 0}),
        (ModelConfig, {"cnn_channels": []}),
        (ModelConfig, {"widht": 3}),
        (LossConfig, {"temperature": 0}),
        (LossConfig, {"align": "l2"}),
        (LossConfig, {"lambda_orth": -0.1}),
        (LossConfig, {"logit_weights": {"red": -1}}),
        (LossConfig, {"logit_weights": {"red": 0, "uni": 0}}),  # a unimodal agent would predict nothing
        (LossConfig, {"ce_weight": 0, "head_weight": 0}),
        (LossConfig, {"orth_eps": 0}),
        (OptimConfig, {"clip_grad_norm": 0}),
        (OptimConfig, {"clip_grad_norm": -1.0}),
        (ModelConfig, {"slice_keys": "agnostic"}),
        (OptimConfig, {"lr": 0}),
        (OptimConfig, {"momentum": 1.0}),
        (OptimConfig, {"lr": float("nan")}),
        (AggregationConfig, {"weights": "max"}),
        (AggregationConfig, {"staleness": -1}),
    ],
)
def test_bad_values_rejected(cls, bad):
    with pytest.raises(ValidationError):
        cls.model_validate(bad)


def test_slice_widths():
    assert ModelConfig(slice_width=8).slice_widths() == {"red": 8, "uni": 8, "syn": 8}
    w = ModelConfig(slice_width=8, split_ratio={"red": 2, "uni": 1, "syn": 1}).slice_widths()
    assert w == {"red": 12, "uni": 6, "syn": 6}
    assert ModelConfig(slice_width=8).embedding_width() == 24


def test_defaults_of_issue_11():
    """The scale-neutral defaults (see the docstrings for why)."""
    loss, optim = LossConfig(), OptimConfig()
    assert loss.ce_shares() == (0.5, 0.5) and loss.align == "auto"
    assert optim.clip_grad_norm == 5.0 and OptimConfig(clip_grad_norm=None).clip_grad_norm is None
    assert ModelConfig().slice_keys == "modality"


def test_method_overrides_live_with_the_method():
    m, l = ModelConfig(), LossConfig(lambda_align=0.3, lambda_orth=0.2)
    assert resolve("parse_no_align", m, l)[2].lambda_align == 0.0
    assert resolve("parse_no_align", m, l)[2].lambda_orth == 0.2
    assert resolve("parse_no_orth", m, l)[2].lambda_orth == 0.0
    assert resolve("parse_split", m, l)[1].fission == "split"
    assert resolve("parse_share_all", m, l)[1].slice_keys == "shared"
    assert resolve("parse", m, l)[1] is m
    for name in METHODS:
        assert method_spec(name).model in ("fission", "monolithic")
    assert method_spec("dsgd_full").model == "monolithic" and method_spec("local").model == "fission"
