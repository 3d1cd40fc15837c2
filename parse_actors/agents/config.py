"""Scenario sections of the learning side: `model:`, `loss:`, `optim:`, `aggregation:`.

Every field has a default and a docstring: these classes are the JSON Schema a
user reads, and bad values are refused at load time rather than mid-run.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from parse_actors.names import SLICE_KINDS
from parse_actors.schema import StrictModel

ARCH_RANKS: dict[str, tuple[int, ...]] = {"mlp": (1, 2, 3, 4), "cnn": (2, 3), "conv1d": (1, 2), "gru": (1, 2)}
"""Encoder architectures and the input ranks (sample shape without the batch
dimension) each accepts; `archs.ARCHS` builds one for each name (and checks it
has one per name). Here, without torch, so that validating a scenario does not import it."""
ARCH_NAMES = tuple(ARCH_RANKS)
ArchName = Literal[ARCH_NAMES]  # type: ignore[valid-type]
"""Encoder architectures of the registry in `archs.py`."""



class SliceRatio(StrictModel):
    """Relative widths of the redundant / unique / synergistic slices (normalised)."""

    red: float = Field(1.0, gt=0)
    """Relative width of the redundant slice."""
    uni: float = Field(1.0, gt=0)
    """Relative width of the unique slice."""
    syn: float = Field(1.0, gt=0)
    """Relative width of the synergistic slice."""


class SliceWeights(StrictModel):
    """Weight of each slice kind's logits in the prediction.

    The prediction is the weighted *mean* over the kinds the agent has: each
    kind counts once (its per-modality logits averaged first), and the weights
    are renormalised over the kinds present, so a unimodal agent (red, uni) and
    a multimodal one (red, uni, syn) predict on the scale of one head."""

    red: float = Field(1.0, ge=0)
    """Weight of the red kind: the shared red head's logits averaged over the agent's modalities. Default 1 (kinds equal)."""
    uni: float = Field(1.0, ge=0)
    """Weight of the uni kind: the unique heads' logits averaged over the agent's modalities. Default 1 (kinds equal)."""
    syn: float = Field(1.0, ge=0)
    """Weight of the syn kind: the synergy head's logits (multimodal agents only). Default 1 (kinds equal)."""

    @model_validator(mode="after")
    def _unimodal_has_a_head(self):
        if self.red + self.uni <= 0:
            raise ValueError("red + uni must be > 0: a unimodal agent predicts from its red and uni heads only")
        return self


