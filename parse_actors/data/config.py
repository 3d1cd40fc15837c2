"""The `data:` section of a scenario: which dataset, how it is split, who sees what.

Field-level mistakes (unknown key, unknown dataset name, alpha <= 0, ...) are
caught by pydantic when the scenario loads. Checks that need the rest of the
scenario (how many agents, which modality sets, where the scenario file lives)
are in `DataConfig.check`, which raises `DataError` with the key path.

Example (every key optional; the defaults shown where given):

    data:
      name: synthetic                  # synthetic | av_digits | watch_imu | uci_har | avmnist | cremad | npz
      synthetic:
        preset: mixed                  # redundancy | uniqueness | synergy | mixed
        modalities: [image, audio]     # any K >= 1
        num_classes: 4
        n_samples: 12000
        dim: 32                        # or {image: 64, audio: 32}; shapes: {image: [1, 8, 8]}
        noise: 0.5
      partition:
        kind: dirichlet                # iid | dirichlet | quantity | natural
        alpha: 0.5
        test_fraction: 0.2
      global_test_size: null           # count, fraction, or the dataset's own test split / 20%
      missing_modality_rate: 0.1       # or one rate per agent
      schedule:
        - {agent: 3, modality: audio, at_s: 30.0, action: lose}
        - {group: [image], modality: audio, at_s: 60.0, action: gain}

A downloaded dataset: `{name: uci_har, path: data/UCI HAR Dataset}` (paths
relative to the scenario file).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..schema import StrictModel
from .errors import DataError

DATASETS = ("synthetic", "av_digits", "watch_imu", "uci_har", "avmnist", "cremad", "npz")
PATH_DATASETS = ("uci_har", "avmnist", "cremad", "npz")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_names(names: Sequence[str]) -> list[str]:
    names = list(names)
    for m in names:
        if not _NAME.match(m):
            raise ValueError(f"modality name {m!r} must be an identifier (letters, digits, _)")
    if len(set(names)) != len(names):
        raise ValueError(f"modality names repeat: {names}")
    return names


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
    task_seed: int | None = None
    """Seed of the task itself (projections, label function); null: the run seed. Fix it to keep one task across run seeds."""

    @field_validator("modalities")
    @classmethod
    def _names(cls, v):
        return _check_names(v)

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


class AVDigitsConfig(StrictModel):
    """Real 8x8 handwritten digits paired by label with synthesized spoken digits (shipped asset)."""

    pairs_per_image: int = Field(1, ge=1, le=10)
    """Pairs made per image, each with a different spoken clip of the same digit. Above 1 an image appears in several samples (which may land in different splits)."""
    image_noise: float = Field(0.0, ge=0)
    """Std of Gaussian noise added to images (pixels scaled to [0, 1]) to make vision harder."""
    audio_noise: float = Field(0.0, ge=0)
    """Std of Gaussian noise added to the standardized log-mel spectrograms."""


class WatchIMUConfig(StrictModel):
    """Smartwatch accelerometer + gyroscope, 7 shoulder exercises, 10 subjects (shipped asset from seglearn)."""

    window: int = Field(100, ge=8, le=900)
    """Window length in samples (50 Hz)."""
    stride: int | None = Field(None, ge=1)
    """Step between windows; null: the window length (no overlap, so no leakage between splits)."""
    standardize: bool = True
    """Scale each channel to zero mean, unit std (statistics over all recordings)."""


class UCIHARConfig(StrictModel):
    """UCI Human Activity Recognition (smartphone), original text layout, downloaded by the user."""

    acc: Literal["body", "total"] = "body"
    """Accelerometer signal: body_acc (gravity removed) or total_acc."""
    standardize: bool = True
    """Scale each channel to zero mean, unit std using training-split statistics."""


class AVMNISTConfig(StrictModel):
    """AV-MNIST as MultiBench's numpy files (image/, audio/, *_labels.npy), downloaded by the user."""

    normalize: bool = True
    """Divide images and spectrograms by 255 (as MultiBench does)."""


class CremaDConfig(StrictModel):
    """CREMA-D with per-clip precomputed features: <path>/<subdir>/<clip id>.npy per modality."""

    modalities: dict[str, str] = Field(default_factory=lambda: {"audio": "audio", "visual": "visual"})
    """Modality name -> sub-folder holding one <clip id>.npy per clip (clip id as in CREMA-D, e.g. 1001_DFA_ANG_XX)."""
    max_frames: int | dict[str, int] | None = None
    """Pad with zeros / crop the first (time) axis of the feature arrays to this length: one number for every modality or {modality: length}; null: arrays must already agree."""
    pool: Literal["none", "mean"] = "none"
    """mean: average over the first (time) axis, giving one vector per clip."""

    @field_validator("modalities")
    @classmethod
    def _names(cls, v):
        _check_names(list(v))
        if not v:
            raise ValueError("at least one modality")
        return v

    @field_validator("max_frames")
    @classmethod
    def _frames(cls, v):
        vals = v.values() if isinstance(v, dict) else [] if v is None else [v]
        if any(t < 1 for t in vals):
            raise ValueError("lengths must be >= 1")
        return v

    def frames_for(self, modality: str) -> int | None:
        return self.max_frames.get(modality) if isinstance(self.max_frames, dict) else self.max_frames


