"""Training losses. Each term is a separate tensor so tests (and metrics) can see
which branches each one reaches.

PARSE terms:
  ce        CE of the prediction (weighted sum of the heads' logits)
  head_red  CE of the shared red head on each modality's red slice (mean over modalities)
  head_uni  CE of each unique head (mean over modalities)
  head_syn  CE of the synergy head (multimodal agents)
  align     cross-modal alignment of the red slices (multimodal agents)
  orth      mean squared cross-correlation between a modality's slices
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .config import LossConfig
from .model import FissionOut, MonoOut


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: sample i of `a` should match sample i of `b` among the batch."""
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def cosine_align(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()


def alignment(reds: list[torch.Tensor], kind: str, temperature: float) -> torch.Tensor:
    """Mean alignment over all modality pairs (needs >= 2 modalities)."""
    pairs = list(itertools.combinations(reds, 2))
    if kind == "infonce":
        terms = [info_nce(a, b, temperature) for a, b in pairs]
    else:
        terms = [cosine_align(a, b) for a, b in pairs]
    return torch.stack(terms).mean()


def _standardize(z: torch.Tensor) -> torch.Tensor:
    z = z - z.mean(0, keepdim=True)
    return z / (z.norm(dim=0, keepdim=True) + 1e-6)


def orthogonality(slices: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean squared cross-correlation (over the batch) between every two slices of
    the same modality; 0 when they carry linearly unrelated features. Works for
    slices of different widths. `slices[j]` holds modality j's slices."""
    terms = []
    for per_mod in slices:
        z = [_standardize(s) for s in per_mod]
        for a, b in itertools.combinations(z, 2):
            terms.append((a.T @ b).square().mean())
    return torch.stack(terms).mean()


def fission_terms(
    out: FissionOut, y: torch.Tensor, cfg: LossConfig, skip_unweighted: bool = False
) -> dict[str, torch.Tensor]:
    """Every PARSE loss term that applies, unweighted (terms whose weight is 0 are
    not computed when `skip_unweighted`)."""
    w = term_weights(cfg)

    def want(name: str) -> bool:
        return not skip_unweighted or w[name] != 0.0

    terms: dict[str, torch.Tensor] = {}
    if want("ce"):
        terms["ce"] = F.cross_entropy(out.prediction(cfg.logit_weights), y)
    if want("head_red"):
        k, n, c = out.red_logits.shape
        terms["head_red"] = F.cross_entropy(out.red_logits.reshape(k * n, c), y.repeat(k))
    if want("head_uni"):
        terms["head_uni"] = torch.stack([F.cross_entropy(z, y) for z in out.uni_logits]).mean()
    if out.syn_logits is not None:
        if want("head_syn"):
            terms["head_syn"] = F.cross_entropy(out.syn_logits, y)
        if want("align"):
            terms["align"] = alignment(out.red, cfg.align, cfg.temperature)
    if want("orth"):
        if out.syn is not None:
            slices = [[r, u, s] for r, u, s in zip(out.red, out.uni, out.syn)]
        else:
            slices = [[r, u] for r, u in zip(out.red, out.uni)]
        terms["orth"] = orthogonality(slices)
    return terms


def term_weights(cfg: LossConfig) -> dict[str, float]:
    return {
        "ce": cfg.ce_weight,
        "head_red": cfg.head_weight,
        "head_uni": cfg.head_weight,
        "head_syn": cfg.head_weight,
        "align": cfg.lambda_align,
        "orth": cfg.lambda_orth,
    }


def total_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum; terms with weight 0 are left out of the graph entirely."""
    total = None
    for name, t in terms.items():
        w = weights[name]
        if w == 0.0:
            continue
        total = t * w if total is None else total + t * w
    if total is None:
        total = next(iter(terms.values())) * 0.0
    return total


def mono_terms(out: MonoOut, y: torch.Tensor, cfg: LossConfig, skip_unweighted: bool = False) -> dict[str, torch.Tensor]:
    """The monolithic baselines train on the prediction CE alone."""
    return {"ce": F.cross_entropy(out.logits, y)}
