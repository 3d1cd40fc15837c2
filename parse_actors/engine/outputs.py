"""What a run leaves in its directory at the end: comm.csv, summary.json, run.json, plots.

The recorder (metrics/recorder.py) writes the per-evaluation tables as the run
goes; this module adds what only the end knows: traffic per link and kind (with
the exchange's deferrals when a payload budget is set), the summary and how the
run was executed. Kept apart from the coordinator, which only decides when.
"""

from __future__ import annotations

import time
from typing import Any

from parse_actors.engine import checkpoint as ckpt
from parse_actors.metrics import build_summary
from parse_actors.metrics.plots import write_run_plots
from parse_actors.provenance import code_identity


def comm_rows(net: Any, exchange: Any, budgeted: bool) -> list[dict]:
    """comm.csv: bytes per directed link and kind; with a budget, branches deferred or
    never sent per link and kind too (columns added only then)."""
    rows = [{"src": r["src"], "dst": r["dst"], "kind": r["tag"], "messages": r["messages"],
             "bytes_sent": r["bytes_sent"], "bytes_delivered": r["bytes_delivered"],
             "bytes_dropped": r["bytes_dropped"]} for r in net.accounting.rows()]
    if budgeted:
        p = exchange
        for r in rows:
            r["deferred"] = p.deferred.get((r["src"], r["dst"], r["kind"]), 0)
            r["oversize"] = p.oversize.get((r["src"], r["dst"], r["kind"]), 0)
        seen = {(r["src"], r["dst"], r["kind"]) for r in rows}
        for key in sorted((set(p.deferred) | set(p.oversize)) - seen):
            rows.append({"src": key[0], "dst": key[1], "kind": key[2], "messages": 0, "bytes_sent": 0,
                         "bytes_delivered": 0, "bytes_dropped": 0, "deferred": p.deferred.get(key, 0),
                         "oversize": p.oversize.get(key, 0)})
    rows.sort(key=lambda r: (r["src"], r["dst"], r["kind"]))
    return rows


def payload_summary(pc: Any, exchange: Any) -> dict:
    """summary.json keys of budgets and compression (only when either is set)."""
    out: dict = {}
    if pc.payload_budget is not None:
        b = pc.payload_budget
        out["payload_budget"] = b if isinstance(b, int) else {"seconds": b.seconds}
        out.update(exchange.payload_counters())
    if pc.lossy():
        out["compression"] = {k: str(pc.codec_of(k)) for k in pc.compression}
        out["compressed_averaging"] = pc.compressed_averaging
    return out


def write_outputs(sim: Any, wall0: float, complete: bool) -> dict:
    """Write the end-of-run files of `sim` (a coordinator.Simulation); returns the summary."""
    sc = sim.sc
    sim.recorder.progress.close()
    budgeted = sc.protocol.payload_budget is not None
    rows = comm_rows(sim.net, sim.exchange, budgeted)
    sim.recorder.flush()
    sim.run_dir.write_comm(rows, extra=("deferred", "oversize") if budgeted else ())
    tables = sim.recorder.summary_extra()
    summary = build_summary(
        scenario=sc, rows=sim.recorder.rows, comm_rows=rows, rounds=sim.round + 1,
        virtual_time_s=sim.env.now, wall_time_s=time.perf_counter() - wall0,
        header_bytes=sc.protocol.header_bytes, messages=sim.messages, complete=complete,
        extra={"protocol": sc.protocol.mode,
               "compute_time": sc.engine.compute_time,
               "diverged_agents": tables["diverged_agents"],
               **sim.protocol.counters(),
               "dataset": {k: v for k, v in sim.fd.info.items() if k != "cache"},
               "slice_drop": tables["slice_drop"],
               "gradient_conflict": tables["gradient_conflict"],
               **payload_summary(sc.protocol, sim.exchange)},
    )
    sim.run_dir.write_summary(summary)
    # How the run was executed: differs between backends, so kept out of summary.json.
    hosts = sim.hosts
    sim.run_dir.write_run_info({
        "backend": sim.backend_name, "hosts": hosts.n_hosts,
        "torch_threads": sc.engine.torch_threads, "wall_time_s": summary["wall_time_s"],
        "dataset_cache": sim.fd.info.get("cache"),
        "data_s": sim.data_s, "host_start_s": sim.host_start_s, "agents_start_s": sim.agents_start_s,
        "network_s": sim.network_s,
        "steady_s": getattr(sim, "steady_end", time.perf_counter()) - sim.steady_start,
        "host_restarts": hosts.restarts[0], "hosts_replaced": hosts.restarts[1],
        "host_calls": {"submitted": hosts.batcher.calls, "sent": hosts.batcher.sent},
        "batched_stepping": getattr(sim, "stepping", None),
        "resumed_from_round": sim.resume.state["round"] if sim.resume.state else None,
        "code": code_identity(),
    })
    if sc.output.plots and complete:
        write_run_plots(sim.run_dir.path / "plots", sim.recorder.rows, summary, rows)
    if complete:
        ckpt.remove(sim.run_dir.path)
        sim.resume.on_disk = None
    sim.log.info("finished", t=sim.env.now, acc=summary["final_acc"]["mean"], bytes=summary["bytes_total"],
                 complete=complete)
    return summary
