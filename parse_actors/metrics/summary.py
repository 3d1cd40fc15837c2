"""summary.json and the table printed at the end of a run."""

from __future__ import annotations

from collections import defaultdict

from parse_actors.names import TRAFFIC_KINDS as KINDS


def final_accuracy(rows: list[dict], column: str = "acc") -> dict:
    """Mean of `column` at the last evaluated round, overall and per agent group
    (agents without that score, e.g. no validation split, are left out)."""
    if not rows:
        return {"mean": None, "by_group": {}}
    last = max(r["round"] for r in rows)
    final = [r for r in rows if r["round"] == last and r.get(column) is not None]
    if not final:
        return {"mean": None, "by_group": {}}
    by_group: dict[str, list[float]] = defaultdict(list)
    for r in final:
        by_group[r["group"]].append(r[column])
    return {
        "mean": sum(r[column] for r in final) / len(final),
        "by_group": {g: sum(v) / len(v) for g, v in by_group.items()},
    }


def build_summary(*, scenario, rows: list[dict], comm_rows: list[dict], rounds: int, virtual_time_s: float,
                  wall_time_s: float, header_bytes: int, messages: dict, complete: bool = True,
                  extra: dict | None = None) -> dict:
    bytes_by_kind: dict[str, int] = {}
    for r in comm_rows:
        bytes_by_kind[r["kind"]] = bytes_by_kind.get(r["kind"], 0) + int(r["bytes_sent"])
    ordered = {k: bytes_by_kind[k] for k in KINDS if k in bytes_by_kind}
    ordered.update({k: v for k, v in sorted(bytes_by_kind.items()) if k not in ordered})
    groups = {}
    for g in scenario.agents.groups:
        groups[g.label] = groups.get(g.label, 0) + g.count
    out = {
        "name": scenario.name,
        "seed": scenario.seed,
        "method": scenario.method,
        "rounds": rounds,
        "complete": complete,
        "virtual_time_s": virtual_time_s,
        "wall_time_s": wall_time_s,
        "agents": scenario.n_agents,
        "groups": groups,
        "final_acc": final_accuracy(rows),
        "final_acc_val": final_accuracy(rows, "acc_val"),
        "final_acc_local": final_accuracy(rows, "acc_local"),
        "bytes_by_kind": ordered,
        "bytes_total": sum(bytes_by_kind.values()),
        "messages": {k: int(messages.get(k, 0)) for k in ("sent", "delivered", "dropped")},
        "message_header_bytes": header_bytes,
    }
    if any(r.get("acc_gval") is not None for r in rows):  # only runs with a global validation set
        out["final_acc_gval"] = final_accuracy(rows, "acc_gval")
    if extra:
        out.update(extra)
    return out


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def format_summary(summary: dict, run_dir: str) -> str:
    lines = []
    fa = summary["final_acc"]
    title = f"{summary['name']}  method={summary['method']}  seed={summary['seed']}"
    lines.append(title)
    lines.append("-" * max(len(title), 44))
    lines.append(f"{'agent group':<24}{'agents':>8}{'final acc':>12}")
    for g, acc in fa["by_group"].items():
        n = summary.get("groups", {}).get(g, "")
        lines.append(f"{g:<24}{n:>8}{acc:>12.3f}")
    if fa["mean"] is not None:
        lines.append(f"{'all':<24}{summary.get('agents', ''):>8}{fa['mean']:>12.3f}")
    multi = [a for g, a in fa["by_group"].items() if "+" in g]
    uni = [a for g, a in fa["by_group"].items() if "+" not in g]
    if multi and uni:
        verdict = "exceed" if min(multi) > max(uni) else "do not exceed"
        lines.append(f"multimodal agents {verdict} unimodal ones "
                     f"(best unimodal {max(uni):.3f}, worst multimodal {min(multi):.3f})")
    lines.append("")
    lines.append(f"{'slice kind':<24}{'bytes':>14}{'share':>8}")
    total = summary["bytes_total"] or 1
    for k, b in summary["bytes_by_kind"].items():
        lines.append(f"{k:<24}{_fmt_bytes(b):>14}{100 * b / total:>7.1f}%")
    lines.append(f"{'total':<24}{_fmt_bytes(summary['bytes_total']):>14}")
    m = summary["messages"]
    lines.append(f"messages: {m['sent']} sent, {m['delivered']} delivered, {m['dropped']} dropped")
    lines.append(f"rounds: {summary['rounds']}   virtual time: {summary['virtual_time_s']:.2f} s   "
                 f"wall time: {summary['wall_time_s']:.1f} s")
    if summary.get("diverged_agents"):
        bad = ", ".join(f"{a} (round {r})" for a, r in summary["diverged_agents"].items())
        lines.append(f"WARNING: training diverged (non-finite loss) for agents {bad}; lower optim.lr")
    lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)
