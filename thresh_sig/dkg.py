"""Distributed key generation: a (t, n) group key that no single process ever knows.

The rule
--------
Every participant deals; the group key is the sum of the qualified dealers' keys, and each
participant's key share is the sum of the shares the qualified dealers gave it. A dealer
qualifies unless the broadcast record shows it misbehaved. This is joint-Feldman DKG
(Pedersen 1991; Gennaro, Jarecki, Krawczyk and Rabin, J. Cryptology 2007, "GJKR"), in the shape
drand and kyber run it: one broadcast *deal bundle* per dealer carrying its commitments and one
encrypted share per recipient, one *response bundle* per participant naming the dealers it
complains about, and one *justification bundle* per accused dealer revealing the disputed
shares.

Theory of operation
-------------------
This module is sans-I/O, like the replica: a :class:`DkgParticipant` takes messages in
(:meth:`~DkgParticipant.receive`) and hands messages out (the return values of the phase calls),
and never reads a clock or touches a socket. The driver owns time. The protocol is synchronous:
the driver ends each phase when its bound elapses (or earlier, when
:attr:`~DkgParticipant.phase_complete` says every message the phase can bring has arrived,
drand's "fast sync"). Every message is a *broadcast*: the driver gives the bytes to every other
participant. Phases and what ends them:

1. **Dealing** (:meth:`~DkgParticipant.start`). The dealer ``D`` draws ``f_D`` of degree
   ``t−1`` and broadcasts the Feldman commitments ``C_{D,k} = a_{D,k}·G1`` and, for every
   recipient ``j``, ``f_D(j)`` encrypted to ``j`` (below). On receipt, ``j`` decrypts its share
   and checks ``f_D(j)·G1 == Σ_k j^k·C_{D,k}``.
2. **Complaints** (:meth:`~DkgParticipant.end_of_dealing`). A dealer whose bundle did not arrive
   (silent, or undecodable: it is the same thing) is disqualified. Each participant broadcasts the
   dealers whose share to it did not decrypt or did not match the commitments.
3. **Justifications** (:meth:`~DkgParticipant.end_of_complaints`). A dealer with more than
   ``t−1`` complainers is disqualified (GJKR: an honest dealer is accused only by the ≤ t−1
   corrupt participants, and answering ``t`` complaints would publish its secret). A dealer with
   1..t−1 complainers broadcasts the disputed shares in the clear.
4. **Result** (:meth:`~DkgParticipant.end_of_justifications`). An accused dealer that did not
   answer, or revealed a share that does not match its commitments, is disqualified. A complainer
   takes the revealed share as its own. ``QUAL`` is everyone not disqualified;
   ``C_k = Σ_{D∈QUAL} C_{D,k}`` and ``s_i = Σ_{D∈QUAL} f_D(i)``.

Every disqualification rule reads only the broadcast record (who sent which bundle, which
complaints, which revealed shares), never a participant's private view, so every honest
participant computes the same ``QUAL`` and hence the same group key; and an honest participant
only ever adds shares that matched the commitments (checked on receipt, or revealed and checked
in public), so its final share always matches the group key. Honest dealers are never
disqualified, so ``QUAL`` contains every honest participant and the secret is uniform as long as
one of them is.

The result is an ordinary :class:`~thresh_sig.GroupKey` and :class:`~thresh_sig.KeyShare` (the
same bytes as :func:`~thresh_sig.deal` would make for the polynomial ``Σ_{D∈QUAL} f_D``), so
signing, combining and verification work unchanged.

What the driver must provide
----------------------------
* **Authenticated channels**: ``receive(sender, data)`` is told who sent the bytes; a message
  whose sender field differs is refused.
* **Broadcast**: every participant receives the *same* message from a given sender in a phase
  (one router forwarding one copy to all, as ``pbft keygen --dkg`` does, or an echo broadcast).
  A second, different message of the same kind from one sender is ignored and counted in
  :attr:`~DkgParticipant.conflicts`: with a real broadcast channel it cannot happen.
* **Synchrony**: a message sent during a phase reaches everyone before anyone ends that phase.
  The complaint round is what relies on it: an honest dealer must see the complaints against it
  in time to answer them.

Share encryption
----------------
Each participant has a DKG key pair ``(e_i, E_i = e_i·G1)``, the public halves known to all
before the run. ``f_D(j)`` travels as 48 bytes: ``f_D(j) ⊕ pad`` (32) and a 16-byte tag, with
``k = SHA-256(domain ‖ session ‖ D ‖ j ‖ e_D·E_j)``, ``pad = HMAC(k, "pad")``,
``tag = HMAC(k, "tag" ‖ ciphertext)``. Each key encrypts exactly one 32-byte value (it depends on
the session and the ordered pair), so the pad is a one-time pad. A share that fails its tag is
complained about like a wrong one, and the router only ever sees ciphertexts.

Byte formats (big-endian; every message has exactly one encoding)
-----------------------------------------------------------------
Header, 44 bytes: ``"TSDK" | version 1 | kind | session (32) | t (u16) | n (u16) | sender (u16)``.
Bodies:

* deal (kind 1): ``C_0 … C_{t−1}`` (48 each) ``| E_j`` for every ``j ≠ sender`` ascending (48 each);
* response (kind 2): ``count (u16) | dealer (u16)…`` strictly ascending, none the sender;
* justification (kind 3): ``count (u16) | (recipient (u16) | f(recipient) (32))…`` recipients
  strictly ascending, none the sender, each value below r.

The session id is ``SHA-256(domain ‖ t ‖ n ‖ E_1 … E_n ‖ context)``: messages of another run,
threshold or participant list are refused.

On the key bias
---------------
Joint-Feldman lets a rushing adversary bias the public key (GJKR 2007, section 3): having seen
the honest commitments, it decides which of its own dealers end up disqualified, and so picks
the key among up to 2^(corrupt dealers) candidates. GJKR's cure is a first round of Pedersen
(hiding) commitments. This module does not add it, on purpose: whatever set the adversary
picks, the group key is ``Σ_{honest} C_{D,0} + a·G1`` with ``a`` known to the adversary (it is
the sum of its own qualified dealers' secrets). A forgery under that key is a forgery under the
honest dealers' sum (subtract ``a·H(m)``), and a reduction can plant its challenge key in one
honest dealer's ``C_0`` (Feldman sharings are simulatable from ``t−1`` shares). So
unforgeability of threshold BLS survives the bias; only applications that need a *uniformly
random* key (e.g. using it as a random value) would not. Gennaro, Jarecki, Krawczyk and Rabin
make this argument for discrete-log signatures ("Secure applications of Pedersen's distributed
key generation protocol", CT-RSA 2003); Bacho and Loss prove threshold BLS secure with exactly
this DKG (CCS 2022), and drand ships the same choice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .backends import Backend, get_backend
from .backends.base import G1_SIZE, check_g1_encoding
from .errors import (
    DkgFailedError,
    DkgMessageError,
    DkgPhaseError,
    MalformedError,
    ParameterError,
    ThresholdError,
)
from .field import R, check_polynomial, derive_polynomial, eval_poly
from .keys import GroupKey, KeyShare, as_bytes, check_parameters
from .msm import msm

__all__ = [
    "DEAL",
    "JUSTIFICATION",
    "RESPONSE",
    "Deal",
    "DkgKeyPair",
    "DkgParticipant",
    "DkgResult",
    "Justification",
    "Phase",
    "Response",
    "decode_message",
]

_MAGIC = b"TSDK"
_VERSION = 1
DEAL = 1
RESPONSE = 2
JUSTIFICATION = 3
SESSION_SIZE = 32
_HEADER = 4 + 1 + 1 + SESSION_SIZE + 2 + 2 + 2
SCALAR_SIZE = 32
TAG_SIZE = 16
ENCRYPTED_SHARE_SIZE = SCALAR_SIZE + TAG_SIZE
_SESSION_DOMAIN = b"thresh_sig/dkg/session/v1"
_SHARE_KEY_DOMAIN = b"thresh_sig/dkg/share-key/v1"
_KEYPAIR_DOMAIN = b"thresh_sig/dkg/keypair/v1"


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Deal:
    """A dealer's bundle: its commitments and one encrypted share per other participant."""

    session: bytes
    t: int
    n: int
    sender: int
    commitments: tuple[bytes, ...]
    encrypted_shares: tuple[bytes, ...]  # recipients 1..n without the sender, ascending

    def encrypted_share_for(self, recipient: int) -> bytes:
        return self.encrypted_shares[recipient - 1 - (recipient > self.sender)]

    def __bytes__(self) -> bytes:
        return _header(DEAL, self) + b"".join(self.commitments) + b"".join(self.encrypted_shares)


