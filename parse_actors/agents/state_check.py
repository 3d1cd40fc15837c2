"""Whether a saved agent state (`Agent.state_dict()`, read from a checkpoint) is
one the scenario's agent can take back: every field with its type, every branch
the agent builds at set-up (plus only branches it could have built since, on a
modality gained), every parameter with the shape the scenario gives it, an
optimizer state that maps onto those parameters, and the extras its host keeps
with it (CHOCO gossip state, change tracker: loaded into fresh objects).

Checked against a freshly built agent of the same scenario before a resume
starts anything (engine/resume_checks.py), so a damaged or foreign state is one
line naming the agent, instead of a host error mid-run or, worse, an agent
silently back at its initial weights. The agent used as the reference is not
changed.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping

import numpy as np
import torch

FIELDS: dict[str, tuple[type, ...]] = {
    "format": (int,), "method": (str,), "agent_id": (int,), "modalities": (list,), "input_shapes": (dict,),
    "archs": (dict,), "keys": (list,), "model": (dict,), "optim": (dict,), "rng": (dict,),
    "perm": (type(None), np.ndarray), "cursor": (int,), "last_update": (dict,),
}
"""What `Agent.state_dict()` holds, with the types `load_state_dict` reads."""


class StateCheck:
    """The reference for the saved states of one kind of agent (same modalities,
    architectures, input shapes, method): built once, then `problem(sd, aid)` per agent."""

    def __init__(self, agent: Any):
        self.agent = agent
        net = agent.net
        self.setup_keys = set(net.branches)
        mods = sorted(net.input_shapes)
        self.possible = set()  # every key a modality subset of this agent could need
        for k in range(1, len(mods) + 1):
            for sub in combinations(mods, k):
                self.possible |= set(net.plan(sub))
        self._layouts: dict[str, tuple[dict, list]] = {}

    def layout(self, key: str) -> tuple[dict, list]:
        if key not in self._layouts:
            self._layouts[key] = self.agent.net.branch_layout(key)
        return self._layouts[key]

    def problem(self, sd: Any, aid: int, n_train: int) -> str | None:
        """Why `sd` cannot be agent `aid`'s state (`n_train`: its training samples), in a
        few words; None when it can."""
        a = self.agent
        if not isinstance(sd, Mapping):
            return f"expected a mapping, got {type(sd).__name__}"
        for name, types in FIELDS.items():
            if name not in sd:
                return f"no {name!r}"
            v = sd[name]
            if not isinstance(v, types) or (isinstance(v, bool) and int in types):
                return f"{name}: expected {' or '.join(t.__name__ for t in types)}, got {type(v).__name__}"
        if sd["format"] != 1:
            return f"format {sd['format']}, expected 1"
        if sd["agent_id"] != aid:
            return f"holds agent {sd['agent_id']}'s state"
        if sd["method"] != a.method:
            return f"a {sd['method']!r} agent's state, the scenario's method is {a.method!r}"
        shapes = {m: list(s) for m, s in a.net.input_shapes.items()}
        if {m: list(s) if isinstance(s, (list, tuple)) else s for m, s in sd["input_shapes"].items()} != shapes:
            return f"input shapes {sd['input_shapes']}, the scenario's data gives {shapes}"
        if sd["archs"] != a.net.archs:
            return f"architectures {sd['archs']}, the scenario builds {a.net.archs}"
        mods = sd["modalities"]
        if not mods or not all(isinstance(m, str) and m in shapes for m in mods):
            return f"modalities {mods}: expected some of {sorted(shapes)}"
        keys = sd["keys"]
        if not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
            return "keys: expected distinct branch names"
        missing = sorted(self.setup_keys - set(keys))
        if missing:
            return f"no state for branch {', '.join(missing)} (the scenario builds it)"
        foreign = sorted(set(keys) - self.possible)
        if foreign:
            return f"branch {', '.join(foreign)}: not one this agent can have"
        return (self._tensors(sd, keys) or self._optim(sd["optim"], keys) or self._batches(sd, n_train)
                or self._extras(sd, aid))

    def _tensors(self, sd: Mapping, keys: list[str]) -> str | None:
        expected: dict[str, tuple] = {}
        for key in keys:
            expected.update({f"branches.{key}.{n}": e for n, e in self.layout(key)[0].items()})
        model = sd["model"]
        for name, (shape, dtype) in expected.items():
            t = model.get(name)
            if t is None:
                return f"no tensor {name}"
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape or t.dtype != dtype:
                got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
                return f"{name}: shape {got}, the scenario builds {shape} {dtype}"
        extra = sorted(set(model) - set(expected))
        if extra:
            return f"tensor {extra[0]} of no branch in its keys"
        for k, v in sd["last_update"].items():
            if k not in keys or not isinstance(v, torch.Tensor):
                return f"last_update: {k!r} is not a branch's update"
        return None

    def _optim(self, opt: Mapping, keys: list[str]) -> str | None:
        params = [s for key in sorted(keys) for s in self.layout(key)[1]]  # Agent._all_params' order
        groups, state = opt.get("param_groups"), opt.get("state")
        if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict) \
                or not isinstance(state, dict):
            return "optim: expected one parameter group and a state mapping"
        if groups[0].get("params") != list(range(len(params))):
            return f"optim: a group over {len(groups[0].get('params') or [])} parameters, the branches have " \
                   f"{len(params)}"
        for i, st in state.items():
            if not isinstance(i, int) or not 0 <= i < len(params) or not isinstance(st, dict):
                return f"optim: state of parameter {i!r}, expected 0..{len(params) - 1}"
            buf = st.get("momentum_buffer")
            if buf is not None and (not isinstance(buf, torch.Tensor) or tuple(buf.shape) != params[i]):
                got = tuple(buf.shape) if isinstance(buf, torch.Tensor) else type(buf).__name__
                return f"optim: momentum of parameter {i} has shape {got}, the parameter {params[i]}"
        return None

    @staticmethod
    def _extras(sd: Mapping, aid: int) -> str | None:
        """What AgentHost.checkpoint adds: loaded as AgentHost.restore would."""
        from .budget import ChangeTracker
        from .choco import ChocoGossip

        def choco(st):
            ChocoGossip(aid).load_state_dict(st["gossip"])
            {(int(j), str(k)): int(d) for j, k, d in st["degrees"]}

        for name, load in (("choco", choco), ("change", lambda st: ChangeTracker().load_state_dict(st))):
            if name not in sd:
                continue
            try:
                load(sd[name])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
                what = f"no {e.args[0]!r}" if isinstance(e, KeyError) and e.args else (str(e) or type(e).__name__)
                return f"{name}: cannot be loaded ({what.splitlines()[0][:200]})"
        return None

    def _batches(self, sd: Mapping, n_train: int) -> str | None:
        """The minibatch RNG and order (a wrong permutation would index outside the data)."""
        gen = type(self.agent._rng.bit_generator)()
        try:
            gen.state = sd["rng"]
        except (TypeError, ValueError, KeyError) as e:
            return f"rng: not a {type(gen).__name__} state ({e})"
        perm, cursor = sd["perm"], sd["cursor"]
        if perm is not None and (perm.ndim != 1 or perm.dtype.kind not in "iu"):
            return "perm: expected a 1-d integer array"
        if perm is not None and len(perm) == n_train and not np.array_equal(np.sort(perm), np.arange(n_train)):
            return f"perm: not an order of the agent's {n_train} training samples"
        if cursor < 0 or (perm is not None and cursor > len(perm)):
            return f"cursor {cursor} outside the batch order"
        return None