class ModelConfig(StrictModel):
    """Shape of every agent's network; which variant is built follows from the method."""

    slice_width: int = Field(16, ge=1, le=65_536)
    """Width d of one slice at an equal split: the three slices are 3*d wide together, divided by `split_ratio`."""
    split_ratio: SliceRatio = SliceRatio()
    """Relative widths of the red / uni / syn slices (normalised; each slice is at least 1 wide)."""
    fission: Literal["project", "split", "project_relu", "project_norm", "project_fuse"] = "project_fuse"
    """How a backbone's output becomes the three slices (default `project_fuse`, since 2026-12-08: measured better on the synergy preset and level elsewhere than `project`, docs/architecture.md). `project`: three linear projections `D_m -> d` (the fission branches `fission/<m>/<kind>`), no nonlinearity between the ReLU backbone and the heads/fusion; `split`: the backbone output (3*d wide, ReLU) is cut into the slices (the paper's code; no fission branches); `project_relu`: the projections followed by a ReLU; `project_norm`: the projections followed by a parameter-free RMS norm with a unit floor (z / sqrt(mean z^2 + 1): caps a slice's scale, never amplifies it; a LayerNorm multiplied the backbone's gradient at init 3-12x), then a ReLU. The first three `project*` variants have the same branch keys, parameter names and shapes: the exchange and its bytes do not change. `project_fuse`: red and uni as `project`; each modality's syn projection `D_m -> fusion_hidden` (no bias) is its share of the fusion layer, which sums them (over sqrt(K)), adds one bias and a ReLU: the monolithic network's fusion cut per modality, so the syn path is as deep as the monolithic one (no product of two linear maps; `split_ratio.syn` does not apply). Same branch keys as `project`; the syn projections are `fusion_hidden / d` times as wide and the fusion is one bias, so its bytes differ."""
    backbone_width: int = Field(64, ge=1, le=65_536)
    """Output width D_m of every modality's encoder (`project` fission and the monolithic baselines)."""
    backbone_widths: dict[str, PositiveInt] = {}
    """Per-modality override of `backbone_width`, e.g. {audio: 32}; fixed per modality across architectures so projections stay shareable."""
    default_arch: ArchName = "mlp"
    """Encoder architecture of a modality absent from `archs` and from the agent's own spec."""
    archs: dict[str, ArchName] = {}
    """Default encoder architecture per modality, e.g. {image: cnn, audio: conv1d}; an agent's spec may override it."""
    mlp_hidden: list[PositiveInt] = [128]
    """Hidden layer widths of the `mlp` encoder (input flattened)."""
    cnn_channels: list[PositiveInt] = Field(default=[16, 32], min_length=1)
    """Channels of the `cnn` encoder's 3x3 conv layers (each followed by 2x2 max-pooling while the map is at least 2x2)."""
    conv1d_channels: list[PositiveInt] = Field(default=[32, 32], min_length=1)
    """Channels of the `conv1d` encoder's layers over time (input (T, F))."""
    conv1d_kernel: PositiveInt = 5
    """Kernel length of the `conv1d` encoder."""
    gru_hidden: int = Field(32, ge=1, le=65_536)
    """Hidden width of the `gru` encoder (input (T, F); last hidden state is projected to D_m)."""
    slice_keys: Literal["modality", "shared"] = "modality"
    """How slice branches are keyed. `modality` (PARSE): projections and uni heads per modality (`fission/<m>/<kind>`, `head/uni/<m>`), fusion and syn head per modality set, so key matching itself is the partial alignment. `shared` (full alignment, method `parse_share_all`): one key per slice kind wherever shapes allow: `fission/<kind>/<input width>` (one projection for every modality of that backbone width, also inside an agent), `head/uni`, `head/syn`, `fusion/<number of modalities>`. Backbones stay per modality and architecture either way."""
    fusion_hidden: int = Field(64, ge=1, le=65_536)
    """Hidden width of the fusion MLP over the concatenated syn slices (PARSE)."""
    head_hidden: int = Field(0, ge=0)
    """Hidden width of every classifier head; 0 makes heads linear."""
    embed_width: PositiveInt | None = None
    """Width of the single embedding of the monolithic baselines; default 3*slice_width (same as the three slices)."""
    cost_scale: float = Field(1.0, gt=0)
    """Virtual seconds per 10^9 multiply-accumulates of training (forward + backward counted as 3x forward) at agent speed 1.0."""

    def width_of(self, modality: str) -> int:
        return self.backbone_widths.get(modality, self.backbone_width)

    def slice_widths(self) -> dict[str, int]:
        r = self.split_ratio
        total = r.red + r.uni + r.syn
        full = 3 * self.slice_width
        return {k: max(1, round(full * getattr(r, k) / total)) for k in SLICE_KINDS}

    def embedding_width(self) -> int:
        return self.embed_width if self.embed_width is not None else 3 * self.slice_width


def encoder_weights(arch: str, shape: tuple[int, ...], out: int, cfg: ModelConfig) -> int:
    """Parameters of the encoder `archs.build_encoder(arch, shape, out, cfg)` builds,
    by arithmetic (validation sizes models without torch; tests hold it to the real count)."""
    if arch == "mlp":
        prev, n = math.prod(shape), 0
        for h in [*cfg.mlp_hidden, out]:
            n += prev * h + h
            prev = h
        return n
    if arch == "cnn":
        prev, n = (shape[0] if len(shape) == 3 else 1), 0
        for ch in cfg.cnn_channels:
            n += 9 * prev * ch + ch
            prev = ch
        return n + prev * out + out
    if arch == "conv1d":
        prev, n = (shape[1] if len(shape) == 2 else 1), 0
        for ch in cfg.conv1d_channels:
            n += cfg.conv1d_kernel * prev * ch + ch
            prev = ch
        return n + prev * out + out
    if arch == "gru":
        f, h = (shape[1] if len(shape) == 2 else 1), cfg.gru_hidden
        return 3 * (f * h + h * h + 2 * h) + h * out + out
    raise ValueError(f"unknown encoder architecture {arch!r}")


