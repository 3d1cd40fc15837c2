"""Training losses. Each term is a separate tensor so tests (and metrics) can see
which branches each one reaches.

PARSE terms:
  ce        CE of the prediction (the kinds' logits combined by `prediction`:
            weighted mean, or sum under `sum` / `residual`)
  head_red  CE of the shared red head on each modality's red slice (mean over modalities)
  head_uni  CE of each unique head (mean over modalities); under `residual`, the CE
            of stopgrad(red) + uni (kind logits as the prediction counts them)
  head_syn  CE of the synergy head (multimodal agents); under `residual`, of
            stopgrad(red + uni) + syn
  align     cross-modal alignment of the red slices (multimodal agents; contrastive
            terms x temperature, so their gradient has a CE's scale)
  orth      mean squared cross-correlation between a modality's slices
            (`disentangle: orthogonal`)
  cross     mean squared cross-correlation between each modality's uni slice and
            every other modality's backbone features, detached (multimodal agents,
            `lambda_cross`); its gradient reaches the backbones at the share
            `cross_backbone_grad` (none by default: it moves the uni projections)
  club      CLUB upper bound on I(slice; other slice), per modality and pair of
            `model.CLUB_PAIRS`, in nats per channel (`disentangle: club`); reaches
            the slices only (critic parameters detached)
  club_fit  the CLUB critics' own Gaussian negative log-likelihood (weight 1);
            reaches the critics only (slices detached)

Weights (`term_weights`): the CE terms share a unit budget, ce + the head terms
= 1, the head share split equally over the heads the agent has; so PARSE's
objective has the gradient scale of the baselines' single CE.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .config import LossConfig
from .model import FissionOut, MonoOut, standardize


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: sample i of `a` should match sample i of `b` among the batch."""
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def cosine_align(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()


def supcon(views: list[torch.Tensor], y: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) with the modalities
    as the views: every (modality, sample) is an anchor, its positives are all
    other (modality, sample) with the same label, its contrast set everything but
    itself. With >= 2 views every anchor has a positive (its partner modality)."""
    z = F.normalize(torch.cat(views, 0), dim=1)
    labels = y.repeat(len(views))
    n = len(z)
    sim = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    log_prob = log_prob.masked_fill(~pos, 0.0)  # also clears the -inf diagonal
    return -(log_prob.sum(1) / pos.sum(1)).mean()


ALIGN_KINDS = ("infonce", "supcon", "cosine")


def resolve_align(kind: str, pairing: str = "instance") -> str:
    """`auto` -> supcon for data paired by label, InfoNCE for data paired by instance."""
    if kind != "auto":
        return kind
    if pairing not in ("instance", "label"):
        raise ValueError(f"pairing must be 'instance' or 'label', got {pairing!r}")
    return "supcon" if pairing == "label" else "infonce"


def alignment(reds: list[torch.Tensor], kind: str, temperature: float, y: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-modal alignment of the red slices (needs >= 2 modalities): InfoNCE and
    cosine averaged over modality pairs, supcon over all modalities at once
    (needs the labels `y`). `auto` means InfoNCE here (instance pairing); the
    Agent resolves it from its data's pairing.

    The contrastive terms are multiplied by the temperature (as SupCon's
    reference code does, base temperature 1): their logits are similarities / T,
    so unscaled their gradient is 1/T times a CE's; scaled, `lambda_align` weighs
    a gradient of one CE's size at any temperature."""
    kind = resolve_align(kind)
    if kind == "supcon":
        if y is None:
            raise ValueError("supcon alignment needs the labels")
        return temperature * supcon(reds, y, temperature)
    pairs = list(itertools.combinations(reds, 2))
    if kind == "infonce":
        terms = [temperature * info_nce(a, b, temperature) for a, b in pairs]
    elif kind == "cosine":
        terms = [cosine_align(a, b) for a, b in pairs]
    else:
        raise ValueError(f"unknown alignment {kind!r}; known: auto, {', '.join(ALIGN_KINDS)}")
    return torch.stack(terms).mean()


def orthogonality(slices: list[list[torch.Tensor]], eps: float = 1e-3) -> torch.Tensor:
    """Mean squared cross-correlation (over the batch) between every two slices of
    the same modality; 0 when they carry linearly unrelated features. Works for
    slices of different widths. `slices[j]` holds modality j's slices.

    Each channel is scaled by 1/sqrt(var + eps) instead of 1/norm, so for a batch
    of n the gradient with respect to any slice has norm <= 2/sqrt(n * eps)
    (each correlation is <= 1 and its gradient <= 1/sqrt(n * eps)), and a
    collapsed (constant) slice gives 0 with a zero gradient."""
    terms = []
    for per_mod in slices:
        z = [standardize(s, eps) for s in per_mod]
        n = len(z[0])
        for a, b in itertools.combinations(z, 2):
            terms.append((a.T @ b / n).square().mean())
    return torch.stack(terms).mean()


def cross_decorrelation(unis: list[torch.Tensor], feats: list[torch.Tensor], eps: float = 1e-3) -> torch.Tensor:
    """Mean, over ordered pairs of modalities (m, m2 != m), of the mean squared
    cross-correlation between uni slice m and the backbone features of m2, which are
    detached: the gradient reaches the uni slices only. 0 when no uni slice is
    linearly related to what another modality sees. Needs >= 2 modalities. Channels
    are standardised as in `orthogonality` (a collapsed one gives 0, not 0/0)."""
    terms = []
    for i, u in enumerate(unis):
        zu = standardize(u, eps)
        n = len(zu)
        for j, h in enumerate(feats):
            if j != i:
                terms.append((zu.T @ standardize(h, eps).detach() / n).square().mean())
    return torch.stack(terms).mean()


def gaussian_nll(mu: torch.Tensor, logvar: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """-log q(o | s) of a diagonal Gaussian q = N(mu, exp(logvar)), per channel and
    sample, averaged (the constant log(2 pi) / 2 left out): the critic's fit."""
    return 0.5 * ((o - mu).square() * torch.exp(-logvar) + logvar).mean()


def club_bound(mu: torch.Tensor, logvar: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """The CLUB estimate (Cheng et al. 2020, eq. 5) of I(s; o) from the critic's
    q(o | s_i) = N(mu_i, exp(logvar_i)) on a batch of pairs (s_i, o_i):
    mean_i log q(o_i | s_i) - mean_{i,j} log q(o_j | s_i), in nats per channel.
    An upper bound on I(s; o) when q is the true conditional, and up to the fit's
    error when q is learned. The mean over j of (mu_i - o_j)^2 is
    (mu_i - mean o)^2 + var o exactly, so the n x n pairs are never formed."""
    inv = torch.exp(-logvar)
    pos = (mu - o).square()
    m1 = o.mean(0, keepdim=True)
    neg = (mu - m1).square() + (o - m1).square().mean(0, keepdim=True)
    return (0.5 * (neg - pos) * inv).mean()


def _ladder(out: FissionOut, y: torch.Tensor, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """`residual` deep supervision: each kind's head is trained, on top of the
    detached logits of the kinds before it (red, uni, syn), on what they still
    miss. A kind weighted 0 in the prediction is trained on the label alone."""
    w = cfg.logit_weights
    logits = out.kind_logits()
    prefix = None
    terms = {}
    for kind in ("red", "uni", "syn"):
        if kind not in logits:
            continue
        wk = getattr(w, kind)
        own = logits[kind] if wk in (0.0, 1.0) else logits[kind] * wk
        if kind != "red":
            terms[kind] = F.cross_entropy(own if (prefix is None or wk == 0.0) else prefix.detach() + own, y)
        if wk != 0.0:
            prefix = own if prefix is None else prefix + own
    return terms


def fission_terms(
    out: FissionOut, y: torch.Tensor, cfg: LossConfig, skip_unweighted: bool = False
) -> dict[str, torch.Tensor]:
    """Every PARSE loss term that applies, unweighted (terms whose weight is 0 are
    not computed when `skip_unweighted`). `cfg.align == "auto"` means InfoNCE
    here; the Agent passes a config with the alignment resolved from its pairing."""
    w = term_weights(cfg, out.syn_logits is not None)

    def want(name: str) -> bool:
        return not skip_unweighted or w[name] != 0.0

    terms: dict[str, torch.Tensor] = {}
    residual = cfg.prediction == "residual"
    ladder = _ladder(out, y, cfg) if residual and (want("head_uni") or want("head_syn")) else {}
    if want("ce"):
        terms["ce"] = F.cross_entropy(out.prediction(cfg.logit_weights, mode=cfg.prediction), y)
    if want("head_red"):
        k, n, c = out.red_logits.shape
        terms["head_red"] = F.cross_entropy(out.red_logits.reshape(k * n, c), y.repeat(k))
    if want("head_uni"):
        terms["head_uni"] = ladder["uni"] if residual else torch.stack([F.cross_entropy(z, y) for z in out.uni_logits]).mean()
    if out.syn_logits is not None:
        if want("head_syn"):
            terms["head_syn"] = ladder["syn"] if residual else F.cross_entropy(out.syn_logits, y)
        if want("align"):
            terms["align"] = alignment(out.red, cfg.align, cfg.temperature, y)
        if cfg.lambda_cross > 0 and want("cross") and out.feats is not None:  # opt-in; the model's FissionOut has feats
            unis = out.uni if out.cross_uni is None else out.cross_uni
            terms["cross"] = cross_decorrelation(unis, out.feats, cfg.orth_eps)
    if out.club is not None and want("club"):
        terms["club"] = torch.stack([club_bound(mu, lv, o) for _, _, mu, lv, o in out.club]).mean()
        terms["club_fit"] = torch.stack([gaussian_nll(mu, lv, o) for mu, lv, _, _, o in out.club]).mean()
    if want("orth"):
        if out.syn is not None:
            slices = [[r, u, s] for r, u, s in zip(out.red, out.uni, out.syn)]
        else:
            slices = [[r, u] for r, u in zip(out.red, out.uni)]
        terms["orth"] = orthogonality(slices, cfg.orth_eps)
    return terms


def term_weights(cfg: LossConfig, multimodal: bool = True) -> dict[str, float]:
    """Weight of each term. The CE terms share a unit budget: `ce` gets
    ce_weight / (ce_weight + head_weight), the heads the rest split equally over
    the agent's heads (red and uni; syn too when `multimodal`). Under `sum` and
    `residual` the prediction's CE is further divided by the number K of kinds in
    the prediction: d CE / d logits_k is the CE's whole gradient for each kind of a
    sum (1/K of it in a mean), so each kind's parameters get the gradient they get
    under `mean` while the prediction moves K times as far per step. A unimodal agent
    has no `head_syn`, `align` or `cross` term; their weights are listed as 0."""
    ce, heads = cfg.ce_shares(multimodal)
    per_head = heads / (3 if multimodal else 2)
    if cfg.prediction != "mean":  # a sum passes the CE's full gradient to every kind: 1/K of it, as the mean does
        w = cfg.logit_weights
        ce /= sum(1 for k in (w.red, w.uni, w.syn if multimodal else 0.0) if k > 0)
    club = cfg.disentangle == "club"
    return {
        "ce": ce,
        "head_red": per_head,
        "head_uni": per_head,
        "head_syn": per_head if multimodal else 0.0,
        "align": cfg.lambda_align if multimodal else 0.0,
        "club": cfg.lambda_club if club else 0.0,
        "club_fit": 1.0 if club else 0.0,
        "orth": cfg.lambda_orth if cfg.disentangle == "orthogonal" else 0.0,
        "cross": cfg.lambda_cross if multimodal else 0.0,
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
