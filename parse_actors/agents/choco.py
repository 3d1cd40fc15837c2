"""CHOCO-gossip (Koloskova, Stich, Jaggi 2019) for compressed branch exchange.

Averaging compressed weights does not reach consensus: a top-1% message is
mostly zeros, and averaging it pulls every agent toward zero (`naive_*` below,
kept only as the named baseline). CHOCO-gossip instead keeps *public copies*
x_hat of the branches and sends compressed *differences* q = C(x - x_hat): the
copies converge to the parameters, and the consensus step moves x along the
copies, x_i += gamma * sum_j w_ij (x_hat_j - x_hat_i).

Public copies here are per directed link and per branch, held by both ends:
`mine[j, key]` is what neighbour j believes my branch is, `theirs[j, key]` is
what I believe j's is. That is what makes the scheme robust to the simulator's
realities:
  - a message is applied to the sender's copy only when the engine confirms its
    delivery (`delivered`), and to the receiver's when it arrives (`receive`),
    in the same delivery order, with the same tensors: both ends hold the same
    bits at all times once they have processed the same deliveries. A dropped
    message is forgotten on both sides (`dropped`): nothing to undo.
  - late messages (past the staleness bound) must still be applied to the copy
    (the sender has counted them); only the consensus step decides what to mix.
  - with one message in flight per (link, branch) (sync rounds; async with
    `send_buffer: latest`) each difference is computed against a copy that
    includes every earlier delivered one; with several in flight the copies stay
    equal at both ends but lag, and later messages correct them.
  - the step pairs each term of i with j's mirrored term: with symmetric weights
    and the same neighbour sets in a round, sum_i x_i is preserved exactly up to
    float rounding (tested), so the average is the one of the parameters.
Copies start at zero (as in the paper); both ends must start the same.
Codecs come from `compression.py`; rand-k draws from the seed tree per
(agent, neighbour, branch, exchange). Plain torch, no engine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from parse_actors.seeding import torch_seed

from .aggregation import merge_branch
from .compression import CodecSpec, Encoded, decode, decode_tensor, encode, from_plain, parse_codec, to_plain

Params = Mapping[str, torch.Tensor]

DEFAULT_GAMMA = 1.0


def auto_gamma(codec: CodecSpec) -> float:
    """Consensus step size by codec (`protocol.choco_gamma: null`): 1 for none, fp16 and
    int8 (plain gossip on the copies), 3 x fraction for top-k, the fraction for rand-k.
    Measured on a 16-ring, dim 1000 (tests/agents/test_choco.py): top-1% diverges from
    gamma ~0.07, top-10% from ~0.5; rand-k tolerates less; these sit below with margin."""
    c = parse_codec(codec)
    if c.name == "topk":
        return min(1.0, 3.0 * c.fraction)
    if c.name == "randk":
        return c.fraction
    return 1.0


@dataclass
class ChocoMessage:
    """One compressed difference for one branch on one link."""

    sender: int
    seq: int
    key: str
    q: Encoded


def randk_seed(seed: int, agent: int, nbr: int, key: str, exchange: int) -> int:
    """The torch seed of one rand-k draw (seed tree path: compress/agent/nbr/key/exchange)."""
    return torch_seed(seed, "compress", agent, nbr, key, exchange)


class ChocoGossip:
    """CHOCO-gossip state of one agent: public copies per (neighbour, branch),
    messages awaiting a delivery outcome, and the consensus step."""

    def __init__(self, agent_id: int, gamma: float = DEFAULT_GAMMA, seed: int = 0) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"choco gamma must be in (0, 1], got {gamma}")
        self.agent_id = int(agent_id)
        self.gamma = float(gamma)
        self.seed = int(seed)
        self.mine: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        self.theirs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        self.pending: dict[int, tuple[int, str, Encoded]] = {}
        self.fresh: set[tuple[int, str]] = set()
        self.seq = 0

    @staticmethod
    def _zeros(params: Params) -> dict[str, torch.Tensor]:
        return {n: torch.zeros_like(p, memory_format=torch.contiguous_format) for n, p in params.items()}

    def _copy(self, table: dict, j: int, key: str, params: Params) -> dict[str, torch.Tensor]:
        c = table.get((j, key))
        if c is None:
            c = table[(j, key)] = self._zeros(params)
        return c

    # -- sender ------------------------------------------------------------------
    @torch.no_grad()
    def message(self, nbr: int, key: str, params: Params, codec: CodecSpec, exchange: int) -> ChocoMessage:
        """q = C(x - x_hat_mine[nbr, key]); pending until `delivered` or `dropped`."""
        codec = parse_codec(codec)
        ref = self._copy(self.mine, nbr, key, params)
        diff = {n: p.detach() - ref[n] for n, p in params.items()}
        seed = randk_seed(self.seed, self.agent_id, nbr, key, exchange) if codec.name == "randk" else None
        q = encode(diff, codec, seed=seed)
        seq = self.seq
        self.seq += 1
        self.pending[seq] = (nbr, key, q)
        return ChocoMessage(self.agent_id, seq, key, q)

    @torch.no_grad()
    def delivered(self, seq: int) -> None:
        """The engine saw message `seq` arrive: apply it to my copy at that neighbour."""
        nbr, key, q = self.pending.pop(seq)
        _apply(self.mine[(nbr, key)], q)
        self.fresh.add((nbr, key))

    def dropped(self, seq: int) -> None:
        """Message `seq` was lost: the receiver never saw it, so neither copy changes."""
        self.pending.pop(seq)

    # -- receiver ----------------------------------------------------------------
    @torch.no_grad()
    def receive(self, msg: ChocoMessage, params: Params | None = None) -> None:
        """Apply a delivered difference to my copy of the sender's branch (`params`:
        my own branch, for the copy's shapes on first contact)."""
        q = msg.q.tensors
        ref = self.theirs.get((msg.sender, msg.key))
        if ref is None:
            if params is None:
                params = {n: torch.zeros(t.shape, dtype=t.dtype) for n, t in q.items()}
            ref = self.theirs[(msg.sender, msg.key)] = self._zeros(params)
        if ref.keys() != q.keys() or any(ref[n].shape != t.shape for n, t in q.items()):
            raise ValueError(f"choco: message of {msg.sender} for {msg.key!r} does not match the copy's shapes")
        _apply(ref, msg.q)
        self.fresh.add((msg.sender, msg.key))

    # -- consensus ---------------------------------------------------------------
    @torch.no_grad()
    def step(self, key: str, params: Params, weights: Mapping[int, float], gamma: float | None = None,
             only_fresh: bool = False) -> int:
        """x += gamma * sum_j w_ij (x_hat_j - x_hat_i) over the neighbours in `weights`
        (Metropolis-Hastings w_ij of the branch's subgraph, symmetric so the sum is
        preserved), in neighbour order. `only_fresh`: skip neighbours whose copies
        did not change since the last step (async: no repeated pushes along a stale
        pair). `gamma`: this branch's step size (default: the agent's). Returns the
        number of neighbours mixed."""
        g = self.gamma if gamma is None else float(gamma)
        used = 0
        for j in sorted(weights):
            if only_fresh and (j, key) not in self.fresh:
                continue
            mine = self._copy(self.mine, j, key, params)
            theirs = self._copy(self.theirs, j, key, params)
            a = g * float(weights[j])
            for n, p in params.items():
                p.add_(theirs[n] - mine[n], alpha=a)
            self.fresh.discard((j, key))
            used += 1
        return used

    # -- bookkeeping -------------------------------------------------------------
    def nbytes(self) -> int:
        """Memory held by the public copies (two per link and branch)."""
        return sum(t.numel() * t.element_size() for tab in (self.mine, self.theirs) for c in tab.values()
                   for t in c.values())

    def state_dict(self) -> dict:
        """Tensors, strings and numbers only (checkpoints load with weights_only=True)."""

        def tab(t):
            return [[j, k, {n: v.detach().to("cpu", copy=True) for n, v in c.items()}]
                    for (j, k), c in sorted(t.items())]

        return {"format": 1, "agent_id": self.agent_id, "gamma": self.gamma, "seed": self.seed, "seq": self.seq,
                "mine": tab(self.mine), "theirs": tab(self.theirs),
                "pending": [[s, j, k, to_plain(copy.deepcopy(q))] for s, (j, k, q) in sorted(self.pending.items())],
                "fresh": sorted([j, k] for j, k in self.fresh)}

    def load_state_dict(self, sd: Mapping, device: str | torch.device = "cpu") -> None:
        self.agent_id, self.gamma = int(sd["agent_id"]), float(sd["gamma"])
        self.seed, self.seq = int(sd["seed"]), int(sd["seq"])
        self.mine = {(int(j), k): {n: v.to(device, copy=True) for n, v in c.items()} for j, k, c in sd["mine"]}
        self.theirs = {(int(j), k): {n: v.to(device, copy=True) for n, v in c.items()} for j, k, c in sd["theirs"]}
        self.pending = {int(s): (int(j), k, from_plain(copy.deepcopy(q))) for s, j, k, q in sd["pending"]}
        self.fresh = {(int(j), k) for j, k in sd["fresh"]}


def _apply(ref: dict[str, torch.Tensor], q: Encoded) -> None:
    """ref += decode(q), touching only the sent coordinates of a sparse tensor (the
    same float additions at both ends of a link, so their copies stay bit-equal)."""
    for n, e in q.tensors.items():
        r = ref[n]
        if e.indices is None:
            r.add_(decode_tensor(e).to(r.dtype))
        else:
            r.view(-1).index_add_(0, e.indices, e.values.to(r.dtype))


# ------------------------------------------------------------------------ baseline
def naive_message(params: Params, codec: CodecSpec, seed: int | None = None) -> Encoded:
    """Baseline `naive`: the compressed weights themselves."""
    codec = parse_codec(codec)
    return encode({n: p.detach() for n, p in params.items()}, codec, seed=seed if codec.name == "randk" else None)


def naive_merge(params: Params, received: Iterable[Encoded], self_w: float, ws: Iterable[float]) -> None:
    """Baseline `naive`: average the decompressed weights like uncompressed gossip."""
    merge_branch(params, [decode(m) for m in received], self_w, list(ws))