PREDICTIONS = ("mean", "sum", "residual")
DISENTANGLE = ("orthogonal", "club", "none")


class LossConfig(StrictModel):
    """Terms of the PARSE training loss (the monolithic baselines use only the prediction CE).

    Scale-neutral by construction: the cross-entropies share a unit budget
    (`ce_weight` and `head_weight` are divided by their sum), and the prediction
    is a weighted mean of head logits, so PARSE's gradient has the size of one
    CE, like the baselines'; `lambda_align` and `lambda_orth` add small
    regularisers on top."""

    ce_weight: float = Field(0.5, ge=0)
    """Share of the unit CE budget for the CE of the prediction (weighted mean of the heads' logits). Default 0.5: half the budget trains the ensemble the agent is scored on."""
    head_weight: float = Field(0.5, ge=0)
    """Share of the unit CE budget for deep supervision: the per-head CEs (red over all modalities, uni averaged over modalities, syn for multimodal agents), split equally over the heads the agent has. Default 0.5: every slice must predict on its own (slice-drop inference, a red head useful to every neighbour)."""
    head_weight_multimodal: float | None = Field(None, ge=0)
    """`head_weight` for agents with two or more modalities; None (default): `head_weight` for every agent. 0 with syn-led `logit_weights` lets a multimodal agent's syn path take its whole CE while the unimodal agents keep the per-head CEs their red and uni heads need (docs/architecture.md)."""
    lambda_align: float = Field(0.1, ge=0)
    """Weight of the cross-modal alignment of the red slices inside multimodal agents. InfoNCE and supcon enter multiplied by `temperature` (their gradient would otherwise be 1/temperature times a CE's, i.e. 10x at 0.1, and dominate the CE budget). Default 0.1: a regulariser with a tenth of the CE budget's gradient."""
    align: Literal["auto", "infonce", "supcon", "cosine"] = "auto"
    """Alignment term. `infonce`: symmetric InfoNCE, sample i of one modality matches sample i of the other (instance-paired data); `supcon`: supervised contrastive (Khosla et al. 2020) over the red slices of all modalities, same label = positive (data paired by label); `cosine`: 1 - cosine similarity of paired red slices; `auto` (default): supcon when the agent's data is paired by label, InfoNCE when paired by instance (the Agent's `pairing`)."""
    temperature: float = Field(0.1, gt=0)
    """Temperature of InfoNCE and supcon. Default 0.1, the value of SimCLR / SupCon."""
    lambda_orth: float = Field(0.1, ge=0)
    """Weight of the orthogonality term (`disentangle: orthogonal`): mean squared cross-correlation between a modality's red, uni (and syn) slices. Default 0.1, a regulariser like `lambda_align`."""
    orth_eps: float = Field(1e-3, gt=0)
    """Variance floor of the orthogonality term: each channel is divided by sqrt(var + orth_eps), not by its norm, so a collapsed slice gives 0, not 0/0, and the term's gradient is at most 2/sqrt(batch * orth_eps) in norm. Default 1e-3: a std floor of ~0.03, well below the slices' healthy scale (~0.1..1), attenuating their correlation by < 10%."""
    logit_weights: SliceWeights = SliceWeights()
    """Weights of the slice kinds' logits in the prediction (normalised over the kinds the agent has under `prediction: mean`, plain multipliers under `sum` and `residual`)."""
    prediction: Literal[PREDICTIONS] = "mean"  # type: ignore[valid-type]
    """How the kinds' logits make the prediction and what each head is trained on. `mean`: weighted mean of the kinds' logits (each kind's per-modality logits averaged first), every head trained on the label alone; `sum`: the weighted sum of the kinds' logits, heads as under `mean`; `residual`: the sum, with a stop-gradient ladder in the deep supervision: the red head on the label, the uni head on stopgrad(red) + uni, the syn head on stopgrad(red + uni) + syn, so uni learns what red misses and syn what both miss. The budget (`ce_weight`, `head_weight`) is the same under all three; under `sum` and `residual` the prediction's CE share is divided by the number of kinds summed, so each kind's parameters get the gradient they get under `mean` (scale-neutral) while the prediction moves that many times as far. See docs/architecture.md for the measurements."""
    disentangle: Literal[DISENTANGLE] = "orthogonal"  # type: ignore[valid-type]
    """The term that keeps the slices of one modality apart. `orthogonal`: mean squared cross-correlation (weight `lambda_orth`); `club`: the CLUB upper bound on mutual information (Cheng et al. 2020, as FactorCL uses it) of (uni, red), (syn, red) and (syn, uni) per modality, weight `lambda_club`, each with a small local Gaussian critic q(other | slice) fitted by its own likelihood (the critic is never exchanged); `none`: no such term."""
    lambda_club: float = Field(0.1, ge=0)
    """Weight of the CLUB bound under `disentangle: club` (the slices are standardised per channel first, so the bound is in nats per channel and its gradient is scale-free). Default 0.1, like `lambda_orth`."""
    club_hidden: int = Field(32, ge=1, le=65_536)
    """Hidden width of each CLUB critic (an MLP slice -> mean and log-variance of the other slice)."""
    lambda_cross: float = Field(0.0, ge=0)
    """Weight of the cross-modal decorrelation of the uni slices (multimodal agents): the mean squared cross-correlation between each modality's uni slice and every other modality's backbone features (detached), so a uni slice keeps nothing the other modality also sees. The within-modality terms (`disentangle`) cannot say which slice should hold the shared information; the other modality can. Default 0 (off; measured in docs/studies.md, issue 20)."""
    cross_backbone_grad: float = Field(0.0, ge=0, le=1)
    """Share of the `lambda_cross` term's gradient that reaches the backbones: the uni slices the term sees are computed from h.detach() + share * (h - h.detach()), the same values with the backbone's gradient scaled. 0 (default): none, the term only chooses what the uni projections read; 1: all of it, which separates no better and keeps synergy from being learned (measured; the backbone's gradient at init is then 3.7-4.6x the monolithic one's at weight 10, seeds 0-3). With `split` fission the uni slice is part of the backbone's output, so 0 leaves the term no gradient at all."""

    @model_validator(mode="after")
    def _ce_budget(self):
        if self.ce_weight + self.head_weight <= 0:
            raise ValueError("ce_weight + head_weight must be > 0 (they share the unit CE budget)")
        if self.head_weight_multimodal is not None and self.ce_weight + self.head_weight_multimodal <= 0:
            raise ValueError("ce_weight + head_weight_multimodal must be > 0 (they share a multimodal agent's CE budget)")
        return self

    def ce_shares(self, multimodal: bool = False) -> tuple[float, float]:
        """(prediction CE, deep supervision) weights of an agent, normalised to sum to 1."""
        hw = self.head_weight if not multimodal or self.head_weight_multimodal is None else self.head_weight_multimodal
        total = self.ce_weight + hw
        return self.ce_weight / total, hw / total


