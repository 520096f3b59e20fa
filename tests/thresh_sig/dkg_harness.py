"""An in-memory broadcast network for DKG tests, and Byzantine participants.

A Byzantine participant is an honest :class:`DkgParticipant` with one behaviour layered on top
(the same idea as pbft_core/faults.py): it changes what the dealer deals, commits or reveals, or
what it complains about, through the participant's seams (``_share_for``, ``_reveal_for``,
``_commitments``, ``_seal``); silence and garbage are filters on what the network carries.

`run_dkg` is the driver: one broadcast per message, delivered to everyone in the same order
(a perfect broadcast channel), phases ended when all participants have ended the previous one
(synchrony).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thresh_sig import ThresholdError
from thresh_sig.dkg import DkgKeyPair, DkgParticipant, DkgResult, Response
from thresh_sig.field import R

#: What a misbehaving participant does; ``targets`` says to or about whom.
BEHAVIOURS = (
    "bad_shares",  # deals f(j)+1 to each target, answers complaints truthfully
    "garbage_ciphertext",  # the targets' encrypted shares fail their tag
    "inconsistent_commitments",  # C_1 does not match the polynomial the shares come from
    "silent",  # sends nothing at all
    "malformed_deal",  # broadcasts undecodable bytes instead of its deal
    "false_complaints",  # complains about the targets, whose shares were fine
    "wrong_reveal",  # deals bad shares to the targets and reveals wrong ones when accused
    "no_answer",  # deals bad shares to the targets and never answers the complaints
)

_KEYS: dict[tuple[int, int], DkgKeyPair] = {}


def key_pair(n: int, i: int) -> DkgKeyPair:
    """Participant i's DKG key pair for groups of n (cached: key generation is not under test)."""
    pair = _KEYS.get((n, i))
    if pair is None:
        pair = _KEYS[(n, i)] = DkgKeyPair.generate(seed=b"dkg test key %d/%d" % (n, i))
    return pair


