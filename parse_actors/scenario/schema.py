"""The typed scenario: `Scenario` and the sections parse_actors defines itself.

The `data:`, `network:` and learning sections come from their owners
(parse_actors.data, netem, parse_actors.agents); every field constraint lives
here or there, so `parse-sim validate` rejects what a run would reject.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from netem import NetworkConfig
from parse_actors.agents.config import ARCH_NAMES, AggregationConfig, LossConfig, ModelConfig, OptimConfig
from parse_actors.agents.methods import METHODS
from parse_actors.data import DataConfig
from parse_actors.names import check_modality_names
from parse_actors.schema import StrictModel

from .errors import _fmt_value
from .protocol import ProtocolConfig


def _known_arch(arch: str) -> str:
    """Encoder names are checked against the registry's names (agents.config.ARCH_NAMES, no torch)."""
    if arch not in ARCH_NAMES:
        hint = difflib.get_close_matches(arch, list(ARCH_NAMES), n=1) if len(arch) <= 200 else []
        raise ValueError(f"expected one of {', '.join(ARCH_NAMES)}, got {_fmt_value(arch)}"
                         + (f"; did you mean '{hint[0]}'?" if hint else ""))
    return arch


class AgentGroup(StrictModel):
    """A set of agents sharing a modality set (and architectures)."""

    modalities: list[str] = Field(min_length=1)
    """Sensors of these agents, e.g. [image] or [image, audio]. The group label
    in the outputs is these names joined by '+', in this order."""
    count: int = Field(ge=1, le=100_000)
    """Number of agents in the group."""
    archs: dict[str, Annotated[str, AfterValidator(_known_arch)]] = Field(default_factory=dict)
    """Encoder architecture per modality (overrides model.archs), e.g. {image: cnn}."""
    name: Optional[str] = None
    """Label of the group in tables and plots; default: the modalities joined by '+'."""

    @field_validator("modalities")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return check_modality_names(v)

    @property
    def label(self) -> str:
        return self.name or "+".join(self.modalities)


class AgentsConfig(StrictModel):
    groups: list[AgentGroup] = Field(
        default_factory=lambda: [
            AgentGroup(modalities=["image"], count=3),
            AgentGroup(modalities=["audio"], count=3),
            AgentGroup(modalities=["image", "audio"], count=2),
        ],
        min_length=1,
    )
    """Agent groups; agents are numbered 0..n-1 in group order."""
    common_init: bool = True
    """Start every agent from the same initial parameters (as D-PSGD assumes); false: each its own."""


class TrainConfig(StrictModel):
    local_steps: int = Field(default=10, ge=0, le=100_000)
    """Local SGD steps per round (sync) or per cycle (async)."""
    batch_size: int = Field(default=32, ge=1, le=65_536)
    """Minibatch size of each local step."""


