"""The samples an audit measures on: fresh draws of a synthetic run's task with their
latents (parse_actors.data.synthetic.generate_heldout), or another dataset's global
test set (no latents: PID and slice drop only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AuditSamples:
    x: dict[str, np.ndarray]
    y: np.ndarray
    task: object | None  # the synthetic PIDTask, or None
    latents: dict[str, np.ndarray] | None
    ground_truth: dict | None
    source: str

    @property
    def synthetic(self) -> bool:
        return self.task is not None


def audit_samples(sc, fd, n_samples: int) -> AuditSamples:
    if sc.data.name == "synthetic":
        from parse_actors.data.synthetic import generate_heldout

        held = generate_heldout(sc.data.synthetic, sc.seed, n_samples, oracle=True)
        truth = {k: held.info[k] for k in ("mix", "oracle_accuracy", "oracle_by_information")}
        return AuditSamples(held.data.x, held.data.y, held.task, held.latents, truth,
                            f"{n_samples} fresh samples of the run's synthetic task")
    x, y = fd.global_test.x, fd.global_test.y
    return AuditSamples(x, y, None, None, None, f"the global test set ({len(y)} samples)")