class Byzantine(DkgParticipant):
    """A participant that misbehaves in one way, towards ``targets``."""

    def __init__(self, *args: object, behaviour: str, targets: frozenset[int], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        assert behaviour in BEHAVIOURS
        self.behaviour = behaviour
        self.targets = targets

    def _share_for(self, recipient: int) -> int:
        value = super()._share_for(recipient)
        dealing_badly = self.behaviour in ("bad_shares", "wrong_reveal", "no_answer")
        if dealing_badly and recipient in self.targets:
            return (value + 1) % R
        return value

    def _reveal_for(self, recipient: int) -> int:
        value = super()._reveal_for(recipient)
        return (value + 7) % R if self.behaviour == "wrong_reveal" else value

    def _commitments(self) -> list[bytes]:
        commitments = super()._commitments()
        if self.behaviour == "inconsistent_commitments":
            commitments[1] = self._bk.encode_g1(self._bk.g1_base_mul((self._poly[1] + 1) % R))
        return commitments

    def _seal(self, recipient: int, value: int) -> bytes:
        sealed = super()._seal(recipient, value)
        if self.behaviour == "garbage_ciphertext" and recipient in self.targets:
            return bytes([sealed[0] ^ 1]) + sealed[1:]
        return sealed

    def end_of_dealing(self) -> bytes:
        data = super().end_of_dealing()
        if self.behaviour != "false_complaints":
            return data
        honest = self._responses[self.index]
        lie = Response(
            self.session,
            self.t,
            self.n,
            self.index,
            tuple(sorted(set(honest.complaints) | (self.targets - {self.index}))),
        )
        self._responses[self.index] = lie
        return bytes(lie)


@dataclass(frozen=True)
class Misbehaviour:
    behaviour: str
    targets: frozenset[int] = frozenset()


@dataclass
class Run:
    participants: dict[int, DkgParticipant]
    results: dict[int, DkgResult]
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # (receiver, sender, error)
    bytes_broadcast: int = 0


def make_participants(
    n: int,
    t: int,
    bad: dict[int, Misbehaviour] | None = None,
    *,
    seed: bytes = b"",
    coefficients: dict[int, list[int]] | None = None,
    context: bytes = b"dkg test",
    **options: object,
) -> dict[int, DkgParticipant]:
    bad = bad or {}
    publics = [key_pair(n, j).public for j in range(1, n + 1)]
    participants: dict[int, DkgParticipant] = {}
    for i in range(1, n + 1):
        kwargs: dict[str, object] = dict(options, context=context)
        if coefficients is not None:
            kwargs["coefficients"] = coefficients[i]
        else:
            kwargs["seed"] = seed + b"/dealer %d" % i
        if i in bad:
            participants[i] = Byzantine(
                i, t, n, key_pair(n, i), publics,
                behaviour=bad[i].behaviour, targets=bad[i].targets, **kwargs,
            )  # fmt: skip
        else:
            participants[i] = DkgParticipant(i, t, n, key_pair(n, i), publics, **kwargs)  # type: ignore[arg-type]
    return participants


def run_dkg(
    n: int,
    t: int,
    bad: dict[int, Misbehaviour] | None = None,
    *,
    seed: bytes = b"",
    coefficients: dict[int, list[int]] | None = None,
    **options: object,
) -> Run:
    """Run one DKG to the end; returns every participant that finished and its result."""
    bad = bad or {}
    participants = make_participants(n, t, bad, seed=seed, coefficients=coefficients, **options)
    run = Run(participants, {})

    def broadcast(sender: int, data: bytes | None) -> None:
        if data is None:
            return
        misbehaviour = bad.get(sender)
        if misbehaviour is not None and misbehaviour.behaviour == "silent":
            return
        run.bytes_broadcast += len(data)
        for receiver, p in participants.items():
            if receiver == sender:
                continue
            try:
                p.receive(sender, data)
            except ThresholdError as exc:
                # What a driver does with bytes it cannot use: log and drop them.
                run.refused.append((receiver, sender, type(exc).__name__))

    for i, p in participants.items():
        deal = p.start()
        if i in bad and bad[i].behaviour == "malformed_deal":
            deal = b"TSDK\x01\x01" + deal[6:40]  # the right magic, then truncated nonsense
        broadcast(i, deal)
    for i, p in participants.items():
        broadcast(i, p.end_of_dealing())
    for i, p in participants.items():
        answer = p.end_of_complaints()
        if i in bad and bad[i].behaviour == "no_answer":
            answer = None
        broadcast(i, answer)
    for i, p in participants.items():
        run.results[i] = p.end_of_justifications()
    return run


def expected_disqualified(n: int, t: int, bad: dict[int, Misbehaviour]) -> set[int]:
    """Which dealers the GJKR rules must disqualify, worked out from the behaviours alone."""
    silent = {i for i, m in bad.items() if m.behaviour == "silent"}
    dq = {i for i, m in bad.items() if m.behaviour in ("silent", "malformed_deal")}
    for dealer in range(1, n + 1):
        if dealer in dq:
            continue
        m = bad.get(dealer)
        complainers: set[int] = set()
        if m is not None and m.behaviour == "inconsistent_commitments":
            complainers |= set(range(1, n + 1)) - {dealer}
        if m is not None and m.behaviour in (
            "bad_shares", "garbage_ciphertext", "wrong_reveal", "no_answer",
        ):  # fmt: skip
            complainers |= m.targets - {dealer}
        for j, other in bad.items():
            if other.behaviour == "false_complaints" and dealer in other.targets and j != dealer:
                complainers.add(j)
        complainers -= silent
        if len(complainers) > t - 1 or (
            complainers
            and m is not None
            and m.behaviour
            in (
                "wrong_reveal",
                "no_answer",
                "inconsistent_commitments",
            )
        ):
            dq.add(dealer)
    return dq
