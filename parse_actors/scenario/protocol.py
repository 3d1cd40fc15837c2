"""The `protocol:` section of a scenario, and the size check a run and `parse-sim
validate` share.

`ExchangeConfig` holds how branches are exchanged (per-link payload budgets,
priorities, compression, CHOCO step sizes); `ProtocolConfig` adds when (mode,
rounds, evaluation, barrier deadline). `check_payload_budget` is the one rule a
byte budget must meet (every branch of every agent, and its capability message,
fits one exchange with the header): the run applies it to the capabilities its
agents report, `check_protocol_sizes` (validate) to capabilities computed from
the model's shapes, built on torch's meta device (no weights allocated), so both
refuse the same scenarios with the same message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Optional, Union

from pydantic import Field, field_validator

from parse_actors.agents.budget import DEFAULT_PRIORITY, Kind, check_fits
from parse_actors.agents.compression import Codec
from parse_actors.errors import ScenarioError
from parse_actors.schema import StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from parse_actors.agents import BranchInfo


class SecondsBudget(StrictModel):
    """A budget in time: what the link carries in `seconds` at its rate when the exchange is sent."""

    seconds: float = Field(gt=0, le=1e6)
    """Seconds of the link's rate at send time (a bandwidth trace changes the budget)."""

    def nbytes(self, rate_bps: float) -> int:
        return int(math.floor(self.seconds * rate_bps / 8.0))


class TopK(StrictModel):
    """Keep the largest-magnitude fraction of each tensor's coordinates."""

    topk: float = Field(gt=0, le=1)
    """Fraction of coordinates kept, e.g. 0.01."""

    def codec(self) -> Codec:
        return Codec("topk", self.topk)


class RandK(StrictModel):
    """Keep a seeded random fraction of each tensor's coordinates."""

    randk: float = Field(gt=0, le=1)
    """Fraction of coordinates kept, drawn from the seed tree."""

    def codec(self) -> Codec:
        return Codec("randk", self.randk)


CompressionSpec = Union[Literal["none", "fp16", "int8"], TopK, RandK]


class ExchangeConfig(StrictModel):
    """Budgets, priorities and compression of branch exchanges (fields of `protocol:`)."""

    payload_budget: Optional[Union[int, SecondsBudget]] = Field(default=None)
    """Bytes one directed link may carry per exchange (sync round or async cycle), headers
    included: an integer, or {seconds: S} for what the link carries in S seconds at its rate
    at send time. None: no bound."""
    priority: Union[Literal["staleness", "change"], list[Kind]] = list(DEFAULT_PRIORITY)
    """Which branches go first when the budget is short: a kind order (kinds left out go last,
    in the default order), 'staleness' (sent longest ago to that neighbour first) or 'change'
    (moved most since last sent to that neighbour first)."""
    defer_limit: int = Field(default=4, ge=0, le=1_000_000)
    """A branch deferred this many exchanges in a row jumps ahead of every priority (oldest
    first): a branch that fits the budget is then deferred at most max(defer_limit, 1) + N - 1
    times in a row, N = branches on the link."""
    compression: dict[Kind, CompressionSpec] = {}
    """Codec per kind: none, fp16, int8, {topk: F} or {randk: F}, e.g. {encoder: {topk: 0.01}, red: fp16}.
    Kinds left out go uncompressed."""
    compressed_averaging: Literal["choco", "naive"] = "choco"
    """With a lossy codec: 'choco' (CHOCO-gossip: public copies and compressed differences,
    keeps consensus) or 'naive' (average the decompressed weights; a baseline that does not)."""
    choco_gamma: Optional[float] = Field(default=None, gt=0, le=1)
    """CHOCO consensus step size: x += gamma * sum_j w_ij (x_hat_j - x_hat_i). None: by the
    kind's codec (1 for none/fp16/int8, 3 x fraction for top-k, the fraction for rand-k:
    larger steps diverge under strong compression)."""

    @field_validator("payload_budget", mode="before")
    @classmethod
    def _positive(cls, v):
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError("payload_budget must be a positive number of bytes, {seconds: S} or null")
        return v

    @field_validator("priority")
    @classmethod
    def _unique(cls, v):
        if isinstance(v, list):
            dup = sorted({k for k in v if v.count(k) > 1})
            if dup:
                raise ValueError(f"priority lists {dup} more than once")
            if not v:
                raise ValueError("priority: an empty list; leave it out for the default order")
        return v

    def codec_of(self, kind: str) -> Codec:
        spec = self.compression.get(kind, "none")
        return spec.codec() if hasattr(spec, "codec") else Codec(spec)

    def gamma_of(self, kind: str) -> float:
        """The CHOCO step size for a kind's branches."""
        if self.choco_gamma is not None:
            return self.choco_gamma
        from parse_actors.agents.choco import auto_gamma

        return auto_gamma(self.codec_of(kind))

    def lossy(self) -> bool:
        return any(self.codec_of(k).name != "none" for k in self.compression)


