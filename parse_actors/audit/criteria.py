"""Issue 20's criteria of a fission, computed from an audit's records, each beside the
same criterion on the untrained network (the null row) and on the oracle fission.

The null-row rule: a criterion the untrained network (same architecture, same seed,
the run's initial parameters) already passes is not a win, whatever the trained
network scores. It applies per probe row (a row whose untrained twin wins its own
column does not count) and per criterion (a criterion whose untrained value passes
does not pass). Without it the audit credits the input: a modality's syn slices read
its codes even untrained, because the codes are a linear image of the input.

Criteria (thresholds from issue 20's "Done when"):

- `own_column`: share of red and uni rows whose own column beats the best other
  column by >= 0.15 normalised probe score; passes at >= 0.9. Applies when the label
  uses redundant or unique information.
- `syn_own_column`: the same for syn rows (reported to show the null rule at work:
  untrained syn slices win it; never a pass condition of the issue).
- `fusion_sum`: normalised probe score of the fused syn representation on the code-sum
  column (the only column that needs both modalities); passes at >= 0.8 when the label
  is synergy alone, >= 0.3 when it mixes synergy with other information.
- `pid_synergy_share` / `pid_redundancy_share`: synergy share of the syn pair's PID and
  redundancy share of the red pair's, over the oracle fission's share under the same
  estimator; passes at >= 0.6. A share of a pair that carries no information (total
  within 0.02 bits of its label-shuffled null) counts as 0; the criterion applies when
  the oracle's pair carries information (0.05 bits above its null). A share of almost
  nothing can still be large (a pair carrying 0.1 bits, all of it synergistic, has share
  1), so a pass also needs the component's bits (above the shuffled null) to reach 0.6 of
  the oracle's: `bits_ratio`, stricter than the issue's wording.
- `slice_drop`: accuracy in full and without each slice kind, per group (no threshold).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


OWN_MARGIN = 0.15
OWN_FRACTION = 0.9
FUSION_SUM_SYNERGY_ONLY = 0.8
FUSION_SUM_MIXED = 0.3
PID_RATIO = 0.6
PID_EMPTY_BITS = 0.02
PID_ORACLE_BITS = 0.05
UNTRAINED = "untrained"
ORACLE = "oracle"


def untrained_id(agent) -> str:
    return f"{UNTRAINED}:{agent}"


def untrained_group(group: str) -> str:
    return f"{UNTRAINED}:{group}"


def _side(records: list[dict], which: str) -> list[dict]:
    """The trained run's records ('trained'), the untrained network's, or the oracle's."""
    if which == "trained":
        return [r for r in records if r["method"] not in (UNTRAINED, ORACLE)]
    return [r for r in records if r["method"] == which]


def _agent_key(agent) -> str:
    s = str(agent)
    return s[len(UNTRAINED) + 1:] if s.startswith(UNTRAINED + ":") else s


# ----------------------------------------------------------------- probe rows


def row_margins(records: list[dict], kinds: tuple[str, ...]) -> dict[tuple[str, str], float]:
    """(agent, row) -> own column's normalised score minus the best other column's, for
    rows of the given slice kinds; the agent key drops the `untrained:` prefix so a
    row and its untrained twin share a key."""
    by_row: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r["measure"] == "probe" and r["row"].split("/")[0] in kinds:
            by_row[(_agent_key(r["agent"]), r["row"])].append(r)
    out = {}
    for key, recs in by_row.items():
        own = [float(r["normalised"]) for r in recs if r["own"]]
        other = [float(r["normalised"]) for r in recs if not r["own"]]
        if own and other:
            out[key] = max(own) - max(other)
    return out


