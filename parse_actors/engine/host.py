"""AgentHost: holds several agents and runs their calls in submission order.

Plain Python; `backends.py` runs it in-process (inline) or as a Ray actor.
Branch payloads come back as return values (Ray object references on the Ray
backend) and the coordinator hands them to other hosts' `aggregate` calls
unchanged, never looking inside. (Ray inlines results under 100 KB into the
reply, so small exports do travel through the driver's memory: about 0.8 GiB
at 1,000 agents.)
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from parse_actors.agents import Agent, AgentSpec, Incoming
from parse_actors.agents.batched import GroupStepper
from parse_actors.agents.budget import ChangeTracker
from parse_actors.agents.choco import ChocoGossip, ChocoMessage, naive_message
from parse_actors.agents.compression import decode, from_plain, parse_codec, to_plain
from parse_actors.data.types import AgentData, ModalData
from parse_actors.engine.batching import run_batch
from parse_actors.engine.requests import REQUESTS, ExchangeSpec, MergeEntry, MergeSpec
from parse_actors.seeding import torch_seed
from parse_actors.tuning import fix_malloc_thresholds


class AgentHost:
    def __init__(self, host_id: int, torch_threads: int = 1, device: str = "cpu", batched_stepping: str = "auto"):
        self.host_id = host_id
        self.torch_threads = torch_threads
        self.device = device
        self.stepper = GroupStepper(batched_stepping)
        self._trained: dict[int, tuple[dict, float]] = {}  # aid -> (stats, seconds) of a training done ahead
        self.agents: dict[int, Agent] = {}
        self.data: dict[int, AgentData] = {}
        self.global_test: ModalData | None = None
        self.choco: dict[int, ChocoGossip] = {}  # CHOCO-gossip state per agent (compressed runs)
        self.choco_deg: dict[int, dict[tuple[int, str], int]] = {}  # last degree heard per (neighbour, key)
        self.trackers: dict[int, ChangeTracker] = {}  # priority: change (what was last sent to whom)
        _set_threads(torch_threads)
        fix_malloc_thresholds()

    def pid(self) -> int:
        return os.getpid()

    # -- set-up ----------------------------------------------------------
    def add_agent(self, spec: AgentSpec, data: AgentData, kwargs: dict) -> dict:
        """Build one agent; returns what the coordinator needs to know of it."""
        with _threads(self.torch_threads):
            agent = Agent(spec, device=self.device, **kwargs)
        self.agents[spec.agent_id] = agent
        self.data[spec.agent_id] = data
        return {
            "agent": spec.agent_id,
            "capabilities": agent.capabilities(),
            "cost_per_sample": agent.cost_per_sample(),
            "n_train": len(data.train),
            "n_test": len(data.test),
        }

    def add_agents(self, items: list[tuple[AgentSpec, AgentData, dict]]) -> list[dict]:
        out = [self.add_agent(*item) for item in items]
        self.stepper.prepare(self.agents.values())  # batched stepping's one-off imports, at start-up
        return out

    def set_eval_data(self, global_test: ModalData) -> None:
        """The common test set every agent is scored on (sent once per host)."""
        self.global_test = global_test

    # -- the round's work --------------------------------------------------
    def run_batch(self, spec: list[tuple[str, int, int]], *flat: Any) -> tuple:
        """Several calls in one (engine/batching.py): `spec` lists (method, number of
        args, number of returns); their args follow, flattened. Every call runs in
        order; at the first of a run of consecutive training calls with the same
        steps and minibatch size (each agent at most once), the run's agents are
        trained together (`agents.batched.GroupStepper`: batched where that gives
        the per-agent results bit for bit), and each call then takes its own result."""
        runs: dict[int, tuple[list[int], int, int]] = {}  # first call's index -> (aids, steps, batch)
        start, key, i = -1, None, 0
        for n, (method, nargs, _) in enumerate(spec):
            args = flat[i:i + nargs]
            i += nargs
            req = REQUESTS[method].from_args(args) if method in REQUESTS and REQUESTS[method].trains else None
            this = (int(req.steps), int(req.batch_size)) if req is not None and int(req.steps) > 0 else None
            if this is None or this != key or int(req.aid) in runs[start][0]:
                start = n
                if this is not None:
                    runs[n] = ([], *this)
            key = this
            if this is not None:
                runs[start][0].append(int(req.aid))
        try:
            return run_batch(self, spec, flat, before=lambda n: n in runs and self._train_ahead(*runs[n]))
        finally:
            self._trained.clear()  # a call that failed leaves nothing for a later one

    def _train_ahead(self, aids: list[int], steps: int, batch_size: int) -> None:
        if len(aids) < 2 or self.stepper.mode == "off":
            return
        t0 = time.perf_counter()
        with _threads(self.torch_threads):
            stats = self.stepper.train([self.agents[a] for a in aids], [self.data[a].train for a in aids], steps,
                                       batch_size)
        per = (time.perf_counter() - t0) / len(aids)
        for a, st in zip(aids, stats):
            self._trained[a] = (st, per)

    def _train(self, aid: int, steps: int, batch_size: int) -> tuple[dict, float]:
        """This call's local SGD: done ahead with its batch (`run_batch`), or now."""
        done = self._trained.pop(aid, None)
        if done is not None:
            return done
        t0 = time.perf_counter()
        if steps <= 0:
            return {"loss": float("nan")}, 0.0
        stats = self.agents[aid].train_steps(self.data[aid].train, steps, batch_size)
        self.stepper.stepped["single"] += 1
        return stats, time.perf_counter() - t0

    def stepping(self) -> dict:
        """How this host's agents were stepped (batched or one by one), per signature."""
        return self.stepper.report()

    def train_and_export(self, aid: int, steps: int, batch_size: int, keys: list[str]) -> tuple[dict, dict]:
        """Local SGD, then a snapshot of the branches to gossip (one payload for all neighbours)."""
        agent = self.agents[aid]
        with _threads(self.torch_threads):
            stats, wall = self._train(aid, steps, batch_size)
            t0 = time.perf_counter()
            payload = agent.export(keys)
        stats["wall_s"] = wall + time.perf_counter() - t0  # used only by compute_time: measured
        return _plain(stats), payload

    def aggregate(self, aid: int, rnd: int, staleness: int | None, my_degree: dict[str, int],
                  metas: list[MergeEntry], *payloads: dict) -> dict:
        """Merge what arrived: metas[i] says what to take from payloads[i];
        `staleness`: rounds an entry may lag `rnd` (None: the protocol bounded it already)."""
        incoming = []
        for meta, payload in zip(metas, payloads):
            branches = {k: payload[k] for k in meta.keys if k in payload}
            incoming.append(Incoming(sender=meta.sender, round=meta.round, branches=branches,
                                     degree=meta.degree))
        with _threads(self.torch_threads):
            stats = self.agents[aid].aggregate(incoming, my_degree, rnd, staleness=staleness)
        return _plain(stats)

    # -- compressed exchange (protocol.compression) ----------------------------------
    def _gossip(self, aid: int, seed: int) -> ChocoGossip:
        ch = self.choco.get(aid)
        if ch is None:
            ch = self.choco[aid] = ChocoGossip(aid, seed=seed)
            self.choco_deg[aid] = {}
        return ch

    def _outcomes(self, aid: int, seed: int, outcomes: list) -> None:
        """What became of this agent's CHOCO messages, in the order the network resolved them."""
        if not outcomes:
            return
        ch = self._gossip(aid, seed)
        for seq, ok in outcomes:
            ch.delivered(int(seq)) if ok else ch.dropped(int(seq))

    def _tracker(self, aid: int) -> ChangeTracker:
        tr = self.trackers.get(aid)
        if tr is None:
            tr = self.trackers[aid] = ChangeTracker()
        return tr

    def _flat(self, aid: int, key: str) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.agents[aid].net.branches[key].parameters()])

    def branch_changes(self, aid: int, plan: dict[int, list[str]]) -> dict[int, dict[str, float]]:
        """priority: change: relative change of each planned branch since it was last sent to
        that neighbour (inf: never sent)."""
        tr = self._tracker(aid)
        flats: dict[str, torch.Tensor] = {}
        out = {}
        with _threads(self.torch_threads):
            for j, keys in plan.items():
                out[int(j)] = {k: tr.change(int(j), k, flats[k] if k in flats else flats.setdefault(k, self._flat(aid, k)))
                               for k in keys}
        return out

    def train_and_exchange(self, aid: int, steps: int, batch_size: int, keys: list[str],
                           spec: ExchangeSpec) -> tuple[dict, dict]:
        """Local SGD, then what goes on the wire when a kind is compressed: `keys` exported
        (dense, or encoded by their kind's codec for the naive baseline) and one CHOCO
        difference per scheduled (neighbour, key) in `spec.choco`. The payload holds
        plain types only: {"dense": {key: tensors}, "encoded": {key: plain Encoded},
        "choco": {neighbour: {key: plain Encoded}}}."""
        agent = self.agents[aid]
        seed, exchange = int(spec.seed), int(spec.exchange)
        with _threads(self.torch_threads):
            self._outcomes(aid, seed, spec.outcomes)
            stats, wall = self._train(aid, steps, batch_size)
            t0 = time.perf_counter()
            caps = agent.capabilities()
            codecs = {k: parse_codec(c) for k, c in spec.codecs.items()}
            payload: dict = {"dense": {}, "encoded": {}, "choco": {}}
            for k, tensors in agent.export(keys).items():
                c = codecs.get(caps[k].kind)
                if c is None or c.name == "none":
                    payload["dense"][k] = tensors
                else:
                    payload["encoded"][k] = to_plain(naive_message(
                        tensors, c, seed=torch_seed(seed, "compress", aid, k, exchange)))
            if spec.choco:
                ch = self._gossip(aid, seed)
                if ch.seq != int(spec.seq0):
                    raise RuntimeError(f"agent {aid}: CHOCO message number {ch.seq}, the coordinator expects "
                                       f"{spec.seq0}")
                for j, k in spec.choco:
                    params = dict(agent.net.branches[k].named_parameters())
                    m = ch.message(int(j), k, params, codecs[caps[k].kind], exchange)
                    payload["choco"].setdefault(int(j), {})[k] = to_plain(m.q)
            if spec.sent:  # priority: change: remember what went to whom
                by_key: dict[str, list[int]] = {}
                for j, k in spec.sent:
                    by_key.setdefault(k, []).append(int(j))
                tr = self._tracker(aid)
                for k, nbrs in by_key.items():
                    tr.sent(nbrs, k, self._flat(aid, k))
        stats["wall_s"] = wall + time.perf_counter() - t0
        return _plain(stats), payload

    def merge_exchange(self, aid: int, rnd: int, my_degree: dict[str, int], metas: list[MergeEntry], spec: MergeSpec,
                       *payloads: dict) -> dict:
        """The compressed counterpart of `aggregate`: dense and naive branches are averaged
        (naive ones decoded first); CHOCO differences are applied to the public copies
        in `spec.choco` order (delivery order), then one consensus step per key of
        `spec.steps` over the neighbours listed there."""
        agent = self.agents[aid]
        seed = int(spec.seed)
        with _threads(self.torch_threads):
            self._outcomes(aid, seed, spec.outcomes)
            incoming = []
            for meta in metas:
                p = payloads[meta.payload]
                branches = {}
                for k in meta.keys:
                    if k in p["dense"]:
                        branches[k] = p["dense"][k]
                    elif k in p["encoded"]:
                        branches[k] = decode(from_plain(p["encoded"][k]))
                incoming.append(Incoming(sender=meta.sender, round=meta.round, branches=branches,
                                         degree=meta.degree))
            stats = agent.aggregate(incoming, my_degree, rnd, staleness=spec.staleness) if incoming else {}
            if spec.choco or spec.steps:
                ch = self._gossip(aid, seed)
                deg = self.choco_deg[aid]
                for sender, key, idx, degree, seq in spec.choco:
                    q = payloads[idx]["choco"][aid][key]
                    branch = agent.net.branches[key] if key in agent.net.branches else None
                    params = dict(branch.named_parameters()) if branch is not None else None
                    ch.receive(ChocoMessage(int(sender), int(seq), key, from_plain(q)), params)
                    deg[(int(sender), key)] = int(degree)
                for key, nbrs in spec.steps.items():
                    params = dict(agent.net.branches[key].named_parameters())
                    d_i = int(my_degree.get(key, len(nbrs)))
                    w = {int(j): 1.0 / (1 + max(d_i, deg.get((int(j), key), d_i))) for j in nbrs}
                    ch.step(key, params, w, gamma=spec.gammas[key], only_fresh=spec.only_fresh)
                stats["choco_received"] = len(spec.choco)
        return _plain(stats)

    def evaluate(self, aid: int, drop_kinds: tuple = ()) -> dict:
        """Scores of one agent, each restricted to its current modalities: `acc`/`loss`
        on the common test set (the agent's own test split when there is none),
        `acc_local`/`loss_local` on its own test split, `acc_val`/`loss_val` on its
        validation split, `acc_gval`/`loss_gval` on the global validation set (what
        tuning may look at), and `acc_without_<kind>` on the
        common test set with that slice kind's logits left out."""
        agent, data = self.agents[aid], self.data[aid]
        common = self.global_test if self.global_test is not None else data.test
        with _threads(self.torch_threads):
            acc, loss = agent.evaluate(common)
            out = {"acc": float(acc), "loss": float(loss)}
            acc, loss = agent.evaluate(data.test)
            out.update(acc_local=float(acc), loss_local=float(loss))
            val = getattr(data, "val", None)
            if val is not None and len(val):
                acc, loss = agent.evaluate(val)
                out.update(acc_val=float(acc), loss_val=float(loss))
            gval = getattr(data, "global_val", None)  # data.global_val_size: what `sweep --tune` chooses on
            if gval is not None and len(gval):
                acc, loss = agent.evaluate(gval)
                out.update(acc_gval=float(acc), loss_gval=float(loss))
            for kind in drop_kinds:
                a, _ = agent.evaluate(common, drop_kind=kind)
                out[f"acc_without_{kind}"] = float(a)
        return out

    def capabilities(self, aid: int) -> dict:
        return self.agents[aid].capabilities()

    def set_modalities(self, aid: int, modalities: list[str]) -> dict:
        """Sensor loss or gain; returns the agent's new capabilities."""
        with _threads(self.torch_threads):
            self.agents[aid].set_modalities(modalities)
        return self.agents[aid].capabilities()

    def last_update(self, aid: int, keys: list[str] | None = None) -> dict:
        return self.agents[aid].last_update(keys)

    # -- checkpoints -------------------------------------------------------
    def checkpoint(self, aids: list[int] | None = None) -> dict[int, dict]:
        aids = list(self.agents) if aids is None else aids
        out = {}
        for a in aids:
            sd = self.agents[a].state_dict()
            if a in self.choco:
                sd["choco"] = {"gossip": self.choco[a].state_dict(),
                               "degrees": [[j, k, d] for (j, k), d in sorted(self.choco_deg[a].items())]}
            if a in self.trackers:
                sd["change"] = self.trackers[a].state_dict()
            out[a] = sd
        return out

    def restore(self, states: dict[int, dict]) -> None:
        for a, sd in states.items():
            self.agents[a].load_state_dict(sd)
            self.choco.pop(a, None)
            self.choco_deg.pop(a, None)
            if "choco" in sd:
                ch = self._gossip(a, 0)
                ch.load_state_dict(sd["choco"]["gossip"], self.device)
                self.choco_deg[a] = {(int(j), k): int(d) for j, k, d in sd["choco"]["degrees"]}
            self.trackers.pop(a, None)
            if "change" in sd:
                self._tracker(a).load_state_dict(sd["change"])


def _set_threads(n: int) -> None:
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class _threads:
    """Apply the host's torch thread count for the duration of a call (inline
    hosts share the driver process, whose setting may differ)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.prev = torch.get_num_threads()
        if self.prev != self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.prev != self.n:
            torch.set_num_threads(self.prev)


def _plain(obj: Any) -> Any:
    """Stats as plain Python numbers (cheap to ship, JSON-safe)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    return obj