class OptimConfig(StrictModel):
    """Local SGD of every agent."""

    lr: float = Field(0.05, gt=0)
    """Learning rate."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum (buffers survive aggregation and checkpoints)."""
    weight_decay: float = Field(0.0, ge=0)
    """L2 weight decay."""
    clip_grad_norm: float | None = Field(5.0, gt=0)
    """Clip each step's gradient (all of the agent's active parameters together) to this L2 norm; null: off. Applies to every method alike. Default 5: several times the median step's gradient norm of either network at the default lr (measured on AV digits: medians 0.1..1.3), so it binds only on spikes (0..14% of steps, mostly on audio); without it, monolithic audio-only agents at lr 0.05 lose half their training accuracy (0.51 vs 0.95 with it) and spikes kill ReLUs."""


class AggregationConfig(StrictModel):
    """How received branches are merged."""

    weights: Literal["metropolis", "uniform"] = "metropolis"
    """`metropolis`: w_ij = 1/(1+max(d_i, d_j)) on the branch's subgraph, self gets the rest (keeps the holders' mean); `uniform`: 1/(1+#senders)."""
    staleness: int = Field(1, ge=0)
    """Entries older than `round - staleness` are ignored."""
    harmony_switch: int = Field(10, ge=0)
    """Phase clock value at which the `harmony` baseline moves from encoder gossip to fusion/head gossip among multimodal agents: the round index in sync mode, the evaluation period floor(virtual_time / eval_every_s) in async mode (a clock every agent agrees on)."""

