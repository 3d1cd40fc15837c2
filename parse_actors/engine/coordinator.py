"""The co-simulation coordinator: the one place where the SimPy clock, the
hosts (inline or Ray) and the agents meet.

SimPy processes (protocols.py) decide *when* things happen in virtual time
(compute from the cost model, messages through netem); at each such moment the
coordinator *submits* the matching host call and moves on. Hosts run calls in
submission order, so results never depend on wall time or on the number of
hosts. The coordinator waits for a real value only where it needs one: the
evaluations feeding the metrics tables, and capability changes.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import simpy

from netem import Network
from parse_actors import logs
from parse_actors.agents import AgentSpec, BranchInfo, capability_nbytes, gradient_conflict, make_policy, prioritize
from parse_actors.data import build_federated_data
from parse_actors.engine import checkpoint as ckpt
from parse_actors.engine.backends import InlineBackend, RayBackend
from parse_actors.engine.journal import Journal
from parse_actors.engine.messages import BranchMessage, CapabilityMessage
from parse_actors.engine.protocols import AsyncProtocol, SyncProtocol
from parse_actors.metrics import NetworkEventLog, RunDir, build_summary
from parse_actors.metrics.plots import write_run_plots
from parse_actors.metrics.progress import Progress
from parse_actors.scenario import Scenario
from parse_actors.seeding import derive, torch_seed

DROP_KINDS = ("red", "uni", "syn")


class Interrupted(Exception):
    """The run was stopped by a signal; finished rows and a checkpoint were written."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


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


def place_agents(costs: list[float], n_hosts: int) -> list[int]:
    """Longest-processing-time placement: balance estimated cost across hosts (deterministic)."""
    load = [0.0] * n_hosts
    host_of = [0] * len(costs)
    for aid in sorted(range(len(costs)), key=lambda a: (-costs[a], a)):
        h = min(range(n_hosts), key=lambda i: (load[i], i))
        host_of[aid] = h
        load[h] += costs[aid]
    return host_of


