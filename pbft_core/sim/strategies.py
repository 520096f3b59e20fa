"""Targeted adversaries: Byzantine replicas and malicious clients that attack on purpose.

Theory of operation. The random-message adversary (`adversary`) finds what nobody thought of;
these strategies do what an attacker who read the code would do. Each one is a `Strategy`: a
name, a docstring saying which attack it models and which invariant or bound it tests, the
replicas it controls (at most f, with their real keys), the clients it controls, the seeded
faults it may be combined with, protocol knobs it needs, and an `install` step that puts the
attack into a `Simulation`.

Attacks come in two shapes, as in the rest of the simulator:

- **filters** (`ReplicaFilter`): a Byzantine replica is an honest `Replica` with a layer that
  transforms what it receives and what it sends (the `faults.ByzantineReplica` pattern). The
  honest code keeps the protocol state; the filter lies, withholds and re-signs.
- **injections** (`Arena.every`): messages built from scratch and put on the wire at a rate,
  signed with the attacker's own key (a replica's, or a malicious client's), as the
  random-message adversary does.

Byzantine replicas of a strategy never crash (crash-restart would rebuild them without their
filter); honest ones may, with the rest of the seeded faults the strategy allows. The run is
then judged like any seed: every invariant after every step, every honest client's request
completed within the liveness bound after the heal, no exception escaping protocol code; plus
the strategy's own `judge` (e.g. a client's view must not be pinned) and peak memory per replica
(`memory`).

Strategies reach into the honest replica they wrap only to read its state and, for a Byzantine
leader, to drive its own proposal path (`propose_through`); they never edit protocol code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from .. import merkle
from ..certificates import commit_message, prepare_message
from ..crypto import NodeCrypto
from ..messages import (
    MESSAGE_SIZE_MAX,
    STR_FIELD_MAX,
    Ask,
    CatchUp,
    Checkpoint,
    CheckpointProof,
    CommitCertificate,
    CommitShare,
    FastCommit,
    Fetch,
    Message,
    NewView,
    PrepareCertificate,
    PrepareShare,
    PrePrepare,
    PrePrepared,
    Proof,
    ProofKind,
    Reply,
    Request,
    Status,
    ViewChange,
    batch_digest,
    decode,
    encode,
    reply_root_payload,
)
from ..ready import Ready
from ..replica import Replica
from ..viewchange import select_proposals
from .plan import NETWORK_FAULTS, NODE_FAULTS, ConfigPlan

if TYPE_CHECKING:
    from ..runtime.simulator import Simulation
    from .plan import Plan

INFLATED_VIEW = 2**64 - 7  # a reply view no honest replica will reach (issue 11, finding 9)
OVERSIZED_ARGS = 10_000  # string arguments of a ~650 KB request (finding 4)
ZERO_SIG = bytes(64)


# ---- the arena: what an attacker holds ----------------------------------------------------


@dataclass
class Arena:
    """One run's attacker: the simulation, its own replicas' keys, its random stream."""

    sim: Simulation
    plan: Plan
    rng: random.Random
    byzantine: tuple[int, ...]
    malicious_clients: tuple[str, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)  # what a strategy remembers

    @property
    def config(self) -> Any:
        return self.sim.config

    @property
    def honest(self) -> list[int]:
        return [r for r in self.config.replica_ids if r not in self.byzantine]

    def crypto(self, replica: int) -> NodeCrypto:
        crypto = self.sim.nodes[replica].crypto
        assert crypto is not None
        return crypto

    def inner(self, replica: int) -> Replica:
        return self.sim.nodes[replica].inner

    def sign(self, replica: int, message: Message) -> Message:
        """`message` from `replica`, signed with its real key."""
        if hasattr(message, "replica"):
            message = replace(message, replica=replica)  # type: ignore[call-arg]
        return message.with_sig(self.crypto(replica).sign(message.signing_payload()))

    def send(self, replica: int, to: int | Iterable[int], message: Message) -> None:
        """Put a message from Byzantine `replica` on the wire (signed by the caller)."""
        data = encode(message)
        for target in [to] if isinstance(to, int) else to:
            self.sim.send_to_replica(f"n{replica}", target, data)

    def send_as_client(self, client: str, to: Iterable[int], request: Request) -> int:
        data = encode(request)
        for target in to:
            self.sim.send_to_replica(client, target, data)
        return len(data)

    def wrap(self, replica: int, make: Callable[[Replica], ReplicaFilter]) -> ReplicaFilter:
        node = self.sim.nodes[replica]
        assert not node.honest, f"n{replica} must be one of the plan's Byzantine replicas"
        wrapper = make(node.inner)
        node.replica = wrapper  # type: ignore[assignment]
        return wrapper

    def every(self, period_ms: float, action: Callable[[], None], *, start_ms: float = 0.0) -> None:
        """Call `action` about every `period_ms` of virtual time (exponential gaps), for good."""

        def fire(sim: Simulation) -> None:
            action()
            sim.at(sim.now + self.rng.expovariate(1.0 / period_ms), fire)

        self.sim.at(start_ms + self.rng.uniform(0.0, period_ms), fire)

    def count(self, name: str, amount: int = 1) -> None:
        self.sim.counters[name] = self.sim.counters.get(name, 0) + amount

    def highest_honest_view(self) -> int:
        return max(self.inner(r).view for r in self.honest)


def propose_through(inner: Replica, seq: int, batch: tuple[Request, ...]) -> None:
    """Have an honest leader pre-prepare `batch` at `seq` exactly as its `_propose` does for one
    batch (broadcast, accept, its own share deferred), so its state knows the proposal and it
    collects and certifies as usual. The one place that leans on the replica's internals."""
    digest = batch_digest(batch)
    ask = Ask.BOTH if inner.config.fast_path else Ask.SLOW
    inner._broadcast(inner._sign(PrePrepare(inner.view, seq, digest, batch, inner.id, ask)))
    inner._accept(inner._slot(seq), inner.view, digest, batch, ask)


