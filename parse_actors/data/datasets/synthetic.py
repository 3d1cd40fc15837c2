"""The `synthetic` dataset: options and registry entry (the generator is
parse_actors.data.synthetic)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ... import memory
from ...names import check_modality_names
from ...schema import StrictModel
from ..errors import DataError
from ..synthetic import generate
from ..types import Dataset, SourceData


class MixConfig(StrictModel):
    """Weights of the three kinds of label information (each term's score is
    scaled to unit variance, then multiplied by its weight)."""

    redundant: float = Field(0.0, ge=0)
    """Weight of the part every modality sees."""
    unique: float = Field(0.0, ge=0)
    """Total weight of the per-modality unique parts (split evenly over modalities)."""
    synergy: float = Field(0.0, ge=0)
    """Total weight of the synergy terms (modular sum of codes held by different modalities)."""

    @model_validator(mode="after")
    def _not_all_zero(self):
        if self.redundant + self.unique + self.synergy <= 0:
            raise ValueError("at least one of redundant, unique, synergy must be > 0")
        return self


class SyntheticConfig(StrictModel):
    """Synthetic data with known partial-information-decomposition ground truth
    (see parse_actors.data.synthetic for the exact generative model)."""

    preset: Literal["redundancy", "uniqueness", "synergy", "mixed"] = "mixed"
    """Which kind of information decides the label: redundancy (the part all modalities share), uniqueness (each modality's own part), synergy (only a combination of modalities reveals it) or mixed (all three)."""
    mix: MixConfig | None = None
    """Explicit weights {redundant, unique, synergy}; overrides the preset's."""
    modalities: list[str] = Field(default_factory=lambda: ["image", "audio"], min_length=1)
    """Modality names, any number >= 1 (e.g. [image, audio, text])."""
    num_classes: int = Field(4, ge=2, le=1000)
    """Number of classes."""
    n_samples: int = Field(12000, ge=2, le=20_000_000)
    """Samples generated in all (agents' train and test splits plus the global test set)."""
    dim: int | dict[str, int] = 32
    """Feature size per modality: one number for all, or {modality: size}."""
    shapes: dict[str, list[int]] | None = None
    """Optional per-sample shape per modality (e.g. {image: [1, 8, 8]}); its product must equal that modality's dim. Default: flat (dim,)."""
    redundant_dim: int | None = Field(None, ge=1)
    """Size of the shared (redundant) Gaussian latent; null: max(4, num_classes - 1), enough for every class to be reachable."""
    unique_dim: int | None = Field(None, ge=1)
    """Size of each modality's unique Gaussian latent; null: max(4, num_classes - 1)."""
    synergy_dim: int = Field(4, ge=1)
    """Size of the embedding of each synergy code a modality holds."""
    nuisance_dim: int = Field(0, ge=0)
    """Size of each modality's label-free Gaussian latent (distractor)."""
    synergy_order: int = Field(2, ge=2)
    """How many modalities each synergy term combines; one term per subset of that size."""
    noise: float = Field(0.5, ge=0)
    """Std of the Gaussian noise added to every feature (the projected signal has unit variance per feature)."""
    label_noise: float = Field(0.0, ge=0, lt=1)
    """Probability that a label is replaced by a uniformly random class."""
    task_seed: int | None = Field(None, ge=0)
    """Seed of the task itself (projections, label function); null: the run seed. Fix it to keep one task across run seeds."""

    @field_validator("modalities")
    @classmethod
    def _names(cls, v):
        return check_modality_names(v)

    def latent_dims(self) -> tuple[int, int]:
        """(redundant, unique) latent sizes with the automatic defaults filled in."""
        auto = max(4, self.num_classes - 1)
        return (self.redundant_dim or auto, self.unique_dim or auto)

    def dims(self) -> dict[str, int]:
        if isinstance(self.dim, int):
            return {m: self.dim for m in self.modalities}
        return {m: self.dim.get(m, 0) for m in self.modalities}

    def shape_of(self, m: str) -> tuple[int, ...]:
        if self.shapes and m in self.shapes:
            return tuple(self.shapes[m])
        return (self.dims()[m],)

    def memory_bytes(self, n: int) -> int:
        """A lower bound on what `generate` holds at its peak for `n` samples: the latents
        (float64; codes int64), the projections and the observations (float32), plus the
        largest of what comes and goes: one modality's temporaries, the class scores, the
        oracle's two 48,000-sample latent draws (tests hold it below the measured peak)."""
        K, C = len(self.modalities), self.num_classes
        d_red, d_uni = self.latent_dims()
        k = self.synergy_order
        subsets = math.comb(K, k) if K >= 2 else 0
        codes = subsets * k
        latent = 8 * (d_red + K * (d_uni + self.nuisance_dim) + codes)  # bytes per sample
        seen_codes = math.comb(K - 1, k - 1) if K >= 2 else 0  # subsets holding one modality
        d_in = d_red + d_uni + self.nuisance_dim + seen_codes * self.synergy_dim
        dims = self.dims()
        base = n * latent + 8 * d_in * sum(dims.values()) + 8 * codes * C * self.synergy_dim + 4 * n * sum(dims.values())
        transient = max(4 * n * max(d_in + d for d in dims.values()), 8 * n * C, 2 * 48_000 * latent + 48_000 * 8 * C)
        return base + transient

    def weights(self) -> dict[str, float]:
        if self.mix is not None:
            return self.mix.model_dump()
        return dict(PRESET_MIX[self.preset])


PRESET_MIX: dict[str, dict[str, float]] = {
    "redundancy": {"redundant": 1.0, "unique": 0.0, "synergy": 0.0},
    "uniqueness": {"redundant": 0.0, "unique": 1.0, "synergy": 0.0},
    "synergy": {"redundant": 0.0, "unique": 0.0, "synergy": 1.0},
    "mixed": {"redundant": 1.0, "unique": 1.0, "synergy": 0.4},
}


def _check(s: SyntheticConfig) -> None:
    """Checks across fields of the options (paths relative to `data:`)."""
    k = len(s.modalities)
    w = s.weights()
    if isinstance(s.dim, dict):
        extra = set(s.dim) - set(s.modalities)
        if extra:
            raise DataError("synthetic.dim", f"sizes given for unknown modalities {sorted(extra)}")
        for m in s.modalities:
            if s.dim.get(m, 0) < 1:
                raise DataError("synthetic.dim", f"needs a size >= 1 for modality {m!r}")
    elif s.dim < 1:
        raise DataError("synthetic.dim", "must be >= 1")
    for m, shape in (s.shapes or {}).items():
        if m not in s.modalities:
            raise DataError("synthetic.shapes", f"shape for unknown modality {m!r}")
        if not shape or any(d < 1 for d in shape) or math.prod(shape) != s.dims()[m]:
            raise DataError(f"synthetic.shapes.{m}", f"shape {shape} does not hold dim {s.dims()[m]}")
    if w["synergy"] > 0 and k < 2:
        raise DataError(
            "synthetic.preset" if s.mix is None else "synthetic.mix.synergy",
            "synergy needs at least two modalities",
        )
    if w["synergy"] > 0 and s.synergy_order > k:
        raise DataError("synthetic.synergy_order", f"{s.synergy_order} is more than the {k} modalities")
    dims = s.dims()
    why = memory.over_limit(s.memory_bytes(s.n_samples),
                            f"generating {s.n_samples:,} samples of {sum(dims.values()):,} features "
                            f"({len(dims)} modalities; latents {'+'.join(map(str, s.latent_dims()))}, "
                            f"nuisance {s.nuisance_dim}, {math.comb(k, s.synergy_order) if k >= 2 else 0:,} "
                            "synergy terms)")
    if why:
        raise DataError("synthetic", why)


def _build(opts: SyntheticConfig, seed: int, path: Path | None, cfg) -> SourceData:
    s = generate(opts, seed)
    return SourceData(s.data, None, opts.num_classes, info={"synthetic": s.info})


DATASET = Dataset(
    name="synthetic",
    options=SyntheticConfig,
    modalities=lambda opts, path: tuple(opts.modalities),
    build=_build,
    pairing="instance",
    code=("synthetic.py", "datasets/synthetic.py"),
    pool_size=lambda opts: opts.n_samples,
    input_shapes=lambda opts: {m: opts.shape_of(m) for m in opts.modalities},
    check=_check,
    modalities_key="synthetic.modalities",
    seeded=True,
)
