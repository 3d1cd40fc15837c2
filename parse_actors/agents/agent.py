"""The Agent facade the engine drives: local training, branch export and merge,
evaluation, checkpoints, sensor loss/gain.

All of an agent's randomness comes from its own seed (parameter init per branch,
minibatch order from a private numpy Generator), never from global RNG state,
so agents sharing a process give the same results in any order.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from parse_actors.data.types import ModalData
from parse_actors.names import check_modality_names
from parse_actors.seeding import rng as seed_rng

from .aggregation import Incoming, collect, merge_branch, mixing_weights
from .archs import ARCHS, seconds_per_sample
from .branches import BranchInfo
from .config import AggregationConfig, LossConfig, ModelConfig, OptimConfig
from .losses import fission_terms, mono_terms, resolve_align, term_weights, total_loss
from .methods import resolve
from .sgd import SGD

PAIRINGS = ("instance", "label")
"""How a dataset's modalities are paired: by instance (one event seen by every
sensor) or by label only (e.g. AV digits: an image and a clip of the same digit)."""
from .model import DROP_KINDS, MODELS, BranchModel


@dataclass(frozen=True)
class AgentSpec:
    """Who an agent is: id, the modalities it senses, its encoder per modality
    (missing entries come from `ModelConfig.archs`, then `default_arch`)."""

    agent_id: int
    modalities: tuple[str, ...]
    archs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mods = (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        if not mods:
            raise ValueError("an agent needs at least one modality")
        check_modality_names(mods)
        object.__setattr__(self, "modalities", mods)
        object.__setattr__(self, "archs", dict(self.archs or {}))

    def __hash__(self) -> int:
        return hash((self.agent_id, self.modalities, tuple(sorted(self.archs.items()))))


def _section(cls, value):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    return cls.model_validate(value)


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only arrays (e.g. from an object store) are never written
        warnings.simplefilter("ignore", UserWarning)
        t = torch.as_tensor(a)
    return t.to(device)


class Agent:
    """One learning agent; see the package docstring for the contract."""

    def __init__(
        self,
        spec: AgentSpec,
        input_shapes: Mapping[str, Sequence[int]],
        num_classes: int,
        model: ModelConfig | Mapping | None = None,
        loss: LossConfig | Mapping | None = None,
        optim: OptimConfig | Mapping | None = None,
        aggregation: AggregationConfig | Mapping | None = None,
        method: str = "parse",
        seed: int = 0,
        device: str | torch.device = "cpu",
        init_seed: int | None = None,
        pairing: str = "instance",
    ) -> None:
        """`init_seed` (default `seed`) seeds parameter init, branch by branch: give
        every agent the same one for a common initialisation. `pairing` says how
        the data's modalities are paired ("instance" or "label"); it picks the
        alignment when `loss.align` is `auto` (label -> supcon, instance -> InfoNCE)."""
        if pairing not in PAIRINGS:
            raise ValueError(f"agent {spec.agent_id}: pairing must be one of {PAIRINGS}, got {pairing!r}")
        self.spec = spec
        self.id = spec.agent_id
        self.method = method
        self.seed = int(seed)
        self.pairing = pairing
        self.device = torch.device(device)
        self.method_spec, self.model_cfg, loss_cfg = resolve(
            method, _section(ModelConfig, model), _section(LossConfig, loss)
        )
        self.loss_cfg = loss_cfg.model_copy(update={"align": resolve_align(loss_cfg.align, pairing)})
        self.optim_cfg = _section(OptimConfig, optim)
        self.agg_cfg = _section(AggregationConfig, aggregation)
        self.num_classes = int(num_classes)
        shapes = {m: tuple(int(s) for s in v) for m, v in input_shapes.items()}
        missing = [m for m in spec.modalities if m not in shapes]
        if missing:
            raise ValueError(f"agent {self.id}: no input shape for {missing}")
        archs = {m: self._arch_for(m) for m in shapes}
        extra = {}
        if self.method_spec.model == "fission" and self.loss_cfg.disentangle == "club":
            extra["critic_hidden"] = self.loss_cfg.club_hidden  # local CLUB critics (never exchanged)
        if self.method_spec.model == "fission" and self.loss_cfg.lambda_cross > 0:
            extra["cross_grad"] = self.loss_cfg.cross_backbone_grad
        self.net: BranchModel = MODELS[self.method_spec.model](
            self.model_cfg, self.num_classes, shapes, archs, self.seed if init_seed is None else int(init_seed), **extra
        )
        self.net.activate(spec.modalities)
        self.net.to(self.device)
        self._terms_fn = fission_terms if self.method_spec.model == "fission" else mono_terms
        self._rng = seed_rng(self.seed, "agent", "batches")
        self._perm: np.ndarray | None = None
        self._cursor = 0
        self._snap: dict[str, torch.Tensor] = {}  # reused buffers: no allocation churn per call
        self._update: dict[str, torch.Tensor] = {}
        self._update_keys: list[str] = []
        self._opt = self._new_optimizer()
        self._config_sig = (type(self.net).__name__, self.method, self.num_classes, self.model_cfg.model_dump_json(),
                            self.loss_cfg.model_dump_json(), self.optim_cfg.model_dump_json())
        self._refresh()

    # -- set-up --------------------------------------------------------------------
    def _arch_for(self, m: str) -> str:
        arch = self.spec.archs.get(m) or self.model_cfg.archs.get(m) or self.model_cfg.default_arch
        if arch not in ARCHS:
            raise ValueError(f"agent {self.id}: unknown architecture {arch!r} for {m!r}; known: {sorted(ARCHS)}")
        return arch

    def _all_params(self) -> list[torch.nn.Parameter]:
        return [p for key in sorted(self.net.branches) for p in self.net.branches[key].parameters()]

    def _new_optimizer(self, previous: SGD | None = None) -> SGD:
        """One SGD over every built branch (sorted key order, so checkpoints map back);
        momentum buffers of existing parameters carry over. `sgd.SGD` is
        torch.optim.SGD(foreach=True) bit for bit, without importing torch._dynamo."""
        o = self.optim_cfg
        opt = SGD(self._all_params(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        if previous is not None:
            for p, st in previous.state.items():
                opt.state[p] = st
        return opt

    def _refresh(self) -> None:
        """Recompute what depends on the active modality set (never per step)."""
        self._keys = self.net.active_keys()
        self._named = {k: dict(self.net.branches[k].named_parameters()) for k in self._keys}
        self._caps: dict[str, BranchInfo] = {k: self.net.info(k) for k in self._keys if not self.net.is_local(k)}
        self._cost: float | None = None
        fission = self.method_spec.model == "fission"
        self._weights = term_weights(self.loss_cfg, self.is_multimodal) if fission else {"ce": 1.0}
        # clipped apart: the model's parameters, and the local critics' (their own objective)
        self._clip_params = [p for k in self._keys if not self.net.is_local(k) for p in self._named[k].values()]
        self._local_params = [p for k in self._keys if self.net.is_local(k) for p in self._named[k].values()]
        self._sig: tuple | None = None  # step_signature's fixed part, recomputed on demand

    # -- identity ------------------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        """Active modalities (sorted)."""
        return self.net.mods

    @property
    def is_multimodal(self) -> bool:
        return len(self.net.mods) >= 2

    def capabilities(self) -> dict[str, BranchInfo]:
        """Branch key -> BranchInfo for every branch the active model uses."""
        return dict(self._caps)

    def cost_per_sample(self) -> float:
        """Virtual seconds to train on one sample at speed 1.0 (from layer shapes)."""
        if self._cost is None:
            self._cost = seconds_per_sample(self.net.forward_macs(), self.model_cfg)
        return self._cost

    def num_parameters(self, active_only: bool = True) -> int:
        keys = self._keys if active_only else list(self.net.branches)
        return sum(p.numel() for k in keys for p in self.net.branches[k].parameters())

    # -- training ------------------------------------------------------------------
    def _inputs(self, data: ModalData) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        missing = [m for m in self.net.mods if m not in data.x]
        if missing:
            raise KeyError(f"agent {self.id}: data lacks active modalities {missing}")
        x = {m: _tensor(data.x[m], self.device).float() for m in self.net.mods}
        y = _tensor(data.y, self.device).long()
        return x, y

    def _next_batch(self, n: int, b: int) -> np.ndarray:
        if self._perm is None or len(self._perm) != n or self._cursor + b > n:
            self._perm = self._rng.permutation(n)
            self._cursor = 0
        idx = self._perm[self._cursor : self._cursor + b]
        self._cursor += b
        return idx

    def _flatten_into(self, bufs: dict[str, torch.Tensor]) -> None:
        """Copy each active branch's parameters, flattened, into `bufs[key]` (kept
        across calls, so recording updates allocates nothing on the hot path)."""
        with torch.no_grad():
            for k in self._keys:
                params = [p.reshape(-1) for p in self._named[k].values()]
                buf = bufs.get(k)
                size = sum(p.numel() for p in params)
                if buf is None or buf.numel() != size:
                    buf = bufs[k] = torch.empty(size, dtype=params[0].dtype, device=params[0].device)
                torch.cat(params, out=buf)

    def train_steps(self, data: ModalData, steps: int, batch_size: int) -> dict:
        """`steps` SGD steps on minibatches of `data` (shuffled epochs from the
        agent's own RNG). Returns the mean total loss, the mean of each loss
        term, and the number of samples processed; records each branch's change
        for `last_update`."""
        n = len(data)
        if steps <= 0 or n == 0:
            self._flatten_into(self._update)
            for k in self._keys:
                self._update[k].zero_()
            self._update_keys = list(self._keys)
            return {"loss": 0.0, "terms": {}, "samples": 0}
        x, y, b = self._start_training(data, batch_size)
        net, opt, cfg, weights, terms_fn = self.net, self._opt, self.loss_cfg, self._weights, self._terms_fn
        clip = self.optim_cfg.clip_grad_norm
        sums = None
        names: list[str] = []
        for _ in range(int(steps)):
            idx = torch.from_numpy(self._next_batch(n, b)).to(self.device)
            xb = {m: t.index_select(0, idx) for m, t in x.items()}
            yb = y.index_select(0, idx)
            terms = terms_fn(net(xb), yb, cfg, True)
            total = total_loss(terms, weights)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(self._clip_params, clip, foreach=True)
                if self._local_params:
                    torch.nn.utils.clip_grad_norm_(self._local_params, clip, foreach=True)
            opt.step()
            vals = [total.detach(), *(t.detach() for t in terms.values())]
            if sums is None:
                sums, names = [v.clone() for v in vals], list(terms)
            else:
                torch._foreach_add_(sums, vals)  # one op, no allocation
            del xb, yb, terms, total, vals  # free this batch before the next is allocated
        return self._finish_training(torch.stack(sums), names, steps, b)

    def _start_training(self, data: ModalData, batch_size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
        """What every training phase starts with (here and in `batched`): inputs as
        tensors, the minibatch size, a snapshot for `last_update`, train mode."""
        x, y = self._inputs(data)
        b = max(1, min(int(batch_size), len(data)))
        self._flatten_into(self._snap)
        self._mode(training=True)
        return x, y, b

    def _finish_training(self, sums: torch.Tensor, names: Sequence[str], steps: int, b: int) -> dict:
        """What every training phase ends with: each branch's change for
        `last_update`, and the stats from `sums` (the total loss then each term in
        `names`, summed over the steps)."""
        self._flatten_into(self._update)
        for k in self._keys:
            self._update[k].sub_(self._snap[k])
        self._update_keys = list(self._keys)
        means = (sums / steps).tolist()
        return {"loss": means[0], "terms": dict(zip(names, means[1:])), "samples": int(steps) * b}

    def step_signature(self, n: int, batch_size: int) -> tuple | None:
        """Agents whose signatures are equal can take their SGD steps as one batch
        (`batched.py`): same network and losses, same active modalities, encoders and
        input shapes, same minibatch size, momentum buffers held for the same
        parameters. None when there is nothing to batch (no data)."""
        if n <= 0:
            return None
        if self._sig is None:
            mods = self.net.mods
            self._sig = (self._config_sig, mods, tuple(self.net.archs[m] for m in mods),
                         tuple(self.net.input_shapes[m] for m in mods), str(self.device))
        state = self._opt.state
        return (*self._sig, max(1, min(int(batch_size), n)),
                tuple(p in state for p in (*self._clip_params, *self._local_params)))

    def last_update(self, keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Flattened parameter change of each branch over the last `train_steps`."""
        done = self._update_keys
        wanted = done if keys is None else [k for k in keys if k in done]
        return {k: self._update[k].clone() for k in wanted}

    # -- exchange -------------------------------------------------------------------
    def export(self, keys: Iterable[str]) -> dict[str, dict[str, torch.Tensor]]:
        """Detached CPU copies of each branch's parameters."""
        out = {}
        for k in keys:
            if k not in self.net.branches:
                raise KeyError(f"agent {self.id} holds no branch {k!r}")
            out[k] = {n: p.detach().to("cpu", copy=True) for n, p in self.net.branches[k].named_parameters()}
        return out

    def aggregate(
        self, incoming: Sequence[Incoming], my_degree: Mapping[str, int], round: int,
        staleness: int | None | str = "config",
    ) -> dict:
        """Average each branch over self and the neighbours that sent it (fresh
        enough, same names and shapes). `round` is the receiver's round for the
        staleness bound; what the receiver's policy accepts from each sender was
        checked before (engine/exchange.py, on receipt). `staleness`: rounds an entry may lag
        `round` ('config': aggregation.staleness; None: no bound here, the caller
        applied its own, e.g. async gossip in virtual time, where a sender's round
        is its own cycle and says nothing about the receiver's). Returns counts of
        what was merged and ignored."""
        per_key, stale = collect(incoming, round, self.agg_cfg.staleness if staleness == "config" else staleness)
        merged = entries = unknown = mismatched = 0
        for key, got in per_key.items():
            params = self._named.get(key)
            if params is None:
                unknown += len(got)
                continue
            ok = []
            for sender, inc in got:
                tensors = inc.branches[key]
                if tensors.keys() == params.keys() and all(tensors[n].shape == p.shape for n, p in params.items()):
                    ok.append(inc)
                else:
                    mismatched += 1
            if not ok:
                continue
            d_i = int(my_degree.get(key, len(ok)))
            self_w, ws = mixing_weights(d_i, [int(inc.degree.get(key, d_i)) for inc in ok], self.agg_cfg.weights)
            merge_branch(params, [inc.branches[key] for inc in ok], self_w, ws)
            merged += 1
            entries += len(ok)
        return {
            "branches_merged": merged,
            "entries_merged": entries,
            "stale_ignored": stale,
            "unknown_ignored": unknown,
            "mismatched_ignored": mismatched,
        }

    # -- evaluation ------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: ModalData, drop_kind: str | None = None, batch_size: int = 512) -> tuple[float, float]:
        """(accuracy, mean CE) of the prediction (`loss.prediction`); with `drop_kind` the logits of
        that slice kind are left out (a kind the model lacks removes nothing,
        e.g. `syn` for a unimodal agent or any kind for a monolithic model)."""
        if drop_kind is not None and drop_kind not in DROP_KINDS:
            raise ValueError(f"drop_kind must be None or one of {DROP_KINDS}, got {drop_kind!r}")
        n = len(data)
        if n == 0:
            return math.nan, math.nan
        x, y = self._inputs(data)
        self._mode(training=False)
        correct = 0
        loss = 0.0
        w, mode = self.loss_cfg.logit_weights, self.loss_cfg.prediction
        for s in range(0, n, batch_size):
            logits = self.net({m: t[s : s + batch_size] for m, t in x.items()}).prediction(w, drop_kind, mode)
            yb = y[s : s + batch_size]
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        return correct / n, loss / n

    def _mode(self, training: bool) -> None:
        """Train or eval mode, switched only when it changes: a switch walks every
        module in Python (at 1,000 agents, switching there and back around each of
        a round's three evaluations cost about a tenth of the engine's time), so
        training and evaluation each set the mode they need and leave it."""
        if self.net.training != training:
            self.net.train(training)

    # -- sensors ---------------------------------------------------------------------
    def set_modalities(self, mods: Iterable[str], input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[str]:
        """Sensor loss/gain: only `mods` are used from now on. Branches of a lost
        modality are kept (masked: no gradient, not advertised) for when it
        returns; a new modality gets its branches built with their deterministic
        init. Returns the keys built."""
        mods = tuple(sorted(set(mods)))
        if not mods:
            raise ValueError("an agent needs at least one modality")
        for m, shape in (input_shapes or {}).items():
            shape = tuple(int(s) for s in shape)
            old = self.net.input_shapes.get(m)
            if old is not None and old != shape:
                raise ValueError(f"modality {m!r} already has input shape {old}, not {shape}")
            self.net.input_shapes[m] = shape
        for m in mods:
            if m not in self.net.input_shapes:
                raise ValueError(f"agent {self.id}: no input shape for new modality {m!r}")
            self.net.archs.setdefault(m, self._arch_for(m))
        new = self.net.ensure(mods)
        self.net.activate(mods)
        if new:
            self._opt = self._new_optimizer(self._opt)
        self._update_keys = [k for k in self._update_keys if k in self.net.plan(mods)]
        self._refresh()
        return new

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly: parameters of every built branch,
        optimizer state, RNG state, batch order, active modalities."""
        return {
            "format": 1,
            "method": self.method,
            "agent_id": self.id,
            "modalities": list(self.net.mods),
            "input_shapes": {m: list(s) for m, s in self.net.input_shapes.items()},
            "archs": dict(self.net.archs),
            "keys": sorted(self.net.branches),
            "model": {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()},
            "optim": copy.deepcopy(self._opt.state_dict()),
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "perm": None if self._perm is None else self._perm.copy(),
            "cursor": self._cursor,
            "last_update": {k: self._update[k].to("cpu", copy=True) for k in self._update_keys},
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        if sd.get("method") != self.method:
            raise ValueError(f"checkpoint of method {sd.get('method')!r} loaded into a {self.method!r} agent")
        for m, s in sd["input_shapes"].items():
            self.net.input_shapes[m] = tuple(s)
        self.net.archs.update(sd["archs"])
        for key in sd["keys"]:
            if key not in self.net.branches:
                self.net.build(key)
        extra = set(self.net.branches) - set(sd["keys"])
        if extra:
            raise ValueError(f"agent has branches the checkpoint lacks: {sorted(extra)}")
        self.net.load_state_dict(sd["model"])
        self.net.activate(sd["modalities"])
        self._opt = self._new_optimizer()
        self._opt.load_state_dict(copy.deepcopy(sd["optim"]))
        self._rng.bit_generator.state = copy.deepcopy(sd["rng"])
        self._perm = None if sd["perm"] is None else np.array(sd["perm"], copy=True)
        self._cursor = int(sd["cursor"])
        self._update = {k: v.to(self.device, copy=True) for k, v in sd["last_update"].items()}
        self._update_keys = sorted(self._update)
        self._refresh()

    def __repr__(self) -> str:
        return f"Agent(id={self.id}, method={self.method!r}, modalities={self.net.mods})"
