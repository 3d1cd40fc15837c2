"""Codecs for branch payloads on the wire: none, fp16, int8, top-k, random-k.

A branch payload is `{param name: tensor}`. `encode` turns it into a compact
`Encoded` message, `decode` back into dense tensors, `wire_nbytes` is the exact
number of bytes `pack` writes for it, and `wire_nbytes_for` gives the same
number from a `BranchInfo` (or signature) before anything is encoded, because
the engine schedules the network with sizes known in advance.

Wire layout per tensor (the header bytes of the message are counted by the
engine, as for uncompressed messages; names, shapes and dtypes are known to both
sides from the capability exchange, so they are not repeated):
  none    n values at the tensor's own element size
  fp16    n float16 values
  int8    n int8 values + one float32 scale (symmetric, per tensor: max|x| / 127)
  topk    k = min(n, max(1, ceil(fraction * n))) values at the tensor's element
  randk   size + k indices, each the minimum width for an index below n
          (1 byte if n <= 2**8, 2 if n <= 2**16, 4 if n <= 2**32, else 8);
          when k * (value + index width) >= n * value size the tensor goes
          dense instead (a sparse form that is not smaller is never sent), so
          small bias vectors at a large fraction cost no more than `none`.
Non-floating tensors always go as `none`. `randk` draws its coordinates from a
torch Generator seeded by the caller (derive it from the seed tree): the same
seed gives the same message, on any host. Neither sparsifier rescales the kept
values (the biased form CHOCO-gossip assumes: ||C(x) - x||^2 <= (1 - k/n)||x||^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Union

import numpy as np

from .branches import BranchInfo, Signature

if TYPE_CHECKING:  # torch is imported where tensors are handled: the scenario schema uses Codec without it
    import torch

CODEC_NAMES = ("none", "fp16", "int8", "topk", "randk")
SPARSE = ("topk", "randk")
SCALE_NBYTES = 4  # one float32 scale per int8 tensor
_FP16_MAX = 65504.0  # float(torch.finfo(torch.float16).max)


@dataclass(frozen=True)
class Codec:
    """A codec and, for the sparsifiers, the fraction of coordinates kept."""

    name: str = "none"
    fraction: float | None = None

    def __post_init__(self) -> None:
        if self.name not in CODEC_NAMES:
            raise ValueError(f"unknown codec {self.name!r}; known: {', '.join(CODEC_NAMES)}")
        if self.name in SPARSE:
            f = self.fraction
            if f is None or isinstance(f, bool) or not (0.0 < float(f) <= 1.0):
                raise ValueError(f"{self.name}: fraction must be in (0, 1], got {f!r}")
            object.__setattr__(self, "fraction", float(f))
        elif self.fraction is not None:
            raise ValueError(f"codec {self.name!r} takes no fraction")

    def __str__(self) -> str:
        return self.name if self.fraction is None else f"{self.name}:{self.fraction:g}"


NONE = Codec()

CodecSpec = Union[str, Mapping[str, float], Codec, None]


def parse_codec(spec: CodecSpec) -> Codec:
    """'none' | 'fp16' | 'int8' | {'topk': f} | {'randk': f} | 'topk:0.01' | Codec | None."""
    if spec is None:
        return NONE
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, str):
        name, _, frac = spec.partition(":")
        return Codec(name.strip(), float(frac) if frac else None)
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise ValueError(f"a codec mapping has exactly one key (topk or randk), got {dict(spec)!r}")
        ((name, frac),) = spec.items()
        return Codec(str(name), frac)
    # pydantic models of the scenario (budget.TopK / budget.RandK) expose `codec()`
    if hasattr(spec, "codec"):
        return spec.codec()
    raise ValueError(f"not a codec: {spec!r}")


# ----------------------------------------------------------------------------- sizes
def index_nbytes(n: int) -> int:
    """Bytes of one index into a tensor of n elements (minimum standard unsigned width)."""
    if n <= 1 << 8:
        return 1
    if n <= 1 << 16:
        return 2
    if n <= 1 << 32:
        return 4
    return 8


def keep_count(n: int, fraction: float) -> int:
    """Coordinates a sparsifier keeps out of n."""
    return min(n, max(1, math.ceil(fraction * n - 1e-9)))


def _sparse(n: int, elem: int, codec: Codec) -> bool:
    """Whether a tensor of n elements goes sparse (else dense values, same codec name)."""
    k = keep_count(n, codec.fraction)
    return k * (elem + index_nbytes(n)) < n * elem


def tensor_nbytes(n: int, elem: int, floating: bool, codec: Codec) -> int:
    """Exact wire bytes of one tensor of n elements of `elem` bytes under `codec`."""
    if n == 0:
        return 0
    name = codec.name if floating else "none"
    if name == "none":
        return n * elem
    if name == "fp16":
        return n * 2
    if name == "int8":
        return n + SCALE_NBYTES
    if not _sparse(n, elem, codec):
        return n * elem
    return keep_count(n, codec.fraction) * (elem + index_nbytes(n))


_DTYPES: dict[str, torch.dtype] = {}


def _dtype(name: str) -> torch.dtype:
    d = _DTYPES.get(name)
    if d is None:
        import torch

        d = getattr(torch, name, None)
        if not isinstance(d, torch.dtype):
            raise ValueError(f"unknown dtype {name!r}")
        _DTYPES[name] = d
    return d


def wire_nbytes_for(branch: BranchInfo | Signature, codec: CodecSpec = None) -> int:
    """Exact wire bytes of a branch under `codec`, from its signature alone."""
    import torch

    codec = parse_codec(codec)
    sig = branch.signature if isinstance(branch, BranchInfo) else branch
    total = 0
    for _, shape, dname in sig:
        d = _dtype(dname)
        n = math.prod(shape)
        elem = torch.empty((), dtype=d).element_size()
        total += tensor_nbytes(n, elem, d.is_floating_point, codec)
    return total


# ----------------------------------------------------------------------------- messages
@dataclass
class EncodedTensor:
    """One tensor on the wire. `indices` (sorted, int64 in memory) only for a sparse
    form; `scale` only for int8."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    values: torch.Tensor
    indices: torch.Tensor | None = None
    scale: float | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def nbytes(self) -> int:
        b = self.values.numel() * self.values.element_size()
        if self.indices is not None:
            b += self.indices.numel() * index_nbytes(self.numel)
        if self.scale is not None:
            b += SCALE_NBYTES
        return b


