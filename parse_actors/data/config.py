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
      global_val_size: null            # class-balanced validation set from the pool (sweep --tune: 300)
      missing_modality_rate: 0.1       # or one rate per agent
      schedule:
        - {agent: 3, modality: audio, at_s: 30.0, action: lose}
        - {group: [image], modality: audio, at_s: 60.0, action: gain}

A downloaded dataset: `{name: uci_har, path: data/UCI HAR Dataset}` (paths
relative to the scenario file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, create_model, field_validator, model_validator

from ..schema import StrictModel
from .datasets.synthetic import PRESET_MIX, MixConfig, SyntheticConfig  # noqa: F401 - importable from here
from .errors import DataError
from .modality import ScheduleEntry, resolve_schedule
from .registry import DATASETS, PATH_DATASETS, DatasetName
from .types import Dataset, Pairing

DEFAULT_GLOBAL_VAL = 300
"""Samples of the global validation set that `sweep --tune` uses when a scenario sets none."""


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


class _Source(StrictModel):
    name: DatasetName = "synthetic"
    """Dataset: synthetic (PID ground truth), av_digits and watch_imu (shipped), uci_har, avmnist, cremad, npz (files you downloaded, at path)."""
    path: str | None = None
    """Folder or file of a downloaded dataset (uci_har, avmnist, cremad, npz); relative paths are from the scenario file."""


# one options section per registered dataset, after name and path
_WithOptions = create_model(
    "_WithOptions",
    __base__=_Source,
    **{n: (d.options, Field(default_factory=d.options, description=f"Options of name: {n}."))
       for n, d in DATASETS.items()},
)


class DataConfig(_WithOptions):
    """Dataset, partition over agents, modality availability."""

    max_samples: int | None = Field(None, ge=2)
    """Use at most this many samples of the dataset's training pool (random, seeded); null: all."""
    global_test_size: int | float | None = None
    """Global test set: a count, a fraction in (0, 1) of the dataset, or null for the dataset's own test split (20% of the samples when it has none)."""
    global_val_size: int | None = Field(None, ge=2)
    """Global validation set: this many samples (rounded up to a multiple of the number of classes, the same count of every class) drawn from the pool before it is shared out, so disjoint from the global test set and from every agent's data; every agent is scored on it (`acc_gval`) and `sweep --tune` chooses on it. null: none (`sweep --tune` then sets 300, DEFAULT_GLOBAL_VAL)."""
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

    def dataset(self) -> Dataset:
        """The registry entry of `name`."""
        return DATASETS[self.name]

    def modalities(self, base_dir: Path | None = None) -> tuple[str, ...]:
        """The dataset's modality names (reads the files of a downloaded dataset)."""
        ds = self.dataset()
        return ds.modalities(self.source_options(), self.resolve_path(base_dir) if ds.needs_path else None)

    def input_shapes(self) -> dict[str, tuple[int, ...]] | None:
        """Per-sample shape of each modality, without building; None where that needs the data."""
        ds = self.dataset()
        return None if ds.input_shapes is None else ds.input_shapes(self.source_options())

    def pairing(self) -> Pairing:
        """'instance' or 'label': how sample i of one modality relates to sample i of another."""
        return self.dataset().pairing_of(self.source_options())

    def check(self, groups: Sequence[Sequence[str]], n_agents: int, base_dir: Path | None = None,
              agent_modalities: Sequence[Sequence[str]] | None = None) -> None:
        """Everything that can be checked before any data is built; raises DataError.

        With `agent_modalities` (each agent's modality set, in agent order) the
        schedule is also resolved: losing a modality an agent lacks at that time
        is an error here rather than when the run reaches it.
        """
        ds = self.dataset()
        opts = self.source_options()
        if n_agents < 1:
            raise DataError("partition", "needs at least one agent")
        if ds.check is not None:
            ds.check(opts)
        if ds.files is not None:  # the format's layout: every file it names is there, inside `path`
            ds.files(opts, self.resolve_path(base_dir))
        mods = self.modalities(base_dir)
        for g in groups:
            missing = [m for m in g if m not in mods]
            if missing:
                raise DataError(
                    ds.modalities_key,
                    f"agents use modality {missing[0]!r} but dataset {self.name!r} has only: {', '.join(mods)}",
                )
        p = self.partition
        if p.kind == "quantity" and p.ratios is not None and len(p.ratios) != n_agents:
            raise DataError("partition.ratios", f"{len(p.ratios)} ratios for {n_agents} agents")
        if p.kind == "natural" and not ds.has_groups(opts):
            raise DataError("partition.kind", "natural partition needs a dataset with groups (subjects or speakers)")
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
        if agent_modalities is not None and self.schedule:
            resolve_schedule(self.schedule, [tuple(m) for m in agent_modalities], mods)
        total = ds.pool_size(opts) if ds.pool_size is not None else None
        if total is not None:
            self._check_sizes(total, n_agents, has_test=False)

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
        if self.global_val_size is not None:
            k = self.global_val_size
            classes = getattr(self.source_options(), "num_classes", None)  # where known without building
            k = -(-k // classes) * classes if isinstance(classes, int) else k  # holdout.per_class, rounded up
            if k >= pool:
                raise DataError("global_val_size", f"{k} samples asked, the dataset leaves {pool} after its "
                                                   "global test set")
            pool -= k
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
