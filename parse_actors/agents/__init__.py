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

from parse_actors.lazy import lazy_names

# Names are imported on first use (PEP 562): the scenario schema, the policies and
# the coordinator's bookkeeping need no torch, and validating a scenario (or a Ray
# driver, while Ray starts) should not pay for importing it.
_WHERE = {
    "Agent": "agent", "AgentSpec": "agent",
    "Incoming": "aggregation", "mixing_weights": "aggregation",
    "ARCHS": "archs", "build_encoder": "archs",
    "KINDS": "branches", "BranchInfo": "branches", "capability_nbytes": "branches", "modalities_of": "branches",
    "payload_nbytes": "branches", "prioritize": "branches",
    "AggregationConfig": "config", "LossConfig": "config", "ModelConfig": "config", "OptimConfig": "config",
    "SliceRatio": "config", "SliceWeights": "config",
    "gradient_conflict": "conflict",
    "accepted": "exchange", "accepts": "exchange", "plan_exchange": "exchange",
    "METHOD_SPECS": "methods", "METHODS": "methods", "MethodSpec": "methods", "make_policy": "methods",
    "method_spec": "methods",
    "SharingPolicy": "policies",
}

__getattr__ = lazy_names(__name__, _WHERE)

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
