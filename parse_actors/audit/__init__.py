"""Audit of a finished run: what each learned slice carries (latent probes on
the synthetic task, PID of the label), from the agents' final weights.

    save_final_weights(run_dir, {agent_id: agent.state_dict()})   # end of a run
    audit_run(run_dir)                                            # parse-sim audit RUN_DIR
"""

from parse_actors.metrics.final_weights import DEFAULT_MAX_MB, NAME, load_final_weights, save_final_weights

from .audit import CSV_NAME, JSON_NAME, AuditResult, audit_run, format_table
from .criteria import fission_criteria, wins

__all__ = ["CSV_NAME", "DEFAULT_MAX_MB", "JSON_NAME", "NAME", "AuditResult", "audit_run", "fission_criteria",
           "format_table", "load_final_weights", "save_final_weights", "wins"]
