"""Datasets for parse-sim: synthetic data with known PID ground truth, shipped
real datasets (AV digits, watch IMU), loaders for downloaded ones (UCI-HAR,
AV-MNIST, CREMA-D features, generic npz), partitions over agents, modality
availability and schedules, and an on-disk cache.

    cfg = DataConfig.model_validate(doc)            # the `data:` section
    cfg.check(groups, n_agents, base_dir)           # DataError(path, message)
    fd = build_federated_data(cfg, agent_modalities, seed, base_dir, cache_dir)
"""

from .config import DataConfig, PartitionConfig, ScheduleEntry, SyntheticConfig
from .errors import DataError
from .federated import FederatedData, build_federated_data, load_source
from .types import AgentData, ModalData, ModalityEvent

__all__ = [
    "AgentData",
    "DataConfig",
    "DataError",
    "FederatedData",
    "ModalData",
    "ModalityEvent",
    "PartitionConfig",
    "ScheduleEntry",
    "SyntheticConfig",
    "build_federated_data",
    "load_source",
]
