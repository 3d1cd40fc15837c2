"""Transport semantics: what loss and outages do to a message.

`datagram`: a lost packet or an outage drops the message. `reliable`: lost
packets are resent after a retransmission timeout (counted from the end of the
previous transmission), a message hit by an outage is resent whole once the
link is back; the message is dropped only after `max_retries` rounds. The
retransmissions delay this message only; they do not re-occupy the link's
queue (a message-level model, not a TCP model).
"""

from __future__ import annotations

import math

from . import config as C
from .loss import LossModel, Outages, n_packets


class Transport:
    """Resolves a transmitted message into (delivered, time, reason, retries)."""

    def __init__(self, cfg: C.TransportConfig, loss: LossModel, outages: Outages, mtu: int):
        self.reliable = cfg.mode == "reliable"
        self.timeout = cfg.retry_timeout_ms / 1000
        self.max_retries = cfg.max_retries
        self.loss = loss
        self.outages = outages
        self.mtu = mtu

    @property
    def trivial(self) -> bool:
        """True when every message is delivered as transmitted (no loss, no outages)."""
        return not self.loss.active and not self.outages

    def resolve(self, link, nbytes: int, t_start: float, t_done: float, lat: float):
        """Outcome of a message whose (first) serialization ran over [t_start, t_done]."""
        if self.reliable:
            return self._reliable(link, nbytes, t_start, t_done, lat)
        arrive = t_done + lat
        if self.loss.active and self.loss.message_lost(link, n_packets(nbytes, self.mtu)):
            return False, arrive, "loss", 0
        if self.outages:
            w = self.outages.overlap(link.src, link.dst, t_start, arrive)
            if w is not None:
                return False, max(t_start, w[0]), "outage", 0
        return True, arrive, None, 0

    def _reliable(self, link, nbytes: int, t_start: float, t_done: float, lat: float):
        timeout, max_retries = self.timeout, self.max_retries
        bits = nbytes * 8
        retries = 0
        t_end = t_done
        if self.loss.active:
            pending = self.loss.lost_packets(link, n_packets(nbytes, self.mtu))
            pkt_bits = self.mtu * 8
            while pending:
                if retries >= max_retries:
                    return False, t_end + timeout, "retries", retries
                retries += 1
                t_end = link.tx_end(t_end + timeout, min(pending * pkt_bits, bits))
                pending = self.loss.lost_packets(link, pending)
        arrive = t_end + lat
        if self.outages:
            t_first = t_start
            while True:
                w = self.outages.overlap(link.src, link.dst, t_first, arrive)
                if w is None:
                    break
                fail = max(t_first, w[0])
                k = max(1, math.ceil((w[1] - fail) / timeout))
                if retries + k > max_retries:
                    left = max_retries - retries
                    return False, fail + (left + 1) * timeout, "retries", max_retries
                retries += k
                t_first = fail + k * timeout
                arrive = link.tx_end(t_first, bits) + lat
        return True, arrive, None, retries
