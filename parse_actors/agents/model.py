"""The two networks an agent can run, both built branch by branch.

`FissionModel` is PARSE: per-modality encoders, feature fission into redundant /
unique / synergistic slices, one head per slice (the red head shared by every
modality), a fusion of the syn slices for multimodal agents.
`MonolithicModel` is the standard pipeline of the DSGD baselines: encoders ->
one projection of their concatenation to a single embedding -> one head.

Each branch lives in `self.branches[key]` and is built from its key alone with
its own seed (`init_seed`, "init", key), so a branch's initial value does not
depend on what else was built or in which order, and a modality gained mid-run
gets the same encoder on every replay. The forward pass uses precomputed module
references (`activate`), never the key registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from parse_actors.names import SLICE_KINDS
from parse_actors.seeding import torch_seed

from .archs import build_encoder, count_macs
from .branches import BranchInfo, info_of, modset
from .config import ModelConfig, SliceWeights

DROP_KINDS = SLICE_KINDS  # the kinds whose logits an evaluation may leave out
PROJECT_FISSIONS = ("project", "project_relu", "project_norm", "project_fuse")
"""Fission variants with projection branches `fission/<m>/<kind>` (the first three with the same
parameters; `project_fuse` has wider syn projections and a fusion of one bias, `SumFusion`)."""
CLUB_PAIRS = (("uni", "red"), ("syn", "red"), ("syn", "uni"))
"""(slice, other) pairs of one modality whose mutual information the CLUB term bounds:
the other kind's information is removed from the slice (syn pairs: multimodal agents)."""
CRITIC_ROLE = "critic"
"""Role (key prefix) of local branches: trained and checkpointed like any branch,
never advertised nor exchanged (`BranchModel.is_local`)."""
LOGVAR_BOUND = 2.0
"""A CLUB critic's log-variance lies in (-2, 2) (tanh-bounded): on standardised
slices the likelihood's gradient stays bounded (1/var < e^2)."""
STANDARDIZE_EPS = 1e-3
RELU_GAIN = math.sqrt(2.0)
"""Variance floor of the per-channel standardisation in front of the CLUB critics."""


def standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Centre each channel over the batch and divide by sqrt(var + eps): a collapsed
    channel becomes 0 (not 0/0) and the Jacobian's norm is at most 1/sqrt(eps)."""
    z = z - z.mean(0, keepdim=True)
    return z * torch.rsqrt(z.square().mean(0, keepdim=True) + eps)