class ReplicaFilter:
    """A Byzantine replica: an honest one whose inputs and outputs pass through `incoming` and
    `transform`. Same driver API as `Replica`; inspection sees the honest state inside."""

    def __init__(self, honest: Replica, arena: Arena) -> None:
        self.honest = honest
        self.arena = arena
        self.id = honest.id

    def __getattr__(self, name: str) -> object:
        return getattr(self.honest, name)

    def step(self, message: Message, now_ms: float) -> Ready:
        kept = self.incoming(message, now_ms)
        ready = self.honest.step(kept, now_ms) if kept is not None else self.honest.tick(now_ms)
        return self.outgoing(ready, now_ms)

    def tick(self, now_ms: float) -> Ready:
        return self.outgoing(self.honest.tick(now_ms), now_ms)

    def incoming(self, message: Message, now_ms: float) -> Message | None:
        return message

    def outgoing(self, ready: Ready, now_ms: float) -> Ready:
        ready.to_replicas = [(to, m) for to, message in ready.to_replicas for m in self.transform(to, message)]
        ready.to_clients = self.replies(ready.to_clients)
        return ready

    def transform(self, to: int, message: Message) -> list[Message]:
        return [message]

    def replies(self, replies: list[tuple[str, Reply]]) -> list[tuple[str, Reply]]:
        return replies

    def sign(self, message: Message) -> Message:
        return self.arena.sign(self.id, message)


# ---- the strategy interface -----------------------------------------------------------------


class Strategy:
    """An attack. Subclasses say what it models and what it tests in their docstring."""

    name: ClassVar[str] = ""
    tests: ClassVar[str] = ""  # the invariant or bound it tests, for the summary
    f_min: ClassVar[int] = 1
    # The seeded faults it may be combined with (network and honest crash-restart only: the
    # Byzantine replicas are the strategy's).
    faults: ClassVar[tuple[str, ...]] = (*NETWORK_FAULTS, *NODE_FAULTS)
    malicious_clients: ClassVar[tuple[str, ...]] = ()

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (1,)

    def configure(self, knobs: ConfigPlan) -> ConfigPlan:
        return knobs

    def install(self, arena: Arena) -> None:
        raise NotImplementedError

    def judge(self, arena: Arena) -> str | None:
        """A failure of this attack's own bound at the end of the run (None: held)."""
        return None


STRATEGIES: dict[str, type[Strategy]] = {}


def strategy(cls: type[Strategy]) -> type[Strategy]:
    assert cls.name and cls.__doc__ and cls.tests, f"{cls.__name__} needs a name, a docstring and what it tests"
    STRATEGIES[cls.name] = cls
    return cls


def get(name: str) -> Strategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown adversary {name!r}; choose from {', '.join(STRATEGIES)}") from None


# ---- forged view changes --------------------------------------------------------------------


def _empty_view_change(vc: ViewChange, reports: tuple[PrePrepared, ...] = ()) -> ViewChange:
    """What a lying replica reports: its checkpoint, nothing prepared, `reports` pre-prepared."""
    return ViewChange(vc.new_view, vc.checkpoint, (), reports, vc.replica)


class _ColludingLeader(ReplicaFilter):
    """View 1's Byzantine leader: commits its batches at its accomplice and one honest victim only.

    Certificates (FAST-COMMIT, PREPARE and COMMIT certificates) reach only the accomplice and
    the victim; the other honest replicas get the PRE-PREPAREs and nothing that would let them
    commit or catch up (no STATUS, no CATCH-UP). Its VIEW-CHANGEs report nothing but `reports`.
    """

    def __init__(self, honest: Replica, arena: Arena, insiders: set[int], reports: tuple[PrePrepared, ...]) -> None:
        super().__init__(honest, arena)
        self.insiders = insiders
        self.reports = reports

    def transform(self, to: int, message: Message) -> list[Message]:
        if isinstance(message, ViewChange):
            return [self.sign(_empty_view_change(message, self.reports))]
        if to in self.insiders:
            return [message]
        if isinstance(message, PrePrepare) and message.view == 1:
            return [message]
        return []