def _frac(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def own_column(records: list[dict], kinds: tuple[str, ...], applies: bool) -> dict:
    trained = row_margins(_side(records, "trained"), kinds)
    untrained = row_margins(_side(records, UNTRAINED), kinds)
    oracle = row_margins(_side(records, ORACLE), kinds)
    won = {k: m >= OWN_MARGIN for k, m in trained.items()}
    null_won = {k: m >= OWN_MARGIN for k, m in untrained.items()}
    counted = {k: w and not null_won.get(k, False) for k, w in won.items()}  # the null-row rule, per row
    out = {
        "rows": len(trained), "margin": OWN_MARGIN, "threshold": OWN_FRACTION, "applies": applies,
        "trained": _frac(won.values()), "untrained": _frac(null_won.values()), "oracle": _frac(
            m >= OWN_MARGIN for m in oracle.values()),
        "wins": _frac(counted.values()), "rows_won": int(sum(counted.values())),
        "rows_won_by_untrained": int(sum(w and null_won.get(k, False) for k, w in won.items())),
    }
    out["pass"] = _verdict(out["wins"], out["untrained"], OWN_FRACTION, applies)
    return out


def _verdict(value: float | None, untrained: float | None, threshold: float, applies: bool) -> bool | None:
    """The null-row rule: passes when the value reaches the threshold and the untrained
    network's does not; None where the criterion does not apply or has no value."""
    if not applies or value is None:
        return None
    return bool(value >= threshold and not (untrained is not None and untrained >= threshold))


# ----------------------------------------------------------------- fusion


def fusion_sum_scores(records: list[dict]) -> dict[str, float]:
    """agent -> mean normalised score of its fusion rows on the code-sum columns they own."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if (r["measure"] == "probe" and r["row"].startswith("fusion/") and r["column"].startswith("sum:")
                and r["own"]):
            per[_agent_key(r["agent"])].append(float(r["normalised"]))
    return {a: float(np.mean(v)) for a, v in per.items()}


def fusion_threshold(mix: dict | None) -> float | None:
    if not mix or not mix.get("synergy"):
        return None
    alone = not mix.get("redundant") and not mix.get("unique")
    return FUSION_SUM_SYNERGY_ONLY if alone else FUSION_SUM_MIXED


def fusion_sum(records: list[dict], mix: dict | None) -> dict:
    thr = fusion_threshold(mix)
    tr = _frac(fusion_sum_scores(_side(records, "trained")).values())
    un = _frac(fusion_sum_scores(_side(records, UNTRAINED)).values())
    orc = _frac(fusion_sum_scores(_side(records, ORACLE)).values())
    applies = thr is not None and tr is not None
    return {"threshold": thr, "applies": applies, "trained": tr, "untrained": un, "oracle": orc,
            "pass": _verdict(tr, un, thr if thr is not None else 1.0, applies)}


# ----------------------------------------------------------------- PID shares


def pid_shares(records: list[dict], kind: str, component: str) -> tuple[float | None, float | None, float | None]:
    """(mean share of `component` in the PID of the `kind` pairs, mean total bits above the
    label-shuffled null, mean component bits above its null) over agents and modality
    pairs; a pair carrying no information has share 0."""
    shares, above, bits = [], [], []
    by_pair: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for r in records:
        if r["measure"] == "pid":
            first, _, second = r["row"].partition("|")
            if first.split("/")[0] == kind and second.split("/")[0] == kind:
                by_pair[(str(r["agent"]), r["row"])][r["column"]] = r
    for comps in by_pair.values():
        tot, part = comps.get("total"), comps.get(component)
        if tot is None or part is None or not np.isfinite(float(tot["value"])):
            continue
        gain = float(tot["value"]) - float(tot["null"])
        above.append(gain)
        bits.append(max(float(part["value"]) - float(part["null"]), 0.0))
        shares.append(float(part["normalised"]) if gain > PID_EMPTY_BITS else 0.0)
    return _frac(shares), _frac(above), _frac(bits)


def pid_share(records: list[dict], kind: str, component: str) -> dict:
    tr, tr_total, tr_bits = pid_shares(_side(records, "trained"), kind, component)
    un, un_total, un_bits = pid_shares(_side(records, UNTRAINED), kind, component)
    orc, orc_total, orc_bits = pid_shares(_side(records, ORACLE), kind, component)
    applies = bool(orc and orc_total is not None and orc_total > PID_ORACLE_BITS and orc_bits and tr is not None)

    def ratio(v, of):  # over an oracle that carries (almost) nothing, a ratio says nothing
        return None if v is None or not applies or not of or of <= PID_EMPTY_BITS else v / of

    out = {"pair": f"{kind}|{kind}", "component": component, "threshold": PID_RATIO, "applies": applies,
           "trained_share": tr, "untrained_share": un, "oracle_share": orc,
           "trained_total_above_null": tr_total, "untrained_total_above_null": un_total,
           "oracle_total_above_null": orc_total, "trained_bits": tr_bits, "untrained_bits": un_bits,
           "oracle_bits": orc_bits, "trained": ratio(tr, orc), "untrained": ratio(un, orc),
           "bits_ratio": ratio(tr_bits, orc_bits), "untrained_bits_ratio": ratio(un_bits, orc_bits)}
    share_ok = _verdict(out["trained"], out["untrained"], PID_RATIO, applies)
    bits_ok = _verdict(out["bits_ratio"], out["untrained_bits_ratio"], PID_RATIO, applies)
    out["pass"] = None if share_ok is None else bool(share_ok and bits_ok)
    return out


# ----------------------------------------------------------------- slice drop


def slice_drop(records: list[dict]) -> dict:
    """group -> column (acc, acc_without_<kind>) -> mean accuracy over the group's agents,
    for the trained run and the untrained network (group `untrained:<group>`)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["measure"] == "slice_drop":
            acc[str(r["group"])][r["column"]].append(float(r["value"]))
    return {g: {c: float(np.mean(v)) for c, v in cols.items()} for g, cols in acc.items()}


# ----------------------------------------------------------------- all of them


def fission_criteria(records: list[dict], mix: dict | None) -> dict:
    """Every criterion of the module docstring; `mix` is the synthetic task's (w_R, w_U,
    w_S) (None for other datasets: the probe and fusion criteria need latents)."""
    uses_ru = bool(mix) and bool(mix.get("redundant") or mix.get("unique"))
    return {
        "own_column": own_column(records, ("red", "uni"), uses_ru),
        "syn_own_column": own_column(records, ("syn",), False),
        "fusion_sum": fusion_sum(records, mix),
        "pid_synergy_share": pid_share(records, "syn", "synergy"),
        "pid_redundancy_share": pid_share(records, "red", "redundant"),
        "slice_drop": slice_drop(records),
    }


def wins(criteria: dict) -> list[str]:
    """Names of the criteria reported as wins (passed, and not by the untrained network)."""
    return [k for k, v in criteria.items() if isinstance(v, dict) and v.get("pass") is True]


def format_criteria(criteria: dict) -> list[str]:
    """Console lines: each criterion with its untrained (null row) and oracle values."""
    def f(v, digits=2):
        return "n/a" if v is None else f"{v:.{digits}f}"

    def verdict(c):
        return {True: "WIN", False: "no", None: "n/a"}[c.get("pass")]

    lines = ["fission criteria (issue 20; a criterion the untrained network passes is not a win)"]
    for name in ("own_column", "syn_own_column"):
        c = criteria[name]
        lines.append(f"  {name}: rows won {f(c['wins'])} ({c['rows_won']} of {c['rows']}; margin >= {c['margin']}, "
                     f"needs >= {c['threshold']}); untrained {f(c['untrained'])}, oracle {f(c['oracle'])}; "
                     f"{c['rows_won_by_untrained']} won by the untrained twin too: {verdict(c)}")
    c = criteria["fusion_sum"]
    lines.append(f"  fusion_sum: {f(c['trained'])} (needs >= {f(c['threshold'])}); untrained {f(c['untrained'])}, "
                 f"oracle {f(c['oracle'])}: {verdict(c)}")
    for name in ("pid_synergy_share", "pid_redundancy_share"):
        c = criteria[name]
        lines.append(f"  {name}: share {f(c['trained_share'])} = {f(c['trained'])} of the oracle's "
                     f"{f(c['oracle_share'])} (needs >= {c['threshold']}); untrained {f(c['untrained_share'])} "
                     f"= {f(c['untrained'])}; {c['component']} bits {f(c['bits_ratio'])} of the oracle's "
                     f"(untrained {f(c['untrained_bits_ratio'])}; needs >= {c['threshold']}): {verdict(c)}")
    for g, cols in criteria["slice_drop"].items():
        lines.append(f"  slice drop [{g}]: " + ", ".join(f"{k} {v:.3f}" for k, v in cols.items()))
    return lines
