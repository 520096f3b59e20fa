"""Safety invariants of the replicated bank, checked incrementally while a simulation runs.

Theory of operation. The checker never scans whole replicas; it consumes what the simulator
already hands out — every `Ready` a replica instance produces, every message delivered and every
result a client accepts — and keeps small indexes, so each check costs O(size of the input).
A violation raises `InvariantViolation` from inside the simulator's hook, which stops the run at
the exact step that broke the rule.

Only *honest* replicas are held to the rules (a Byzantine identity, including both instances of
a twin, may do anything). The invariants, by the name reports use:

- ``agreement``: no two honest replicas execute different batches at one sequence number.
- ``certificate-agreement``: every valid commit certificate (slow commit certificate or n-of-n
  fast aggregate, wherever it travels: alone, in a catch-up, a view change or a new view) for a
  sequence number names the same batch, and every valid checkpoint certificate for a sequence
  number the same state digest — which must be the state the agreed log produces there.
- ``status-agreement``: an honest replica reports a sequence number committed or executed
  (status C or E, as ``pbft inspect status`` shows it) only with the batch committed there.
- ``conservation``: the money in every honest replica's bank is the money it started with.
- ``non-negative``: no honest replica holds a negative balance.
- ``at-most-once``: no client request is executed twice (by one replica, or at two sequence
  numbers of the agreed log).
- ``replay``: each honest replica's state equals the serial replay of its executed log (from
  the initial state, or from the certified snapshot it installed), and each execution's results
  are the replay's results.
- ``client-validity``: a client accepts only a result that an honest replica produced: for an
  ordered request, the result an honest replica's execution returned; for an unordered read, a
  balance some honest replica held.
- ``authentic``: an honest replica executes only requests their clients signed (whatever path
  the request took: a PRE-PREPARE, a NEW-VIEW's O, a catch-up).
- ``linearizable``: the honest clients' history (invocations, completions, results) is
  linearizable against the sequential bank (`linearizability`); checked once per run, at the end,
  by `check_history`. Stronger than ``client-validity``: a stale read is a value some honest
  replica held, but not one a linearizable bank could return.

The reference log is built from honest executions (``agreement`` guarantees there is one) and
replayed in order on a reference bank, which yields the expected state digest at every
checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .bank import Bank
from .certificates import checkpoint_message, commit_message, prepare_message
from .client import Completion
from .crypto import NodeCrypto
from .linearizability import Operation, check
from .messages import (
    CatchUp,
    CheckpointProof,
    CommitCertificate,
    FastCommit,
    Message,
    NewView,
    Proof,
    ProofKind,
    Request,
    ViewChange,
    batch_digest,
    request_digest,
)
from .ready import Executed, Ready, SlotStatus, StateTransferred, StatusChanged

if TYPE_CHECKING:
    from .runtime.simulator import SimNode, Simulation

INVARIANTS = (
    "agreement",
    "certificate-agreement",
    "status-agreement",
    "conservation",
    "non-negative",
    "at-most-once",
    "replay",
    "client-validity",
    "authentic",
    "linearizable",
)

RequestKey = tuple[str, int]
REPORTED_DONE = (SlotStatus.COMMITTED, SlotStatus.EXECUTED)


class InvariantViolation(AssertionError):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass
class _Shadow:
    """One honest replica instance's log replayed on a bank of our own."""

    bank: Bank
    last_seq: int = 0
    executed: dict[RequestKey, int] = field(default_factory=dict)


