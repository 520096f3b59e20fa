"""Ed25519 multi-signature certificates (`multisig`), attacked: every forgery an adversary can
assemble from genuine shares and certificates fails verification, and none raises.

Each attack runs against both suites that speak the scheme: `RealCrypto` (Ed25519 keys dealt by
`ClusterKeys`) and the simulator's `SimCrypto` (keyed hashes, same encoding and sizes).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pbft_core import multisig
from pbft_core.certificates import checkpoint_message, commit_message, prepare_message
from pbft_core.config import ClusterConfig
from pbft_core.crypto import NodeCrypto, SimCrypto
from pbft_core.keys import ClusterKeys
from pbft_core.messages import (
    MESSAGE_TYPES,
    CommitShare,
    DecodeError,
    PrepareCertificate,
    PrepareShare,
    decode,
)

CONFIG = ClusterConfig(certificates="ed25519")  # n = 7, quorum 5
N, Q = CONFIG.n, CONFIG.quorum
DIGEST = b"d" * 32
PREPARE = prepare_message(1, 4, DIGEST)


def _real() -> dict[int, NodeCrypto]:
    keys = ClusterKeys.generate(CONFIG, ["A"], seed=b"multisig")
    return {r: keys.replica_secrets[r].crypto() for r in CONFIG.replica_ids}


def _sim() -> dict[int, NodeCrypto]:
    return {r: SimCrypto(b"multisig", f"n{r}", N, Q, "ed25519") for r in CONFIG.replica_ids}


@pytest.fixture(params=[_real, _sim], ids=["real", "sim"], scope="module")
def nodes(request: pytest.FixtureRequest) -> dict[int, NodeCrypto]:
    factory: Callable[[], dict[int, NodeCrypto]] = request.param
    return factory()


def shares_of(nodes: dict[int, NodeCrypto], message: bytes, signers: range | tuple[int, ...]) -> dict[int, bytes]:
    return {r: nodes[r].sign_share(message) for r in signers}


def certificate(nodes: dict[int, NodeCrypto], message: bytes = PREPARE) -> bytes:
    cert, bad = nodes[1].combine(shares_of(nodes, message, range(1, N + 1)), message)
    assert cert is not None and not bad
    return cert


def fast_certificate(nodes: dict[int, NodeCrypto], message: bytes = PREPARE) -> bytes:
    aggregate = nodes[1].aggregate_all({r: nodes[r].sign_fast_share(message) for r in CONFIG.replica_ids}, message)
    assert aggregate is not None
    return aggregate


def entries(cert: bytes) -> list[tuple[int, bytes]]:
    parsed = multisig.decode(cert, len(cert) // multisig.ENTRY_SIZE, N)
    assert parsed is not None
    return parsed


def raw(pairs: list[tuple[int, bytes]]) -> bytes:
    """Entries laid out as given, canonical or not (what an attacker can send)."""
    return b"".join(bytes((r,)) + s for r, s in pairs)


# ---- what honest nodes produce ----------------------------------------------------------------


def test_a_certificate_is_the_lowest_quorum_of_signers_in_increasing_order(nodes):
    cert = certificate(nodes)
    assert len(cert) == multisig.certificate_size(Q) == 325
    assert [r for r, _ in entries(cert)] == [1, 2, 3, 4, 5]
    assert all(nodes[r].verify_certificate(PREPARE, cert) for r in CONFIG.replica_ids)


def test_the_fast_certificate_has_every_replica_and_verifies_only_as_fast(nodes):
    aggregate = fast_certificate(nodes)
    assert len(aggregate) == multisig.certificate_size(N) == 455
    assert nodes[3].verify_aggregate(PREPARE, aggregate)
    assert not nodes[3].verify_certificate(PREPARE, aggregate)


def test_a_share_is_one_64_byte_signature_and_verifies_only_for_its_signer(nodes):
    share = nodes[2].sign_share(PREPARE)
    assert len(share) == 64
    assert nodes[5].verify_share(2, PREPARE, share)
    assert not nodes[5].verify_share(3, PREPARE, share)  # A's share presented as B's


def test_combine_names_the_bad_shares_and_still_certifies_with_enough_good_ones(nodes):
    shares = shares_of(nodes, PREPARE, range(1, N + 1))
    shares[2] = nodes[3].sign_share(PREPARE)  # n3's share under n2's name
    shares[4] = nodes[4].sign_share(commit_message(1, 4, DIGEST))  # another kind
    cert, bad = nodes[1].combine(shares, PREPARE)
    assert bad == {2, 4} and cert is not None
    assert [r for r, _ in entries(cert)] == [1, 3, 5, 6, 7]
    cert, bad = nodes[1].combine({r: s for r, s in shares.items() if r not in (6, 7)}, PREPARE)
    assert cert is None and bad == {2, 4}


# ---- forged certificates ------------------------------------------------------------------------


def test_a_certificate_with_a_duplicated_signer_is_refused(nodes):
    pairs = entries(certificate(nodes))
    assert not nodes[3].verify_certificate(PREPARE, raw([pairs[0], pairs[0], *pairs[2:]]))
    assert not nodes[3].verify_certificate(PREPARE, raw([pairs[0], *pairs[:4]]))


def test_the_same_signature_under_two_signer_ids_is_refused(nodes):
    pairs = entries(certificate(nodes))
    forged = [*pairs[:4], (pairs[4][0], pairs[3][1])]
    assert not nodes[3].verify_certificate(PREPARE, raw(forged))


def test_fewer_or_more_signers_than_the_kind_needs_are_refused(nodes):
    pairs = entries(certificate(nodes))
    assert not nodes[3].verify_certificate(PREPARE, raw(pairs[:Q - 1]))
    six = shares_of(nodes, PREPARE, range(1, 7))
    assert not nodes[3].verify_certificate(PREPARE, multisig.encode(six))
    fast_pairs = entries(fast_certificate(nodes))
    assert not nodes[3].verify_aggregate(PREPARE, raw(fast_pairs[:-1]))


@pytest.mark.parametrize("signer", [0, N + 1, 100, 255])
def test_an_unknown_or_out_of_range_signer_id_is_refused(nodes, signer):
    pairs = entries(certificate(nodes))
    assert not nodes[3].verify_certificate(PREPARE, raw([*pairs[:4], (signer, pairs[4][1])]))
    assert not nodes[3].verify_share(signer, PREPARE, pairs[4][1])


def test_signers_out_of_order_are_refused_although_each_signature_is_genuine(nodes):
    pairs = entries(certificate(nodes))
    assert not nodes[3].verify_certificate(PREPARE, raw(list(reversed(pairs))))


def test_a_signature_moved_to_another_signers_entry_is_refused(nodes):
    pairs = entries(certificate(nodes))
    swapped = [pairs[0], (pairs[1][0], pairs[2][1]), (pairs[2][0], pairs[1][1]), *pairs[3:]]
    assert not nodes[3].verify_certificate(PREPARE, raw(swapped))


@pytest.mark.parametrize("length", [0, 1, 64, 96, 106, 324, 326, 390, 455])
def test_wrong_lengths_are_refused(nodes, length):
    blob = (certificate(nodes) * 2)[:length]
    assert not nodes[3].verify_certificate(PREPARE, blob)
    assert not nodes[3].verify_share(2, PREPARE, blob)
    if length != 455:
        assert not nodes[3].verify_aggregate(PREPARE, blob)


@pytest.mark.parametrize("junk", [None, "x" * 325, 325, bytearray(325), [1, 2]])
def test_values_that_are_not_bytes_are_refused_not_raised_on(nodes, junk):
    assert not nodes[3].verify_certificate(PREPARE, junk)
    assert not nodes[3].verify_aggregate(PREPARE, junk)
    assert not nodes[3].verify_share(2, PREPARE, junk)
    assert not nodes[3].verify_share("n2", PREPARE, nodes[2].sign_share(PREPARE))  # type: ignore[arg-type]


# ---- one kind passed off as another -------------------------------------------------------------


def test_a_certificate_of_one_kind_never_verifies_as_another(nodes):
    prepare = certificate(nodes, PREPARE)
    commit = commit_message(1, 4, DIGEST)
    checkpoint = checkpoint_message(4, DIGEST)
    assert not nodes[3].verify_certificate(commit, prepare)
    assert not nodes[3].verify_certificate(checkpoint, prepare)
    assert not nodes[3].verify_certificate(prepare_message(1, 5, DIGEST), prepare)
    assert not nodes[3].verify_aggregate(PREPARE, prepare)
    assert not nodes[3].verify_certificate(PREPARE, fast_certificate(nodes))


def test_n_slow_prepare_shares_do_not_make_a_fast_certificate(nodes):
    slow = shares_of(nodes, PREPARE, range(1, N + 1))
    assert not nodes[3].verify_aggregate(PREPARE, multisig.encode(slow))


def test_a_prepare_share_verifies_as_no_other_kind_of_share(nodes):
    share = nodes[2].sign_share(PREPARE)
    assert not nodes[3].verify_share(2, commit_message(1, 4, DIGEST), share)
    assert not nodes[3].verify_share(2, checkpoint_message(4, DIGEST), share)
    fast = nodes[2].sign_fast_share(PREPARE)
    assert fast != share and not nodes[3].verify_share(2, PREPARE, fast)


def test_a_share_is_no_signature_on_a_protocol_message_and_no_message_signature_is_a_share(nodes):
    """Shares are signed with the identity key every message is signed with: domains apart."""
    share = nodes[2].sign_share(PREPARE)
    vote = PrepareShare(1, 4, DIGEST, share, b"", 2)
    assert not nodes[3].verify_replica(2, vote.signing_payload(), share)
    signed = vote.with_sig(nodes[2].sign(vote.signing_payload()))
    assert not nodes[3].verify_share(2, PREPARE, signed.sig)
    # Real signed payloads begin with b"pbft/v1/<MessageName>/": no type may be named so.
    names = {cls.__name__.lower() for cls in MESSAGE_TYPES.values()}
    assert "multisig" not in names and "ts" not in names
    assert not multisig.SHARE_DOMAIN.startswith(multisig.FAST_SHARE_DOMAIN)
    assert not multisig.FAST_SHARE_DOMAIN.startswith(multisig.SHARE_DOMAIN)


# ---- the other scheme's bytes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bls_nodes() -> dict[int, NodeCrypto]:
    keys = ClusterKeys.generate(ClusterConfig(), ["A"], seed=b"multisig/bls")
    return {r: keys.replica_secrets[r].crypto() for r in (1, 2, 3)}


def test_each_scheme_refuses_the_others_shares_and_certificates_without_raising(nodes, bls_nodes):
    bls_share = bls_nodes[2].sign_share(PREPARE)
    bls_fast_share = bls_nodes[2].sign_fast_share(PREPARE)
    assert len(bls_share) == 106
    assert not nodes[3].verify_share(2, PREPARE, bls_share)
    assert nodes[1].aggregate_all({r: bls_fast_share for r in CONFIG.replica_ids}, PREPARE) is None
    cert, bad = nodes[1].combine({r: bls_share for r in CONFIG.replica_ids}, PREPARE)
    assert cert is None and bad == set(CONFIG.replica_ids)
    assert not nodes[3].verify_certificate(PREPARE, bytes(96))

    ed_share = nodes[2].sign_share(PREPARE)
    assert not bls_nodes[3].verify_share(2, PREPARE, ed_share)
    assert not bls_nodes[3].verify_certificate(PREPARE, certificate(nodes))
    assert not bls_nodes[3].verify_aggregate(PREPARE, fast_certificate(nodes))
    cert, bad = bls_nodes[1].combine({r: nodes[r].sign_share(PREPARE) for r in (1, 2, 3, 4, 5)}, PREPARE)
    assert cert is None


# ---- the codec's bounds -------------------------------------------------------------------------


def test_the_codec_takes_certificates_of_1_to_100_signers_and_no_other_length():
    def certified(size: int) -> bytes:
        return PrepareCertificate(1, 1, DIGEST, b"c" * size, 1, b"s" * 64).encode()

    for k in (1, 5, 7, 67, 100):
        assert len(decode(certified(65 * k)).certificate) == 65 * k  # type: ignore[attr-defined]
    for size in (0, 64, 97, 65 * 5 + 1, 65 * 101, 100_000):
        with pytest.raises(DecodeError):
            decode(certified(size))
    assert decode(certified(96)).certificate == b"c" * 96  # type: ignore[attr-defined]


def test_the_codec_takes_a_64_or_106_byte_share_and_nothing_else():
    for size in (64, 106):
        assert len(decode(CommitShare(1, 1, DIGEST, b"x" * size, 2, b"s" * 64).encode()).share) == size  # type: ignore[attr-defined]
    for size in (0, 63, 65, 96, 105, 130):
        with pytest.raises(DecodeError):
            decode(CommitShare(1, 1, DIGEST, b"x" * size, 2, b"s" * 64).encode())
