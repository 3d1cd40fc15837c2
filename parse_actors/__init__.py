"""parse-sim learning side: PARSE agents, datasets, the co-simulation engine and the CLI."""

__version__ = "0.1.0"
