"""netem: a reusable SimPy discrete-event network emulator.

Links with latency, bandwidth (constant or traced) and FIFO queues, shared
access links, packet loss and outages with datagram or reliable transport,
node churn, stragglers, and static or time-varying networkx topologies; every
message is recorded and counted by tag. Knows nothing about learning.

    import simpy, numpy as np
    from netem import Network, NetworkConfig

    env = simpy.Environment()
    net = Network.from_config(env, NetworkConfig(), n_nodes=8, seed=np.random.SeedSequence(1))
    net.start()
    ev = net.send(0, 1, 1_000_000, "model")   # -> simpy.Event, value: MessageRecord
"""

from .accounting import Accounting
from .checks import check_network
from .config import NetworkConfig, StrictModel
from .errors import ConfigError, TraceFormatError
from .network import Network
from .observers import EventLog, MessageLog
from .records import MessageRecord
from .seeding import derive
from .tracefiles import shipped_traces

__all__ = [
    "check_network",
    "Accounting",
    "ConfigError",
    "EventLog",
    "MessageLog",
    "MessageRecord",
    "Network",
    "NetworkConfig",
    "StrictModel",
    "TraceFormatError",
    "derive",
    "shipped_traces",
]