class Projection(nn.Linear):
    """A fission projection with a norm and/or a ReLU after it: the parameters of
    the plain `nn.Linear` of `project` fission (same names, shapes, init), so every
    `project*` variant exchanges the same branches.

    The norm is z / sqrt(mean_c z_c^2 + 1) per sample: an RMS norm with a unit
    floor, parameter-free. It caps a slice's RMS at 1 but never amplifies: a
    LayerNorm divides the small outputs of a fresh projection by their small
    std and multiplies the backbone's gradient at init by 3-12x (measured),
    which is not scale-neutral. With a ReLU the weights start sqrt(2) x torch's
    default (He init): otherwise the backbone's gradient at init is 0.64-0.9x the
    monolithic network's on AV audio, below the 1/1.5 bound."""

    def __init__(self, in_width: int, out_width: int, norm: bool, relu: bool) -> None:
        super().__init__(in_width, out_width)
        self.norm, self.relu = norm, relu
        if relu:  # He et al. 2015: a ReLU passes half the units, so sqrt(2) x the weights keeps the scale
            with torch.no_grad():
                self.weight.mul_(RELU_GAIN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = super().forward(x)
        if self.norm:
            z = z * torch.rsqrt(z.square().mean(-1, keepdim=True) + 1.0)
        return F.relu(z) if self.relu else z


class SumFusion(nn.Module):
    """`project_fuse`'s fusion: ReLU(sum_m s_m / sqrt(K) + b) over the K syn slices
    s_m = W_m h_m (bias-free projections of the backbone outputs, each as wide as the
    fusion). This is the monolithic network's fusion, ReLU(W [h_1; ...; h_K] + b),
    cut into one block per modality, so the syn path has the monolithic network's
    depth: a linear projection into a fusion layer is a product of two linear maps,
    which at a small init learns in plateaus and jumps (Saxe et al. 2014), measured
    as the mid-run drops and slow synergy of `project`. 1/sqrt(K) keeps the
    pre-activation's scale at init that of one block, which is the monolithic
    layer's at torch's default init; the bias starts as that layer's would
    (uniform in +-1/sqrt(fan-in), fan-in = `in_width`, the backbones' widths summed)."""

    def __init__(self, k: int, width: int, in_width: int) -> None:
        super().__init__()
        self.k, self.width = int(k), int(width)
        bound = 1.0 / math.sqrt(in_width)
        self.bias = nn.Parameter(torch.empty(self.width).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: the K syn slices concatenated, (..., K * width), in the modality order."""
        z = x.unflatten(-1, (self.k, self.width)).sum(-2)
        return F.relu(z * (1.0 / math.sqrt(self.k)) + self.bias)


class ClubCritic(nn.Module):
    """The variational q(o | s) = N(mu(s), diag exp(logvar(s))) of a CLUB bound: an
    MLP slice -> hidden -> (mu, logvar), the log-variance tanh-bounded to
    +-LOGVAR_BOUND. `detach_params` runs it with its parameters cut from the
    graph: the bound's gradient then reaches the slice only, while the critic
    learns from its own likelihood (as in CLUB's two optimisers, in one graph)."""

    def __init__(self, slice_width: int, other_width: int, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(slice_width, hidden)
        self.out = nn.Linear(hidden, 2 * other_width)

    def forward(self, s: torch.Tensor, detach_params: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        w1, b1, w2, b2 = self.hidden.weight, self.hidden.bias, self.out.weight, self.out.bias
        if detach_params:
            w1, b1, w2, b2 = w1.detach(), b1.detach(), w2.detach(), b2.detach()
        mu, raw = F.linear(F.relu(F.linear(s, w1, b1)), w2, b2).chunk(2, -1)
        return mu, LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)


def _head(in_width: int, num_classes: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(in_width, num_classes)
    return nn.Sequential(nn.Linear(in_width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class BranchModel(nn.Module):
    """Common branch bookkeeping; subclasses say which keys a modality set needs
    (`plan`), how to build one (`_make`) and how to run (`activate`, `forward`)."""

    def __init__(
        self,
        cfg: ModelConfig,
        num_classes: int,
        input_shapes: Mapping[str, Sequence[int]],
        archs: Mapping[str, str],
        init_seed: int,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = int(num_classes)
        self.input_shapes = {m: tuple(int(s) for s in v) for m, v in input_shapes.items()}
        self.archs = dict(archs)
        self.init_seed = int(init_seed)
        self.branches = nn.ModuleDict()
        self.kinds: dict[str, str] = {}
        self.mods: tuple[str, ...] = ()

    # -- registry -------------------------------------------------------------
    def plan(self, mods: Sequence[str]) -> dict[str, str]:
        """Branch key -> kind for an agent running modalities `mods`."""
        raise NotImplementedError

    def kind_of(self, key: str) -> str:
        raise NotImplementedError

    def _make(self, key: str) -> nn.Module:
        raise NotImplementedError

    def build(self, key: str) -> nn.Module:
        """Build branch `key` on the CPU from its own seed, then move it to the
        model's device. torch's layer init draws from the global CPU generator,
        so it is seeded inside `fork_rng` and restored afterwards: whatever
        else runs in the process sees no change and changes nothing here."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(torch_seed(self.init_seed, "init", key))
            module = self._make(key)
        device = next(self.parameters()).device if len(self.branches) else None
        if device is not None:
            module = module.to(device)
        module.train(self.training)  # the model's mode, whatever it is now (Agent._mode)
        self.branches[key] = module
        self.kinds[key] = self.kind_of(key)
        return module

    def branch_layout(self, key: str) -> tuple[dict[str, tuple[tuple[int, ...], torch.dtype]], list[tuple[int, ...]]]:
        """Branch `key` as a checkpoint holds it: (state-dict entry -> (shape, dtype),
        parameter shapes in `parameters()` order). A branch not built yet is built
        apart (torch's RNG restored afterwards): the model is not changed. KeyError or
        ValueError when this model cannot have such a branch."""
        module = self.branches[key] if key in self.branches else None
        if module is None:
            with torch.random.fork_rng(devices=[]):
                module = self._make(key)
        entries = {n: (tuple(t.shape), t.dtype) for n, t in module.state_dict().items()}
        return entries, [tuple(p.shape) for p in module.parameters()]

    def ensure(self, mods: Sequence[str]) -> list[str]:
        """Build the branches `mods` needs and does not have yet; returns their keys."""
        for m in mods:
            if m not in self.input_shapes:
                raise ValueError(f"no input shape for modality {m!r}")
            if m not in self.archs:
                raise ValueError(f"no architecture for modality {m!r}")
        new = []
        for key in sorted(self.plan(mods)):
            if key not in self.branches:
                self.build(key)
                new.append(key)
        return new

    def active_keys(self) -> list[str]:
        return sorted(self.plan(self.mods))

    @staticmethod
    def is_local(key: str) -> bool:
        """A branch that stays with its agent (a CLUB critic): never advertised, never exchanged."""
        return key.startswith(CRITIC_ROLE + "/")

    def info(self, key: str) -> BranchInfo:
        return info_of(key, self.kinds[key], self.branches[key])

    def activate(self, mods: Sequence[str]) -> None:
        self.ensure(mods)
        self.mods = tuple(sorted(mods))

    def forward_macs(self) -> int:
        """Multiply-accumulates of one sample's forward pass with the active modalities."""
        dev = next(self.parameters()).device
        x = {m: torch.zeros((1, *self.input_shapes[m]), device=dev) for m in self.mods}
        was = self.training
        self.eval()
        try:
            return count_macs(self, lambda: self(x))
        finally:
            self.train(was)


class _Refs:
    """Plain holder of module references for the forward pass (a plain object, so
    nn.Module does not register the modules a second time)."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


@dataclass
class FissionOut:
    red: list[torch.Tensor]
    """Red slice per active modality (sorted modality order)."""
    uni: list[torch.Tensor]
    syn: list[torch.Tensor] | None
    """Syn slices, multimodal agents only."""
    red_logits: torch.Tensor
    """(K, n, C): the shared red head on each modality's red slice."""
    uni_logits: list[torch.Tensor]
    syn_logits: torch.Tensor | None
    club: list[tuple[torch.Tensor, ...]] | None = None
    """Training only, with CLUB critics: per (modality, pair) the critic's
    (mu, logvar) on the detached slice (for its likelihood), (mu, logvar) with
    detached critic parameters (for the bound), and the detached standardised
    other slice."""
    feats: list[torch.Tensor] | None = None
    """Backbone output per active modality (the cross-modal decorrelation's other side)."""
    cross_uni: list[torch.Tensor] | None = None
    """Training only, multimodal agents with `lambda_cross` > 0 and `cross_backbone_grad`
    < 1: the uni slices recomputed from the backbone output with its gradient scaled
    (same values); the cross-modal decorrelation uses these."""

    def kind_logits(self) -> dict[str, torch.Tensor]:
        """Each kind's logits as the prediction counts them: red and uni averaged over modalities."""
        out = {"red": _mean(list(self.red_logits)), "uni": _mean(self.uni_logits)}
        if self.syn_logits is not None:
            out["syn"] = self.syn_logits
        return out

    def prediction(self, w: SliceWeights, drop: str | None = None, mode: str = "mean") -> torch.Tensor:
        """The kinds' logits combined by `mode` (`LossConfig.prediction`), optionally
        without one slice kind: `mean` is the weighted mean below; `sum` and
        `residual` the weighted sum of the kinds present (weights as multipliers).

        Each kind the agent has counts once: red = the shared red head averaged
        over modalities, uni = the unique heads averaged over modalities, syn =
        the synergy head (multimodal agents). The weights are renormalised over
        the kinds present, so every agent predicts on the scale of one head
        (identical heads give exactly that head's logits). When the kinds left
        all weigh 0 (a drop), the prediction is all zeros: no information."""
        parts = []
        if drop != "red" and w.red > 0:
            parts.append((w.red, _mean(list(self.red_logits))))
        if drop != "uni" and w.uni > 0:
            parts.append((w.uni, _mean(self.uni_logits)))
        if drop != "syn" and self.syn_logits is not None and w.syn > 0:
            parts.append((w.syn, self.syn_logits))
        if not parts:
            return torch.zeros_like(self.red_logits[0])
        if mode == "mean":
            return _mean([p for _, p in parts], [wk for wk, _ in parts])
        if mode not in ("sum", "residual"):
            raise ValueError(f"unknown prediction mode {mode!r}")
        return _weighted_sum(parts)


def _weighted_sum(parts: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """sum_k w_k t_k (a weight of 1 multiplies nothing)."""
    out = None
    for w, t in parts:
        t = t if w == 1.0 else t * w
        out = t if out is None else out + t
    return out


def _mean(ts: Sequence[torch.Tensor], ws: Sequence[float] | None = None) -> torch.Tensor:
    """Weighted mean sum_k w_k t_k / sum_k w_k, computed as t_0 + sum_k (w_k / W)(t_k - t_0):
    the same value, but exactly t_0 when every t_k equals it (no rounding of
    w/W * t), so identical heads predict exactly their own logits."""
    if len(ts) == 1:
        return ts[0]
    ws = [1.0] * len(ts) if ws is None else ws
    total = float(sum(ws))
    out = ts[0]
    for w, t in zip(ws[1:], ts[1:]):
        out = out + (t - ts[0]) * (w / total)
    return out


class FissionModel(BranchModel):
    """PARSE: fission into slices, one head per slice kind."""

    def __init__(self, *args, critic_hidden: int = 0, cross_grad: float | None = None, **kwargs) -> None:
        """`critic_hidden` > 0 adds a local CLUB critic of that hidden width per
        (modality, `CLUB_PAIRS` pair) (`LossConfig.disentangle: club`);
        `cross_grad` (the cross-modal decorrelation is on) is the backbones' share of
        its gradient (`LossConfig.cross_backbone_grad`)."""
        super().__init__(*args, **kwargs)
        self.critic_hidden = int(critic_hidden)
        self.cross_grad = None if cross_grad is None else float(cross_grad)
        self.widths = self.cfg.slice_widths()
        if self.cfg.fission == "project_fuse":  # a syn slice is its modality's share of the fusion layer
            self.widths["syn"] = self.cfg.fusion_hidden
        self._split_sizes = [self.widths["red"], self.widths["uni"], self.widths["syn"]]

    @property
    def shared(self) -> bool:
        """Modality-agnostic slice keys (`slice_keys: shared`, full alignment)."""
        return self.cfg.slice_keys == "shared"

    def slice_key(self, role_: str, kind: str, m: str | None = None, mods: Sequence[str] = ()) -> str:
        """The key of a slice branch under the configured scheme: `role_` is
        `fission` (needs `m`), `head` (uni needs `m`, syn needs `mods`) or
        `fusion` (needs `mods`)."""
        if role_ == "fission":
            return f"fission/{kind}/{self.cfg.width_of(m)}" if self.shared else f"fission/{m}/{kind}"
        if role_ == "fusion":
            return f"fusion/{len(mods)}" if self.shared else f"fusion/{modset(mods)}"
        if kind == "red":
            return "head/red"
        if self.shared:
            return f"head/{kind}"
        return f"head/uni/{m}" if kind == "uni" else f"head/syn/{modset(mods)}"

    def plan(self, mods: Sequence[str]) -> dict[str, str]:
        mods = sorted(mods)
        multi = len(mods) >= 2
        keys = {"head/red": "red"}
        for m in mods:
            keys[f"backbone/{m}/{self.archs[m]}"] = "encoder"
            keys[self.slice_key("head", "uni", m)] = "uni"
            if self.cfg.fission in PROJECT_FISSIONS:
                keys[self.slice_key("fission", "red", m)] = "red"
                keys[self.slice_key("fission", "uni", m)] = "uni"
                if multi:
                    keys[self.slice_key("fission", "syn", m)] = "syn"
            if self.critic_hidden:
                for s, o in CLUB_PAIRS:
                    if multi or s != "syn":
                        keys[f"{CRITIC_ROLE}/{m}/{s}-{o}"] = CRITIC_ROLE
        if multi:
            keys[self.slice_key("fusion", "syn", mods=mods)] = "syn"
            keys[self.slice_key("head", "syn", mods=mods)] = "syn"
        return keys

    def kind_of(self, key: str) -> str:
        parts = key.split("/")
        if parts[0] == "backbone":
            return "encoder"
        if parts[0] == CRITIC_ROLE:
            return CRITIC_ROLE
        if parts[0] == "fission":
            return parts[1] if self.shared else parts[2]
        if parts[0] == "fusion":
            return "syn"
        return parts[1]  # head/red, head/uni[/<m>], head/syn[/<modset>]

    def _make(self, key: str) -> nn.Module:
        parts = key.split("/")
        cfg, w, c = self.cfg, self.widths, self.num_classes
        if parts[0] == "backbone":
            m, arch = parts[1], parts[2]
            out = cfg.width_of(m) if cfg.fission in PROJECT_FISSIONS else sum(self._split_sizes)
            return build_encoder(arch, self.input_shapes[m], out, cfg)
        if parts[0] == "fission":
            d_in, width = (int(parts[2]), w[parts[1]]) if self.shared else (cfg.width_of(parts[1]), w[parts[2]])
            if cfg.fission == "project":
                return nn.Linear(d_in, width)
            if cfg.fission == "project_fuse":
                return nn.Linear(d_in, width, bias=(parts[1] if self.shared else parts[2]) != "syn")
            return Projection(d_in, width, norm=cfg.fission == "project_norm", relu=True)
        if parts[0] == CRITIC_ROLE:
            s, o = parts[2].split("-")
            return ClubCritic(w[s], w[o], self.critic_hidden)
        if key == "head/red":
            return _head(w["red"], c, cfg.head_hidden)
        if parts[:2] == ["head", "uni"]:
            return _head(w["uni"], c, cfg.head_hidden)
        if parts[:2] == ["head", "syn"]:
            return _head(cfg.fusion_hidden, c, cfg.head_hidden)
        if parts[0] == "fusion":
            k = int(parts[1]) if self.shared else len(parts[1].split("+"))
            if cfg.fission == "project_fuse":
                in_width = k * cfg.backbone_width if self.shared else sum(cfg.width_of(m) for m in parts[1].split("+"))
                return SumFusion(k, w["syn"], in_width)
            return nn.Sequential(nn.Linear(k * w["syn"], cfg.fusion_hidden), nn.ReLU())
        raise KeyError(f"not a PARSE branch key: {key!r}")

    def activate(self, mods: Sequence[str]) -> None:
        super().activate(mods)
        b = self.branches
        multi = len(self.mods) >= 2
        project = self.cfg.fission in PROJECT_FISSIONS
        mods = self.mods
        sk = self.slice_key
        self._fast = _Refs(
            enc=[
                (
                    m,
                    b[f"backbone/{m}/{self.archs[m]}"],
                    b[sk("fission", "red", m)] if project else None,
                    b[sk("fission", "uni", m)] if project else None,
                    b[sk("fission", "syn", m)] if project and multi else None,
                )
                for m in mods
            ],
            head_red=b["head/red"],
            head_uni=[b[sk("head", "uni", m)] for m in mods],
            fusion=b[sk("fusion", "syn", mods=mods)] if multi else None,
            head_syn=b[sk("head", "syn", mods=mods)] if multi else None,
            multi=multi,
            project=project,
            critics=[
                (i, s, o, b[f"{CRITIC_ROLE}/{m}/{s}-{o}"])
                for i, m in enumerate(mods) for s, o in CLUB_PAIRS
                if f"{CRITIC_ROLE}/{m}/{s}-{o}" in b and (multi or s != "syn")
            ] if self.critic_hidden else [],
        )

    def forward(self, x: Mapping[str, torch.Tensor]) -> FissionOut:
        f = self._fast
        reds, unis, syns, feats = [], [], [], []
        multi = f.multi
        for m, backbone, pr, pu, ps in f.enc:
            h = backbone(x[m])
            feats.append(h)
            if f.project:
                reds.append(pr(h))
                unis.append(pu(h))
                if multi:
                    syns.append(ps(h))
            else:
                r, u, s = torch.split(h, self._split_sizes, 1)
                reds.append(r)
                unis.append(u)
                if multi:
                    syns.append(s)
        red_logits = f.head_red(torch.stack(reds))
        uni_logits = [head(u) for head, u in zip(f.head_uni, unis)]
        syn_logits = f.head_syn(f.fusion(torch.cat(syns, 1))) if multi else None
        club = None
        if f.critics and self.training:
            by_kind = {"red": reds, "uni": unis, "syn": syns}
            club = []
            for i, s, o, critic in f.critics:
                zs = standardize(by_kind[s][i], STANDARDIZE_EPS)
                zo = standardize(by_kind[o][i], STANDARDIZE_EPS).detach()
                club.append((*critic(zs.detach()), *critic(zs, detach_params=True), zo))
        cross_uni = None
        if self.cross_grad is not None and self.cross_grad != 1.0 and multi and self.training:
            cross_uni = self._uni_with_scaled_grad(feats, self.cross_grad)
        return FissionOut(reds, unis, syns if multi else None, red_logits, uni_logits, syn_logits, club, feats,
                          cross_uni)

    def _uni_with_scaled_grad(self, feats: list[torch.Tensor], g: float) -> list[torch.Tensor]:
        """The uni slices again, from h.detach() + g (h - h.detach()): the same values,
        the backbone's gradient scaled by g (none at 0)."""
        f = self._fast
        unis = []
        for h, (m, _, pr, pu, _) in zip(feats, f.enc):
            hd = h.detach()
            hg = hd if g == 0.0 else hd + g * (h - hd)
            unis.append(pu(hg) if f.project else torch.split(hg, self._split_sizes, 1)[1])
        return unis


@dataclass
class MonoOut:
    embedding: torch.Tensor
    logits: torch.Tensor

    def prediction(self, w: SliceWeights | None = None, drop: str | None = None, mode: str = "mean") -> torch.Tensor:
        """The single head's logits; there are no slice logits to drop."""
        return self.logits


class MonolithicModel(BranchModel):
    """Encoders -> fusion/<modset> (one embedding) -> head/task."""

    def plan(self, mods: Sequence[str]) -> dict[str, str]:
        keys = {f"backbone/{m}/{self.archs[m]}": "encoder" for m in mods}
        keys[f"fusion/{modset(mods)}"] = "head"
        keys["head/task"] = "head"
        return keys

    def kind_of(self, key: str) -> str:
        return "encoder" if key.startswith("backbone/") else "head"

    def _make(self, key: str) -> nn.Module:
        parts = key.split("/")
        cfg = self.cfg
        if parts[0] == "backbone":
            return build_encoder(parts[2], self.input_shapes[parts[1]], cfg.width_of(parts[1]), cfg)
        if parts[0] == "fusion":
            width = sum(cfg.width_of(m) for m in parts[1].split("+"))
            return nn.Sequential(nn.Linear(width, cfg.embedding_width()), nn.ReLU())
        if key == "head/task":
            return _head(cfg.embedding_width(), self.num_classes, cfg.head_hidden)
        raise KeyError(f"not a monolithic branch key: {key!r}")

    def activate(self, mods: Sequence[str]) -> None:
        super().activate(mods)
        b = self.branches
        self._fast = _Refs(
            enc=[(m, b[f"backbone/{m}/{self.archs[m]}"]) for m in self.mods],
            fusion=b[f"fusion/{modset(self.mods)}"],
            head=b["head/task"],
        )

    def forward(self, x: Mapping[str, torch.Tensor]) -> MonoOut:
        f = self._fast
        feats = [enc(x[m]) for m, enc in f.enc]
        z = f.fusion(feats[0] if len(feats) == 1 else torch.cat(feats, 1))
        return MonoOut(z, f.head(z))


MODELS = {"fission": FissionModel, "monolithic": MonolithicModel}