class _PerRecipientLeader(ReplicaFilter):
    """View 2's Byzantine leader: a NEW-VIEW per recipient, then it leads what they installed.

    Each outsider r gets V = {the two Byzantine VIEW-CHANGEs, one forged "from r" (not signed
    by r: all zeros), two genuine ones from other outsiders}. The batch the victim executed is
    then reported by only two members of V, one short of f+1, and drops out of O; in the
    unsigned variant the three Byzantine-made reports put a transfer nobody signed into O. It
    then acts as the collector of view 2 for the outsiders (pre-prepare, certificates, its own
    and its accomplice's shares), so they execute something else where the victim executed B.
    """

    def __init__(self, honest: Replica, arena: Arena, outsiders: list[int], reports: tuple[PrePrepared, ...]) -> None:
        super().__init__(honest, arena)
        self.outsiders = outsiders
        self.reports = reports
        self.genuine: dict[int, ViewChange] = {}
        self.sent: dict[int, float] = {}
        self.proposals: dict[int, tuple[bytes, tuple[Request, ...]]] = {}
        self.prepare_shares: dict[int, dict[int, bytes]] = {}
        self.commit_shares: dict[int, dict[int, bytes]] = {}
        self.certified: set[tuple[str, int]] = set()
        self.observed: dict[int, tuple[Request, ...]] = {}  # view 1's batches, by seq

    def incoming(self, message: Message, now_ms: float) -> Message | None:
        if isinstance(message, PrePrepare) and message.view == 1:
            self.observed.setdefault(message.seq, message.batch)
        elif isinstance(message, ViewChange) and message.new_view == 2 and message.replica in self.outsiders:
            self.genuine.setdefault(message.replica, message)
            self._new_views(message.replica, now_ms)
        elif isinstance(message, PrepareShare) and message.view == 2 and message.seq in self.proposals:
            self.prepare_shares.setdefault(message.seq, {})[message.replica] = message.share
            self._certify("prepare", message.seq)
        elif isinstance(message, CommitShare) and message.view == 2 and message.seq in self.proposals:
            self.commit_shares.setdefault(message.seq, {})[message.replica] = message.share
            self._certify("commit", message.seq)
        return message

    def transform(self, to: int, message: Message) -> list[Message]:
        if isinstance(message, ViewChange):
            return [self.sign(_empty_view_change(message, self.reports))]
        # Towards the honest replicas view 2 is scripted (below): the honest code's own NEW-VIEW,
        # proposals, certificates and help with catching up would give the game away.
        hidden = NewView | PrePrepare | PrepareCertificate | CommitCertificate | FastCommit | CatchUp | Status
        if to not in self.arena.byzantine and isinstance(message, hidden):
            return []
        return [message]

    def _forged_view_changes(self) -> tuple[ViewChange, ViewChange]:
        made = self.arena.state.get("byzantine view changes")
        if made is None:
            checkpoint = self.honest.stable
            made = tuple(
                self.arena.sign(r, ViewChange(2, checkpoint, (), self.reports, r)) for r in self.arena.byzantine[:2]
            )
            self.arena.state["byzantine view changes"] = made
        return made  # type: ignore[return-value]

    def _new_views(self, asker: int, now_ms: float) -> None:
        if len(self.genuine) < 3:
            return
        # Everyone once as soon as it can be done, then again whenever an outsider re-sends
        # its VIEW-CHANGE (it has not installed one yet).
        targets = [asker] if self.sent else list(self.outsiders)
        for r in targets:
            if now_ms - self.sent.get(r, -1e9) < self.arena.config.timers.view_change_resend_ms / 2:
                continue
            others = [vc for s, vc in sorted(self.genuine.items()) if s != r][:2]
            forged = ViewChange(2, self.honest.stable, (), self.reports, r).with_sig(ZERO_SIG)
            view_changes = (*self._forged_view_changes(), forged, *others)
            proposals = select_proposals(self.arena.config, view_changes)
            self.arena.send(self.id, r, self.sign(NewView(2, view_changes, proposals, self.id)))
            self.arena.count("forged-viewchange.new-views")
            self.sent[r] = now_ms
            if not self.proposals:
                self._lead(proposals)

    def _lead(self, proposals: tuple[Any, ...]) -> None:
        if proposals:
            for p in proposals:
                self.proposals[p.seq] = (batch_digest(p.batch), p.batch)
            return
        # O is empty: propose, at seq 1, a batch other than the one the victim executed there.
        victim_batch = self.observed.get(1, ())
        candidates = [b for s, b in sorted(self.observed.items()) if s > 1 and b != victim_batch]
        if not candidates:
            keys = {r.key for r in victim_batch}
            spare = tuple(r for r in self.honest.pending.values() if r.key not in keys)[:1]
            candidates = [spare] if spare else []
        if not candidates:
            return
        batch = candidates[0]
        digest = batch_digest(batch)
        self.proposals[1] = (digest, batch)
        pre_prepare = self.sign(PrePrepare(2, 1, digest, batch, self.id, Ask.SLOW))  # 2f+1 shares to forge with
        # Links need not be FIFO: a PRE-PREPARE that overtakes the NEW-VIEW is dropped as
        # "wrong view", so it goes again a few times (a duplicate is ignored).
        for delay_ms in (0.0, 20.0, 80.0, 250.0, 600.0):
            self.arena.sim.at(self.arena.sim.now + delay_ms, lambda _s: self.arena.send(self.id, self.outsiders, pre_prepare))

    def _certify(self, phase: str, seq: int) -> None:
        if (phase, seq) in self.certified:
            return
        digest = self.proposals[seq][0]
        message = (prepare_message if phase == "prepare" else commit_message)(2, seq, digest)
        shares = dict((self.prepare_shares if phase == "prepare" else self.commit_shares)[seq])
        for r in self.arena.byzantine[:2]:
            shares[r] = self.arena.crypto(r).sign_share(message)
        if len(shares) < self.arena.config.quorum:
            return
        certificate, _bad = self.arena.crypto(self.id).combine(shares, message)
        if certificate is None:
            return
        self.certified.add((phase, seq))
        kind = PrepareCertificate if phase == "prepare" else CommitCertificate
        self.arena.send(self.id, self.outsiders, self.sign(kind(2, seq, digest, certificate, self.id)))
        self.arena.count(f"forged-viewchange.{phase}-certificates")