@dataclass(frozen=True, slots=True)
class Response:
    """A participant's complaints: the dealers whose share to it was missing or wrong."""

    session: bytes
    t: int
    n: int
    sender: int
    complaints: tuple[int, ...]

    def __bytes__(self) -> bytes:
        body = len(self.complaints).to_bytes(2, "big")
        body += b"".join(d.to_bytes(2, "big") for d in self.complaints)
        return _header(RESPONSE, self) + body


@dataclass(frozen=True, slots=True)
class Justification:
    """An accused dealer's answer: the disputed shares, in the clear."""

    session: bytes
    t: int
    n: int
    sender: int
    revealed: tuple[tuple[int, int], ...]  # (recipient, f_sender(recipient)), ascending

    def __bytes__(self) -> bytes:
        body = len(self.revealed).to_bytes(2, "big")
        body += b"".join(
            j.to_bytes(2, "big") + s.to_bytes(SCALAR_SIZE, "big") for j, s in self.revealed
        )
        return _header(JUSTIFICATION, self) + body


Message = Deal | Response | Justification


def _header(kind: int, m: Message) -> bytes:
    return (
        _MAGIC
        + bytes([_VERSION, kind])
        + m.session
        + m.t.to_bytes(2, "big")
        + m.n.to_bytes(2, "big")
        + m.sender.to_bytes(2, "big")
    )


