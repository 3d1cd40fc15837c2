"""PARSE learning agents in plain torch (no Ray, no SimPy).

An `Agent` holds a network made of named branches (encoders, fission slices,
heads, fusion), trains it locally, exports the branches a sharing policy picks
for each neighbour and merges what neighbours sent, branch by branch. The
engine drives it; everything here is deterministic given the agent's seed.

    spec = AgentSpec(agent_id=3, modalities=("image", "audio"), archs={"image": "cnn"})
    agent = Agent(spec, input_shapes={"image": (1, 8, 8), "audio": (20, 16)}, num_classes=10,
                  method="parse", seed=1234)

Modules: config (scenario sections), archs (encoder registry, cost model),
branches (keys, kinds, signatures), model (fission and monolithic networks),
losses, policies (what goes to whom), exchange (the one exchange plan: what is
sent to each neighbour, degrees, the check on receipt), methods (method ->
network, loss overrides, policy), aggregation (per-branch gossip averaging),
conflict (gradient-conflict instrument), agent (the facade).
"""

from .agent import Agent, AgentSpec
from .aggregation import Incoming, mixing_weights
from .archs import ARCHS, build_encoder
from .branches import KINDS, BranchInfo, capability_nbytes, modalities_of, payload_nbytes, prioritize
from .config import AggregationConfig, LossConfig, ModelConfig, OptimConfig, SliceRatio, SliceWeights
from .conflict import gradient_conflict
from .exchange import accepted, accepts, plan_exchange
from .methods import METHOD_SPECS, METHODS, MethodSpec, make_policy, method_spec
from .policies import SharingPolicy

__all__ = [
    "ARCHS",
    "KINDS",
    "METHODS",
    "METHOD_SPECS",
    "Agent",
    "AgentSpec",
    "AggregationConfig",
    "BranchInfo",
    "Incoming",
    "LossConfig",
    "MethodSpec",
    "ModelConfig",
    "OptimConfig",
    "SharingPolicy",
    "SliceRatio",
    "SliceWeights",
    "accepted",
    "accepts",
    "build_encoder",
    "capability_nbytes",
    "gradient_conflict",
    "make_policy",
    "method_spec",
    "mixing_weights",
    "modalities_of",
    "payload_nbytes",
    "plan_exchange",
    "prioritize",
]
