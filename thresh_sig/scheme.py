"""The threshold scheme: deal, sign_share, verify_share, combine, verify, and the n-of-n aggregate.

Theory of operation
-------------------
*Dealing.* A trusted dealer draws ``f`` of degree ``t−1`` over ``Z_r`` (see :mod:`thresh_sig.field`),
hands signer ``i`` the scalar ``f(i)`` and publishes the Feldman commitments ``C_k = a_k·G1``.
``C_0 = f(0)·G1`` is the group public key; ``vk_i = Σ_k i^k·C_k = f(i)·G1`` is signer ``i``'s
verification key, so each signer (or anyone) can check its share against the commitments.

*Signing.* ``σ_i = f(i)·H(m)`` with ``H`` the IETF hash-to-G2 of the basic ciphersuite: a signature
share is just an ordinary BLS signature by the key ``f(i)``, verifiable under ``vk_i``.

*Combining.* For a set ``S`` of ``t`` distinct signers, ``σ = Σ_{i∈S} λ_i σ_i = f(0)·H(m)`` by
Lagrange interpolation at 0 in the exponent: a standard BLS signature under the group public key,
96 bytes whatever ``t`` and ``n``. The weighted sum is one multi-scalar multiplication
(:mod:`thresh_sig.msm`) driven by a cached interpolation plan (:func:`thresh_sig.field.lagrange_plan`).

*Optimistic combining.* Verifying each share costs a pairing check (~1.3 ms with blspy); verifying
the combination costs one. So ``combine(..., message=m)`` interpolates the first ``t`` shares and
verifies once; only if that fails does it verify shares one by one, drop the invalid ones and
interpolate ``t`` valid ones, or raise :class:`~thresh_sig.errors.InvalidShareError` naming the
bad signers.

*The n-of-n aggregate (fast path).* ``aggregate_all`` sums all ``n`` shares,
``Σ_i σ_i = (Σ_i f(i))·H(m)``, with no interpolation (n−1 additions), and ``verify_all`` checks it
against ``Σ_i vk_i`` (cached on the group). Since ``Σ_i f(i) ≠ f(0)`` (the dealer enforces it), an
aggregate never verifies as a t-of-n signature nor the reverse. **Caveat:** all shares of a
(t, n) deal lie on one polynomial of degree t−1, so anyone holding ``t`` valid shares can
interpolate the other ``n−t`` and forge the aggregate. ``verify_all`` therefore proves that all
``n`` signers signed only for a group dealt with ``t == n``; for ``t < n`` it proves no more than
``t`` signed. A protocol that needs "all n signed" (the SBFT fast path) must use a separate
(n, n) deal — for which ``aggregate_all`` is the cheap alternative to ``combine``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .backends import Backend, get_backend
from .errors import (
    DuplicateSignerError,
    InvalidShareError,
    NotEnoughSharesError,
    ParameterError,
)
from .field import check_polynomial, derive_polynomial, eval_poly, lagrange_plan
from .keys import (
    GroupKey,
    KeyShare,
    Signature,
    SignatureShare,
    _GroupState,
    as_bytes,
    check_parameters,
)
from .msm import msm

__all__ = [
    "aggregate_all",
    "combine",
    "combine_checked",
    "deal",
    "sign_share",
    "verify",
    "verify_all",
    "verify_share",
]


def deal(
    t: int,
    n: int,
    *,
    seed: bytes | None = None,
    backend: str | Backend | None = None,
    coefficients: Sequence[int] | None = None,
) -> tuple[GroupKey, list[KeyShare]]:
    """Trusted dealer: a (t, n) group key and the ``n`` key shares (``shares[i]`` is signer i+1).

    ``seed`` (bytes) makes the deal deterministic and identical on every backend; without it the
    polynomial comes from the OS CSPRNG. ``coefficients`` (``a_0 … a_{t−1}``, each in
    ``1..r−1``) deals that exact polynomial instead: it exists so that a distributed key
    generation can be checked against the deal of the sum of its dealers' polynomials
    (:mod:`thresh_sig.dkg`), and is refused together with ``seed``.

    Raises:
        ParameterError: ``t < 1``, ``t > n`` or ``n > 65535``; ``coefficients`` of the wrong
            length, out of range, or degenerate (see :func:`thresh_sig.field.check_polynomial`).
        TypeError: non-integer t/n or non-bytes seed.
    """
    t, n = check_parameters(t, n)
    if seed is not None:
        seed = as_bytes(seed, "seed")
    bk = get_backend(backend)
    if coefficients is None:
        coeffs = derive_polynomial(t, n, seed)
    elif seed is not None:
        raise ParameterError("give a seed or coefficients, not both")
    else:
        coeffs = check_polynomial(coefficients, t, n)
    commit_points = [bk.g1_base_mul(a) for a in coeffs]
    commitments = tuple(bk.encode_g1(p) for p in commit_points)
    state = _GroupState(commit_points)
    secrets = [eval_poly(coeffs, i) for i in range(1, n + 1)]
    # We know each f(i), so vk_i = f(i)·G1 directly (a fixed-base multiplication inside the
    # library) is far cheaper than Horner over the commitments; prefill the group's cache.
    for i, s in enumerate(secrets, start=1):
        state.vks[i] = bk.g1_base_mul(s)
    group = GroupKey._trusted(t, n, commitments, bk, state)
    shares = [
        KeyShare(i, t, n, group.fingerprint, s, backend=bk) for i, s in enumerate(secrets, start=1)
    ]
    return group, shares


def _message(message: object) -> bytes:
    return as_bytes(message, "message")


def sign_share(share: KeyShare, message: bytes) -> SignatureShare:
    """``σ_i = f(i)·H(message)`` with the share's preferred backend."""
    if not isinstance(share, KeyShare):
        raise TypeError(f"expected a KeyShare, not {type(share).__name__}")
    message = _message(message)
    bk = share._backend
    point = bk.sign(share._sk(bk), message)
    return SignatureShare._make(share.signer, share.group_fingerprint, bk, None, point)