def _ascending_indices(values: Sequence[int], n: int, sender: int, what: str) -> None:
    previous = 0
    for v in values:
        if v <= previous or v > n:
            raise MalformedError(f"{what}: indices must be strictly ascending within 1..{n}")
        if v == sender:
            raise MalformedError(f"{what}: names its own sender {sender}")
        previous = v


def decode_message(data: bytes) -> Message:
    """Parse one DKG message; only the canonical encoding is accepted.

    Checks the format (lengths, orders, ranges, point encodings) but not curve membership, which
    needs a backend: the participant validates points when it accepts a deal.

    Raises:
        MalformedError: anything that is not exactly one well-formed message.
        TypeError: ``data`` is not bytes-like.
    """
    data = as_bytes(data, "DKG message")
    if len(data) < _HEADER or data[:4] != _MAGIC:
        raise MalformedError("not a thresh_sig DKG message (bad magic or too short)")
    if data[4] != _VERSION:
        raise MalformedError(f"unsupported DKG message version {data[4]}")
    kind = data[5]
    session = data[6 : 6 + SESSION_SIZE]
    at = 6 + SESSION_SIZE
    t = int.from_bytes(data[at : at + 2], "big")
    n = int.from_bytes(data[at + 2 : at + 4], "big")
    sender = int.from_bytes(data[at + 4 : at + 6], "big")
    try:
        check_parameters(t, n)
    except ParameterError as exc:
        raise MalformedError(f"DKG message parameters invalid: {exc}") from None
    if not 1 <= sender <= n:
        raise MalformedError(f"DKG message sender {sender} outside 1..{n}")
    body = data[_HEADER:]
    if kind == DEAL:
        expected = t * G1_SIZE + (n - 1) * ENCRYPTED_SHARE_SIZE
        if len(body) != expected:
            raise MalformedError(f"deal with t={t}, n={n} must have a {expected}-byte body")
        commitments = tuple(body[k * G1_SIZE : (k + 1) * G1_SIZE] for k in range(t))
        for k, c in enumerate(commitments):
            check_g1_encoding(c, f"commitment {k} of dealer {sender}")
        rest = body[t * G1_SIZE :]
        shares = tuple(
            rest[j * ENCRYPTED_SHARE_SIZE : (j + 1) * ENCRYPTED_SHARE_SIZE] for j in range(n - 1)
        )
        return Deal(session, t, n, sender, commitments, shares)
    if len(body) < 2:
        raise MalformedError("DKG message body too short")
    count = int.from_bytes(body[:2], "big")
    items = body[2:]
    if kind == RESPONSE:
        if len(items) != 2 * count:
            raise MalformedError(
                f"response with {count} complaints must have {2 + 2 * count} body bytes"
            )
        dealers = tuple(int.from_bytes(items[2 * k : 2 * k + 2], "big") for k in range(count))
        _ascending_indices(dealers, n, sender, "response")
        return Response(session, t, n, sender, dealers)
    if kind == JUSTIFICATION:
        width = 2 + SCALAR_SIZE
        if len(items) != width * count:
            raise MalformedError(
                f"justification of {count} shares must have {2 + width * count} body bytes"
            )
        revealed = []
        for k in range(count):
            entry = items[width * k : width * (k + 1)]
            value = int.from_bytes(entry[2:], "big")
            if value >= R:
                raise MalformedError("revealed share not below the scalar field modulus")
            revealed.append((int.from_bytes(entry[:2], "big"), value))
        _ascending_indices([j for j, _ in revealed], n, sender, "justification")
        return Justification(session, t, n, sender, tuple(revealed))
    raise MalformedError(f"unknown DKG message kind {kind}")