@strategy
class ForgedViewChange(Strategy):
    """Forged VIEW-CHANGE "from" the recipient inside a per-recipient NEW-VIEW (finding 1).

    Byzantine n1 (leader of view 1) fast-commits its batches but lets only its accomplice n2 and
    one honest victim (n3) commit them; the network (asynchrony before GST) keeps the victim's
    own messages from the other honest replicas until the heal. The others suspect n1 and move
    to view 2, led by Byzantine n2, which sends each of them its own NEW-VIEW: two Byzantine
    VIEW-CHANGEs that report nothing, one forged as if from the recipient (its signature is
    zeros: a replica must check its "own" view change too) and two genuine ones. The victim's
    batch B at seq 1 then has two reporters, one short of f+1, and is erased; n2 leads view 2
    and gets another batch executed at seq 1.

    Tests ``agreement`` (the victim executed B at seq 1, the others execute something else).
    """

    name = "forged-viewchange"
    tests = "agreement (a fast-committed batch survives view change)"
    f_min = 2
    faults = ("duplicate", "delay", "reorder")
    victim = 3

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (1, 2)

    def configure(self, knobs: ConfigPlan) -> ConfigPlan:
        return replace(knobs, fast_path=True)

    def reports(self, arena: Arena) -> tuple[PrePrepared, ...]:
        return ()

    def install(self, arena: Arena) -> None:
        outsiders = [r for r in arena.honest if r != self.victim]
        for r in outsiders:
            arena.sim.blocked.add((f"n{self.victim}", f"n{r}"))  # healed at GST (`Simulation.heal`)
        reports = self.reports(arena)
        arena.wrap(1, lambda honest: _ColludingLeader(honest, arena, {2, self.victim}, reports))
        arena.wrap(2, lambda honest: _PerRecipientLeader(honest, arena, outsiders, reports))


@strategy
class ForgedViewChangeUnsignedO(ForgedViewChange):
    """The forged-viewchange attack whose O carries a transfer nobody signed (finding 1, variant).

    The two Byzantine VIEW-CHANGEs and the forged one "from" the recipient each report a
    pre-prepare, at seq 1 in view 1, of a transfer from A to J whose client signature is all
    zeros. Three reports are f+1, so `select_proposals` puts it into O, and a replica that does
    not validate O's requests as it validates a PRE-PREPARE's executes money moves A never
    signed.

    Tests ``authentic`` (honest replicas execute only client-signed requests) and ``agreement``.
    """

    name = "forged-viewchange-unsigned"
    tests = "authentic (O's requests are client-signed), agreement"

    def reports(self, arena: Arena) -> tuple[PrePrepared, ...]:
        theft = Request("A", 1_000_000, "transfer", ("A", "J", 1), False, ZERO_SIG)
        return (PrePrepared(1, 1, (theft,)),)


# ---- partial fast commit --------------------------------------------------------------------


class _PartialCommitter(ReplicaFilter):
    """Delivers each certificate it makes to a random proper subset of the honest replicas."""

    def __init__(self, honest: Replica, arena: Arena) -> None:
        super().__init__(honest, arena)
        self.lucky: dict[tuple[int, int], set[int]] = {}

    def transform(self, to: int, message: Message) -> list[Message]:
        if not isinstance(message, FastCommit | CommitCertificate | PrepareCertificate):
            return [message]
        if to in self.arena.byzantine:
            return [message]
        key = (message.view, message.seq)
        lucky = self.lucky.get(key)
        if lucky is None:
            honest = self.arena.honest
            lucky = self.lucky[key] = set(self.arena.rng.sample(honest, self.arena.rng.randint(1, len(honest) - 1)))
        return [message] if to in lucky else []


