"""The methods a scenario can name: which network, which loss overrides, which
sharing policy. Everything a method implies lives here so the engine only
passes `method=`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .config import AggregationConfig, LossConfig, ModelConfig
from .policies import HarmonyPolicy, NoSharing, ParsePolicy, RoleFilter, ShareAll, SharingPolicy


@dataclass(frozen=True)
class MethodSpec:
    name: str
    model: str
    """`fission` (PARSE network) or `monolithic` (one embedding, one head)."""
    policy: str
    """Key of `POLICIES`."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    about: str = ""


def _harmony(agg: AggregationConfig) -> SharingPolicy:
    return HarmonyPolicy(agg.harmony_switch)


POLICIES: dict[str, Callable[[AggregationConfig], SharingPolicy]] = {
    "none": lambda agg: NoSharing(),
    "all": lambda agg: ShareAll(),
    "parse": lambda agg: ParsePolicy(),
    "encoders": lambda agg: RoleFilter(("backbone",), "dsgd_modality"),
    "heads": lambda agg: RoleFilter(("head",), "dsgd_task"),
    "encoders+heads": lambda agg: RoleFilter(("backbone", "head"), "dsgd_hybrid"),
    "harmony": _harmony,
}
"""Policy factories by name (module-level table, so a MethodSpec stays picklable)."""

_SPECS = [
    MethodSpec("parse", "fission", "parse", about="PARSE: slice-level partial alignment"),
    MethodSpec("local", "fission", "none", about="PARSE network, no sharing"),
    MethodSpec("local_mono", "monolithic", "none", about="monolithic network, no sharing"),
    MethodSpec("dsgd_full", "monolithic", "all", about="monolithic network, everything both hold"),
    MethodSpec("dsgd_modality", "monolithic", "encoders", about="monolithic network, encoders only"),
    MethodSpec("dsgd_task", "monolithic", "heads", about="monolithic network, classifier head only"),
    MethodSpec("dsgd_hybrid", "monolithic", "encoders+heads", about="monolithic network, encoders + head"),
    MethodSpec("harmony", "monolithic", "harmony", about="encoder gossip, then fusion/head gossip among multimodal agents"),
    MethodSpec("parse_share_all", "fission", "all", model_overrides={"slice_keys": "shared"},
               about="ablation, full alignment: modality-agnostic slice keys, every slice to every holder"),
    MethodSpec("parse_no_align", "fission", "parse", loss_overrides={"lambda_align": 0.0}, about="ablation: no alignment"),
    MethodSpec("parse_no_orth", "fission", "parse", loss_overrides={"lambda_orth": 0.0}, about="ablation: no orthogonality"),
    MethodSpec("parse_split", "fission", "parse", model_overrides={"fission": "split"}, about="ablation: split fission"),
]

METHOD_SPECS: dict[str, MethodSpec] = {s.name: s for s in _SPECS}
METHODS: tuple[str, ...] = tuple(METHOD_SPECS)


def method_spec(name: str) -> MethodSpec:
    try:
        return METHOD_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def make_policy(name: str, aggregation: AggregationConfig | None = None) -> SharingPolicy:
    """The sharing policy of method `name` (harmony's switch round from `aggregation`)."""
    return POLICIES[method_spec(name).policy](aggregation or AggregationConfig())


def resolve(name: str, model: ModelConfig, loss: LossConfig) -> tuple[MethodSpec, ModelConfig, LossConfig]:
    """The method's spec and the configs with its overrides applied (re-validated)."""
    spec = method_spec(name)
    if spec.model_overrides:
        model = ModelConfig.model_validate({**model.model_dump(), **spec.model_overrides})
    if spec.loss_overrides:
        loss = LossConfig.model_validate({**loss.model_dump(), **spec.loss_overrides})
    return spec, model, loss