class Simulation:
    """One run of a scenario into a run directory."""

    def __init__(self, scenario: Scenario, run_dir: RunDir, backend: str | None = None,
                 resume: dict | None = None):
        self.sc = scenario
        self.run_dir = run_dir
        self.backend_name = backend or scenario.engine.backend
        self.log = logs.get_logger()
        self.policy = make_policy(scenario.method, scenario.aggregation)
        self.env = simpy.Environment()
        self.backend: Any = None
        self.journal: Journal | None = None
        self.rows: list[dict] = list(resume["rows"]) if resume else []
        self.conflict_rows: list[dict] = list(resume.get("conflict_rows", [])) if resume else []
        self.slice_rows: list[dict] = list(resume.get("slice_rows", [])) if resume else []
        self.resume = resume
        self.dry = False  # replaying the timeline of already-finished rounds (resume)
        self.round = -1  # last finished round / evaluation index
        self.messages = {"sent": 0, "delivered": 0, "dropped": 0}
        self.hooks: list[Callable[["Simulation", int], None]] = []  # called after each round (tests, tools)
        self.stop_signal: int | None = None
        self._last_flush = 0.0
        self._online_events: dict[int, simpy.Event] = {}
        self._pending_caps: list[tuple[int, Any]] = []
        self._caps_in_flight: set[tuple[int, int]] = set()
        self._flying: dict[int, BranchMessage] = {}  # branch messages sent, not yet resolved
        self._saved_payloads: dict[tuple[int, int], Any] = {
            (s, r): p for s, r, p in resume.get("payloads", [])} if resume else {}
        self.diverged: dict[int, int] = {}  # agent -> first round with a non-finite loss
        self.progress = Progress(total=scenario.protocol.rounds)

    # ------------------------------------------------------------------ set-up
    def _n_hosts(self) -> int:
        """engine.hosts, or one per CPU (of the Ray cluster when joining one)."""
        n = self.sc.engine.hosts
        if n is None:
            n = os.cpu_count() or 1
            if self.backend_name == "ray":
                import ray

                n = int(ray.cluster_resources().get("CPU", n))
        return max(1, min(n, self.sc.n_agents))

    async def setup(self) -> None:
        sc = self.sc
        base = Path(sc.base_dir or ".")
        groups = sc.agent_groups()
        mods = [tuple(g.modalities) for g in groups]
        self.fd = build_federated_data(sc.data, mods, seed=sc.seed, base_dir=base)
        n_hosts = self._n_hosts()
        host_of = place_agents([float(len(m)) for m in mods], n_hosts)
        self.views = []
        for a in range(len(groups)):
            active = tuple(self.fd.agents[a].extra.get("active", mods[a]))
            self.views.append(AgentView(a, groups[a].label, active, host_of[a]))
        t0 = time.perf_counter()
        backend_cls = RayBackend if self.backend_name == "ray" else InlineBackend
        self.backend = backend_cls(n_hosts, sc.engine.torch_threads, sc.engine.device)
        if self.backend_name == "ray" and sc.engine.checkpoint_every:
            self.journal = Journal(self.backend, self._on_restart)
        self.host_start_s = time.perf_counter() - t0
        init_seed = torch_seed(sc.seed, "init") if sc.agents.common_init else None
        per_host: dict[int, list] = {h: [] for h in range(n_hosts)}
        for v in self.views:
            data = self.fd.agents[v.aid]
            all_mods = tuple(data.extra.get("modalities", v.modalities))
            spec = AgentSpec(agent_id=v.aid, modalities=v.modalities, archs=dict(groups[v.aid].archs))
            kwargs = dict(input_shapes={m: tuple(self.fd.input_shapes[m]) for m in all_mods},
                          num_classes=self.fd.num_classes, model=sc.model, loss=sc.loss, optim=sc.optim,
                          aggregation=sc.aggregation, method=sc.method, seed=torch_seed(sc.seed, "agent", v.aid),
                          init_seed=init_seed)
            per_host[v.host].append((spec, data, kwargs))
        refs = [self.backend.call(h, "add_agents", items) for h, items in per_host.items() if items]
        for infos in await self.backend.get(refs):
            for info in infos:
                v = self.views[info["agent"]]
                v.capabilities = info["capabilities"]
                v.cost_per_sample = info["cost_per_sample"]
        self.agents_start_s = time.perf_counter() - t0 - self.host_start_s
        self.net = Network.from_config(self.env, sc.network, n_nodes=len(self.views), seed=derive(sc.seed, "network"),
                                       base_dir=base)
        self.net.add_observer(NetworkEventLog(self.log, sc.output.log_messages))
        self.net.add_observer(self)
        self.net.start()
        for ev in self.fd.modality_schedule:
            self.env.process(self._modality_event(ev))
        self.protocol = (SyncProtocol if sc.protocol.mode == "sync" else AsyncProtocol)(self)
        self.log.info("setup", t=0.0, agents=len(self.views), hosts=n_hosts, backend=self.backend_name,
                      method=sc.method, protocol=sc.protocol.mode, dataset=self.fd.info.get("name"))
        if sc.engine.compute_time == "measured":
            self.log.warning("not_reproducible", t=0.0, note="engine.compute_time: measured takes virtual compute "
                             "time from the wall clock; the same seed will not give the same metrics")

    def _on_restart(self, host: int, reason: str) -> None:
        self.log.warning("host_restart", t=self.env.now, host=host, round=self.round + 1, reason=reason,
                         agents=[v.aid for v in self.views if v.host == host])

    # ------------------------------------------------------- services for protocols
    def call(self, host: int, method: str, *args: Any, num_returns: int = 1) -> Any:
        """Submit a host call now (virtual-time order); a reference comes back at once."""
        if self.dry and method != "set_modalities":
            return (None,) * num_returns if num_returns > 1 else None
        if self.journal is not None:
            return self.journal.call(host, method, *args, num_returns=num_returns)
        return self.backend.call(host, method, *args, num_returns=num_returns)

    async def get(self, refs: list) -> list:
        if self.journal is not None:
            return await self.journal.get(refs)
        return await self.backend.get(refs)

    def send(self, src: int, dst: int, nbytes: int, kind: str, msg: Any):
        self.messages["sent"] += 1
        if isinstance(msg, BranchMessage):
            self._flying[id(msg)] = msg
        return self.net.send(src, dst, nbytes, kind, payload=msg)

    def replay_payload(self, sender: int, rnd: int) -> Any:
        """While replaying finished rounds (resume): the saved export of (sender, round)
        if a message of it was still waiting or in flight at the checkpoint."""
        return self._saved_payloads.get((sender, rnd))

    def plan(self, v: AgentView, rnd: int) -> dict[int, list[str]]:
        """Which branches go to which current neighbour, from what this agent has learned."""
        plan = {}
        for j in self.net.neighbors(v.aid):
            theirs = v.known.get(j)
            if theirs is None:
                continue
            keys = self.policy.select(v.capabilities, theirs, rnd)
            if keys:
                plan[j] = prioritize(keys, v.capabilities)
        return plan

    @staticmethod
    def degrees(plan: dict[int, list[str]]) -> dict[str, int]:
        deg: dict[str, int] = {}
        for keys in plan.values():
            for k in keys:
                deg[k] = deg.get(k, 0) + 1
        return deg

    def online_event(self, aid: int) -> simpy.Event:
        ev = self._online_events.get(aid)
        if ev is None or ev.triggered:
            ev = self._online_events[aid] = self.env.event()
        return ev

    # ------------------------------------------------- capability discovery (no server)
    def send_capabilities(self, src: int, dst: int) -> Any:
        caps = self.views[src].capabilities
        size = self.sc.protocol.header_bytes + capability_nbytes(caps)
        self._caps_in_flight.add((src, dst))
        return self.send(src, dst, size, "control", CapabilityMessage(src, caps))

    def _discovery(self, pairs):
        evs = [self.send_capabilities(a, b) for a, b in pairs if self.net.is_online(a)]
        if evs:
            yield self.env.all_of(evs)

    def missing_introductions(self, agents=None) -> list[tuple[int, int]]:
        """(src, dst) pairs of online neighbours where dst does not know src yet:
        at start, on new edges, and for agents that were offline when their
        neighbours introduced themselves."""
        pairs = []
        for v in self.views if agents is None else agents:
            if not self.net.is_online(v.aid):
                continue
            for j in self.net.neighbors(v.aid):
                if (v.aid not in self.views[j].known and (v.aid, j) not in self._caps_in_flight
                        and self.net.is_online(j)):
                    pairs.append((v.aid, j))
        return pairs

    def rediscover(self, agents=None) -> None:
        """Send the capability messages that are missing (no server: each agent introduces itself)."""
        pairs = self.missing_introductions(agents)
        if pairs:
            self.env.process(self._discovery(pairs))

    def _modality_event(self, ev):
        yield self.env.timeout(max(0.0, ev.t_s - self.env.now))
        v = self.views[ev.agent]
        mods = set(v.modalities)
        mods = mods - {ev.modality} if ev.action == "lose" else mods | {ev.modality}
        v.modalities = tuple(m for m in self.fd.modalities if m in mods)
        ref = self.call(v.host, "set_modalities", v.aid, list(v.modalities))
        self._pending_caps.append((v.aid, ref))
        self.log.info("modality", t=self.env.now, agent=v.aid, modality=ev.modality, action=ev.action,
                      modalities=list(v.modalities))

    async def _apply_capability_changes(self) -> None:
        """New capabilities (after sensor loss/gain) are learned here and advertised to neighbours."""
        if not self._pending_caps:
            return
        pending, self._pending_caps = self._pending_caps, []
        results = await self.get([r for _, r in pending])
        pairs = []
        for (aid, _), caps in zip(pending, results):
            self.views[aid].capabilities = caps
            pairs.extend((aid, j) for j in self.net.neighbors(aid))
        self.env.process(self._discovery(pairs))

    # ------------------------------------------------------- netem observer hooks
    def on_message(self, rec: Any) -> None:
        self.messages["delivered" if rec.status == "delivered" else "dropped"] += 1
        msg = rec.payload
        self._flying.pop(id(msg), None)
        if isinstance(msg, CapabilityMessage):
            self._caps_in_flight.discard((rec.src, rec.dst))
        if rec.status != "delivered":
            return
        dst = self.views[rec.dst]
        if isinstance(msg, CapabilityMessage):
            dst.known[msg.sender] = msg.capabilities
        elif isinstance(msg, BranchMessage):
            dst.inbox.append(msg)

    def on_topology(self, t: float, added: list, removed: list, graph: Any) -> None:
        """A new edge's ends re-introduce themselves (what they learned before may be stale)."""
        for a, b in added:
            self.views[a].known.pop(b, None)
            self.views[b].known.pop(a, None)

    def on_node(self, node: int, online: bool, t: float) -> None:
        if online:
            ev = self._online_events.pop(node, None)
            if ev is not None and not ev.triggered:
                ev.succeed()

    # ------------------------------------------------------------------ run
    async def run(self) -> dict:
        wall0 = time.perf_counter()
        await self.setup()
        self._install_signal_handlers()
        if self.journal is not None:
            self.journal.checkpoint()  # a host dying in the first round restarts from here
        self.steady_start = time.perf_counter()
        self._set_dry(self.resume is not None)
        self._run_until(self.env.process(self._discovery(self.missing_introductions())))
        if self.sc.protocol.mode == "sync":
            await self._run_sync()
        else:
            await self._run_async()
        self.steady_end = time.perf_counter()
        return self._finish(wall0, complete=True)

    async def _run_sync(self) -> None:
        rounds = self.sc.protocol.rounds
        start = self._begin_resume()
        for rnd in range(rounds):
            self._set_dry(rnd < start)
            if rnd == start and self.resume is not None:
                await self._restore_resume()
            await self._apply_capability_changes()
            measured = await self._measure_round(rnd) if self.sc.engine.compute_time == "measured" else None
            out: dict = {}
            self._run_until(self.env.process(self.protocol.round(rnd, out, measured)))
            if self.dry:
                continue
            if (rnd + 1) % self.sc.protocol.eval_every == 0 or rnd == rounds - 1:
                await self._evaluate(rnd, out["stats"], out["active"])
            await self._end_of_round(rnd)

    async def _run_async(self) -> None:
        cfg = self.sc.protocol
        self.protocol.start()
        n_evals = cfg.rounds
        start = self._begin_resume()
        for k in range(n_evals):
            self._set_dry(k < start)
            if k == start and self.resume is not None:
                await self._restore_resume()
            await self._apply_capability_changes()
            self._run_until((k + 1) * cfg.eval_every_s)
            stats, self.protocol.stats = self.protocol.stats, {}
            if self.dry:
                continue
            active = sum(self.net.is_online(v.aid) for v in self.views)
            await self._evaluate(k, stats, active)
            await self._end_of_round(k)

    async def _measure_round(self, rnd: int) -> dict | None:
        """compute_time: measured: run this round's local training first and time it
        (wall clock: not reproducible); the timeline then uses those durations."""
        if self.dry:
            return None
        pending = {}
        for v in self.views:
            if self.net.is_online(v.aid):
                keys = sorted({k for ks in self.plan(v, rnd).values() for k in ks})
                tr = self.sc.train
                stats, payload = self.call(v.host, "train_and_export", v.aid, tr.local_steps, tr.batch_size, keys,
                                           num_returns=2)
                pending[v.aid] = (stats, payload, set(keys))
        results = await self.get([p[0] for p in pending.values()])
        return {aid: (res["wall_s"], *pending[aid]) for aid, res in zip(pending, results)}

    def _run_until(self, until) -> None:
        try:
            self.env.run(until=until)
        except RuntimeError as e:
            if "No scheduled events left" in str(e):
                raise RuntimeError(f"the simulation stalled at t={self.env.now:.3f}s: a round waits for messages "
                                   "that can never arrive (set protocol.round_timeout_s)") from None
            raise

    async def _end_of_round(self, rnd: int) -> None:
        self.round = rnd
        await asyncio.sleep(0)  # let a pending SIGINT/SIGTERM handler run (inline runs never block)
        last = rnd == self.sc.protocol.rounds - 1
        if self.journal is not None and (rnd + 1) % self.sc.engine.checkpoint_every == 0 and not last:
            self.journal.checkpoint()
        for hook in self.hooks:
            hook(self, rnd)
        every = self.sc.output.checkpoint_every
        if not last and (self.stop_signal is not None or (every and (rnd + 1) % every == 0)):
            await self._checkpoint(rnd)
        if self.stop_signal is not None:
            raise Interrupted(self.stop_signal)

    # ------------------------------------------------------------------ evaluation
    async def _evaluate(self, rnd: int, stats_refs: dict, active: int) -> None:
        sc = self.sc
        last = rnd == sc.protocol.rounds - 1
        drop = DROP_KINDS if (sc.output.slice_drop == "every" or (sc.output.slice_drop == "final" and last)) else ()
        refs = [self.call(v.host, "evaluate", v.aid, drop) for v in self.views]
        conflict_every = sc.output.gradient_conflict_every
        upd_refs, conflict_keys = [], []
        if conflict_every and (rnd + 1) % conflict_every == 0 and stats_refs:
            conflict_keys = self._conflict_keys()
            if conflict_keys:
                upd_refs = [(aid, self.call(self.views[aid].host, "last_update", aid, conflict_keys))
                            for aid in sorted(stats_refs)]
        results = await self.get(refs)
        train = dict(zip(stats_refs.keys(), await self.get(list(stats_refs.values()))))
        t = self.env.now
        new_rows = []
        for v, res in zip(self.views, results):
            row = {"round": rnd, "t": t, "agent": v.aid, "group": v.group, "acc": res["acc"], "loss": res["loss"],
                   "train_loss": train.get(v.aid, {}).get("loss"), "online": int(self.net.is_online(v.aid)),
                   "updates": v.updates}
            new_rows.append(row)
            self.log.debug("eval", t=t, agent=v.aid, round=rnd, acc=res["acc"], loss=res["loss"], _console=False)
            if drop:
                self.slice_rows.append({"round": rnd, "t": t, "agent": v.aid, "group": v.group, "acc": res["acc"],
                                        **{f"acc_without_{k}": res[f"acc_without_{k}"] for k in drop}})
        if upd_refs:
            updates = dict(zip([a for a, _ in upd_refs], await self.get([r for _, r in upd_refs])))
            multi = {a: self.views[a].multimodal for a in updates}
            for key, c in sorted(gradient_conflict(updates, multi).items()):
                self.conflict_rows.append({"round": rnd, "t": t, "branch": key, **c})
        self._check_divergence(new_rows, rnd, t)
        self.rows.extend(new_rows)
        mean = sum(r["acc"] for r in new_rows) / len(new_rows)
        self.progress.update(rnd + 1, t, mean, self.messages["dropped"])
        self.log.info("round", t=round(t, 4), round=rnd + 1, of=sc.protocol.rounds, acc=round(mean, 4),
                      active=active, dropped=self.messages["dropped"], _console=not self.progress.enabled)
        now = time.perf_counter()
        if now - self._last_flush > 2.0 or rnd == sc.protocol.rounds - 1:
            self.flush_tables()
            self._last_flush = now

    def _check_divergence(self, rows: list[dict], rnd: int, t: float) -> None:
        """A NaN/inf loss means the agent's parameters blew up: say so once, loudly."""
        for r in rows:
            bad = [k for k in ("loss", "train_loss") if r.get(k) is not None and not math.isfinite(r[k])]
            if bad and r["agent"] not in self.diverged:
                self.diverged[r["agent"]] = rnd
                self.log.warning("diverged", t=t, agent=r["agent"], group=r["group"], round=rnd,
                                 note="loss is not finite; lower optim.lr or check the data")

    def _conflict_keys(self) -> list[str]:
        """Branches held by both unimodal and multimodal agents (where conflict can arise)."""
        uni = {k for v in self.views if not v.multimodal for k in v.capabilities}
        multi = {k for v in self.views if v.multimodal for k in v.capabilities}
        return sorted(uni & multi)

    def flush_tables(self) -> None:
        self.run_dir.write_metrics(self.rows)
        if self.conflict_rows:
            self.run_dir.write_table("conflict.csv", ["round", "t", "branch", "cosine", "frac_negative", "n_uni",
                                                      "n_multi"], self.conflict_rows)
        if self.slice_rows:
            header = ["round", "t", "agent", "group", "acc"] + [f"acc_without_{k}" for k in DROP_KINDS]
            self.run_dir.write_table("slice_drop.csv", header, self.slice_rows)

    # ------------------------------------------------------------------ checkpoints
    async def _checkpoint(self, rnd: int) -> None:
        """Round-boundary checkpoint on disk, for `--resume`."""
        states: dict[int, dict] = {}
        refs = [self.call(h, "checkpoint") for h in range(self.backend.n_hosts)]
        for part in await self.get(refs):
            states.update(part)
        # exports still needed after this point: of messages waiting in an inbox or in flight
        waiting = [m for v in self.views for m in v.inbox] + list(self._flying.values())
        needed = {(m.sender, m.round): m.payload for m in waiting}
        values = await self.get(list(needed.values()))
        payloads = [[s, r, p] for (s, r), p in zip(needed, values)]
        ckpt.save(self.run_dir.path, {"round": rnd, "t": self.env.now, "states": states, "payloads": payloads,
                                      "rows": self.rows, "conflict_rows": self.conflict_rows,
                                      "slice_rows": self.slice_rows, "messages": dict(self.messages),
                                      "seed": self.sc.seed, "events_offset": logs.events_offset()})
        self.flush_tables()

    def _set_dry(self, dry: bool) -> None:
        self.dry = dry
        logs.pause_events(dry)

    def _begin_resume(self) -> int:
        if self.resume is None:
            return 0
        return self.resume["round"] + 1

    async def _restore_resume(self) -> None:
        """After replaying the finished rounds' timeline: put the agents' saved state back."""
        states = self.resume["states"]
        by_host: dict[int, dict] = {}
        for aid, sd in states.items():
            by_host.setdefault(self.views[aid].host, {})[aid] = sd
        await self.get([self.backend.call(h, "restore", part) for h, part in by_host.items()])
        caps = await self.get([self.backend.call(self.views[a].host, "capabilities", a) for a in range(len(self.views))])
        for v, c in zip(self.views, caps):
            v.capabilities = c
        self.round = self.resume["round"]
        self.log.info("resume", t=self.env.now, from_round=self.round + 1)
        if self.journal is not None:
            self.journal.checkpoint()

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass

    def _on_signal(self, signum: int) -> None:
        if self.stop_signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.stop_signal = signum
        self.log.warning("stopping", t=self.env.now, signal=signal.Signals(signum).name,
                         note="finishing the current round, then writing a checkpoint")

    # ------------------------------------------------------------------ finish
    def _finish(self, wall0: float, complete: bool) -> dict:
        self.progress.close()
        comm_rows = [{"src": r["src"], "dst": r["dst"], "kind": r["tag"], "messages": r["messages"],
                      "bytes_sent": r["bytes_sent"], "bytes_delivered": r["bytes_delivered"],
                      "bytes_dropped": r["bytes_dropped"]} for r in self.net.accounting.rows()]
        comm_rows.sort(key=lambda r: (r["src"], r["dst"], r["kind"]))
        self.flush_tables()
        self.run_dir.write_comm(comm_rows)
        summary = build_summary(
            scenario=self.sc, rows=self.rows, comm_rows=comm_rows, rounds=self.round + 1,
            virtual_time_s=self.env.now, wall_time_s=time.perf_counter() - wall0,
            header_bytes=self.sc.protocol.header_bytes, messages=self.messages, complete=complete,
            extra={"protocol": self.sc.protocol.mode,
                   "compute_time": self.sc.engine.compute_time,
                   "diverged_agents": {str(a): r for a, r in sorted(self.diverged.items())},
                   "async_sends_skipped": getattr(self.protocol, "skipped", 0),
                   "dataset": {k: v for k, v in self.fd.info.items() if k != "cache"},
                   "slice_drop": _slice_drop_summary(self.slice_rows),
                   "gradient_conflict": _conflict_summary(self.conflict_rows)},
        )
        self.run_dir.write_summary(summary)
        # How the run was executed: differs between backends, so kept out of summary.json.
        self.run_dir.write_run_info({
            "backend": self.backend_name, "hosts": self.backend.n_hosts,
            "torch_threads": self.sc.engine.torch_threads, "wall_time_s": summary["wall_time_s"],
            "dataset_cache": self.fd.info.get("cache"),
            "host_start_s": self.host_start_s, "agents_start_s": self.agents_start_s,
            "steady_s": getattr(self, "steady_end", time.perf_counter()) - self.steady_start,
            "host_restarts": self.journal.restarts if self.journal else 0,
            "resumed_from_round": self.resume["round"] if self.resume else None,
        })
        if self.sc.output.plots and complete:
            write_run_plots(self.run_dir.path / "plots", self.rows, summary)
        if complete:
            ckpt.remove(self.run_dir.path)
        self.log.info("finished", t=self.env.now, acc=summary["final_acc"]["mean"], bytes=summary["bytes_total"],
                      complete=complete)
        return summary

    def finish_incomplete(self, wall0: float) -> dict:
        """After an interruption: tables and a summary marked incomplete (the checkpoint stays)."""
        return self._finish(wall0, complete=False)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.shutdown()


def _slice_drop_summary(rows: list[dict]) -> dict:
    if not rows:
        return {}
    last = max(r["round"] for r in rows)
    out: dict[str, dict] = {}
    for r in rows:
        if r["round"] != last:
            continue
        g = out.setdefault(r["group"], {"n": 0, "acc": 0.0, **{f"acc_without_{k}": 0.0 for k in DROP_KINDS}})
        g["n"] += 1
        for k in ["acc"] + [f"acc_without_{k}" for k in DROP_KINDS]:
            g[k] += r[k]
    for g in out.values():
        n = g.pop("n")
        for k in g:
            g[k] /= n
    return out


def _conflict_summary(rows: list[dict]) -> dict:
    """Mean cosine and fraction of negative pairs per shared branch over the run."""
    acc: dict[str, list] = {}
    for r in rows:
        acc.setdefault(r["branch"], []).append(r)
    return {k: {"mean_cosine": sum(x["cosine"] for x in v) / len(v),
                "mean_frac_negative": sum(x["frac_negative"] for x in v) / len(v), "rounds": len(v)}
            for k, v in sorted(acc.items())}