class _Forgetter(ReplicaFilter):
    """Reports nothing prepared or pre-prepared in its VIEW-CHANGEs (lies by omission)."""

    def transform(self, to: int, message: Message) -> list[Message]:
        if isinstance(message, ViewChange):
            return [self.sign(_empty_view_change(message))]
        return [message]


@strategy
class PartialFastCommit(Strategy):
    """FAST-COMMIT and commit certificates delivered to only some replicas.

    The leader of view 1 sends each FAST-COMMIT, PREPARE and COMMIT certificate to a random
    proper subset of the honest replicas, so some execute a batch that others only
    pre-prepared; with f = 2 a second Byzantine replica omits everything from its
    VIEW-CHANGEs. The next view must re-propose every batch that committed anywhere (SBFT's
    f+1-reports rule for the fast path).

    Tests ``agreement`` and ``certificate-agreement`` across view changes, and liveness.
    """

    name = "partial-fast-commit"
    tests = "agreement across view change (fast-path reports rule)"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (1, 2) if f >= 2 else (1,)

    def configure(self, knobs: ConfigPlan) -> ConfigPlan:
        return replace(knobs, fast_path=True)

    def install(self, arena: Arena) -> None:
        arena.wrap(1, lambda honest: _PartialCommitter(honest, arena))
        if 2 in arena.byzantine:
            arena.wrap(2, lambda honest: _Forgetter(honest, arena))


# ---- censorship -----------------------------------------------------------------------------


class _Censor(ReplicaFilter):
    """Never sees the censored client's requests; as leader keeps the log moving regardless.

    Besides ordering every other client's requests, it re-proposes an already executed request
    every `HEARTBEAT_MS`, so something executes all the time even when nobody else is busy.
    """

    HEARTBEAT_MS = 250.0

    def __init__(self, honest: Replica, arena: Arena, censored: str) -> None:
        super().__init__(honest, arena)
        self.censored = censored
        self.executed: Request | None = None
        self.last_beat_ms = 0.0

    def incoming(self, message: Message, now_ms: float) -> Message | None:
        if isinstance(message, Request) and message.client == self.censored:
            self.arena.count("censor.requests-ignored")
            return None
        if self.executed is None:
            batch = message.batch if isinstance(message, PrePrepare) else (message,)
            self.executed = next((r for r in batch if isinstance(r, Request) and not r.read_only), None)
        return message

    def outgoing(self, ready: Ready, now_ms: float) -> Ready:
        inner = self.honest
        if (
            inner.is_leader
            and inner.view_active
            and self.executed is not None
            and inner.bank.is_executed(self.executed.client, self.executed.timestamp)
            and now_ms - self.last_beat_ms >= self.HEARTBEAT_MS
            and inner.next_seq <= inner.high_watermark
            and inner.next_seq - 1 - inner.last_executed < inner.config.inflight_max
        ):
            self.last_beat_ms = now_ms
            seq, inner.next_seq = inner.next_seq, inner.next_seq + 1
            propose_through(inner, seq, (self.executed,))
            self.arena.count("censor.heartbeats")
            extra = inner._flush()
            ready.to_replicas.extend(extra.to_replicas)
            ready.events.extend(extra.events)
            ready.wake_at_ms = now_ms
        elif inner.is_leader and inner.view_active and ready.wake_at_ms is None:
            ready.wake_at_ms = now_ms + self.HEARTBEAT_MS
        elif inner.is_leader and inner.view_active:
            ready.wake_at_ms = min(ready.wake_at_ms, now_ms + self.HEARTBEAT_MS)
        return super().outgoing(ready, now_ms)


@strategy
class Censor(Strategy):
    """A Byzantine leader orders everyone's requests but one client's, forever (finding 7).

    The leaders of the first f views drop every request of one honest client (the busiest of
    the plan), keep ordering the others, and re-propose an executed request every 250 ms so
    something always executes. Backups must suspect a leader that leaves one request pending
    however much else it orders (the execution deadline belongs to the oldest pending request).

    Tests the liveness bound: the censored client's requests complete within the bound after
    the heal.
    """

    name = "censor"
    tests = "liveness of a censored client"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return tuple(range(1, f + 1))

    def install(self, arena: Arena) -> None:
        counts: dict[str, int] = {}
        for spec in arena.plan.requests:
            if not spec.read_only:
                counts[spec.client] = counts.get(spec.client, 0) + 1
        censored = max(sorted(counts), key=lambda c: counts[c]) if counts else "A"
        arena.state["censored"] = censored
        for r in arena.byzantine:
            arena.wrap(r, lambda honest: _Censor(honest, arena, censored))


# ---- oversized requests ---------------------------------------------------------------------