class NpzConfig(StrictModel):
    """Generic arrays: one array per modality plus labels, in .npz files."""

    modalities: list[str] | None = None
    """Arrays to use as modalities; null: every array except the label and group keys."""
    label_key: str = "y"
    """Name of the label array (integers)."""
    groups_key: str | None = None
    """Optional array of natural group ids (e.g. subject) for partition kind: natural."""


class PartitionConfig(StrictModel):
    """How the pool is split over agents, and each agent's held-out split."""

    kind: Literal["iid", "dirichlet", "quantity", "natural"] = "iid"
    """iid: equal sizes, same label mix; dirichlet: label skew per class over agents; quantity: size skew, same label mix; natural: the dataset's own groups (subjects, speakers) dealt to agents."""
    alpha: float = Field(0.5, gt=0)
    """Dirichlet concentration for kind: dirichlet (smaller: more skew)."""
    beta: float = Field(1.0, gt=0)
    """Dirichlet concentration of agents' sizes for kind: quantity when ratios is null (smaller: more skew)."""
    ratios: list[float] | None = None
    """Explicit relative sizes for kind: quantity, one per agent."""
    test_fraction: float = Field(0.2, ge=0, lt=1)
    """Share of each agent's samples held out as its test split (stratified by label)."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    """Share of each agent's training samples (what its test split leaves) held out as its validation split (stratified by label; never trained on), for choosing hyperparameters without test data."""
    samples_per_agent: int | None = Field(None, ge=2)
    """Samples per agent (train + test): exact for iid and natural (a cap), the mean for quantity, a cap for dirichlet; null: the whole pool is shared out."""
    min_samples: int = Field(10, ge=1)
    """Fewest samples (train + test) any agent may get."""

    @field_validator("ratios")
    @classmethod
    def _positive(cls, v):
        if v is not None and (not v or any(r <= 0 for r in v)):
            raise ValueError("ratios must be a non-empty list of numbers > 0")
        return v


