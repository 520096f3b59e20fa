"""Cluster configuration: sizes, named quorums and timers.

Every threshold the protocol uses is a named property here, derived from f, so no module ever
writes a bare ``5``. Times are milliseconds (``_ms``) of whatever clock the shell feeds the
replica: wall time in the pipes and TCP shells, virtual time in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from . import multisig
from .messages import CERT_SIZE, MESSAGE_SIZE_MAX

# What one entry of a VIEW-CHANGE costs on top of its batch and its certificate: a prepared
# proof's view, seq and kind, or a pre-prepare report's view and seq, with their msgpack headers
# (the certificate's own header included).
VIEW_CHANGE_ENTRY_BYTES = 32
# A VIEW-CHANGE's envelope but for its stable checkpoint's certificate: the checkpoint's seq
# and digest, sender, signature, headers.
VIEW_CHANGE_ENVELOPE_BYTES = 416
# The smallest batch budget (`batch_bytes_max`) a cluster may run with: a few requests. With
# ``ed25519`` certificates at large n a default window would leave less; it is shrunk instead.
BATCH_BYTES_MIN = 512
# What a certificate can be (`certificates`); "bls" is the default.
BLS, ED25519 = "bls", "ed25519"
CERTIFICATE_SCHEMES = (BLS, ED25519)

ACCOUNTS: tuple[str, ...] = tuple("ABCDEFGHIJ")
INITIAL_BALANCE = 10


def replica_name(replica_id: int) -> str:
    return f"n{replica_id}"


@dataclass(frozen=True)
class Timers:
    # A backup that holds an accepted request unexecuted for this long suspects the leader.
    execution_timeout_ms: float = 600.0
    # A view change that does not complete in this long moves to the next view; doubles each time.
    view_change_timeout_ms: float = 600.0
    # A replica changing views re-sends its VIEW-CHANGE this often until a NEW-VIEW arrives.
    view_change_resend_ms: float = 300.0
    # The collector waits at most this long for all n prepare shares before falling back to 2f+1
    # (the adaptive timer is clamped to [fast_path_timeout_min_ms, fast_path_timeout_max_ms]).
    # Not below 20 ms: under load, seven processes on two cores answer up to tens of ms apart
    # from scheduling alone, and giving up early costs a whole extra certificate round. Waiting
    # costs nothing when everyone answers, and a leader whose recent instances mostly missed
    # the timer stops waiting (see `replica.py`), so a silent replica does not cost it per batch.
    fast_path_timeout_min_ms: float = 20.0
    fast_path_timeout_max_ms: float = 50.0
    # A backup that voted with its fast share alone sends its 2f+1 share this long after, if
    # neither a certificate nor the collector's SLOW-PATH came: a SLOW-PATH lost on the way.
    prepare_share_timeout_ms: float = 300.0
    # A client that has no f+1 matching replies after this long broadcasts to every replica.
    client_timeout_ms: float = 400.0
    # A read-only request without 2f+1 matching replies after this long is re-sent as ordered.
    read_timeout_ms: float = 300.0
    # A request that reaches the leader is proposed this long after it arrived at the latest.
    # 0 means "once the shell has handed over every message it already has": requests that
    # queued up while the leader was busy go out as one batch (adaptive batching).
    batch_wait_ms: float = 0.0
    # A partial batch waits at most this long for the instance in flight before it goes out
    # anyway (Nagle's rule, `Replica._propose`): batches grow under load, and a slow leader's
    # queue still pipelines.
    batch_hold_ms: float = 20.0
    # Replicas gossip their progress this often, so one left in the dark learns it is behind.
    status_interval_ms: float = 150.0
    # A delaying ("time") Byzantine leader holds each message for this fraction of the
    # execution timeout: long enough to matter, short enough that no timer fires.
    time_attack_fraction: float = 0.25


@dataclass(frozen=True)
class ClusterConfig:
    # Derived sizes are cached per instance (`cached_property`): the batch budget is consulted
    # for every request and took a tenth of the leader's CPU when recomputed each time.
    f: int = 2
    checkpoint_interval: int = 10
    # Sequence numbers a leader may run ahead of the last stable checkpoint (high watermark);
    # 0 means 4 × checkpoint_interval (`window`). It bounds what a VIEW-CHANGE can carry, so
    # together with the frame limit it sets the byte budget of a batch (`batch_bytes_max`).
    log_window: int = 0
    batch_size_max: int = 64
    # Consensus instances the leader keeps in flight before it waits (pipelining depth).
    inflight_max: int = 8
    fast_path: bool = True
    # The replicated state every replica starts from: "bank" (A–J, 10 each) or "smallbank:N".
    state: str = "bank"
    timers: Timers = field(default_factory=Timers)
    # What a certificate is: "bls", one 96-byte threshold signature whatever n (`thresh_sig`),
    # or "ed25519", the collected identity signatures of its 2f+1 (or n) signers (`multisig`).
    certificates: str = "bls"

    def __post_init__(self) -> None:
        if self.certificates not in CERTIFICATE_SCHEMES:
            raise ValueError(f"certificates must be one of {', '.join(CERTIFICATE_SCHEMES)}, not {self.certificates!r}")
        if self.certificates == "ed25519":
            # BLS clusters keep whatever budgets they had; these checks are this scheme's.
            if self.n > multisig.SIGNERS_MAX:
                raise ValueError(f"ed25519 certificates serve at most n = {multisig.SIGNERS_MAX} replicas (f = {self.f} is n = {self.n})")
            if self.window < self.checkpoint_interval or self.batch_bytes_max < BATCH_BYTES_MIN:
                raise ValueError(
                    f"with ed25519 certificates at n = {self.n}, a NEW-VIEW of a {self.window}-instance window "
                    "does not fit one frame: lower the checkpoint interval or the log window, or use bls"
                )

    @cached_property
    def n(self) -> int:
        return 3 * self.f + 1

    @cached_property
    def quorum(self) -> int:
        """Certificates (prepare, commit, checkpoint, view change): any two intersect in an honest replica."""
        return 2 * self.f + 1

    @cached_property
    def fast_quorum(self) -> int:
        """The fast path needs every replica's share."""
        return self.n

    @cached_property
    def reply_quorum(self) -> int:
        """Matching replies a client needs for an ordered request: one is from an honest replica."""
        return self.f + 1

    @cached_property
    def read_quorum(self) -> int:
        """Matching replies for an unordered read: intersects every commit quorum in an honest replica."""
        return 2 * self.f + 1

    @cached_property
    def join_quorum(self) -> int:
        """View-change messages for a higher view that make a replica join it: one is honest."""
        return self.f + 1

    @cached_property
    def window(self) -> int:
        """The high watermark's distance from the stable checkpoint (see `log_window`). The
        default, 4 × checkpoint_interval, is shrunk (ed25519 at large n only) to what a
        NEW-VIEW frame can carry with batches of `BATCH_BYTES_MIN`."""
        if self.log_window:
            return self.log_window
        default = 4 * self.checkpoint_interval
        if self.certificates == "bls":
            return default
        per_instance = 2 * (BATCH_BYTES_MIN + VIEW_CHANGE_ENTRY_BYTES) + self.certificate_bytes_max
        return max(1, min(default, (self.view_change_bytes_max - self._view_change_envelope_bytes) // per_instance))

    @cached_property
    def certificate_bytes(self) -> int:
        """A prepare, commit or checkpoint certificate's encoded size."""
        return CERT_SIZE if self.certificates == "bls" else multisig.certificate_size(self.quorum)

    @cached_property
    def fast_certificate_bytes(self) -> int:
        """A fast-path (n-of-n) certificate's encoded size."""
        return CERT_SIZE if self.certificates == "bls" else multisig.certificate_size(self.n)

    @cached_property
    def certificate_bytes_max(self) -> int:
        return max(self.certificate_bytes, self.fast_certificate_bytes)

    @cached_property
    def _view_change_envelope_bytes(self) -> int:
        return VIEW_CHANGE_ENVELOPE_BYTES + self.certificate_bytes

    @cached_property
    def view_change_bytes_max(self) -> int:
        """A NEW-VIEW carries 2f+1 VIEW-CHANGEs and an O no larger than one of them, and must
        fit one frame; a larger VIEW-CHANGE is refused."""
        return MESSAGE_SIZE_MAX // (self.quorum + 2)

    @cached_property
    def batch_bytes_max(self) -> int:
        """The encoded size of a batch a leader may propose. An honest VIEW-CHANGE reports up
        to two batches per sequence number in the window (a prepared proof, with the largest
        certificate of the cluster's scheme, and a pre-prepare report), and must stay within
        `view_change_bytes_max` whatever a Byzantine leader got it to accept."""
        per_instance = (self.view_change_bytes_max - self._view_change_envelope_bytes) // self.window
        return (per_instance - self.certificate_bytes_max - 2 * VIEW_CHANGE_ENTRY_BYTES) // 2

    @cached_property
    def replica_ids(self) -> range:
        return range(1, self.n + 1)

    def leader_of(self, view: int) -> int:
        return (view - 1) % self.n + 1

    def with_changes(self, **changes: object) -> ClusterConfig:
        return replace(self, **changes)  # type: ignore[arg-type]