@strategy
class OversizedRequest(Strategy):
    """A malicious client sends ~650 KB requests (finding 4).

    Client J (left out of the honest workload) sends, about five times a second, transfer
    requests with 10,000 64-character arguments (~650 KB each, validly signed) and, in between,
    the largest request the codec admits. A leader that batches sixteen of the big ones builds
    a PRE-PREPARE larger than the 8 MiB frame no backup can decode, and so does every next
    leader. Requests need an admission size limit and proposals a byte budget.

    Tests liveness (the honest clients' requests complete) and peak memory.
    """

    name = "oversized-request"
    tests = "liveness and memory under huge client requests"
    malicious_clients = ("J",)

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return ()

    def install(self, arena: Arena) -> None:
        client = self.malicious_clients[0]
        crypto = arena.sim.client_crypto(client)
        huge = tuple("x" * (STR_FIELD_MAX - 6) + f"{i:06d}" for i in range(OVERSIZED_ARGS))
        largest = tuple("y" * STR_FIELD_MAX for _ in range(8))
        timestamp = [0]

        def send() -> None:
            timestamp[0] += 1
            args = huge if timestamp[0] % 2 else largest
            request = Request(client, timestamp[0], "transfer", args, False)
            request = request.with_sig(crypto.sign(request.signing_payload()))
            leader = arena.config.leader_of(arena.highest_honest_view())
            targets = list(arena.config.replica_ids) if arena.rng.random() < 0.3 else [leader]
            size = arena.send_as_client(client, targets, request)
            arena.count("oversized-request.requests")
            arena.count("oversized-request.bytes", size * len(targets))

        arena.every(200.0, send)


# ---- replayed own shares --------------------------------------------------------------------


class _Mirror(ReplicaFilter):
    """Collects every share and certificate honest replicas send it, and sends them back."""

    def __init__(self, honest: Replica, arena: Arena) -> None:
        super().__init__(honest, arena)
        self.shares: dict[int, list[tuple[int, bytes, bytes]]] = {}  # replica -> (seq, digest, share)
        self.certificates: dict[int, list[bytes]] = {}  # replica -> certificates it sent

    def incoming(self, message: Message, now_ms: float) -> Message | None:
        sender = getattr(message, "replica", None)
        if isinstance(sender, int) and sender not in self.arena.byzantine:
            if isinstance(message, Checkpoint):
                _remember(self.shares.setdefault(sender, []), (message.seq, message.state_digest, message.share))
            elif isinstance(message, PrepareShare | CommitShare):
                _remember(self.shares.setdefault(sender, []), (message.seq, message.digest, message.share))
            for certificate in _certificates_in(message):
                _remember(self.certificates.setdefault(sender, []), certificate)
        return message

    def replay(self) -> None:
        arena, rng = self.arena, self.arena.rng
        target = rng.choice(arena.honest)
        shares, certificates = self.shares.get(target), self.certificates.get(target)
        inner = arena.inner(target)
        ahead = inner.last_executed + arena.config.checkpoint_interval
        ahead -= ahead % arena.config.checkpoint_interval
        messages: list[Message] = []
        if shares:
            seq, digest, share = rng.choice(shares)
            # Its own share where a certificate goes: a checkpoint certificate it must verify,
            # a committed entry, a fast-commit aggregate.
            proof = CheckpointProof(ahead, digest, share)
            messages.append(CatchUp(proof, b"", (), self.id))
            messages.append(CatchUp(None, b"", (Proof(inner.view, inner.last_executed + 1, (), ProofKind.COMMIT, share),), self.id))
            messages.append(FastCommit(inner.view, seq, digest, share, self.id))
            messages.append(ViewChange(inner.view + 1, proof, (), (), self.id))
            # And under our own index, where a share goes.
            messages.append(Checkpoint(ahead, digest, share, self.id))
        if certificates:
            certificate = rng.choice(certificates)
            digest = bytes(32)
            # Its own certificate where a share goes.
            messages.append(Checkpoint(ahead, digest, certificate, self.id))
            messages.append(PrepareShare(inner.view, inner.last_executed + 1, digest, certificate, certificate, self.id))
            messages.append(CommitShare(inner.view, inner.last_executed + 1, digest, certificate, self.id))
        if not shares and not certificates:
            # Ask for a CATCH-UP: it carries the target's checkpoint certificate.
            messages.append(Fetch(0, self.id))
        for message in messages:
            self.arena.send(self.id, target, self.sign(message))
        self.arena.count("replayed-own-shares.messages", len(messages))


def _remember(items: list[Any], item: Any) -> None:
    if item not in items:
        items.append(item)
        del items[:-16]  # a few recent ones are all it needs


def _certificates_in(message: Message) -> list[bytes]:
    found: list[bytes] = []
    if isinstance(message, PrepareCertificate | CommitCertificate):
        found.append(message.certificate)
    elif isinstance(message, FastCommit):
        found.append(message.aggregate)
    elif isinstance(message, CatchUp):
        if message.checkpoint is not None:
            found.append(message.checkpoint.certificate)
        found.extend(p.certificate for p in message.entries[:4])
    elif isinstance(message, ViewChange):
        if message.checkpoint is not None:
            found.append(message.checkpoint.certificate)
        found.extend(p.certificate for p in message.prepared[:4])
    return found