@dataclass
class Encoded:
    """A branch payload under one codec (names in the payload's order)."""

    codec: Codec
    tensors: dict[str, EncodedTensor]


def to_plain(msg: Encoded) -> dict:
    """Tensors, strings and numbers only (checkpoints load with weights_only=True)."""
    return {"codec": [msg.codec.name, msg.codec.fraction],
            "tensors": {n: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "values": t.values,
                            "indices": t.indices, "scale": t.scale} for n, t in msg.tensors.items()}}


def from_plain(d: Mapping) -> Encoded:
    name, frac = d["codec"]
    return Encoded(Codec(name, frac), {
        n: EncodedTensor(tuple(t["shape"]), _dtype(t["dtype"]), t["values"], t["indices"], t["scale"])
        for n, t in d["tensors"].items()})


def wire_nbytes(msg: Encoded | Mapping[str, Encoded]) -> int:
    """Exact wire bytes of one encoded branch, or of a {key: Encoded} payload."""
    if isinstance(msg, Encoded):
        return sum(t.nbytes() for t in msg.tensors.values())
    return sum(wire_nbytes(m) for m in msg.values())


def encode_tensor(x: torch.Tensor, codec: Codec, generator: torch.Generator | None = None) -> EncodedTensor:
    import torch

    shape, dtype = tuple(x.shape), x.dtype
    flat = x.detach().reshape(-1)  # detached: no autograd graph, no no_grad context needed
    n = flat.numel()
    name = codec.name if dtype.is_floating_point else "none"
    if n == 0 or name == "none":
        return EncodedTensor(shape, dtype, flat.clone())
    if name == "fp16":
        return EncodedTensor(shape, dtype, flat.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16))
    if name == "int8":
        scale = float(np.float32(float(flat.abs().max()) / 127.0))  # the float32 that goes on the wire
        if scale == 0.0:
            q = torch.zeros(n, dtype=torch.int8, device=flat.device)
        else:
            q = (flat / scale).round_().clamp_(-127, 127).to(torch.int8)
        return EncodedTensor(shape, dtype, q, scale=scale)
    if not _sparse(n, x.element_size(), codec):
        return EncodedTensor(shape, dtype, flat.clone())
    k = keep_count(n, codec.fraction)
    if name == "topk":
        idx = torch.topk(flat.abs(), k, sorted=False).indices
    else:
        if generator is None:
            raise ValueError("randk needs a seeded torch.Generator (derive it from the seed tree)")
        idx = torch.randperm(n, generator=generator, device=generator.device)[:k].to(flat.device)
    idx, _ = torch.sort(idx)
    return EncodedTensor(shape, dtype, flat.index_select(0, idx).clone(), indices=idx)


def encode(
    payload: Mapping[str, torch.Tensor], codec: CodecSpec = None, generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Encoded:
    """Encode one branch payload. `randk` needs `generator` or `seed` (a torch seed,
    e.g. `seeding.torch_seed(seed, "randk", agent, key, exchange)`)."""
    codec = parse_codec(codec)
    if codec.name == "randk" and generator is None:
        if seed is None:
            raise ValueError("randk needs a seed or a seeded torch.Generator")
        import torch

        generator = torch.Generator().manual_seed(int(seed))
    return Encoded(codec, {n: encode_tensor(t, codec, generator) for n, t in payload.items()})


def decode_tensor(e: EncodedTensor) -> torch.Tensor:
    if e.indices is None:
        v = e.values.to(e.dtype)
        if e.scale is not None:
            v = v * e.scale
        return v.reshape(e.shape)
    import torch

    out = torch.zeros(e.numel, dtype=e.dtype, device=e.values.device)
    out.index_copy_(0, e.indices, e.values.to(e.dtype))
    return out.reshape(e.shape)


def decode(msg: Encoded) -> dict[str, torch.Tensor]:
    """Dense tensors (zeros where a sparsifier dropped a coordinate)."""
    return {n: decode_tensor(t) for n, t in msg.tensors.items()}


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def pack(msg: Encoded) -> bytes:
    """The byte layout `wire_nbytes` counts: per tensor in order, values, then
    indices at `index_nbytes(n)` each, then the float32 scale (little-endian)."""
    import torch

    parts = []
    for t in msg.tensors.values():
        v = t.values.detach().cpu()
        parts.append(v.view(torch.uint8).numpy().tobytes() if v.numel() else b"")
        if t.indices is not None:
            w = index_nbytes(t.numel)
            parts.append(t.indices.cpu().numpy().astype(np.dtype(_UINT[w]).newbyteorder("<")).tobytes())
        if t.scale is not None:
            parts.append(np.float32(t.scale).astype("<f4").tobytes())
    return b"".join(parts)