def _check_share(group: GroupKey, share: object) -> SignatureShare:
    if not isinstance(share, SignatureShare):
        raise TypeError(f"expected a SignatureShare, not {type(share).__name__}")
    group.check_share_origin(share.signer, share.group_fingerprint)
    return share


def verify_share(group: GroupKey, sig_share: SignatureShare, message: bytes) -> bool:
    """Is ``sig_share`` a valid signature of ``message`` under its signer's verification key?

    Raises:
        GroupMismatchError: the share belongs to another group.
        SignerIndexError: its signer index is > n.
    """
    _check_group(group)
    sig_share = _check_share(group, sig_share)
    message = _message(message)
    bk = group._backend
    return bk.verify(group._vk_point(bk, sig_share.signer), message, sig_share._point(bk))


def _check_group(group: object) -> None:
    if not isinstance(group, GroupKey):
        raise TypeError(f"expected a GroupKey, not {type(group).__name__}")


def _validated_set(group: GroupKey, shares: Iterable[SignatureShare]) -> list[SignatureShare]:
    """Type, origin, range and duplicate checks for a share set (order kept)."""
    _check_group(group)
    if isinstance(shares, SignatureShare | bytes | str):
        raise TypeError("shares must be an iterable of SignatureShare")
    out = [_check_share(group, s) for s in shares]
    seen: set[int] = set()
    dups: set[int] = set()
    for s in out:
        if s.signer in seen:
            dups.add(s.signer)
        seen.add(s.signer)
    if dups:
        raise DuplicateSignerError(tuple(sorted(dups)))
    return out


def _interpolate(bk: Backend, shares: list[SignatureShare]) -> Any:
    """``Σ λ_i σ_i`` over exactly the given shares (no count check: callers do that)."""
    plan = lagrange_plan(tuple(s.signer for s in shares))
    ops = bk.g2
    acc = msm(ops, [s._point(bk) for s in shares], plan.coeffs)
    if plan.post != 1 and acc is not None:
        acc = msm(ops, [acc], [plan.post])
    return bk.g2_identity() if acc is None else acc