# ---------------------------------------------------------------- keys and session


@dataclass(frozen=True)
class DkgKeyPair:
    """A participant's encryption key pair for one or more runs: ``public = secret·G1``.

    Publish ``public`` (48 bytes) to the other participants before the run; keep the pair.
    ``repr`` never shows the secret.
    """

    secret: int = field(repr=False)
    public: bytes

    @classmethod
    def generate(
        cls, *, seed: bytes | None = None, backend: str | Backend | None = None
    ) -> DkgKeyPair:
        """A fresh key pair (from the OS CSPRNG; ``seed`` makes it reproducible, for tests)."""
        bk = get_backend(backend)
        if seed is None:
            secret = secrets.randbelow(R - 1) + 1
        else:
            digest = hashlib.shake_256(_KEYPAIR_DOMAIN + as_bytes(seed, "seed")).digest(64)
            secret = int.from_bytes(digest, "big") % (R - 1) + 1
        return cls(secret, bk.encode_g1(bk.g1_base_mul(secret)))


def session_id(t: int, n: int, public_keys: Sequence[bytes], context: bytes = b"") -> bytes:
    """The 32-byte id every message of a run carries (see the module docstring)."""
    h = hashlib.sha256(_SESSION_DOMAIN)
    h.update(t.to_bytes(2, "big") + n.to_bytes(2, "big"))
    for key in public_keys:
        h.update(key)
    h.update(len(context).to_bytes(4, "big") + context)
    return h.digest()


class Phase(Enum):
    """Where a participant is; each phase ends by one driver call."""

    DEALING = "dealing"  # ended by end_of_dealing()
    COMPLAINTS = "complaints"  # ended by end_of_complaints()
    JUSTIFICATIONS = "justifications"  # ended by end_of_justifications()
    DONE = "done"


