"""What of a scenario decides its results: stored in every checkpoint, so that
`--resume` can refuse a scenario.yaml changed since the run started.

The fingerprint is the resolved scenario (defaults filled) minus `NEUTRAL_KEYS`.
Each of those only says how or where the run executes, or what it writes beside
the tables; by the determinism rule (the same scenario and seed give the same
metrics inline or on Ray, on one host or several) none can change a metric, so
each may differ on resume. Everything else counts, including any key added to
the schema later, until it is listed here with the reason it cannot change a
metric. The fingerprint is kept as plain data (not a hash) so a refusal can
name the keys that differ.
"""

from __future__ import annotations

from typing import Any

NEUTRAL_KEYS: dict[str, str] = {
    "name": "names the default run directory; no computation reads it",
    "description": "free text",
    "engine.backend": "inline and Ray hosts run the same agent code in call order: the same metrics",
    "engine.hosts": "hosts run calls in submission order and every agent has its own seeds: placement "
                    "never changes a result",
    "engine.ray_address": "which cluster runs the hosts; as engine.backend",
    "engine.batched_stepping": "a batched step is the per-agent step bit for bit (probed per kind of agent; "
                               "stepped one by one where it is not)",
    "engine.checkpoint_every": "Ray snapshots for recovering a lost host, which replays the calls since "
                               "exactly",
    "engine.ray_timeout_s": "a deadline: it can end a run (with a checkpoint), never change a value",
    "engine.restart_timeout_s": "how long a lost host may take to restart before its agents are re-placed; "
                                "both are exact",
    "output.log_messages": "per-message lines of events.jsonl; the tables are exact either way",
    "output.plots": "PNG files drawn from the tables",
    "output.checkpoint_every": "how often checkpoint.pt is written; resuming from any of them is exact",
    "output.final_weights_max_mb": "whether final_weights.pt is written after the run",
    "output.pid_audit": "an audit of the finished run, reported apart from the simulation",
}
"""Dotted keys that may differ between a run and its resume, each with why it cannot
change a metric. Not here, and so compared: `engine.torch_threads` (torch's reductions
are bit-identical only for a fixed thread count), `engine.device` (GPU and CPU bits
differ), `engine.compute_time` (the virtual timeline), `output.slice_drop` and
`output.gradient_conflict_every` (which rows the tables hold: rows recorded before
the checkpoint were made under the old value)."""


def fingerprint(sc: Any) -> dict:
    """The result-deciding part of scenario `sc` as plain data (JSON types)."""
    doc = sc.model_dump(mode="json")
    for key in NEUTRAL_KEYS:
        node = doc
        *parents, last = key.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return doc


def differences(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Dotted key paths where two fingerprints differ, in document order (list items
    by index when both lists have the same length)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out: list[str] = []
        for k in list(saved) + [k for k in now if k not in saved]:
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in saved or k not in now:
                out.append(path)
            else:
                out.extend(differences(saved[k], now[k], path))
        return out
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [d for i, (a, b) in enumerate(zip(saved, now)) for d in differences(a, b, f"{prefix}.{i}")]
    return [] if saved == now else [prefix or "(the whole scenario)"]
