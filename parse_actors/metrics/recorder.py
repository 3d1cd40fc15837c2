"""The run's tables as they grow: evaluation rows, gradient conflict, slice
drops, divergence, progress. The engine fetches the numbers from the hosts and
hands them here; the recorder turns them into rows, log events and files, and
knows nothing of hosts, Ray or the virtual clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

from parse_actors.agents import gradient_conflict
from parse_actors.agents.model import DROP_KINDS
from parse_actors.metrics.progress import Progress
from parse_actors.metrics.rundir import RunDir

SCORE_COLUMNS = ("acc_local", "loss_local", "acc_val", "loss_val", "acc_gval", "loss_gval")
"""Scores beside the primary `acc`/`loss` (common test set): own test split, validation split,
global validation set (data.global_val_size; only in runs that have one)."""
CONFLICT_HEADER = ["round", "t", "branch", "cosine", "frac_negative", "n_uni", "n_multi"]
SLICE_DROP_HEADER = ["round", "t", "agent", "group", "acc"] + [f"acc_without_{k}" for k in DROP_KINDS]


class Recorder:
    """Rows of metrics.csv, conflict.csv and slice_drop.csv, and what follows from them."""

    def __init__(self, run_dir: RunDir, log: Any, total_rounds: int, resume: dict | None = None,
                 flush_every_s: float = 2.0):
        self.run_dir = run_dir
        self.log = log
        self.total_rounds = total_rounds
        self.rows: list[dict] = list(resume["rows"]) if resume else []
        self.conflict_rows: list[dict] = list(resume.get("conflict_rows", [])) if resume else []
        self.slice_rows: list[dict] = list(resume.get("slice_rows", [])) if resume else []
        self.diverged: dict[int, int] = {}  # agent -> first round with a non-finite loss
        self.progress = Progress(total=total_rounds)
        self.flush_every_s = flush_every_s
        self._last_flush = 0.0

    def state(self) -> dict:
        """What a checkpoint keeps of the tables."""
        return {"rows": self.rows, "conflict_rows": self.conflict_rows, "slice_rows": self.slice_rows}

    # ------------------------------------------------------------------ one evaluation
    def record(self, rnd: int, t: float, views: list[Any], results: list[dict], train: dict[int, dict],
               online: dict[int, bool], drop: tuple[str, ...], updates: dict[int, Any] | None,
               dropped: int, active: int) -> None:
        """One evaluation of every agent: `results[i]` is `views[i]`'s host answer,
        `train` the last training stats per agent, `updates` each agent's last
        update on the shared branches (gradient conflict), or None."""
        new_rows = []
        for v, res in zip(views, results):
            row = {"round": rnd, "t": t, "agent": v.aid, "group": v.group, "acc": res["acc"], "loss": res["loss"],
                   "train_loss": train.get(v.aid, {}).get("loss"), "online": int(online[v.aid]),
                   "updates": v.updates, **{k: res[k] for k in SCORE_COLUMNS if k in res}}
            new_rows.append(row)
            self.log.debug("eval", t=t, agent=v.aid, round=rnd, acc=res["acc"], loss=res["loss"], _console=False)
            if drop:
                self.slice_rows.append({"round": rnd, "t": t, "agent": v.aid, "group": v.group, "acc": res["acc"],
                                        **{f"acc_without_{k}": res[f"acc_without_{k}"] for k in drop}})
        if updates:
            by_id = {v.aid: v for v in views}
            multi = {a: by_id[a].multimodal for a in updates}
            for key, c in sorted(gradient_conflict(updates, multi).items()):
                self.conflict_rows.append({"round": rnd, "t": t, "branch": key, **c})
        self._check_divergence(new_rows, rnd, t)
        self.rows.extend(new_rows)
        mean = sum(r["acc"] for r in new_rows) / len(new_rows)
        self.progress.update(rnd + 1, t, mean, dropped)
        self.log.info("round", t=round(t, 4), round=rnd + 1, of=self.total_rounds, acc=round(mean, 4),
                      active=active, dropped=dropped, _console=not self.progress.enabled)
        now = time.perf_counter()
        if self.run_dir.disk_full:  # the stop at the round's end writes them, into the reserve's space
            return
        if now - self._last_flush > self.flush_every_s or rnd == self.total_rounds - 1:
            self.flush()
            self._last_flush = now

    def _check_divergence(self, rows: list[dict], rnd: int, t: float) -> None:
        """A NaN/inf loss means the agent's parameters blew up: say so once, loudly."""
        for r in rows:
            bad = [k for k in ("loss", "train_loss") if r.get(k) is not None and not math.isfinite(r[k])]
            if bad and r["agent"] not in self.diverged:
                self.diverged[r["agent"]] = rnd
                self.log.warning("diverged", t=t, agent=r["agent"], group=r["group"], round=rnd,
                                 note="loss is not finite; lower optim.lr or check the data")

    # ------------------------------------------------------------------ files
    def flush(self) -> None:
        self.run_dir.write_metrics(self.rows)
        if self.conflict_rows:
            self.run_dir.write_table("conflict.csv", CONFLICT_HEADER, self.conflict_rows, growing=True)
        if self.slice_rows:
            self.run_dir.write_table("slice_drop.csv", SLICE_DROP_HEADER, self.slice_rows, growing=True)

    def summary_extra(self) -> dict:
        """The summary.json entries that come from these tables."""
        return {"diverged_agents": {str(a): r for a, r in sorted(self.diverged.items())},
                "slice_drop": slice_drop_summary(self.slice_rows),
                "gradient_conflict": conflict_summary(self.conflict_rows)}


def slice_drop_summary(rows: list[dict]) -> dict:
    """Mean accuracy per group at the last slice-drop evaluation, with each kind removed."""
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


def conflict_summary(rows: list[dict]) -> dict:
    """Mean cosine and fraction of negative pairs per shared branch over the run."""
    acc: dict[str, list] = {}
    for r in rows:
        acc.setdefault(r["branch"], []).append(r)
    return {k: {"mean_cosine": sum(x["cosine"] for x in v) / len(v),
                "mean_frac_negative": sum(x["frac_negative"] for x in v) / len(v), "rounds": len(v)}
            for k, v in sorted(acc.items())}