@strategy
class ReplayedOwnShares(Strategy):
    """A replica's own checkpoint shares and certificates sent back in the wrong fields (finding 2).

    A Byzantine replica remembers the threshold shares and certificates each honest replica
    sends it (checkpoint shares are broadcast, certificates travel in catch-ups and view
    changes, and it fetches catch-ups to get them) and sends each back to its author: a share
    where a certificate goes (checkpoint certificate, committed entry, fast-commit aggregate,
    view change) and a certificate where a share goes (checkpoint, prepare and commit shares).
    With real cryptography a cache of the replica's own points that mixes the two kinds turned
    these bytes into a `TypeError` or `AttributeError` escaping `step`.

    Tests that no exception escapes protocol code (run with ``--crypto real``; `SimCrypto` has
    no such cache) and safety.
    """

    name = "replayed-own-shares"
    tests = "no exception escapes step (run with --crypto real)"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (n,)

    def install(self, arena: Arena) -> None:
        mirror = arena.wrap(arena.byzantine[0], lambda honest: _Mirror(honest, arena))
        assert isinstance(mirror, _Mirror)
        arena.every(50.0, mirror.replay)


# ---- view inflation -------------------------------------------------------------------------


class _Inflator(ReplicaFilter):
    """Replies to clients in view `INFLATED_VIEW` (re-signed: one Merkle root per batch)."""

    def replies(self, replies: list[tuple[str, Reply]]) -> list[tuple[str, Reply]]:
        if not replies:
            return replies
        inflated = [replace(reply, view=INFLATED_VIEW, index=0, path=(), sig=b"") for _to, reply in replies]
        root, paths = merkle.build([r.leaf() for r in inflated])
        sig = self.arena.crypto(self.id).sign(reply_root_payload(root))
        self.arena.count("view-inflation.replies", len(inflated))
        return [
            (to, replace(reply, index=i, path=paths[i], sig=sig))
            for i, ((to, _), reply) in enumerate(zip(replies, inflated, strict=True))
        ]


@strategy
class ViewInflation(Strategy):
    """Byzantine replies carry view 2^64−7 to pin the client's view (finding 9).

    f Byzantine replicas (not leaders of the first views) order and execute honestly, but every
    reply they send a client names view 2^64−7. A client that adopts the highest view among the
    f+1 matching replies it accepts is pinned there: every later request goes first to whoever
    "leads" that view. A client must adopt a view at least f+1 replicas vouch for.

    Tests a client-side bound, checked at the end of the run: no honest client believes in a
    view beyond every honest replica's.
    """

    name = "view-inflation"
    tests = "client view never beyond every honest replica's"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return tuple(range(n - f + 1, n + 1))

    def install(self, arena: Arena) -> None:
        for r in arena.byzantine:
            arena.wrap(r, lambda honest: _Inflator(honest, arena))

    def judge(self, arena: Arena) -> str | None:
        highest = max(arena.inner(r).view for r in arena.honest)
        pinned = sorted(
            (name, client.view) for name, client in arena.sim.clients.items()
            if name not in arena.malicious_clients and client.view > highest
        )
        if pinned:
            name, view = pinned[0]
            return f"client view pinned: {len(pinned)} clients (first {name}) believe in view {view}, highest honest view is {highest}"
        return None


# ---- FETCH flood ----------------------------------------------------------------------------


class _Flooder(ReplicaFilter):
    """Drops the CATCH-UPs its flood provokes (it only wants the replicas to pay for them)."""

    def incoming(self, message: Message, now_ms: float) -> Message | None:
        if isinstance(message, CatchUp):
            self.arena.count("fetch-flood.catch-ups")
            self.arena.count("fetch-flood.catch-up-bytes", len(encode(message)))
            return None
        return message


@strategy
class FetchFlood(Strategy):
    """A Byzantine replica floods FETCH(after_seq=0) at honest replicas (finding 10).

    About 200 FETCHes a second, each 70 bytes, each asking for everything from the start, so
    every answer is the largest CATCH-UP a replica sends (a snapshot and up to 128 committed
    entries). The summary counts the answers and their bytes (the amplification); answers need
    a rate limit or a cache.

    Tests liveness and peak memory while the flood goes on.
    """

    name = "fetch-flood"
    tests = "liveness and memory under FETCH amplification"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (n,)

    def install(self, arena: Arena) -> None:
        me = arena.byzantine[0]
        arena.wrap(me, lambda honest: _Flooder(honest, arena))
        fetch = arena.sign(me, Fetch(0, me))

        def flood() -> None:
            arena.send(me, arena.rng.choice(arena.honest), fetch)
            arena.count("fetch-flood.fetches")

        arena.every(5.0, flood)


# ---- bloated view changes and windows -------------------------------------------------------


