"""Request intake: which client requests a replica keeps, trusts and forwards, and for how long.

Theory of operation. A request reaches a replica straight from its client (or forwarded by a
backup), or inside a batch the protocol accepted. Either way it is *pending* until it executes.
Three rules keep that table honest and bounded:

- **Trust once.** A client's Ed25519 signature is checked once per replica, however often the
  request is seen (retransmissions, forwards, batches, view changes); the checked signatures
  are remembered in a bounded table.
- **Age is order.** Pending requests are kept in arrival order with their arrival time. The
  execution deadline of a backup runs from the *oldest* one, so a leader that keeps ordering
  other clients' requests is still suspected of skipping one (`Replica._restart_exec_timer`).
- **Closed loop.** A client has one request outstanding, so more than `PENDING_PER_CLIENT_MAX`
  unexecuted requests straight from one client are a flood and the rest are refused; requests
  in a batch the protocol accepted are always kept (they are bounded by the window).

A backup forwards a request to the leader at most once per view and execution timeout: copies
keep arriving (the client's retransmissions, other replicas' forwards, echoes from a Byzantine
peer or a twin), and forwarding each one lets two replicas that disagree about the leader
reflect a request between them without end. A lost forward is covered by the client's
retransmission, and a leader that ignores it by the execution timer.
"""

from __future__ import annotations

from collections import Counter

from .bank import Bank
from .config import ClusterConfig
from .crypto import NodeCrypto
from .messages import Request, batch_encoding, request_bytes

RequestKey = tuple[str, int]
VERIFIED_REQUESTS_MAX = 100_000
FORWARDED_MAX = 10_000  # forwarded-request records kept before the executed ones are pruned
PENDING_PER_CLIENT_MAX = 8


class Intake:
    """The pending-request table of one replica, with the checks every request goes through."""

    def __init__(self, config: ClusterConfig, crypto: NodeCrypto, metrics: Counter[str]) -> None:
        self.config = config
        self.crypto = crypto
        self.metrics = metrics
        # Requests known and not yet executed, oldest first, with when each arrived.
        self.pending: dict[RequestKey, Request] = {}
        self.since_ms: dict[RequestKey, float] = {}
        self.per_client: dict[str, int] = {}
        self._verified: dict[bytes, None] = {}
        self._forwarded: dict[RequestKey, tuple[int, float]] = {}  # key -> (view, when)

    # ---- checks ------------------------------------------------------------------------------

    def too_large(self, request: Request) -> bool:
        """No batch could carry it (see `ClusterConfig.batch_bytes_max`)."""
        return request_bytes(request) > self.config.batch_bytes_max

    def valid(self, request: Request) -> bool:
        """Signed by its client; each signature is verified once, however often it is seen."""
        if request.sig in self._verified:
            return True
        if not self.crypto.verify_client(request.client, request.signing_payload(), request.sig):
            return False
        if len(self._verified) >= VERIFIED_REQUESTS_MAX:
            self._verified.pop(next(iter(self._verified)))
        self._verified[request.sig] = None
        return True

    def batch_invalid(self, batch: tuple[Request, ...], encoded: bytes | None = None) -> str | None:
        """Why a proposed batch (a PRE-PREPARE's, or one NEW-VIEW re-proposes) may not be
        ordered, or None: every request in it must be an ordered request its client signed,
        and the batch must fit the budgets every honest leader keeps. `encoded` is the batch's
        encoding if the caller already has it (`messages.batch_encoding`)."""
        if len(batch) > self.config.batch_size_max:
            return "batch size"
        if len(encoded if encoded is not None else batch_encoding(batch)) > self.config.batch_bytes_max:
            return "batch too large"
        if any(r.read_only or not self.valid(r) for r in batch):
            return "bad request in batch"
        return None

    # ---- the pending table ---------------------------------------------------------------------

    def add(self, request: Request, now_ms: float, *, from_client: bool) -> bool:
        """Remember an unexecuted request; False if its client already has too many pending
        (only for requests straight from a client: a batch the protocol accepted is kept)."""
        key = request.key
        if key in self.pending:
            return True
        count = self.per_client.get(key[0], 0)
        if from_client and count >= PENDING_PER_CLIENT_MAX:
            return False
        self.pending[key] = request
        self.since_ms[key] = now_ms
        self.per_client[key[0]] = count + 1
        return True

    def remove(self, key: RequestKey) -> None:
        if self.pending.pop(key, None) is None:
            return
        del self.since_ms[key]
        count = self.per_client.pop(key[0]) - 1
        if count:
            self.per_client[key[0]] = count

    def forget_executed(self, bank: Bank) -> None:
        """After a state transfer: what the new state executed is no longer pending."""
        for key in [k for k in self.pending if bank.is_executed(*k)]:
            self.remove(key)

    def oldest_since_ms(self) -> float | None:
        """When the oldest pending request arrived (None: nothing pending)."""
        if not self.pending:
            return None
        return self.since_ms[next(iter(self.pending))]

    # ---- forwarding --------------------------------------------------------------------------

    def should_forward(self, key: RequestKey, view: int, now_ms: float) -> bool:
        """Backup: forward this request to the leader now? (module docstring)"""
        last = self._forwarded.get(key)
        if last is not None and last[0] == view and now_ms - last[1] < self.config.timers.execution_timeout_ms:
            self.metrics["requests.forward_suppressed"] += 1
            return False
        if len(self._forwarded) >= FORWARDED_MAX:
            kept = {k: v for k, v in self._forwarded.items() if k in self.pending}
            self._forwarded = kept if len(kept) < FORWARDED_MAX // 2 else {}
        self._forwarded[key] = (view, now_ms)
        return True
