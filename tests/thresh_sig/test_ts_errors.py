"""Bad input raises the documented ThresholdError subclasses, never crashes, never passes."""

from __future__ import annotations

import pytest

import thresh_sig
from tests.thresh_sig.ts_helpers import (
    G1_INFINITY,
    G2_INFINITY,
    dealt,
    g1_off_curve,
    g1_outside_subgroup,
    g2_off_curve,
    g2_outside_subgroup,
    signed,
)
from thresh_sig import (
    DuplicateSignerError,
    GroupKey,
    GroupMismatchError,
    InvalidPointError,
    KeyShare,
    MalformedError,
    NotEnoughSharesError,
    ParameterError,
    Signature,
    SignatureShare,
    SignerIndexError,
    ThresholdError,
    aggregate_all,
    combine,
    deal,
    verify,
    verify_all,
    verify_share,
)
from thresh_sig.field import R

MSG = b"m"


def test_every_error_is_a_threshold_error() -> None:
    for name in (
        "ParameterError",
        "MalformedError",
        "InvalidPointError",
        "SignerIndexError",
        "DuplicateSignerError",
        "NotEnoughSharesError",
        "GroupMismatchError",
        "InvalidShareError",
    ):
        assert issubclass(getattr(thresh_sig, name), ThresholdError)
    assert issubclass(InvalidPointError, MalformedError)


@pytest.mark.parametrize(("t", "n"), [(0, 3), (-1, 3), (4, 3), (1, 0), (0, 0), (2, 65536)])
def test_deal_bad_parameters(t: int, n: int) -> None:
    with pytest.raises(ParameterError):
        deal(t, n)