class InvariantChecker:
    def __init__(self, initial_state: str, verifier: NodeCrypto, checkpoint_interval: int) -> None:
        self._initial_state = initial_state
        self._verifier = verifier
        self._interval = checkpoint_interval
        initial = Bank.initial(initial_state)
        self.total = initial.total
        self.checks = 0
        # The agreed log: seq -> (batch digest, batch), from honest executions.
        self.decided: dict[int, tuple[bytes, tuple[Request, ...]]] = {}
        self._reference = initial
        self._reference_seq = 0
        self._reference_digests: dict[int, bytes] = {0: initial.digest()}
        self._reference_executed: dict[RequestKey, int] = {}
        self._pending_digests: dict[int, list[tuple[str, bytes, str]]] = {}
        # Certificates seen valid: seq -> batch digest (commit) / state digest (checkpoint).
        self._committed: dict[int, bytes] = {}
        self._reported: dict[int, dict[bytes, str]] = {}  # statuses not yet backed by a commit
        self._checkpoints: dict[int, bytes] = {}
        self._bad_certificates: set[tuple[bytes, bytes]] = set()
        # What honest replicas produced, for client-validity.
        self._results: dict[RequestKey, set[object]] = {}
        self._values: dict[str, set[int]] = {a: {b} for a, b in initial.balances.items()}
        self._shadows: dict[str, _Shadow] = {}
        self._signed: set[bytes] = set()  # requests (by digest, signature included) verified

    @classmethod
    def attach(cls, sim: Simulation) -> InvariantChecker:
        """A checker watching `sim` from now on (attach before the first step)."""
        verifier = sim.client_crypto(next(iter(sim.clients)))
        checker = cls(sim.config.state, verifier, sim.config.checkpoint_interval)
        sim.ready_hooks.append(checker.on_ready)
        sim.deliver_hooks.append(checker.on_deliver)
        sim.completion_hooks.append(checker.on_completion)
        return checker

    @staticmethod
    def fail(invariant: str, detail: str) -> None:
        raise InvariantViolation(invariant, detail)

    # ---- replica outputs ---------------------------------------------------------------

    def on_ready(self, node: SimNode, ready: Ready) -> None:
        if not node.honest or not ready.events:
            return
        touched = False
        for event in ready.events:
            if isinstance(event, Executed):
                self._on_executed(node, event)
                touched = True
            elif isinstance(event, StateTransferred):
                self._on_state_transferred(node, event)
                touched = True
            elif isinstance(event, StatusChanged) and event.status in REPORTED_DONE:
                self._record_status(event.seq, event.digest, f"{node.address} reports status {event.status}")
        if touched:
            self.check_state(node)

    def _shadow(self, node: SimNode) -> _Shadow:
        shadow = self._shadows.get(node.address)
        if shadow is None:
            shadow = self._shadows[node.address] = _Shadow(Bank.initial(self._initial_state))
        return shadow

    def _on_executed(self, node: SimNode, event: Executed) -> None:
        self.checks += 1
        where = f"{node.address} seq {event.seq}"
        for request in event.batch:
            self._check_signed(request, where)
        digest = batch_digest(event.batch)
        decided = self.decided.get(event.seq)
        if decided is None:
            self.decided[event.seq] = (digest, event.batch)
            self._record_commit(event.seq, digest, f"{node.address} executed")
            self._advance_reference()
        elif decided[0] != digest:
            self.fail(
                "agreement",
                f"{where}: executed batch {_keys(event.batch)} but another honest replica executed "
                f"{_keys(decided[1])}",
            )
        shadow = self._shadow(node)
        if event.seq != shadow.last_seq + 1:
            self.fail("replay", f"{where}: executed after seq {shadow.last_seq} (a gap in its log)")
        if len(event.results) != len(event.batch):
            self.fail("replay", f"{where}: {len(event.results)} results for {len(event.batch)} requests")
        for request, result in zip(event.batch, event.results, strict=True):
            expected = shadow.bank.execute(request)
            if expected != result:
                self.fail(
                    "replay",
                    f"{where}: {request.client}/{request.timestamp} gave {result!r}, its replay gives {expected!r}",
                )
            if result is None:
                continue
            first = shadow.executed.setdefault(request.key, event.seq)
            if first != event.seq:
                self.fail("at-most-once", f"{where}: {request.key} already executed at seq {first}")
            self._results.setdefault(request.key, set()).add(result)
        shadow.last_seq = event.seq
        if event.state_digest:
            self._check_digest(event.seq, event.state_digest, f"{node.address} checkpoint state")

    def _check_signed(self, request: Request, where: str) -> None:
        key = request_digest(request)
        if key in self._signed:
            return
        if not self._verifier.verify_client(request.client, request.signing_payload(), request.sig):
            self.fail(
                "authentic",
                f"{where}: executed {request.client}/{request.timestamp} {request.op}{request.args}, "
                f"which {request.client} never signed",
            )
        self._signed.add(key)

    def _on_state_transferred(self, node: SimNode, event: StateTransferred) -> None:
        self.checks += 1
        if Bank.digest_of(event.snapshot) != event.state_digest:
            self.fail("replay", f"{node.address} installed a snapshot that does not match its certificate")
        self._record_checkpoint(event.proof, f"{node.address} state transfer")
        shadow = self._shadow(node)
        if event.seq <= shadow.last_seq:
            self.fail("replay", f"{node.address} transferred state back to seq {event.seq} from {shadow.last_seq}")
        shadow.bank = Bank.from_snapshot(event.snapshot)
        shadow.last_seq = event.seq
        shadow.executed.clear()  # what it executed before is inside the snapshot's reply table

    def check_state(self, node: SimNode) -> None:
        """The replica's bank: its log's replay, all the money, nothing negative."""
        if not node.honest:
            return
        bank = node.inner.bank
        shadow = self._shadows.get(node.address)
        if shadow is not None and (
            bank.balances != shadow.bank.balances or bank.last_reply != shadow.bank.last_reply
        ):
            self.fail("replay", f"{node.address}: state differs from the replay of its log up to seq {shadow.last_seq}")
        if bank.total != self.total:
            self.fail("conservation", f"{node.address} holds {bank.total}, the bank started with {self.total}")
        negative = sorted(a for a, b in bank.balances.items() if b < 0)
        if negative:
            self.fail("non-negative", f"{node.address}: negative balance on {', '.join(negative)}")
        for account, value in bank.balances.items():
            self._values[account].add(value)

    # ---- the reference log -------------------------------------------------------------

    def _advance_reference(self) -> None:
        while self._reference_seq + 1 in self.decided:
            seq = self._reference_seq + 1
            for request in self.decided[seq][1]:
                if self._reference.execute(request) is not None:
                    first = self._reference_executed.setdefault(request.key, seq)
                    if first != seq:
                        self.fail("at-most-once", f"{request.key} executed at seq {first} and at seq {seq}")
            self._reference_seq = seq
            if seq % self._interval == 0:
                digest = self._reference.digest()
                self._reference_digests[seq] = digest
                for state_digest, where, kind in self._pending_digests.pop(seq, []):
                    self._compare_digest(seq, state_digest, where, kind)

    def _check_digest(self, seq: int, state_digest: bytes, where: str, kind: str = "replay") -> None:
        if seq in self._reference_digests:
            self._compare_digest(seq, state_digest, where, kind)
        else:
            self._pending_digests.setdefault(seq, []).append((state_digest, where, kind))

    def _compare_digest(self, seq: int, state_digest: bytes, where: str, kind: str) -> None:
        if self._reference_digests[seq] != state_digest:
            self.fail(kind, f"{where} at seq {seq} differs from the state the agreed log produces there")

    # ---- certificates on the wire ------------------------------------------------------

    def on_deliver(self, source: str, target: str, message: Message) -> None:
        if isinstance(message, CommitCertificate):
            self._commit_certificate(message.seq, message.digest, commit_message(message.view, message.seq, message.digest), message.certificate, aggregate=False, where=f"{source}'s commit certificate")
        elif isinstance(message, FastCommit):
            self._commit_certificate(message.seq, message.digest, prepare_message(message.view, message.seq, message.digest), message.aggregate, aggregate=True, where=f"{source}'s fast commit")
        elif isinstance(message, CatchUp):
            if message.checkpoint is not None:
                self._checkpoint_certificate(message.checkpoint, f"{source}'s catch-up")
            self._proofs(message.entries, f"{source}'s catch-up")
        elif isinstance(message, ViewChange):
            self._view_change(message, f"{source}'s view change")
        elif isinstance(message, NewView):
            for vc in message.view_changes:
                self._view_change(vc, f"{source}'s new view")

    def _view_change(self, vc: ViewChange, where: str) -> None:
        if vc.checkpoint is not None:
            self._checkpoint_certificate(vc.checkpoint, where)
        self._proofs(vc.prepared, where)

    def _proofs(self, proofs: Iterable[Proof], where: str) -> None:
        for proof in proofs:
            if proof.kind not in ProofKind.COMMITTED:
                continue
            digest = batch_digest(proof.batch)
            make = commit_message if proof.kind == ProofKind.COMMIT else prepare_message
            self._commit_certificate(
                proof.seq, digest, make(proof.view, proof.seq, digest), proof.certificate,
                aggregate=proof.kind == ProofKind.FAST, where=where,
            )

    def _valid(self, message: bytes, certificate: bytes, *, aggregate: bool) -> bool:
        if (message, certificate) in self._bad_certificates:
            return False
        if aggregate:
            ok = self._verifier.verify_aggregate(message, certificate)
        else:
            ok = self._verifier.verify_certificate(message, certificate)
        if not ok:
            self._bad_certificates.add((message, certificate))
        return ok

    def _commit_certificate(
        self, seq: int, digest: bytes, message: bytes, certificate: bytes, *, aggregate: bool, where: str
    ) -> None:
        # Only a certificate that disagrees with what we know (or is the first) is verified.
        known = self._committed.get(seq)
        if known == digest or not self._valid(message, certificate, aggregate=aggregate):
            return
        self._record_commit(seq, digest, where)

    def _record_commit(self, seq: int, digest: bytes, where: str) -> None:
        known = self._committed.setdefault(seq, digest)
        if known != digest:
            self.fail(
                "certificate-agreement",
                f"seq {seq}: {where} commits batch {digest[:4].hex()} but batch {known[:4].hex()} committed there too",
            )
        for reported, reporter in self._reported.pop(seq, {}).items():
            if reported != digest:
                self._status_mismatch(seq, reported, reporter, digest)

    def _record_status(self, seq: int, digest: bytes, where: str) -> None:
        # A status is a claim, not evidence: compare it with what certificates and executions
        # say, now or when they arrive.
        known = self._committed.get(seq)
        if known is None:
            self._reported.setdefault(seq, {}).setdefault(digest, where)
        elif known != digest:
            self._status_mismatch(seq, digest, where, known)

    def _status_mismatch(self, seq: int, digest: bytes, where: str, committed: bytes) -> None:
        self.fail(
            "status-agreement",
            f"seq {seq}: {where} with batch {digest[:4].hex()}, but batch {committed[:4].hex()} committed there",
        )

    def _checkpoint_certificate(self, proof: CheckpointProof, where: str) -> None:
        known = self._checkpoints.get(proof.seq)
        if known == proof.state_digest:
            return
        if not self._valid(checkpoint_message(proof.seq, proof.state_digest), proof.certificate, aggregate=False):
            return
        self._record_checkpoint(proof, where)

    def _record_checkpoint(self, proof: CheckpointProof, where: str) -> None:
        known = self._checkpoints.setdefault(proof.seq, proof.state_digest)
        if known != proof.state_digest:
            self.fail("certificate-agreement", f"seq {proof.seq}: two checkpoint certificates with different states ({where})")
        self._check_digest(proof.seq, proof.state_digest, f"{where}: checkpoint certificate", "certificate-agreement")

    # ---- clients -----------------------------------------------------------------------

    def on_completion(self, client: str, completion: Completion) -> None:
        self.checks += 1
        request = completion.request
        if request.read_only:
            account = request.args[0] if request.args else None
            values = self._values.get(account) if isinstance(account, str) else None
            ok = values is not None and completion.result in values
            if not ok and values is None:
                ok = completion.result == "failed"  # an unknown account reads as failed everywhere
            if not ok:
                self.fail("client-validity", f"{client} read {completion.result!r} for {request.args}, a balance no honest replica held")
            return
        produced = self._results.get(request.key, set())
        if completion.result not in produced:
            self.fail(
                "client-validity",
                f"{client} accepted {completion.result!r} for request {request.timestamp} "
                f"{request.op}{request.args}; honest replicas produced {sorted(map(repr, produced))}",
            )

    def check_history(self, operations: Iterable[Operation]) -> None:
        """The honest clients' history must be linearizable (an inconclusive search passes)."""
        self.checks += 1
        verdict = check(operations, Bank.initial(self._initial_state).balances)
        if verdict.ok is False:
            self.fail("linearizable", f"{verdict.operations} operations: {verdict.detail}")

    def summary(self) -> dict[str, int]:
        return {
            "checks": self.checks,
            "decided": len(self.decided),
            "reference_seq": self._reference_seq,
        }


def _keys(batch: tuple[Request, ...]) -> str:
    return "[" + ", ".join(f"{r.client}/{r.timestamp}" for r in batch) + "]" if batch else "[no-op]"


__all__ = ["INVARIANTS", "InvariantChecker", "InvariantViolation"]
