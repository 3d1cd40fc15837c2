"""The agents' final weights, kept with a run for `parse-sim audit`.

Only what inference needs is kept (parameters, active modalities, input
shapes, architectures, branch keys, method): no optimizer state, RNG or batch
order, so the file is about the size of the models. Written atomically, read
back with torch's weights-only unpickler (a run directory copied from
elsewhere cannot run code through it), and bounded: above the cap the file
is not written and the reason is logged, so a huge run never fills a disk
with weights nobody asked for. A full disk skips them too (logged): they are
what `audit` needs, the tables are what the run is for.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import torch

from parse_actors import atomic

NAME = "final_weights.pt"
FORMAT = 1
DEFAULT_MAX_MB = 256.0
"""Default cap on final_weights.pt (MB, 10^6 bytes); the lead's scenario key
`output.final_weights_max_mb` overrides it."""

_KEEP = ("method", "agent_id", "modalities", "input_shapes", "archs", "keys", "model")


def path_of(run_dir: Path) -> Path:
    return Path(run_dir) / NAME


def inference_state(sd: Mapping[str, Any]) -> dict[str, Any]:
    """The part of `Agent.state_dict()` that `load_inference_state` needs."""
    missing = [k for k in _KEEP if k not in sd]
    if missing:
        raise ValueError(f"agent state lacks {missing}")
    out = {k: sd[k] for k in _KEEP}
    out["model"] = {k: v.detach().to("cpu") for k, v in sd["model"].items()}
    return out


def save_final_weights(run_dir: Path, states: Mapping[int, Mapping[str, Any]],
                       max_mb: float | None = DEFAULT_MAX_MB, log=None) -> Path | None:
    """Write `run_dir/final_weights.pt` from {agent_id: Agent.state_dict()}.

    Returns the path, or None when the file would exceed `max_mb` (None: no
    cap); the skip is logged as `final_weights_skipped` on `log` (a structlog
    logger; default parse_actors.logs.get_logger()) and nothing is written.
    """
    doc = {"format": FORMAT, "agents": {int(a): inference_state(sd) for a, sd in sorted(states.items())}}
    buf = io.BytesIO()
    torch.save(doc, buf)
    size = buf.getbuffer().nbytes
    if too_large(size, max_mb, log):
        return None
    p = path_of(run_dir)
    try:
        atomic.write_bytes(p, buf.getvalue())
    except OSError as e:
        if not atomic.is_no_space(e):
            raise
        # the tables come first: a run that filled its disk ends without them (said in its last message)
        _log(log).warning("final_weights_skipped", file=NAME, bytes=size, reason="disk full")
        return None
    return p


def too_large(nbytes: int, max_mb: float | None, log=None, exact: bool = True) -> bool:
    """Whether a final-weights file of `nbytes` (`exact`: its size; else a lower bound,
    logged as `bytes_at_least`) is over the cap; if so the skip is logged."""
    if max_mb is None or nbytes <= max_mb * 1e6:
        return False
    _log(log).warning("final_weights_skipped", file=NAME, **{"bytes" if exact else "bytes_at_least": nbytes},
                      max_mb=max_mb, reason="above output.final_weights_max_mb; parse-sim audit will not be possible")
    return True


def _log(log):
    if log is not None:
        return log
    from parse_actors import logs

    return logs.get_logger()


def load_final_weights(run_dir: Path) -> dict[int, dict[str, Any]] | None:
    """{agent_id: inference state}, or None when the run has no final weights.
    Raises ValueError when the file is not a final-weights file of this format."""
    p = path_of(run_dir)
    if not p.is_file():
        return None
    doc = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("agents"), dict):
        raise ValueError(f"not a final-weights file of format {FORMAT}")
    return {int(a): sd for a, sd in doc["agents"].items()}


def load_inference_state(agent, sd: Mapping[str, Any]) -> None:
    """Load parameters saved by `save_final_weights` into a freshly built Agent
    (same method and scenario): builds the branches the state has, loads them,
    activates the saved modalities. Optimizer and batch state stay fresh."""
    if sd.get("method") != agent.method:
        raise ValueError(f"weights of method {sd.get('method')!r} for a {agent.method!r} agent")
    net = agent.net
    for m, s in sd["input_shapes"].items():
        net.input_shapes[m] = tuple(int(v) for v in s)
    net.archs.update(sd["archs"])
    for key in sd["keys"]:
        if key not in net.branches:
            net.build(key)
    extra = set(net.branches) - set(sd["keys"])
    if extra:
        raise ValueError(f"agent has branches the weights lack: {sorted(extra)}")
    net.load_state_dict(sd["model"])
    net.activate(sd["modalities"])