@dataclass(frozen=True)
class DkgResult:
    """What a run produced for one participant.

    Attributes:
        group: the group key, identical at every honest participant.
        share: this participant's key share (secret), valid against ``group``.
        qualified: the dealers whose polynomials were summed, ascending.
        disqualified: ``{dealer: reason}`` for the others.
    """

    group: GroupKey
    share: KeyShare
    qualified: tuple[int, ...]
    disqualified: dict[int, str]


# ---------------------------------------------------------------- the participant


class DkgParticipant:
    """Participant ``index`` (1-based) of a (t, n) distributed key generation.

    Args:
        index: this participant's signer index, 1..n.
        t, n: the threshold and the number of participants.
        keys: this participant's :class:`DkgKeyPair`.
        public_keys: every participant's DKG public key, ``public_keys[j-1]`` for ``j``.
        context: bytes that tell runs apart (e.g. the cluster and which key this is); part of
            the session id.
        backend: curve backend (default: environment, then blspy).
        min_qualified: refuse to produce a key from fewer qualified dealers (default 1). Honest
            dealers always qualify under synchrony; ``f + 1`` makes sure one of them is honest
            even if the timing assumption failed.
        seed / coefficients: fix this dealer's polynomial (tests, and the byte-identity check
            against :func:`~thresh_sig.deal`); by default it is drawn from the OS CSPRNG.

    Driver loop: ``broadcast(p.start())``; deliver every message with ``p.receive(sender,
    data)``; when the phase's time bound elapses (or ``p.phase_complete``),
    ``broadcast(p.end_of_dealing())``, later ``out = p.end_of_complaints()`` (broadcast it if not
    None), finally ``result = p.end_of_justifications()``.
    """

    def __init__(
        self,
        index: int,
        t: int,
        n: int,
        keys: DkgKeyPair,
        public_keys: Sequence[bytes],
        *,
        context: bytes = b"",
        backend: str | Backend | None = None,
        min_qualified: int = 1,
        seed: bytes | None = None,
        coefficients: Sequence[int] | None = None,
    ) -> None:
        t, n = check_parameters(t, n)
        if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= n:
            raise ParameterError(f"participant index must be in 1..{n}, got {index!r}")
        if not isinstance(keys, DkgKeyPair):
            raise TypeError(f"keys must be a DkgKeyPair, not {type(keys).__name__}")
        public_keys = [as_bytes(k, "DKG public key") for k in public_keys]
        if len(public_keys) != n:
            raise ParameterError(f"need {n} DKG public keys, got {len(public_keys)}")
        if public_keys[index - 1] != keys.public:
            raise ParameterError(f"public_keys[{index - 1}] is not this participant's key")
        if not 1 <= min_qualified <= n:
            raise ParameterError(f"min_qualified must be in 1..{n}, got {min_qualified}")
        self.index = index
        self.t = t
        self.n = n
        self.context = as_bytes(context, "context")
        self.session = session_id(t, n, public_keys, self.context)
        self.min_qualified = min_qualified
        self._bk = get_backend(backend)
        self._keys = keys
        self._peer_points = [
            self._bk.decode_g1(k, f"DKG public key of participant {j}")
            for j, k in enumerate(public_keys, start=1)
        ]
        if coefficients is not None:
            if seed is not None:
                raise ParameterError("give a seed or coefficients, not both")
            self._poly = check_polynomial(coefficients, t, n)
        else:
            self._poly = derive_polynomial(t, n, None if seed is None else as_bytes(seed, "seed"))
        self.phase = Phase.DEALING
        self._started = False
        self._dh: dict[int, bytes] = {}  # peer -> encoded e_self·E_peer
        self._deals: dict[int, Deal] = {}
        self._commitment_points: dict[int, list[Any]] = {}
        self._shares: dict[int, int] = {}  # dealer -> f_dealer(index), checked
        self._complaints_made: set[int] = set()
        self._responses: dict[int, Response] = {}
        self._justifications: dict[int, Justification] = {}
        self._accused: dict[int, set[int]] = {}  # dealer -> complainers, set at end of complaints
        self.disqualified: dict[int, str] = {}
        #: Messages ignored: ``{"late": k, "duplicate": k, "conflicting": k}`` (see the module
        #: docstring: conflicts cannot happen over a real broadcast channel).
        self.conflicts: dict[str, int] = {"late": 0, "duplicate": 0, "conflicting": 0}
        #: Bytes this participant has broadcast (each message counted once, not per recipient).
        self.bytes_sent = 0
        self.result: DkgResult | None = None

    # ------------------------------------------------------------ dealing

    def _share_for(self, recipient: int) -> int:
        """``f(recipient)``: what this dealer deals to ``recipient`` (a test seam)."""
        return eval_poly(self._poly, recipient)

    def _reveal_for(self, recipient: int) -> int:
        """What this dealer reveals when ``recipient`` complains (a test seam)."""
        return eval_poly(self._poly, recipient)

    def _commitments(self) -> list[bytes]:
        """The Feldman commitments this dealer publishes (a test seam)."""
        return [self._bk.encode_g1(self._bk.g1_base_mul(a)) for a in self._poly]

    def _share_key(self, dealer: int, recipient: int) -> bytes:
        """The one-time key for ``f_dealer(recipient)`` (see "Share encryption")."""
        peer = recipient if dealer == self.index else dealer
        shared = self._dh.get(peer)
        if shared is None:
            # e_self·E_peer == e_peer·E_self: one Diffie-Hellman point per peer serves both the
            # share we deal it and the share it deals us.
            point = msm(self._bk.g1, [self._peer_points[peer - 1]], [self._keys.secret])
            shared = self._dh[peer] = self._bk.encode_g1(point)
        return hashlib.sha256(
            _SHARE_KEY_DOMAIN
            + self.session
            + dealer.to_bytes(2, "big")
            + recipient.to_bytes(2, "big")
            + shared
        ).digest()

    def _seal(self, recipient: int, value: int) -> bytes:
        key = self._share_key(self.index, recipient)
        pad = hmac.digest(key, b"pad", "sha256")
        ciphertext = bytes(
            a ^ b for a, b in zip(value.to_bytes(SCALAR_SIZE, "big"), pad, strict=True)
        )
        return ciphertext + hmac.digest(key, b"tag" + ciphertext, "sha256")[:TAG_SIZE]

    def _open(self, dealer: int, sealed: bytes) -> int | None:
        key = self._share_key(dealer, self.index)
        ciphertext, tag = sealed[:SCALAR_SIZE], sealed[SCALAR_SIZE:]
        if not hmac.compare_digest(hmac.digest(key, b"tag" + ciphertext, "sha256")[:TAG_SIZE], tag):
            return None
        pad = hmac.digest(key, b"pad", "sha256")
        value = int.from_bytes(bytes(a ^ b for a, b in zip(ciphertext, pad, strict=True)), "big")
        return value if value < R else None

    def start(self) -> bytes:
        """Deal: the bundle to broadcast (call once, in the dealing phase)."""
        self._expect(Phase.DEALING, "start")
        if self._started:
            raise DkgPhaseError("start() was already called")
        self._started = True
        recipients = [j for j in range(1, self.n + 1) if j != self.index]
        deal = Deal(
            self.session,
            self.t,
            self.n,
            self.index,
            tuple(self._commitments()),
            tuple(self._seal(j, self._share_for(j)) for j in recipients),
        )
        data = bytes(deal)
        self.bytes_sent += len(data)
        # Our own deal is recorded like anybody's (so the result code has one path); we never
        # complain about ourselves.
        self._accept_deal(decode_message(data))  # type: ignore[arg-type]
        return data

    # ------------------------------------------------------------ receiving

    def receive(self, sender: int, data: bytes) -> None:
        """Take one message that the channel says ``sender`` broadcast.

        Messages that arrive after their phase ended, or repeat one already taken, are ignored
        and counted in :attr:`conflicts`. Nothing is sent in reply: every output of the protocol
        comes from a phase call.

        Raises:
            MalformedError / InvalidPointError: undecodable bytes (the state is unchanged; for a
                deal this means its dealer stays silent, and is disqualified, unless a good copy
                arrives).
            DkgMessageError: another session, or a sender field other than ``sender``.
        """
        message = decode_message(data)
        if message.session != self.session or (message.t, message.n) != (self.t, self.n):
            raise DkgMessageError(f"message of another DKG session (from participant {sender})")
        if message.sender != sender:
            raise DkgMessageError(f"participant {sender} sent a message signed as {message.sender}")
        if sender == self.index:
            self.conflicts["duplicate"] += 1  # our own broadcast, echoed back
            return
        if isinstance(message, Deal):
            if self.phase is not Phase.DEALING:
                self.conflicts["late"] += 1
            elif self._seen(self._deals, message):
                pass
            else:
                self._accept_deal(message)
        elif isinstance(message, Response):
            if self.phase not in (Phase.DEALING, Phase.COMPLAINTS):
                self.conflicts["late"] += 1
            elif not self._seen(self._responses, message):
                self._responses[sender] = message
        else:
            if self.phase is Phase.DONE:
                self.conflicts["late"] += 1
            elif not self._seen(self._justifications, message):
                self._justifications[sender] = message

    def _seen(self, table: dict[int, Any], message: Message) -> bool:
        previous = table.get(message.sender)
        if previous is None:
            return False
        self.conflicts["duplicate" if previous == message else "conflicting"] += 1
        return True

    def _accept_deal(self, deal: Deal) -> None:
        # Decode every commitment first: a deal with a point outside the subgroup is refused
        # whole (raises), exactly as if its dealer had been silent.
        points = [
            self._bk.decode_g1(c, f"commitment {k} of dealer {deal.sender}")
            for k, c in enumerate(deal.commitments)
        ]
        self._deals[deal.sender] = deal
        self._commitment_points[deal.sender] = points
        if deal.sender == self.index:
            self._shares[self.index] = self._share_for(self.index)
            return
        value = self._open(deal.sender, deal.encrypted_share_for(self.index))
        if value is not None and self._matches(deal.sender, self.index, value):
            self._shares[deal.sender] = value
        else:
            self._complaints_made.add(deal.sender)

    def _matches(self, dealer: int, recipient: int, value: int) -> bool:
        """Feldman check: ``value·G1 == Σ_k recipient^k·C_{dealer,k}`` (Horner, small factors)."""
        ops = self._bk.g1
        points = self._commitment_points[dealer]
        acc = points[-1]
        for c in reversed(points[:-1]):
            acc = ops.add(msm(ops, [acc], [recipient]), c)
        if value == 0:
            return False  # a zero share would make a zero verification key: never accept it
        return self._bk.g1_equal(self._bk.g1_base_mul(value), acc)

    # ------------------------------------------------------------ phases

    def _expect(self, phase: Phase, call: str) -> None:
        if self.phase is not phase:
            raise DkgPhaseError(f"{call}() in the {self.phase.value} phase")

    @property
    def phase_complete(self) -> bool:
        """True when no message the current phase is waiting for can still arrive: the driver
        may end the phase now instead of waiting out its time bound."""
        if self.phase is Phase.DEALING:
            return self._started and len(self._deals) == self.n
        if self.phase is Phase.COMPLAINTS:
            return len(self._responses) == self.n
        if self.phase is Phase.JUSTIFICATIONS:
            return all(d in self._justifications for d in self._accused)
        return True

    def end_of_dealing(self) -> bytes:
        """The dealing phase is over: disqualify silent dealers; return our response bundle."""
        self._expect(Phase.DEALING, "end_of_dealing")
        if not self._started:
            raise DkgPhaseError("end_of_dealing() before start()")
        for dealer in range(1, self.n + 1):
            if dealer not in self._deals:
                self.disqualified[dealer] = "no valid deal (silent)"
        response = Response(
            self.session, self.t, self.n, self.index, tuple(sorted(self._complaints_made))
        )
        self._responses[self.index] = response
        self.phase = Phase.COMPLAINTS
        data = bytes(response)
        self.bytes_sent += len(data)
        return data

    def end_of_complaints(self) -> bytes | None:
        """The complaint phase is over: disqualify dealers with more than t−1 complainers and,
        if we are accused (by at most t−1), return the justification bundle to broadcast."""
        self._expect(Phase.COMPLAINTS, "end_of_complaints")
        accused: dict[int, set[int]] = {}
        for complainer, response in self._responses.items():
            for dealer in response.complaints:
                if dealer not in self.disqualified:
                    accused.setdefault(dealer, set()).add(complainer)
        for dealer, complainers in sorted(accused.items()):
            if len(complainers) > self.t - 1:
                self.disqualified[dealer] = f"{len(complainers)} complaints (more than t-1)"
        self._accused = {d: c for d, c in accused.items() if d not in self.disqualified}
        self.phase = Phase.JUSTIFICATIONS
        mine = self._accused.get(self.index)
        if not mine:
            return None
        justification = Justification(
            self.session,
            self.t,
            self.n,
            self.index,
            tuple((j, self._reveal_for(j)) for j in sorted(mine)),
        )
        self._justifications[self.index] = justification
        data = bytes(justification)
        self.bytes_sent += len(data)
        return data

    def end_of_justifications(self) -> DkgResult:
        """The last phase is over: settle the disputes and return the key.

        Raises:
            DkgFailedError: fewer than ``min_qualified`` dealers qualified.
        """
        self._expect(Phase.JUSTIFICATIONS, "end_of_justifications")
        self.phase = Phase.DONE
        for dealer, complainers in sorted(self._accused.items()):
            answer = self._justifications.get(dealer)
            if answer is None:
                self.disqualified[dealer] = "did not answer complaints"
                continue
            revealed = dict(answer.revealed)
            bad = [
                j
                for j in sorted(complainers)
                if j not in revealed or not self._matches(dealer, j, revealed[j])
            ]
            if bad:
                self.disqualified[dealer] = f"revealed no valid share for {bad}"
            elif self.index in complainers:
                self._shares[dealer] = revealed[self.index]
        qualified = tuple(d for d in range(1, self.n + 1) if d not in self.disqualified)
        if len(qualified) < self.min_qualified:
            raise DkgFailedError(qualified, self.disqualified, self.min_qualified)
        # Every qualified dealer gave us a checked share: on receipt, or revealed in public.
        assert all(d in self._shares for d in qualified), "a qualified dealer without a share"
        self.result = self._combine(qualified)
        return self.result

    def _combine(self, qualified: tuple[int, ...]) -> DkgResult:
        ops = self._bk.g1
        sums: list[Any] = []
        for k in range(self.t):
            acc = None
            for dealer in qualified:
                point = self._commitment_points[dealer][k]
                acc = point if acc is None else ops.add(acc, point)
            sums.append(acc)
        secret = sum(self._shares[d] for d in qualified) % R
        try:
            group = GroupKey(
                self.t, self.n, [self._bk.encode_g1(p) for p in sums], backend=self._bk
            )
            share = KeyShare(
                self.index, self.t, self.n, group.fingerprint, secret, backend=self._bk
            )
        except ThresholdError as exc:  # pragma: no cover - a sum hitting 0: probability ~2^-255
            raise DkgFailedError(qualified, self.disqualified, self.min_qualified) from exc
        assert group.verify_key_share(share), "a checked share sum that misses the group key"
        return DkgResult(group, share, qualified, dict(self.disqualified))

    def __repr__(self) -> str:
        return (
            f"DkgParticipant(index={self.index}, t={self.t}, n={self.n}, "
            f"phase={self.phase.value}, session={self.session.hex()[:16]}…)"
        )
