"""Datasets for parse-sim: synthetic data with known PID ground truth, shipped
real datasets (AV digits, watch IMU), loaders for downloaded ones (UCI-HAR,
AV-MNIST, CREMA-D features, generic npz), partitions over agents, modality
availability and schedules, and an on-disk cache.

    cfg = DataConfig.model_validate(doc)            # the `data:` section
    cfg.check(groups, n_agents, base_dir)           # DataError(path, message)
    fd = build_federated_data(cfg, agent_modalities, seed, base_dir, cache_dir)
"""

from parse_actors.lazy import lazy_names

# Names are imported on first use (PEP 562): every Ray actor imports
# parse_actors.data.types through the agents, and must not pay for the loaders,
# the pydantic config models and the dataset registry it never uses.
_WHERE = {
    "DataConfig": "config", "PartitionConfig": "config", "ScheduleEntry": "config", "SyntheticConfig": "config",
    "DataError": "errors",
    "FederatedData": "federated", "build_federated_data": "federated", "load_source": "federated",
    "verify_source": "federated",
    "AgentData": "types", "ModalData": "types", "ModalityEvent": "types",
}

__getattr__ = lazy_names(__name__, _WHERE)

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
    "verify_source",
]
