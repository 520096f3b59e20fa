"""Functional tests of the public API on the default (blspy) backend."""

from __future__ import annotations

import ast
import pathlib
import random

import pytest
from py_ecc.bls import G2Basic

import thresh_sig
from tests.thresh_sig.ts_helpers import dealt, signed
from thresh_sig import (
    GroupKey,
    KeyShare,
    Signature,
    SignatureShare,
    aggregate_all,
    combine,
    combine_checked,
    deal,
    sign_share,
    verify,
    verify_all,
    verify_share,
)

MSG = b"transfer 10 from alice to bob"


def test_public_api_names() -> None:
    for name in (
        "deal",
        "sign_share",
        "verify_share",
        "combine",
        "verify",
        "aggregate_all",
        "verify_all",
        "GroupKey",
        "KeyShare",
        "SignatureShare",
        "Signature",
        "ThresholdError",
        "save_group_key",
        "load_group_key",
        "save_key_share",
        "load_key_share",
    ):
        assert hasattr(thresh_sig, name), name
    assert set(thresh_sig.__all__) <= set(dir(thresh_sig))


def test_deal_shape() -> None:
    group, shares = deal(5, 7, seed=b"shape")
    assert (group.t, group.n) == (5, 7)
    assert len(group.public_key) == 48
    assert group.public_key == group.commitments[0]
    assert len(group.commitments) == 5 and all(len(c) == 48 for c in group.commitments)
    assert [s.signer for s in shares] == list(range(1, 8))
    assert all((s.t, s.n) == (5, 7) for s in shares)
    assert all(s.group_fingerprint == group.fingerprint for s in shares)
    vks = group.verification_keys
    assert len(vks) == 7 and len(set(vks)) == 7
    assert all(vks[i] == shares[i].verification_key for i in range(7))
    assert group.aggregate_key not in vks and group.aggregate_key != group.public_key


def test_deal_is_deterministic_with_seed() -> None:
    g1, s1 = deal(3, 4, seed=b"same")
    g2, s2 = deal(3, 4, seed=b"same")
    g3, _ = deal(3, 4, seed=b"other")
    assert bytes(g1) == bytes(g2) and [bytes(s) for s in s1] == [bytes(s) for s in s2]
    assert bytes(g1) != bytes(g3)
    # Without a seed every deal is fresh; (t, n) are part of the derivation.
    assert bytes(deal(3, 4)[0]) != bytes(deal(3, 4)[0])
    assert deal(2, 4, seed=b"same")[0].public_key != g1.public_key


def test_verify_key_share_feldman() -> None:
    group, shares = dealt(5, 7)
    assert all(group.verify_key_share(s) for s in shares)
    # Same origin, wrong secret: the Feldman check rejects it.
    bad = KeyShare(3, 5, 7, group.fingerprint, shares[2]._secret + 1)
    assert group.verify_key_share(bad) is False
    # A loaded group derives verification keys from the commitments alone.
    loaded = GroupKey.from_bytes(bytes(group))
    assert all(loaded.verify_key_share(s) for s in shares)
    assert loaded.verification_keys == group.verification_keys


def test_sign_and_verify_share() -> None:
    group, shares = dealt(5, 7)
    for share in shares:
        ss = sign_share(share, MSG)
        assert ss.signer == share.signer
        assert len(ss.point_bytes) == 96 and len(bytes(ss)) == thresh_sig.SIGNATURE_SHARE_SIZE
        assert verify_share(group, ss, MSG)
        assert not verify_share(group, ss, MSG + b"!")
    # A share is checked against its own signer's key: relabelled, it fails.
    ss = sign_share(shares[0], MSG)
    relabelled = SignatureShare.from_parts(2, ss.point_bytes, group.fingerprint)
    assert not verify_share(group, relabelled, MSG)


@pytest.mark.parametrize(("t", "n"), [(1, 1), (1, 3), (2, 3), (3, 4), (5, 7), (7, 7), (11, 16)])
def test_combine_any_subset_verifies(t: int, n: int) -> None:
    group, _ = dealt(t, n)
    sigs = signed(t, n, MSG)
    rng = random.Random(t * 100 + n)
    results = set()
    for _ in range(4):
        subset = rng.sample(sigs, t)
        sig = combine(group, subset)
        assert len(bytes(sig)) == 96
        assert verify(group, MSG, sig)
        assert not verify(group, MSG + b"x", sig)
        results.add(bytes(sig))
        assert bytes(combine(group, subset, MSG)) == bytes(sig)
    assert len(results) == 1


def test_combined_signature_is_standard_bls() -> None:
    """The must-pass interoperability check: py_ecc's IETF G2Basic verifies it."""
    group, _ = dealt(5, 7)
    sigs = signed(5, 7, MSG)
    sig = combine(group, [sigs[i] for i in (6, 1, 3, 4, 2)], MSG)  # non-contiguous
    assert G2Basic.Verify(group.public_key, MSG, bytes(sig))
    assert not G2Basic.Verify(group.public_key, MSG + b"?", bytes(sig))