def combine_checked(
    group: GroupKey, shares: Iterable[SignatureShare], message: bytes
) -> tuple[Signature, tuple[int, ...]]:
    """Optimistic combine with blame: ``(signature, invalid_signers)``.

    Interpolates the first ``t`` shares and verifies once. On failure verifies every given share,
    then interpolates ``t`` valid ones; ``invalid_signers`` lists the shares that failed (empty
    when the optimistic check passed: the shares beyond the first ``t`` are then not examined).

    Raises:
        InvalidShareError: fewer than ``t`` shares verify; ``.invalid`` names the bad signers.
        NotEnoughSharesError, DuplicateSignerError, GroupMismatchError, SignerIndexError.
    """
    checked = _validated_set(group, shares)
    message = _message(message)
    t = group.t
    if len(checked) < t:
        raise NotEnoughSharesError(len(checked), t)
    bk = group._backend
    pk = group._pk_point(bk)
    point = _interpolate(bk, checked[:t])
    if bk.verify(pk, message, point):
        return Signature._make(bk, None, point), ()
    # Slow path: somebody lied (or signed another message). Find out who.
    valid: list[SignatureShare] = []
    invalid: list[int] = []
    for s in checked:
        if bk.verify(group._vk_point(bk, s.signer), message, s._point(bk)):
            valid.append(s)
        else:
            invalid.append(s.signer)
    bad = tuple(sorted(invalid))
    if len(valid) < t:
        raise InvalidShareError(bad, len(valid), t)
    point = _interpolate(bk, valid[:t])
    # t shares valid under their Feldman-derived keys always interpolate to a valid signature;
    # verify anyway on this rare path so that a library bug can never pass silently.
    if not bk.verify(pk, message, point):  # pragma: no cover - impossible by construction
        raise InvalidShareError(bad, len(valid), t)
    return Signature._make(bk, None, point), bad


def combine(
    group: GroupKey, shares: Iterable[SignatureShare], message: bytes | None = None
) -> Signature:
    """Combine ``t`` signature shares of distinct signers into one 96-byte signature.

    Without ``message`` the first ``t`` shares are interpolated as they are (garbage in, garbage
    out: verify the result or the shares yourself). With ``message`` see :func:`combine_checked`.

    Raises:
        NotEnoughSharesError: fewer than ``t`` shares.
        DuplicateSignerError: a signer appears twice.
        GroupMismatchError: a share of another group.
        SignerIndexError: a signer index > n.
        InvalidShareError: (with ``message``) fewer than ``t`` valid shares.
    """
    if message is not None:
        return combine_checked(group, shares, message)[0]
    checked = _validated_set(group, shares)
    if len(checked) < group.t:
        raise NotEnoughSharesError(len(checked), group.t)
    bk = group._backend
    return Signature._make(bk, None, _interpolate(bk, checked[: group.t]))


def _signature(signature: object) -> Signature:
    if isinstance(signature, Signature):
        return signature
    if isinstance(signature, bytes | bytearray | memoryview):
        return Signature.from_bytes(bytes(signature))
    raise TypeError(f"expected a Signature, not {type(signature).__name__}")


def verify(group: GroupKey, message: bytes, signature: Signature | bytes) -> bool:
    """Is ``signature`` a valid BLS signature of ``message`` under the group public key?

    ``signature`` may also be 96 raw bytes (parsed and validated; malformed bytes raise
    MalformedError/InvalidPointError rather than returning False).
    """
    _check_group(group)
    message = _message(message)
    sig = _signature(signature)
    bk = group._backend
    return bk.verify(group._pk_point(bk), message, sig._point(bk))


def aggregate_all(group: GroupKey, shares: Iterable[SignatureShare]) -> Signature:
    """n-of-n aggregate: the plain sum of the shares of all ``n`` signers (no interpolation).

    Valid under ``group.aggregate_key`` (check with :func:`verify_all`), never under the group
    public key. See the module docstring: it proves all ``n`` signed only if ``group.t == n``.

    Raises:
        NotEnoughSharesError: not all ``n`` signers present.
        DuplicateSignerError, GroupMismatchError, SignerIndexError.
    """
    checked = _validated_set(group, shares)
    if len(checked) != group.n:
        # Distinct and in 1..n, so fewer than n is the only possibility.
        raise NotEnoughSharesError(len(checked), group.n, "aggregate_all")
    bk = group._backend
    add = bk.g2.add
    acc = checked[0]._point(bk)
    for s in checked[1:]:
        acc = add(acc, s._point(bk))
    return Signature._make(bk, None, acc)


def verify_all(group: GroupKey, message: bytes, signature: Signature | bytes) -> bool:
    """Is ``signature`` the n-of-n aggregate of ``message``, i.e. valid under ``Σ_i vk_i``?

    ``signature`` may also be 96 raw bytes (parsed and validated as in :func:`verify`). The
    summed key is computed once per group and cached.
    """
    _check_group(group)
    message = _message(message)
    sig = _signature(signature)
    bk = group._backend
    return bk.verify(group._aggregate_point(bk), message, sig._point(bk))
