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

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from parse_actors.names import SLICE_KINDS
from parse_actors.seeding import torch_seed

from .archs import build_encoder, count_macs
from .branches import BranchInfo, info_of, modset
from .config import ModelConfig, SliceWeights

DROP_KINDS = SLICE_KINDS  # the kinds whose logits an evaluation may leave out


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

    def prediction(self, w: SliceWeights, drop: str | None = None) -> torch.Tensor:
        """Weighted mean of the heads' logits, optionally without one slice kind.

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
        return _mean([p for _, p in parts], [wk for wk, _ in parts])


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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.widths = self.cfg.slice_widths()
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
            if self.cfg.fission == "project":
                keys[self.slice_key("fission", "red", m)] = "red"
                keys[self.slice_key("fission", "uni", m)] = "uni"
                if multi:
                    keys[self.slice_key("fission", "syn", m)] = "syn"
        if multi:
            keys[self.slice_key("fusion", "syn", mods=mods)] = "syn"
            keys[self.slice_key("head", "syn", mods=mods)] = "syn"
        return keys

    def kind_of(self, key: str) -> str:
        parts = key.split("/")
        if parts[0] == "backbone":
            return "encoder"
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
            out = cfg.width_of(m) if cfg.fission == "project" else sum(self._split_sizes)
            return build_encoder(arch, self.input_shapes[m], out, cfg)
        if parts[0] == "fission":
            if self.shared:
                return nn.Linear(int(parts[2]), w[parts[1]])
            return nn.Linear(cfg.width_of(parts[1]), w[parts[2]])
        if key == "head/red":
            return _head(w["red"], c, cfg.head_hidden)
        if parts[:2] == ["head", "uni"]:
            return _head(w["uni"], c, cfg.head_hidden)
        if parts[:2] == ["head", "syn"]:
            return _head(cfg.fusion_hidden, c, cfg.head_hidden)
        if parts[0] == "fusion":
            k = int(parts[1]) if self.shared else len(parts[1].split("+"))
            return nn.Sequential(nn.Linear(k * w["syn"], cfg.fusion_hidden), nn.ReLU())
        raise KeyError(f"not a PARSE branch key: {key!r}")

    def activate(self, mods: Sequence[str]) -> None:
        super().activate(mods)
        b = self.branches
        multi = len(self.mods) >= 2
        project = self.cfg.fission == "project"
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
        )

    def forward(self, x: Mapping[str, torch.Tensor]) -> FissionOut:
        f = self._fast
        reds, unis, syns = [], [], []
        multi = f.multi
        for m, backbone, pr, pu, ps in f.enc:
            h = backbone(x[m])
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
        return FissionOut(reds, unis, syns if multi else None, red_logits, uni_logits, syn_logits)


@dataclass
class MonoOut:
    embedding: torch.Tensor
    logits: torch.Tensor

    def prediction(self, w: SliceWeights | None = None, drop: str | None = None) -> torch.Tensor:
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