def bloated_reports(new_view: int, low: int, window: int, *, budget: int = MESSAGE_SIZE_MAX - 64 * 1024) -> tuple[PrePrepared, ...]:
    """Pre-prepare reports that a VIEW-CHANGE may carry (views and seqs in range, requests
    unchecked), filling about `budget` bytes with copies of the largest request the codec takes."""
    request = Request("A", 1, "transfer", tuple("z" * STR_FIELD_MAX for _ in range(8)), False, ZERO_SIG)
    try:
        decode(encode(request))
    except ValueError:
        request = Request("A", 1, "transfer", ("A", "B", 1), False, ZERO_SIG)  # a stricter codec
    size = len(encode(request)) + 1
    total = max(1, budget // size)
    per_report = min(10_000, total)
    reports = []
    seq = low + 1
    while total > 0 and seq <= low + window:
        count = min(per_report, total)
        reports.append(PrePrepared(new_view - 1, seq, (request,) * count))
        total -= count
        seq += 1
    return tuple(reports)


class _Bloater(ReplicaFilter):
    """Pre-sends a VIEW-CHANGE just under the frame limit for each of the next views; as leader
    of view 1 it goes silent (proposes nothing) once it has, to force the view changes."""

    AHEAD = 3

    def __init__(self, honest: Replica, arena: Arena) -> None:
        super().__init__(honest, arena)
        self.sent: set[int] = set()

    def transform(self, to: int, message: Message) -> list[Message]:
        if isinstance(message, PrePrepare) and self.sent:
            return []
        return [message]

    def outgoing(self, ready: Ready, now_ms: float) -> Ready:
        ready = super().outgoing(ready, now_ms)
        inner = self.honest
        for view in range(inner.view + 1, inner.view + 1 + self.AHEAD):
            if view in self.sent:
                continue
            self.sent.add(view)
            reports = bloated_reports(view, inner.stable_seq, inner.config.log_window)
            vc = self.sign(ViewChange(view, inner.stable, (), reports, self.id))
            data = encode(vc)
            for to in self.arena.honest:
                self.arena.sim.send_to_replica(f"n{self.id}", to, data)
            self.arena.count("bloated-viewchange.view-changes")
            self.arena.count("bloated-viewchange.bytes", len(data))
        return ready


@strategy
class BloatedViewChange(Strategy):
    """A Byzantine replica pre-sends a huge VIEW-CHANGE for each coming view (finding 4).

    n1 sends, for each of the next three views, a valid VIEW-CHANGE just under the 8 MiB frame
    limit (pre-prepare reports stuffed with copies of the largest request the codec admits:
    reports are not checked request by request), and as leader of view 1 stops proposing so
    that views do change. Each new leader that puts the bloated one among its 2f+1 builds a
    NEW-VIEW no replica can decode; every replica holds the bloated messages meanwhile.

    Tests liveness (views must complete) and peak memory per replica.
    """

    name = "bloated-viewchange"
    tests = "liveness and memory under frame-sized view changes"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (1,)

    def install(self, arena: Arena) -> None:
        arena.wrap(1, lambda honest: _Bloater(honest, arena))


class _WindowFiller(ReplicaFilter):
    """As leader of view 1: one genuine request, copied into every batch of the whole window,
    proposed at once and never certified."""

    def __init__(self, honest: Replica, arena: Arena) -> None:
        super().__init__(honest, arena)
        self.filled = False

    def transform(self, to: int, message: Message) -> list[Message]:
        if isinstance(message, FastCommit | PrepareCertificate | CommitCertificate):
            return []
        return [message]

    def outgoing(self, ready: Ready, now_ms: float) -> Ready:
        inner = self.honest
        if not self.filled and inner.is_leader and inner.view == 1 and inner.view_active:
            genuine = next((m.batch[0] for _to, m in ready.to_replicas if isinstance(m, PrePrepare) and m.batch), None)
            if genuine is not None:
                self.filled = True
                batch = (genuine,) * inner.config.batch_size_max
                while inner.next_seq <= inner.high_watermark:
                    seq, inner.next_seq = inner.next_seq, inner.next_seq + 1
                    propose_through(inner, seq, batch)
                extra = inner._flush()
                ready.to_replicas.extend(extra.to_replicas)
                ready.events.extend(extra.events)
                ready.wake_at_ms = now_ms
                self.arena.count("bloated-window.pre-prepares", len(extra.to_replicas))
        return super().outgoing(ready, now_ms)


@strategy
class BloatedWindow(Strategy):
    """A Byzantine leader fills its whole sequence window with copies of one request (finding 4).

    n1, leading view 1 with the default knobs (a 400-seq window, batches of 64), takes the first
    genuine request it proposes and pre-prepares 64 copies of it at every sequence number up to
    its high watermark, then certifies none. Every honest VIEW-CHANGE reports all of them
    (~2 MB) and the NEW-VIEW that carries 2f+1 of them and re-proposes them all exceeds the
    frame limit: view changes fail one after another unless view changes and new views budget
    their bytes.

    Tests liveness and peak memory per replica.
    """

    name = "bloated-window"
    tests = "liveness and memory when the whole window is stuffed"

    def byzantine(self, f: int, n: int) -> tuple[int, ...]:
        return (1,)

    def configure(self, knobs: ConfigPlan) -> ConfigPlan:
        return ConfigPlan()

    def install(self, arena: Arena) -> None:
        arena.wrap(1, lambda honest: _WindowFiller(honest, arena))


__all__ = [
    "STRATEGIES",
    "Arena",
    "ReplicaFilter",
    "Strategy",
    "bloated_reports",
    "get",
    "propose_through",
]
