"""thresh_sig — standalone (t, n) BLS threshold signatures over BLS12-381.

Signatures live in G2 (96 bytes), keys in G1 (48 bytes), with the IETF basic-scheme ciphersuite
``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_``: a combined signature is an ordinary BLS signature
under the group public key, verifiable by any standard implementation (e.g.
``py_ecc.bls.G2Basic.Verify``). Quorum certificates are therefore 96 bytes whatever n is.

Quick use::

    from thresh_sig import deal, sign_share, combine, verify
    group, shares = deal(5, 7)
    sigs = [sign_share(s, b"msg") for s in shares[:5]]
    sig = combine(group, sigs, b"msg")          # optimistic: verifies once
    assert verify(group, b"msg", sig) and len(bytes(sig)) == 96

Module map: :mod:`.scheme` (the operations and the theory), :mod:`.keys` (types and byte
formats), :mod:`.field` (Shamir and Lagrange plans), :mod:`.msm` (multi-scalar multiplication
over point addition), :mod:`.backends` (blspy / py_ecc), :mod:`.storage` (files),
:mod:`.dkg` (distributed key generation: the same keys without a trusted dealer),
:mod:`.errors` (exceptions), :mod:`.bench` (``python -m thresh_sig bench``).
This package imports nothing from the rest of the pbft project.
"""

from __future__ import annotations

from .backends import BACKEND_ENV, BACKENDS, DEFAULT_BACKEND, get_backend
from .dkg import DkgKeyPair, DkgParticipant, DkgResult
from .errors import (
    DkgError,
    DkgFailedError,
    DkgMessageError,
    DkgPhaseError,
    DuplicateSignerError,
    GroupMismatchError,
    InvalidPointError,
    InvalidShareError,
    MalformedError,
    NotEnoughSharesError,
    ParameterError,
    SignerIndexError,
    ThresholdError,
)
from .keys import (
    FINGERPRINT_SIZE,
    KEY_SHARE_SIZE,
    MAX_SIGNERS,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SHARE_SIZE,
    SIGNATURE_SIZE,
    GroupKey,
    KeyShare,
    Signature,
    SignatureShare,
)
from .scheme import (
    aggregate_all,
    combine,
    combine_checked,
    deal,
    sign_share,
    verify,
    verify_all,
    verify_share,
)
from .storage import load_group_key, load_key_share, save_group_key, save_key_share

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "DEFAULT_BACKEND",
    "FINGERPRINT_SIZE",
    "KEY_SHARE_SIZE",
    "MAX_SIGNERS",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SHARE_SIZE",
    "SIGNATURE_SIZE",
    "DkgError",
    "DkgFailedError",
    "DkgKeyPair",
    "DkgMessageError",
    "DkgParticipant",
    "DkgPhaseError",
    "DkgResult",
    "DuplicateSignerError",
    "GroupKey",
    "GroupMismatchError",
    "InvalidPointError",
    "InvalidShareError",
    "KeyShare",
    "MalformedError",
    "NotEnoughSharesError",
    "ParameterError",
    "Signature",
    "SignatureShare",
    "SignerIndexError",
    "ThresholdError",
    "aggregate_all",
    "combine",
    "combine_checked",
    "deal",
    "get_backend",
    "load_group_key",
    "load_key_share",
    "save_group_key",
    "save_key_share",
    "sign_share",
    "verify",
    "verify_all",
    "verify_share",
]
