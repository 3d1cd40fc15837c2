"""What the engine's parts may ask of the simulation, as typed interfaces.

Protocols see `SimulationAPI`; discovery and resume, which are part of the
coordinator, see `CoordinatorAPI`. Keeping these here (not in coordinator.py)
lets those modules depend on an interface instead of on the coordinator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

from parse_actors.agents import BranchInfo
from parse_actors.engine.messages import BranchMessage

if TYPE_CHECKING:  # pragma: no cover
    import simpy

    from netem import Network
    from parse_actors.engine.hosts import HostChannel
    from parse_actors.engine.requests import Request
    from parse_actors.scenario import Scenario


@dataclass
class AgentView:
    """The coordinator's bookkeeping for one agent (never its tensors)."""

    aid: int
    group: str
    modalities: tuple[str, ...]
    host: int
    capabilities: dict[str, BranchInfo] = field(default_factory=dict)
    cost_per_sample: float = 0.0
    known: dict[int, dict[str, BranchInfo]] = field(default_factory=dict)  # learned from capability messages
    inbox: list[BranchMessage] = field(default_factory=list)
    updates: int = 0  # local training phases done so far

    @property
    def multimodal(self) -> bool:
        return len(self.modalities) > 1


class SimulationAPI(Protocol):
    """What a protocol may ask of the simulation (and nothing else)."""

    sc: "Scenario"
    env: "simpy.Environment"
    net: "Network"
    views: list[AgentView]
    log: Any
    dry: bool
    """Replaying finished periods on resume: host calls are skipped."""
    exchange: Any
    """What goes on each link and what is merged (exchange.Exchange): every protocol drives it."""

    def call(self, host: int, req: "Request") -> Any: ...
    async def get(self, refs: list) -> list: ...
    def send(self, src: int, dst: int, nbytes: int, kind: str, msg: Any) -> Any: ...
    def rediscover(self, agents: list | None = None) -> None: ...
    def online_event(self, aid: int) -> "simpy.Event": ...
    def replay_payload(self, sender: int, rnd: int) -> Any: ...
    def run_until(self, until: Any) -> None: ...
    def periods(self, n: int) -> AsyncIterator[int]: ...
    async def close_period(self, k: int, stats: dict, active: int, evaluate: bool) -> None: ...


class CoordinatorAPI(SimulationAPI, Protocol):
    """The rest of the coordinator's state that discovery and resume work on. The
    backend and the journal are not part of it: they are reached through `hosts`,
    whose `direct()` sends the held calls first."""

    fd: Any  # parse_actors.data.FederatedData
    protocol: Any
    hosts: "HostChannel"
    run_dir: Any
    recorder: Any
    messages: dict[str, int]
    flying: dict[int, BranchMessage]
    round: int

    def intern_caps(self, caps: dict) -> dict: ...
