"""What the coordinator may ask of a host: one typed request per `AgentHost` method.

A request names its fields; the channel (hosts.py) sends it as the host
method's positional arguments, payload references last and top-level (the
only place Ray resolves references), and the host rebuilds the request from
them where it needs to read one (`AgentHost.run_batch`). Plain dataclasses,
no dependencies: every Ray actor imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Request:
    method: ClassVar[str]
    """The AgentHost method that serves it."""
    returns: ClassVar[int] = 1
    """How many values the call returns (separate references on Ray)."""
    in_dry: ClassVar[bool] = False
    """Sent while finished periods are replayed dry on resume (otherwise skipped)."""
    trains: ClassVar[bool] = False
    """Starts with `steps` local SGD steps of agent `aid` (batched stepping groups these)."""
    varargs: ClassVar[str | None] = None
    """The field holding a tuple of payload references, sent as trailing arguments."""

    def args(self) -> tuple:
        """The host method's positional arguments."""
        out = [getattr(self, f.name) for f in fields(self) if f.name != self.varargs]
        return (*out, *getattr(self, self.varargs)) if self.varargs else tuple(out)

    @classmethod
    def from_args(cls, args: tuple) -> "Request":
        names = [f.name for f in fields(cls) if f.name != cls.varargs]
        kw = dict(zip(names, args))
        if cls.varargs:
            kw[cls.varargs] = tuple(args[len(names):])
        return cls(**kw)


@dataclass(frozen=True)
class AddAgents(Request):
    method = "add_agents"
    items: list  # (AgentSpec, AgentData, Agent keyword arguments) per agent


@dataclass(frozen=True)
class SetEvalData(Request):
    method = "set_eval_data"
    data: Any  # the common test set, or a reference to it


@dataclass(frozen=True)
class TrainAndExport(Request):
    method = "train_and_export"
    returns = 2
    trains = True
    aid: int
    steps: int
    batch_size: int
    keys: list


@dataclass(frozen=True)
class ExchangeSpec:
    """What a compressed or change-tracked export needs besides the keys."""

    codecs: dict  # kind -> codec string
    seed: int
    exchange: int  # the sender's round or cycle (seeds the naive codecs' randomness)
    choco: list  # [neighbour, key] of each CHOCO difference to make, in sending order
    seq0: int  # the first of their message numbers
    outcomes: list  # [seq, delivered] of earlier CHOCO messages, in resolution order
    sent: list  # priority change: [neighbour, key] of what goes out


@dataclass(frozen=True)
class TrainAndExchange(Request):
    method = "train_and_exchange"
    returns = 2
    trains = True
    aid: int
    steps: int
    batch_size: int
    keys: list
    spec: ExchangeSpec


@dataclass(frozen=True)
class MergeEntry:
    """One export to merge from: which of its branches, and the sender's degree on each."""

    sender: int
    round: int  # the sender's round or cycle: which export
    keys: list
    degree: dict
    payload: int = -1  # merge_exchange: the index of its payload among the call's payloads


@dataclass(frozen=True)
class Aggregate(Request):
    method = "aggregate"
    varargs = "payloads"
    aid: int
    rnd: int
    staleness: int | None  # rounds an entry may lag rnd; None: bounded by the protocol already
    my_degree: dict
    metas: list  # a MergeEntry per payload
    payloads: tuple = field(default=())


@dataclass(frozen=True)
class MergeSpec:
    """The compressed merge's CHOCO part and its staleness bound."""

    choco: list  # [sender, key, payload index, degree, seq] in delivery order
    steps: dict  # key -> neighbours of one consensus step
    outcomes: list
    seed: int
    gammas: dict  # key -> CHOCO step size
    only_fresh: bool
    staleness: int | None


@dataclass(frozen=True)
class MergeExchange(Request):
    method = "merge_exchange"
    varargs = "payloads"
    aid: int
    rnd: int
    my_degree: dict
    metas: list  # MergeEntry list (each naming its payload's index)
    spec: MergeSpec
    payloads: tuple = field(default=())


@dataclass(frozen=True)
class BranchChanges(Request):
    method = "branch_changes"
    aid: int
    plan: dict


@dataclass(frozen=True)
class Evaluate(Request):
    method = "evaluate"
    aid: int
    drop_kinds: tuple = ()


@dataclass(frozen=True)
class Capabilities(Request):
    method = "capabilities"
    aid: int


@dataclass(frozen=True)
class SetModalities(Request):
    method = "set_modalities"
    in_dry = True  # sensor changes are replayed: the agents' shapes must match the checkpoint
    aid: int
    modalities: list


@dataclass(frozen=True)
class LastUpdate(Request):
    method = "last_update"
    aid: int
    keys: list | None = None


@dataclass(frozen=True)
class Stepping(Request):
    method = "stepping"


@dataclass(frozen=True)
class Restore(Request):
    method = "restore"
    states: dict


REQUESTS: dict[str, type[Request]] = {c.method: c for c in (
    AddAgents, SetEvalData, TrainAndExport, TrainAndExchange, Aggregate, MergeExchange, BranchChanges, Evaluate,
    Capabilities, SetModalities, LastUpdate, Stepping, Restore)}
