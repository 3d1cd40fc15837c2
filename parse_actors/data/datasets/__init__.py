"""One module per dataset: its options model, its builder and its registry
entry (`DATASET`); parse_actors.data.registry lists them."""