class ScheduleEntry(StrictModel):
    """A modality lost or gained during the run, by one agent or a set of them."""

    agent: int | None = Field(None, ge=0)
    """One agent index."""
    agents: list[int] | None = None
    """Several agent indices."""
    group: list[str] | None = None
    """Every agent whose initial modality set is exactly this one (order does not matter)."""
    modality: str
    """The modality lost or gained."""
    at_s: float = Field(ge=0)
    """Virtual time in seconds."""
    action: Literal["lose", "gain"] = "lose"
    """lose: the sensor fails; gain: it starts working."""

    @model_validator(mode="after")
    def _one_selector(self):
        given = [k for k in ("agent", "agents", "group") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of agent, agents, group (got {given or 'none'})")
        if self.agents is not None and (not self.agents or min(self.agents) < 0):
            raise ValueError("agents must be a non-empty list of indices >= 0")
        return self


class DataConfig(StrictModel):
    """Dataset, partition over agents, modality availability."""

    name: Literal["synthetic", "av_digits", "watch_imu", "uci_har", "avmnist", "cremad", "npz"] = "synthetic"
    """Dataset: synthetic (PID ground truth), av_digits and watch_imu (shipped), uci_har, avmnist, cremad, npz (files you downloaded, at path)."""
    path: str | None = None
    """Folder or file of a downloaded dataset (uci_har, avmnist, cremad, npz); relative paths are from the scenario file."""
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    """Options of name: synthetic."""
    av_digits: AVDigitsConfig = Field(default_factory=AVDigitsConfig)
    """Options of name: av_digits."""
    watch_imu: WatchIMUConfig = Field(default_factory=WatchIMUConfig)
    """Options of name: watch_imu."""
    uci_har: UCIHARConfig = Field(default_factory=UCIHARConfig)
    """Options of name: uci_har."""
    avmnist: AVMNISTConfig = Field(default_factory=AVMNISTConfig)
    """Options of name: avmnist."""
    cremad: CremaDConfig = Field(default_factory=CremaDConfig)
    """Options of name: cremad."""
    npz: NpzConfig = Field(default_factory=NpzConfig)
    """Options of name: npz."""
    max_samples: int | None = Field(None, ge=2)
    """Use at most this many samples of the dataset's training pool (random, seeded); null: all."""
    global_test_size: int | float | None = None
    """Global test set: a count, a fraction in (0, 1) of the dataset, or null for the dataset's own test split (20% of the samples when it has none)."""
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    """Split over agents."""
    missing_modality_rate: float | list[float] = 0.0
    """Probability that a modality of a training sample is missing (zero-filled, flagged in ModalData.present) for multimodal agents: one number for all agents or one per agent. A sample always keeps at least one modality."""
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    """Modalities lost or gained during the run (the engine applies them)."""
    cache: bool = True
    """Cache the prepared dataset under $PARSE_SIM_CACHE (default ~/.cache/parse-sim)."""

    @field_validator("global_test_size")
    @classmethod
    def _gts(cls, v):
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError("a fraction must be in (0, 1); give an integer for a count")
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("missing_modality_rate")
    @classmethod
    def _rate(cls, v):
        rates = v if isinstance(v, list) else [v]
        if any(not 0 <= r < 1 for r in rates):
            raise ValueError("rates must be in [0, 1)")
        return v

    @model_validator(mode="after")
    def _options_match_name(self):
        for other in DATASETS:
            section = getattr(self, other)
            if other != self.name and other in self.model_fields_set and section != type(section)():
                raise ValueError(f"options under {other!r} but name is {self.name!r}")
        if self.path is not None and self.name not in PATH_DATASETS:
            raise ValueError(f"path is only read for {', '.join(PATH_DATASETS)}, not {self.name!r}")
        return self

    # ---------------------------------------------------------------- checks

    def source_options(self):
        return getattr(self, self.name)

    def resolve_path(self, base_dir: Path | None) -> Path:
        if self.path is None:
            raise DataError("path", f"dataset {self.name!r} needs path: the folder or file you downloaded")
        p = Path(self.path).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        if not p.exists():
            raise DataError("path", f"{p} does not exist")
        return p

    def check(self, groups: Sequence[Sequence[str]], n_agents: int, base_dir: Path | None = None) -> None:
        """Everything that can be checked before any data is built; raises DataError."""
        from .sources import source_modalities, static_pool_size

        if n_agents < 1:
            raise DataError("partition", "needs at least one agent")
        if self.name == "synthetic":
            self._check_synthetic()
        if self.name in PATH_DATASETS:
            self.resolve_path(base_dir)
        mods = source_modalities(self, base_dir)
        where = "synthetic.modalities" if self.name == "synthetic" else "name"
        for g in groups:
            missing = [m for m in g if m not in mods]
            if missing:
                raise DataError(
                    where,
                    f"agents use modality {missing[0]!r} but dataset {self.name!r} has only: {', '.join(mods)}",
                )
        p = self.partition
        if p.kind == "quantity" and p.ratios is not None and len(p.ratios) != n_agents:
            raise DataError("partition.ratios", f"{len(p.ratios)} ratios for {n_agents} agents")
        if isinstance(self.missing_modality_rate, list) and len(self.missing_modality_rate) != n_agents:
            raise DataError(
                "missing_modality_rate", f"{len(self.missing_modality_rate)} rates for {n_agents} agents"
            )
        group_sets = {frozenset(g) for g in groups}
        for i, ev in enumerate(self.schedule):
            key = f"schedule[{i}]"
            for a in ([ev.agent] if ev.agent is not None else ev.agents or []):
                if a >= n_agents:
                    raise DataError(f"{key}.agent" + ("s" if ev.agents else ""), f"agent {a} does not exist ({n_agents} agents)")
            if ev.modality not in mods:
                raise DataError(f"{key}.modality", f"dataset {self.name!r} has no modality {ev.modality!r} (has: {', '.join(mods)})")
            if ev.group is not None and frozenset(ev.group) not in group_sets:
                raise DataError(f"{key}.group", f"no agent group has exactly modalities {sorted(ev.group)}")
        total = static_pool_size(self, base_dir)
        if total is not None:
            self._check_sizes(total, n_agents, has_test=False)

    def _check_synthetic(self) -> None:
        s = self.synthetic
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

    def _check_sizes(self, total: int, n_agents: int, has_test: bool) -> None:
        """Is a dataset of `total` samples (its pool, plus its test split when
        `has_test`) big enough for the global test set and the partition?"""
        gts = self.global_test_size
        if has_test:
            pool = total
        elif isinstance(gts, float) or gts is None:
            pool = total - int(round(total * (gts or 0.2)))
        else:
            if gts >= total:
                raise DataError("global_test_size", f"{gts} samples asked, the dataset has {total}")
            pool = total - gts
        if self.max_samples is not None:
            pool = min(pool, self.max_samples)
        p = self.partition
        need_min = n_agents * p.min_samples
        if pool < need_min:
            raise DataError(
                "partition.min_samples",
                f"{n_agents} agents x {p.min_samples} samples needs {need_min}, the dataset leaves {pool} for agents",
            )
        if p.samples_per_agent is not None and p.kind in ("iid", "quantity"):
            need = n_agents * p.samples_per_agent
            if pool < need:
                raise DataError(
                    "partition.samples_per_agent",
                    f"{n_agents} agents x {p.samples_per_agent} samples needs {need}, the dataset leaves {pool} for agents",
                )
