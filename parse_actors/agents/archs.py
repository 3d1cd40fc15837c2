"""Encoder registry and the deterministic compute-cost model.

An encoder maps one modality's sample (shape `input_shape`) to a feature vector
of width D_m. D_m is fixed per modality, not per architecture, so what sits on
top of an encoder (fission projections, heads) has the same shape whichever
encoder an agent runs and stays shareable between agents that differ only in
their encoder.

Virtual compute time never depends on wall time: `count_macs` counts the
multiply-accumulates of one forward pass from the layer shapes, and the agent
turns that into seconds with `ModelConfig.cost_scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .config import ARCH_NAMES, ARCH_RANKS, ModelConfig


class _GRUEncoder(nn.Module):
    """GRU over time; the last hidden state, projected to D_m."""

    def __init__(self, features: int, hidden: int, out: int) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)
        return torch.relu(self.proj(h[-1]))


class _Transpose(nn.Module):
    """(n, T, F) -> (n, F, T) so Conv1d runs over time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _mlp(shape: tuple[int, ...], out: int, cfg: ModelConfig) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten(1)]
    prev = math.prod(shape)
    for h in cfg.mlp_hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers += [nn.Linear(prev, out), nn.ReLU()]
    return nn.Sequential(*layers)


def _cnn(shape: tuple[int, ...], out: int, cfg: ModelConfig) -> nn.Module:
    layers: list[nn.Module] = []
    if len(shape) == 2:
        layers.append(nn.Unflatten(1, (1, shape[0])))
        shape = (1, *shape)
    c, h, w = shape
    for ch in cfg.cnn_channels:
        layers += [nn.Conv2d(c, ch, 3, padding=1), nn.ReLU()]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, out), nn.ReLU()]
    return nn.Sequential(*layers)


def _conv1d(shape: tuple[int, ...], out: int, cfg: ModelConfig) -> nn.Module:
    layers: list[nn.Module] = []
    if len(shape) == 1:
        layers.append(nn.Unflatten(1, (shape[0], 1)))
        shape = (shape[0], 1)
    _, f = shape
    layers.append(_Transpose())
    k = cfg.conv1d_kernel
    for ch in cfg.conv1d_channels:
        layers += [nn.Conv1d(f, ch, k, padding=k // 2), nn.ReLU()]
        f = ch
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(1), nn.Linear(f, out), nn.ReLU()]
    return nn.Sequential(*layers)


def _gru(shape: tuple[int, ...], out: int, cfg: ModelConfig) -> nn.Module:
    if len(shape) == 1:
        return nn.Sequential(nn.Unflatten(1, (shape[0], 1)), _GRUEncoder(1, cfg.gru_hidden, out))
    return _GRUEncoder(shape[1], cfg.gru_hidden, out)


@dataclass(frozen=True)
class ArchSpec:
    name: str
    build: Callable[[tuple[int, ...], int, ModelConfig], nn.Module]
    ranks: tuple[int, ...]
    """Accepted input ranks (sample shape without the batch dimension)."""
    about: str


ARCHS: dict[str, ArchSpec] = {
    "mlp": ArchSpec("mlp", _mlp, ARCH_RANKS["mlp"], "flattened input, ReLU MLP (`mlp_hidden`)"),
    "cnn": ArchSpec("cnn", _cnn, ARCH_RANKS["cnn"],
                    "image-like (C,H,W) or (H,W): 3x3 convs + max-pool, global average pool"),
    "conv1d": ArchSpec("conv1d", _conv1d, ARCH_RANKS["conv1d"],
                       "time series (T,F): 1-D convs over time, global average pool"),
    "gru": ArchSpec("gru", _gru, ARCH_RANKS["gru"], "time series (T,F): GRU, last hidden state"),
}
if tuple(ARCHS) != ARCH_NAMES:  # the scenario schema's names and this registry are one list
    raise ImportError(f"agents.config.ARCH_NAMES {ARCH_NAMES} and the encoder registry {tuple(ARCHS)} differ")


def build_encoder(arch: str, input_shape: tuple[int, ...], out_width: int, cfg: ModelConfig) -> nn.Module:
    """An encoder (n, *input_shape) -> (n, out_width), ending in ReLU."""
    try:
        spec = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown encoder architecture {arch!r}; known: {sorted(ARCHS)}") from None
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in spec.ranks or min(shape) < 1:
        raise ValueError(f"architecture {arch!r} takes inputs of rank {spec.ranks}, got shape {shape}")
    return spec.build(shape, out_width, cfg)


# ---------------------------------------------------------------- cost model


def _linear_macs(m: nn.Linear, inp, out) -> int:
    return out.numel() * m.in_features


def _conv_macs(m: nn.Module, inp, out) -> int:
    return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)


def _gru_macs(m: nn.GRU, inp, out) -> int:
    x = inp[0]
    steps = x.shape[0] * x.shape[1]  # batch * time (batch_first); product either way
    h = m.hidden_size
    total, f = 0, m.input_size
    for _ in range(m.num_layers):
        total += 3 * (f * h + h * h) * steps
        f = h
    return total * (2 if m.bidirectional else 1)


_COUNTERS = {nn.Linear: _linear_macs, nn.Conv1d: _conv_macs, nn.Conv2d: _conv_macs, nn.GRU: _gru_macs}


def count_macs(module: nn.Module, run: Callable[[], object]) -> int:
    """Multiply-accumulates of the layers `module` runs inside `run()` (one call,
    all counted layers; element-wise ops are free). Pure shape arithmetic."""
    total = [0]
    hooks = []
    for sub in module.modules():
        fn = _COUNTERS.get(type(sub))
        if fn is not None:
            hooks.append(sub.register_forward_hook(lambda m, i, o, fn=fn: total.__setitem__(0, total[0] + fn(m, i, o))))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return total[0]


TRAIN_FACTOR = 3.0
"""Forward + backward cost of a training sample, in forward passes."""


def seconds_per_sample(forward_macs: int, cfg: ModelConfig) -> float:
    return cfg.cost_scale * TRAIN_FACTOR * forward_macs / 1e9