def test_combine_uses_first_t_and_extra_shares_are_fine() -> None:
    group, _ = dealt(3, 7)
    sigs = signed(3, 7, MSG)
    assert bytes(combine(group, sigs)) == bytes(combine(group, sigs[:3]))
    sig, invalid = combine_checked(group, list(reversed(sigs)), MSG)
    assert invalid == () and verify(group, MSG, sig)


def test_signature_roundtrip() -> None:
    group, _ = dealt(5, 7)
    sig = combine(group, signed(5, 7, MSG)[:5])
    again = Signature.from_bytes(bytes(sig))
    assert again == sig and hash(again) == hash(sig) and bytes(again) == bytes(sig)
    assert verify(group, MSG, again)
    assert verify(group, MSG, bytes(sig))  # raw bytes are accepted too
    assert "Signature(" in repr(sig)


def test_signature_share_roundtrip() -> None:
    group, _ = dealt(5, 7)
    ss = signed(5, 7, MSG)[3]
    again = SignatureShare.from_bytes(bytes(ss))
    assert again == ss and again.signer == 4 and again.group_fingerprint == group.fingerprint
    parts = SignatureShare.from_parts(ss.signer, ss.point_bytes, ss.group_fingerprint)
    assert parts == ss and bytes(parts) == bytes(ss)
    assert verify_share(group, again, MSG)


def test_key_share_roundtrip_and_repr_hides_secret() -> None:
    _, shares = dealt(5, 7)
    share = shares[4]
    again = KeyShare.from_bytes(bytes(share))
    assert again == share and len(bytes(share)) == thresh_sig.KEY_SHARE_SIZE
    assert bytes(sign_share(again, MSG)) == bytes(sign_share(share, MSG))
    secret_hex = share._secret.to_bytes(32, "big").hex()
    assert secret_hex not in repr(share) and str(share._secret) not in repr(share)


def test_group_roundtrip() -> None:
    group, _ = dealt(5, 7)
    again = GroupKey.from_bytes(bytes(group))
    assert again == group and hash(again) == hash(group)
    assert again.fingerprint == group.fingerprint
    assert again.aggregate_key == group.aggregate_key  # MSM path vs. sum of cached keys
    assert len(bytes(group)) == 9 + 48 * 5
    assert group.with_backend("blspy") == group
    assert "GroupKey(t=5, n=7" in repr(group)


@pytest.mark.parametrize(("t", "n"), [(1, 4), (3, 4), (4, 4), (5, 7), (7, 7)])
def test_aggregate_all_and_verify_all(t: int, n: int) -> None:
    group, _ = dealt(t, n)
    sigs = signed(t, n, MSG)
    agg = aggregate_all(group, sigs)
    assert len(bytes(agg)) == 96
    assert verify_all(group, MSG, agg)
    assert not verify_all(group, MSG + b"x", agg)
    # Order does not matter: it is a plain sum.
    assert bytes(aggregate_all(group, list(reversed(sigs)))) == bytes(agg)
    # The n-of-n aggregate and a t-of-n signature never stand in for each other.
    combined = combine(group, sigs[:t])
    assert not verify(group, MSG, agg)
    assert not verify_all(group, MSG, combined)
    # Also after a reload (summed key derived from the commitments).
    loaded = GroupKey.from_bytes(bytes(group))
    assert verify_all(loaded, MSG, agg) and not verify_all(loaded, MSG, combined)


def test_threshold_one_every_share_is_the_signature() -> None:
    group, _ = dealt(1, 3)
    sigs = signed(1, 3, MSG)
    assert len({s.point_bytes for s in sigs}) == 1
    assert bytes(combine(group, [sigs[2]])) == sigs[0].point_bytes


def test_package_is_standalone() -> None:
    """thresh_sig must not import the rest of the project."""
    root = pathlib.Path(thresh_sig.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"pbft_core", "cli"}, f"{path}: imports {name}"


def test_aggregate_all_of_a_t_lt_n_group_is_forgeable_from_t_shares() -> None:
    """Documents the caveat of aggregate_all: shares of a (t, n) deal lie on one polynomial, so
    t shares determine the others and hence the n-of-n aggregate. Only a (n, n) deal makes
    verify_all mean "all n signed"."""
    from thresh_sig.backends import get_backend
    from thresh_sig.field import R
    from thresh_sig.msm import msm

    t, n = 3, 4
    group, _ = dealt(t, n)
    known = list(signed(t, n, MSG)[:t])  # signer 4 never signs
    bk = get_backend("blspy")
    xs = [s.signer for s in known]
    weights = []
    for xi in xs:  # Lagrange weights for evaluating at x = 4
        num = den = 1
        for xk in xs:
            if xk != xi:
                num, den = num * (n - xk), den * (xi - xk)
        weights.append(num * pow(den, -1, R) % R)
    fourth = msm(bk.g2, [s._point(bk) for s in known], weights)
    forged = SignatureShare.from_parts(n, bytes(fourth), group.fingerprint)
    assert verify_share(group, forged, MSG)
    assert verify_all(group, MSG, aggregate_all(group, [*known, forged]))
