"""Branch keys, kinds and wire signatures.

A branch is the unit of exchange: a named group of parameters. Two agents can
merge a branch only when both hold the same key with the same signature (names,
shapes, dtypes), so the signature is what a capability message advertises.

Key grammar (modset = sorted modalities joined by '+'):
  backbone/<m>/<arch>           encoder     PARSE and monolithic
  fission/<m>/red|uni|syn       red|uni|syn PARSE `project` fission
  head/red                      red         one head for every modality
  head/uni/<m>                  uni
  fusion/<modset>               syn         PARSE, multimodal agents
  head/syn/<modset>             syn
  fusion/<modset>               head        monolithic: backbones -> embedding
  head/task                     head        monolithic classifier

With `slice_keys: shared` (full alignment, `parse_share_all`) the slice keys
drop the modality wherever shapes allow:
  fission/red|uni|syn/<D>       red|uni|syn one projection per input width D
  head/uni, head/syn            uni, syn
  fusion/<number of modalities> syn
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:  # annotations only: policies, exchange and the scenario schema use this module without torch
    import torch
    from torch import nn

from parse_actors.names import BRANCH_KINDS

KINDS = BRANCH_KINDS
"""Kinds of parameter branches (the traffic accounting adds `control`)."""

Signature = tuple[tuple[str, tuple[int, ...], str], ...]


@dataclass(frozen=True)
class BranchInfo:
    """What an agent advertises about one branch it holds."""

    key: str
    kind: str
    signature: Signature
    nbytes: int
    """Exact payload size: sum of numel x element size over the branch's tensors."""


def modset(modalities: Iterable[str]) -> str:
    return "+".join(sorted(modalities))


def role(key: str) -> str:
    """`backbone`, `fission`, `head` or `fusion`."""
    return key.split("/", 1)[0]


def modalities_of(caps: Mapping[str, BranchInfo] | Iterable[str]) -> frozenset[str]:
    """The modality set an agent holds, read off its backbone keys."""
    return frozenset(k.split("/")[1] for k in caps if k.startswith("backbone/"))


def signature_of(module: nn.Module) -> Signature:
    return tuple(
        (name, tuple(p.shape), str(p.dtype).removeprefix("torch.")) for name, p in module.named_parameters()
    )


def nbytes_of(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def info_of(key: str, kind: str, module: nn.Module) -> BranchInfo:
    return BranchInfo(key, kind, signature_of(module), nbytes_of(module))


def payload_nbytes(branches: Mapping[str, Mapping[str, torch.Tensor]]) -> int:
    """Exact size of an exported payload (what `Agent.export` returns)."""
    return sum(t.numel() * t.element_size() for b in branches.values() for t in b.values())


def capability_nbytes(caps: Mapping[str, BranchInfo]) -> int:
    """Size of a capability message: the compact JSON of keys and signatures."""
    doc = {k: [i.kind, [[n, list(s), d] for n, s, d in i.signature]] for k, i in sorted(caps.items())}
    return len(json.dumps(doc, separators=(",", ":")).encode())


KIND_PRIORITY = {"red": 0, "uni": 1, "syn": 2, "head": 3, "encoder": 4}
"""Default order for a thin link: the widely shareable, small slice branches first."""


def prioritize(keys: Iterable[str], caps: Mapping[str, BranchInfo]) -> list[str]:
    """`keys` ordered by kind priority, then size, then key (deterministic)."""
    return sorted(keys, key=lambda k: (KIND_PRIORITY.get(caps[k].kind, 9), caps[k].nbytes, k))