class ProtocolConfig(ExchangeConfig):
    mode: Literal["sync", "async"] = "sync"
    """Gossip protocol: 'sync' = rounds with a barrier (D-PSGD style); 'async' = each agent
    loops train -> send -> merge at its own pace."""
    rounds: int = Field(default=15, ge=1, le=1_000_000)
    """Number of gossip rounds (sync), or of evaluation periods of eval_every_s (async)."""
    eval_every: int = Field(default=1, ge=1)
    """sync: evaluate every agent every this many rounds (and always after the last)."""
    send_buffer: Literal["latest", "all"] = "latest"
    """async: 'latest' does not queue a branch for a neighbour while its previous version to
    that neighbour is still in flight (fast agents on thin links send their newest state);
    'all' queues every version."""
    eval_every_s: float = Field(default=1.0, gt=0)
    """async: evaluate every agent every this many virtual seconds; the run lasts rounds x eval_every_s."""
    header_bytes: int = Field(default=64, ge=0, le=65_536)
    """Fixed per-message overhead counted on the wire (ids, round, branch index)."""
    round_timeout_s: Optional[float] = Field(default=None, gt=0)
    """Barrier deadline after a round starts; messages arriving later are merged
    the round after (within aggregation.staleness). None: wait for every message."""


def check_payload_budget(pc: ExchangeConfig, header: int, agents: Iterable[tuple[int, str, Mapping[str, "BranchInfo"]]],
                         file: str | None = None) -> None:
    """A byte budget every branch of every agent (and its capability message) must fit:
    `agents` gives (agent id, group label, capabilities), in agent-id order; the first
    agent that cannot fit is named (ScenarioError at protocol.payload_budget)."""
    budget = pc.payload_budget
    if not isinstance(budget, int):
        return  # none, or {seconds: S}: the link's rate decides at send time
    from parse_actors.agents import capability_nbytes

    codecs = {k: pc.codec_of(k) for k in DEFAULT_PRIORITY}
    for aid, label, caps in agents:
        try:
            check_fits(budget, header, caps, codecs)
        except ValueError as e:
            raise ScenarioError(file, "protocol.payload_budget",
                                f"agent {aid} ({label}): {str(e).split(': ', 1)[1]}") from None
        cap = header + capability_nbytes(caps)
        if cap > budget:
            raise ScenarioError(file, "protocol.payload_budget",
                                f"{budget} bytes cannot carry agent {aid}'s capability message "
                                f"({cap} bytes with the header)")


def capabilities_from_shapes(sc: Any, input_shapes: Mapping[str, tuple], num_classes: int) -> list:
    """(agent id, group label, capabilities) of every agent of `sc` (a Scenario: schema.py
    imports this module) at t=0, as its host would
    report them, from shapes alone: each distinct agent kind's model is built once on
    torch's meta device (parameters have shapes, no storage)."""
    import torch

    from parse_actors.agents.archs import ARCHS
    from parse_actors.agents.methods import resolve
    from parse_actors.agents.model import MODELS

    spec, model_cfg, _ = resolve(sc.method, sc.model, sc.loss)
    gained = sorted({ev.modality for ev in sc.data.schedule if ev.action == "gain"})
    memo: dict[tuple, dict] = {}
    out = []
    for aid, g in enumerate(sc.agent_groups()):
        mods = tuple(m for m in input_shapes if m in g.modalities)  # the dataset's order, as the data builds it
        ever = tuple(m for m in input_shapes if m in g.modalities or m in gained)
        key = (mods, ever, tuple(sorted(g.archs.items())))
        if key not in memo:
            archs = {m: g.archs.get(m) or model_cfg.archs.get(m) or model_cfg.default_arch for m in ever}
            unknown = [a for a in archs.values() if a not in ARCHS]
            if unknown:
                return out  # the agents' own check names it at build time
            with torch.device("meta"):
                net = MODELS[spec.model](model_cfg, int(num_classes), {m: tuple(input_shapes[m]) for m in ever},
                                         archs, 0)
            net.activate(mods)
            memo[key] = {k: net.info(k) for k in net.active_keys()}
        out.append((aid, g.label, memo[key]))
    return out


def check_protocol_sizes(sc: Any, file: str | None = None) -> None:
    """`parse-sim validate`: refuse a byte budget a run would refuse at set-up. Builds
    the dataset's source (no cache written) for its class count and shapes, only when
    protocol.payload_budget is a byte count."""
    if not isinstance(sc.protocol.payload_budget, int):
        return
    from pathlib import Path

    from parse_actors.data import DataError
    from parse_actors.data.registry import build_source

    try:
        src = build_source(sc.data, sc.seed, Path(sc.base_dir or "."))
    except DataError:
        return  # reported by the data checks
    shapes = {m: tuple(int(d) for d in a.shape[1:]) for m, a in src.train.x.items()}
    check_payload_budget(sc.protocol, sc.protocol.header_bytes, capabilities_from_shapes(sc, shapes, src.num_classes),
                         file)