def _on_off(v):
    """YAML 1.1 reads a bare on/off as a boolean: take it as the word."""
    return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class EngineConfig(StrictModel):
    backend: Literal["ray", "inline"] = "ray"
    """'ray': agents in Ray actors (AgentHost); 'inline': the same agent code in-process."""
    hosts: Optional[int] = Field(default=None, ge=1, le=4096)
    """Number of AgentHost actors; default one per CPU (capped by the agent count)."""
    torch_threads: int = Field(default=1, ge=1, le=256)
    """torch threads per host for agent math; results are bit-identical only for a fixed value."""
    ray_address: Optional[str] = None
    """Join an existing Ray cluster ('auto' or HOST:PORT) instead of starting a local one."""
    batched_stepping: Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)] = "auto"
    """Agents of one architecture on a host, due to train at the same virtual instant,
    take their SGD steps as one stacked (vmap-ed) computation. Results are the per-agent
    ones bit for bit: each new kind of agent is probed once (copies stepped both ways,
    compared exactly) and stepped one by one where they differ (today: cnn and conv1d
    encoders). 'auto': batched where exact and where the probe times it faster (groups of
    eight agents up); 'on': wherever exact; 'off': never (YAML's bare on/off, read as
    true/false, mean the same)."""
    compute_time: Literal["cost", "measured"] = "cost"
    """'cost': virtual compute time from the cost model (steps x batch x cost per sample /
    speed): reproducible. 'measured': the wall time each local phase really took, divided
    by the agent's speed. NOT reproducible (it varies with the machine and its load);
    sync protocol only."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where agents train: 'auto' uses a GPU when Ray reports one (results then differ from CPU bits)."""
    checkpoint_every: int = Field(default=1, ge=0)
    """Ray: snapshot agent state into the object store every this many rounds; a host that
    dies is restarted from the last snapshot and the calls since are replayed. 0 turns it off."""
    ray_timeout_s: float = Field(default=300.0, gt=0)
    """Ray: the longest any wait on the hosts may go without a result arriving; then the run
    ends with a one-line error, its tables and a checkpoint (exit 1). Raise it when one host
    call (a local training phase) can legitimately take longer."""
    restart_timeout_s: float = Field(default=30.0, gt=0)
    """Ray: how long a lost host's replacement actor may take to start (and a host to answer a
    liveness check) before its agents are re-placed on a surviving host instead."""


class OutputConfig(StrictModel):
    log_messages: bool = True
    """Write one `message` event per message to events.jsonl (tables stay exact when off)."""
    plots: bool = True
    """Write PNG plots into plots/."""
    checkpoint_every: int = Field(default=10, ge=0)
    """Write checkpoint.pt (for `parse-sim run --resume`) every this many rounds; a stop by
    SIGINT/SIGTERM always writes one. 0: only on a stop."""
    slice_drop: Literal["off", "final", "every"] = "final"
    """Also evaluate every agent with the red, uni or syn logits removed (slice_drop.csv)."""
    gradient_conflict_every: int = Field(default=1, ge=0)
    """Every this many rounds, record the uni- vs multimodal update conflict per shared
    branch (conflict.csv); 0 turns it off."""
    final_weights_max_mb: float = Field(default=64.0, ge=0)
    """After a complete run, write the agents' final parameters to final_weights.pt (what
    `parse-sim audit` reads) unless the file would exceed this many MB (10^6 bytes); above it,
    or at 0, nothing is written and the skip is logged. Set 0 in big sweeps to save disk."""
    pid_audit: bool = False
    """After a complete run, audit what each learned slice carries (`parse-sim audit`):
    pid_audit.csv, pid_audit.json, plots/pid_audit_<group>.png; its wall time is reported
    apart from the simulation's (summary.json `audit_wall_s`). Needs final_weights.pt."""


class Scenario(StrictModel):
    """A PARSE simulation: who the agents are, what they learn, over which network."""

    name: str = Field(default="scenario", min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name; the default run directory is runs/<name>-<timestamp>/."""
    description: str = ""
    """Free text kept with the run."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Root of the seed tree every random draw comes from."""
    method: str = "parse"
    """Sharing method: parse, local, dsgd_full, dsgd_modality, dsgd_task, dsgd_hybrid, harmony, or a parse ablation."""
    base_dir: Optional[str] = None
    """Directory relative file paths resolve against; default: the scenario file's directory."""
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in METHODS:
            hint = difflib.get_close_matches(v, METHODS, n=1) if len(v) <= 200 else []
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(f"expected one of {', '.join(METHODS)}, got {_fmt_value(v)}{extra}")
        return v

    @model_validator(mode="after")
    def _agent_limit(self) -> "Scenario":
        if self.n_agents > 100_000:
            raise ValueError(f"at most 100000 agents, got {self.n_agents}")
        return self

    # -- derived views ---------------------------------------------------
    @property
    def n_agents(self) -> int:
        return sum(g.count for g in self.agents.groups)

    def agent_groups(self) -> list[AgentGroup]:
        """The group of every agent, in agent-id order."""
        return [g for g in self.agents.groups for _ in range(g.count)]
