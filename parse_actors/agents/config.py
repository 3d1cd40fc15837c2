"""Scenario sections of the learning side: `model:`, `loss:`, `optim:`, `aggregation:`.

Every field has a default and a docstring: these classes are the JSON Schema a
user reads, and bad values are refused at load time rather than mid-run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from parse_actors.schema import StrictModel

ArchName = Literal["mlp", "cnn", "conv1d", "gru"]
"""Encoder architectures of the registry in `archs.py`."""

SLICE_KINDS = ("red", "uni", "syn")


class SliceRatio(StrictModel):
    """Relative widths of the redundant / unique / synergistic slices (normalised)."""

    red: float = Field(1.0, gt=0)
    """Relative width of the redundant slice."""
    uni: float = Field(1.0, gt=0)
    """Relative width of the unique slice."""
    syn: float = Field(1.0, gt=0)
    """Relative width of the synergistic slice."""


class SliceWeights(StrictModel):
    """Weight of each slice kind's logits in the prediction."""

    red: float = Field(1.0, ge=0)
    """Weight of the shared redundant head's logits (averaged over modalities)."""
    uni: float = Field(1.0, ge=0)
    """Weight of each modality's unique head's logits (summed over modalities)."""
    syn: float = Field(1.0, ge=0)
    """Weight of the synergy head's logits (multimodal agents only)."""


class ModelConfig(StrictModel):
    """Shape of every agent's network; which variant is built follows from the method."""

    slice_width: int = Field(16, ge=1, le=65_536)
    """Width d of one slice at an equal split: the three slices are 3*d wide together, divided by `split_ratio`."""
    split_ratio: SliceRatio = SliceRatio()
    """Relative widths of the red / uni / syn slices (normalised; each slice is at least 1 wide)."""
    fission: Literal["project", "split"] = "project"
    """`project`: three linear projections of the backbone output; `split`: the backbone output (3*d wide) is cut into the slices (the paper's code)."""
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


class LossConfig(StrictModel):
    """Terms of the PARSE training loss (the monolithic baselines use only the prediction CE)."""

    ce_weight: float = Field(1.0, ge=0)
    """Weight of the cross-entropy of the prediction (weighted sum of the heads' logits)."""
    head_weight: float = Field(0.5, ge=0)
    """Weight of the per-head cross-entropies (deep supervision): red (mean over modalities) + uni (mean over modalities) + syn."""
    lambda_align: float = Field(0.1, ge=0)
    """Weight of the cross-modal alignment of the red slices inside multimodal agents."""
    align: Literal["infonce", "cosine"] = "infonce"
    """Alignment term: symmetric InfoNCE over the batch, or 1 - cosine similarity of paired red slices."""
    temperature: float = Field(0.1, gt=0)
    """Temperature of the InfoNCE alignment."""
    lambda_orth: float = Field(0.1, ge=0)
    """Weight of the orthogonality term: mean squared cross-correlation between a modality's red, uni (and syn) slices."""
    logit_weights: SliceWeights = SliceWeights()
    """Weights of the slice kinds' logits in the prediction."""


class OptimConfig(StrictModel):
    """Local SGD of every agent."""

    lr: float = Field(0.05, gt=0)
    """Learning rate."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum (buffers survive aggregation and checkpoints)."""
    weight_decay: float = Field(0.0, ge=0)
    """L2 weight decay."""


class AggregationConfig(StrictModel):
    """How received branches are merged."""

    weights: Literal["metropolis", "uniform"] = "metropolis"
    """`metropolis`: w_ij = 1/(1+max(d_i, d_j)) on the branch's subgraph, self gets the rest (keeps the holders' mean); `uniform`: 1/(1+#senders)."""
    staleness: int = Field(1, ge=0)
    """Entries older than `round - staleness` are ignored."""
    harmony_switch: int = Field(10, ge=0)
    """Round at which the `harmony` baseline moves from encoder gossip to fusion/head gossip among multimodal agents."""