def test_deal_bad_types() -> None:
    with pytest.raises(TypeError):
        deal(2.0, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        deal(True, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        deal(2, 3, seed="text")  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        deal(2, 3, backend="openssl")


# ------------------------------------------------------------------ malformed bytes
def _flip_first_bit(b: bytes) -> bytes:
    return bytes([b[0] ^ 0x80]) + b[1:]


def test_signature_malformed() -> None:
    group, _ = dealt(3, 4)
    good = bytes(combine(group, signed(3, 4, MSG)[:3]))
    for bad in (b"", good[:-1], good + b"\x00", bytes(96)):
        with pytest.raises(MalformedError):
            Signature.from_bytes(bad)
    with pytest.raises(MalformedError):  # uncompressed flag
        Signature.from_bytes(_flip_first_bit(good))
    with pytest.raises(MalformedError):  # x >= p (all coordinate bits set)
        Signature.from_bytes(bytes([0x9F]) + b"\xff" * 95)
    with pytest.raises(MalformedError):  # real part >= p
        Signature.from_bytes(good[:48] + b"\xff" * 48)
    with pytest.raises(MalformedError):  # non-canonical infinity
        Signature.from_bytes(bytes([0xC0]) + bytes(94) + b"\x01")
    with pytest.raises(InvalidPointError):  # canonical infinity: never a valid signature
        Signature.from_bytes(G2_INFINITY)
    with pytest.raises(InvalidPointError):
        Signature.from_bytes(g2_off_curve())
    with pytest.raises(InvalidPointError):
        Signature.from_bytes(g2_outside_subgroup())
    with pytest.raises(TypeError):
        Signature.from_bytes("00" * 96)  # type: ignore[arg-type]
    # verify() given raw malformed bytes raises rather than returning False silently.
    with pytest.raises(MalformedError):
        verify(group, MSG, good[:50])  # type: ignore[arg-type]


def test_signature_share_malformed() -> None:
    group, _ = dealt(3, 4)
    good = bytes(signed(3, 4, MSG)[1])
    for bad in (b"", good[:-1], good + b"\x00"):
        with pytest.raises(MalformedError):
            SignatureShare.from_bytes(bad)
    with pytest.raises(SignerIndexError):  # index 0
        SignatureShare.from_bytes(b"\x00\x00" + good[2:])
    with pytest.raises(InvalidPointError):
        SignatureShare.from_bytes(good[:10] + g2_outside_subgroup())
    with pytest.raises(InvalidPointError):
        SignatureShare.from_bytes(good[:10] + g2_off_curve())
    with pytest.raises(InvalidPointError):
        SignatureShare.from_parts(2, G2_INFINITY, group.fingerprint)
    with pytest.raises(MalformedError):
        SignatureShare.from_parts(2, good[10:], b"short")
    with pytest.raises(SignerIndexError):
        SignatureShare.from_parts(0, good[10:], group.fingerprint)


def test_key_share_malformed() -> None:
    _, shares = dealt(3, 4)
    good = bytes(shares[0])
    for bad in (b"", good[:-1], good + b"\x00", b"XXXX" + good[4:], good[:4] + b"\x09" + good[5:]):
        with pytest.raises(MalformedError):
            KeyShare.from_bytes(bad)
    with pytest.raises(MalformedError):  # secret 0
        KeyShare.from_bytes(good[:-32] + bytes(32))
    with pytest.raises(MalformedError):  # secret >= r
        KeyShare.from_bytes(good[:-32] + R.to_bytes(32, "big"))
    with pytest.raises(SignerIndexError):  # signer 0
        KeyShare.from_bytes(good[:5] + b"\x00\x00" + good[7:])
    with pytest.raises(SignerIndexError):  # signer > n
        KeyShare.from_bytes(good[:5] + b"\x00\x05" + good[7:])
    with pytest.raises(MalformedError):  # t > n in the encoding
        KeyShare.from_bytes(good[:7] + b"\x00\x05" + good[9:])


def test_group_key_malformed() -> None:
    group, _ = dealt(3, 4)
    good = bytes(group)
    for bad in (b"", good[:-1], good + b"\x00", b"XXXX" + good[4:], good[:4] + b"\x02" + good[5:]):
        with pytest.raises(MalformedError):
            GroupKey.from_bytes(bad)
    with pytest.raises(MalformedError):  # t = 0
        GroupKey.from_bytes(good[:5] + b"\x00\x00" + good[7:9])
    with pytest.raises(MalformedError):  # t > n
        GroupKey.from_bytes(good[:5] + b"\x00\x05" + good[7:9] + good[9:] + good[9:57] * 2)
    header, c0 = good[:9], good[9:57]
    for point in (g1_off_curve(), g1_outside_subgroup(), G1_INFINITY):
        with pytest.raises(InvalidPointError):
            GroupKey.from_bytes(header + point + good[57:])
        with pytest.raises(InvalidPointError):
            GroupKey.from_bytes(header + c0 + point + good[105:])
    with pytest.raises(MalformedError):
        GroupKey(3, 4, [c0, c0])  # t commitments needed


# ------------------------------------------------------------------ share sets
def test_duplicate_signers() -> None:
    group, _ = dealt(3, 4)
    sigs = signed(3, 4, MSG)
    with pytest.raises(DuplicateSignerError) as info:
        combine(group, [sigs[0], sigs[1], sigs[0]])
    assert info.value.duplicates == (1,)
    with pytest.raises(DuplicateSignerError):
        combine(group, [sigs[0], sigs[1], sigs[2], sigs[2]], MSG)
    with pytest.raises(DuplicateSignerError):
        aggregate_all(group, [sigs[0], sigs[1], sigs[2], sigs[2]])


def test_fewer_than_t() -> None:
    group, _ = dealt(3, 4)
    sigs = signed(3, 4, MSG)
    with pytest.raises(NotEnoughSharesError) as info:
        combine(group, sigs[:2])
    assert (info.value.have, info.value.need) == (2, 3)
    with pytest.raises(NotEnoughSharesError):
        combine(group, sigs[:2], MSG)
    with pytest.raises(NotEnoughSharesError):
        combine(group, [])
    with pytest.raises(NotEnoughSharesError) as info:
        aggregate_all(group, sigs[:3])
    assert info.value.need == 4


def test_signer_index_beyond_n() -> None:
    group, _ = dealt(3, 4)
    sigs = signed(3, 4, MSG)
    alien = SignatureShare.from_parts(5, sigs[0].point_bytes, group.fingerprint)
    with pytest.raises(SignerIndexError):
        combine(group, [sigs[0], sigs[1], alien])
    with pytest.raises(SignerIndexError):
        verify_share(group, alien, MSG)
    with pytest.raises(SignerIndexError):
        group.verification_key(0)
    with pytest.raises(SignerIndexError):
        group.verification_key(5)


def test_share_from_another_group() -> None:
    group, shares = dealt(3, 4)
    other, other_shares = dealt(3, 4, b"another deal")
    sigs = signed(3, 4, MSG)
    foreign = signed(3, 4, MSG, b"another deal")
    with pytest.raises(GroupMismatchError):
        combine(group, [sigs[0], sigs[1], foreign[2]])
    with pytest.raises(GroupMismatchError):
        combine(group, [sigs[0], sigs[1], foreign[2]], MSG)
    with pytest.raises(GroupMismatchError):
        verify_share(group, foreign[0], MSG)
    with pytest.raises(GroupMismatchError):
        aggregate_all(group, [*sigs[:3], foreign[3]])
    with pytest.raises(GroupMismatchError):
        group.verify_key_share(other_shares[0])
    # Same fingerprint but other parameters: still another group.
    with pytest.raises(GroupMismatchError):
        group.verify_key_share(KeyShare(1, 2, 4, group.fingerprint, shares[0]._secret))
    # A forged fingerprint does not help: the signature check names it instead.
    forged = SignatureShare.from_parts(3, foreign[2].point_bytes, group.fingerprint)
    with pytest.raises(thresh_sig.InvalidShareError) as info:
        combine(group, [sigs[0], sigs[1], forged], MSG)
    assert info.value.invalid == (3,)
    assert other != group


def test_wrong_types() -> None:
    group, shares = dealt(3, 4)
    sigs = signed(3, 4, MSG)
    with pytest.raises(TypeError):
        thresh_sig.sign_share(shares[0], "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        thresh_sig.sign_share(bytes(shares[0]), MSG)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        combine(group, [bytes(s) for s in sigs])  # type: ignore[misc]
    with pytest.raises(TypeError):
        combine(bytes(group), sigs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_all(group, MSG, 12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        group.verify_key_share(sigs[0])  # type: ignore[arg-type]
