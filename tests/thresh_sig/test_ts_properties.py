"""Hypothesis property tests of the threshold scheme (blspy backend, small n)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.thresh_sig.ts_helpers import dealt, signed
from thresh_sig import (
    InvalidShareError,
    NotEnoughSharesError,
    Signature,
    SignatureShare,
    combine,
    combine_checked,
    sign_share,
    verify,
    verify_all,
)
from thresh_sig.backends import get_backend
from thresh_sig.scheme import _interpolate

PROFILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
MESSAGES = st.sampled_from([b"", b"a", b"pre-prepare v=0 s=1", bytes(range(256))])


@st.composite
def group_params(draw: st.DrawFn, min_t: int = 1) -> tuple[int, int]:
    n = draw(st.integers(min_value=max(1, min_t), max_value=8))
    t = draw(st.integers(min_value=min_t, max_value=n))
    return t, n


@PROFILE
@given(params=group_params(), message=MESSAGES, data=st.data())
def test_every_t_subset_combines_to_the_same_signature(
    params: tuple[int, int], message: bytes, data: st.DataObject
) -> None:
    t, n = params
    group, _ = dealt(t, n)
    sigs = signed(t, n, message)
    reference = combine(group, sigs[:t])
    assert verify(group, message, reference)
    for _ in range(3):
        order = data.draw(st.permutations(range(n)))
        subset = [sigs[i] for i in order[:t]]
        assert bytes(combine(group, subset)) == bytes(reference)
    assert bytes(combine(group, [sigs[i] for i in order], message)) == bytes(reference)


@PROFILE
@given(params=group_params(min_t=2), message=MESSAGES, data=st.data())
def test_fewer_than_t_shares_never_yield_a_verifying_signature(
    params: tuple[int, int], message: bytes, data: st.DataObject
) -> None:
    t, n = params
    group, _ = dealt(t, n)
    sigs = signed(t, n, message)
    k = data.draw(st.integers(min_value=1, max_value=t - 1))
    order = data.draw(st.permutations(range(n)))
    subset = [sigs[i] for i in order[:k]]
    with pytest.raises(NotEnoughSharesError):
        combine(group, subset)
    with pytest.raises(NotEnoughSharesError):
        combine(group, subset, message)
    bk = get_backend("blspy")
    # Interpolating as if the threshold were k (what an attacker with k shares can do) gives a
    # point on the wrong polynomial; so does a plain sum, or any single share.
    forged = Signature._make(bk, None, _interpolate(bk, subset))
    assert not verify(group, message, forged)
    total = subset[0]._point(bk)
    for s in subset[1:]:
        total = total + s._point(bk)
    assert not verify(group, message, Signature._make(bk, None, total))
    assert not verify_all(group, message, Signature._make(bk, None, total))
    for s in subset:
        assert not verify(group, message, Signature.from_bytes(s.point_bytes))


TAMPER = st.sampled_from(["other_message", "relabelled", "other_group"])


def _tampered(kind: str, t: int, n: int, signer: int, message: bytes) -> SignatureShare:
    group, shares = dealt(t, n)
    if kind == "other_message":
        return sign_share(shares[signer - 1], message + b"/tampered")
    if kind == "relabelled":
        donor = signed(t, n, message)[signer % n]  # another signer's valid share
        return SignatureShare.from_parts(signer, donor.point_bytes, group.fingerprint)
    foreign = signed(t, n, message, b"other group")[signer - 1]
    return SignatureShare.from_parts(signer, foreign.point_bytes, group.fingerprint)


@PROFILE
@given(params=group_params(), message=MESSAGES, kind=TAMPER, data=st.data())
def test_a_tampered_share_is_named(
    params: tuple[int, int], message: bytes, kind: str, data: st.DataObject
) -> None:
    t, n = params
    if kind == "relabelled" and t == 1:
        # With t = 1 the polynomial is constant: every share is the same point, so another
        # signer's share under this index is not a forgery at all.
        kind = "other_message"
    group, _ = dealt(t, n)
    sigs = list(signed(t, n, message))
    order = data.draw(st.permutations(range(n)))
    victim = sigs[order[0]].signer
    bad = _tampered(kind, t, n, victim, message)
    # The tampered share goes first so the optimistic attempt includes it.
    size = data.draw(st.integers(min_value=t, max_value=n))
    subset = [bad] + [sigs[i] for i in order[1:size]]
    if size - 1 >= t:
        sig, invalid = combine_checked(group, subset, message)
        assert invalid == (victim,)
        assert verify(group, message, sig)
        assert bytes(combine(group, subset, message)) == bytes(sig)
    else:
        with pytest.raises(InvalidShareError) as info:
            combine(group, subset, message)
        assert info.value.invalid == (victim,)
        assert info.value.need == t and info.value.valid == size - 1


@PROFILE
@given(params=group_params(), message=MESSAGES, data=st.data())
def test_several_tampered_shares_are_all_named(
    params: tuple[int, int], message: bytes, data: st.DataObject
) -> None:
    t, n = params
    group, _ = dealt(t, n)
    sigs = list(signed(t, n, message))
    bad_count = data.draw(st.integers(min_value=1, max_value=n))
    order = data.draw(st.permutations(range(n)))
    victims = sorted(sigs[i].signer for i in order[:bad_count])
    subset = [_tampered("other_message", t, n, v, message) for v in victims]
    subset += [sigs[i] for i in order[bad_count:]]
    if n - bad_count >= t:
        sig, invalid = combine_checked(group, subset, message)
        assert invalid == tuple(victims) and verify(group, message, sig)
    else:
        with pytest.raises(InvalidShareError) as info:
            combine(group, subset, message)
        assert info.value.invalid == tuple(victims)
