"""What netem accepts from a scenario or a trace file: physical bounds and sizes.

One place for every bound, so a value is judged the same whether it comes
from a YAML key or a measured file, and every number netem computes with stays
finite (a rate that overflows to inf, or a sample spacing below the clock's
resolution, would otherwise surface as NaN times or a loop that never moves
virtual time).
"""

from __future__ import annotations

#: Fastest link rate, Mbit/s (10 Tbit/s: above any single link built today;
#: a message of any realistic size then serializes in well under a microsecond).
MAX_RATE_MBPS = 1e7
#: Slowest configured constant rate, Mbit/s (1 bit/s). Below it serialization
#: times leave the range where float64 times keep their meaning (a subnormal
#: rate gives an infinite time and NaN arithmetic after it).
MIN_RATE_MBPS = 1e-6
#: Longest latency, ms (one day): one-way latencies, and round-trip times read
#: from latency traces. Beyond it the value is a unit mistake, not a network.
MAX_LATENCY_MS = 86_400_000.0

#: Smallest spacing of two bandwidth samples, seconds (1 ms). The finest
#: resolution real throughput traces are published at (Mahimahi's per-ms
#: delivery opportunities; 3G/4G/FCC traces are at 0.1-1 s): a "rate" over a
#: shorter interval is one packet's arrival, not a throughput. It also bounds
#: from below how far virtual time advances between two rate changes of a
#: traced link, which the shared-access model steps through.
MIN_SAMPLE_SPACING_S = 1e-3
#: Latest timestamp in any trace, seconds (1e10 s: Unix-epoch timestamps fit
#: until year 2286). float64 resolves 2 us there, far below MIN_SAMPLE_SPACING_S.
MAX_TRACE_TIME_S = 1e10

#: Largest file netem reads (bandwidth, latency, servers, availability, edge list).
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Most lines in such a file (comments and blank lines included): a bandwidth
#: trace of 11.5 days at 1 s, a complete latency matrix of 1,000 hosts.
MAX_FILE_LINES = 1_000_000
#: Longest line, characters (real trace lines are under 200).
MAX_LINE_CHARS = 4096
#: Largest host id in a latency or servers CSV (ids are stored as int64).
MAX_HOST_ID = 2**62

#: Largest message, bytes (2**53: every byte count, and 8x it in bits, is
#: exact in float64 arithmetic).
MAX_MESSAGE_BYTES = 2**53
