"""The audit's measurements as records (one dict per row of pid_audit.csv): latent
probes, the PID of the label, and slice-drop accuracy.

Every record has `measure`, `row`, `column`, `metric`, `value`, `null` (what a
representation carrying nothing scores: chance accuracy, R^2 0, the PID with
the label shuffled), `normalised` and `own`; the audit adds `agent`, `group`
and `method`.
"""

from __future__ import annotations

import numpy as np

from . import features as feat
from .pid import pid_of_label
from .probes import chance_accuracy, logistic_acc, normalise, ridge_r2

HEADER = ["measure", "agent", "group", "method", "row", "column", "metric", "value", "null", "normalised", "own"]


def probe_rows(rows: dict[str, np.ndarray], targets: dict[str, tuple[str, np.ndarray]], num_classes: int,
               fit: np.ndarray, score: np.ndarray) -> list[dict]:
    """One record per (row, column): value, normalised score, own-column flag."""
    out = []
    gauss = {k: v for k, (m, v) in targets.items() if m == "r2"}
    codes = {k: v for k, (m, v) in targets.items() if m == "acc"}
    for r, x in rows.items():
        vals = {**ridge_r2(x, gauss, fit, score), **logistic_acc(x, codes, num_classes, fit, score)}
        own = feat.own_columns(r, targets)
        for c, (metric, t) in targets.items():
            chance = chance_accuracy(t, score) if metric == "acc" else 0.0
            out.append({"measure": "probe", "row": r, "column": c, "metric": metric, "value": vals[c],
                        "null": chance if metric == "acc" else 0.0,
                        "normalised": normalise(metric, vals[c], chance), "own": int(c in own)})
    return out


def pid_rows(rows: dict[str, np.ndarray], mods, y: np.ndarray, fit: np.ndarray, states: int,
             seed: int) -> list[dict]:
    """One record per (source pair, PID component), in bits; `normalised` is the
    component's share of I(S1, S2; Y)."""
    out = []
    for name, (s1, s2) in feat.slice_groups(rows, mods).items():
        pid, null = pid_of_label(s1, s2, y, fit, states, seed)
        first, second = name.split("|")
        labels = {"redundant": "redundant", "unique_1": f"unique:{first}", "unique_2": f"unique:{second}",
                  "synergy": "synergy", "total": "total"}
        tot = pid["total"]
        for k, v in pid.items():
            out.append({"measure": "pid", "row": name, "column": labels[k], "metric": "bits", "value": v,
                        "null": null[k], "normalised": v / tot if tot > 1e-9 else 0.0, "own": ""})
    return out


SLICE_DROP_ROW = "prediction"


def slice_drop_rows(agent, x: dict[str, np.ndarray], y: np.ndarray, chance: float) -> list[dict]:
    """Accuracy of the agent's prediction on the audit's samples, in full and with each
    slice kind left out (the model's own `prediction(drop=kind)`, Agent.evaluate): what
    each kind carries. Columns `acc`, `acc_without_<kind>`, for the kinds the model has
    (a monolithic model has none to drop); `normalised` maps chance to 0, perfect to 1."""
    from parse_actors.agents.model import FissionModel
    from parse_actors.data.types import ModalData

    data = ModalData({m: x[m] for m in agent.net.mods}, np.asarray(y))
    kinds = [None]
    if isinstance(agent.net, FissionModel):
        kinds += ["red", "uni"] + (["syn"] if len(agent.net.mods) >= 2 else [])
    out = []
    for kind in kinds:
        acc, _ = agent.evaluate(data, drop_kind=kind)
        out.append({"measure": "slice_drop", "row": SLICE_DROP_ROW,
                    "column": "acc" if kind is None else f"acc_without_{kind}", "metric": "acc", "value": acc,
                    "null": chance, "normalised": normalise("acc", acc, chance), "own": ""})
    return out


def cell(v):
    """A record's value as pid_audit.csv writes it."""
    if isinstance(v, float):
        return repr(round(v, 6)) if v == v else "nan"
    return "" if v is None else v


def read_records(path) -> list[dict]:
    """The records of a pid_audit.csv, typed as the audit made them (values as written:
    rounded to 6 digits), so criteria can be recomputed from a run directory without
    auditing it again. The file is opened as a regular file, never through a link."""
    import csv
    import io

    from parse_actors.data import files

    with files.open_regular(path) as (fh, _size):
        text = fh.read().decode("utf-8")
    out = []
    for r in csv.DictReader(io.StringIO(text)):
        rec = dict(r)
        for k in ("value", "null", "normalised"):
            rec[k] = float(rec[k]) if rec[k] not in ("", None) else None
        rec["own"] = int(rec["own"]) if rec["own"] not in ("", None) else ""
        a = rec["agent"]
        rec["agent"] = int(a) if a.isdigit() else a
        out.append(rec)
    return out
