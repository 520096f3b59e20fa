"""Exception hierarchy of :mod:`thresh_sig`.

Every failure caused by bad *input* (bytes from the network or a file, parameters, share sets)
raises a subclass of :class:`ThresholdError`, so a caller that handles untrusted data can catch
one type and never sees a crash from deep inside a curve library. Programming errors of the
"wrong Python type" kind (passing a ``str`` where ``bytes`` are expected) raise ``TypeError``.

The subclasses that describe malformed values also derive from ``ValueError`` because that is
what they are; catching ``ValueError`` keeps working for callers that do not know this package.

Hierarchy::

    ThresholdError
    ├── ParameterError          (ValueError)  t < 1, t > n, n too large, unknown backend, bad seed
    ├── MalformedError          (ValueError)  wrong length, bad magic/version/flags, scalar >= r
    │   └── InvalidPointError                 not on the curve, not in the subgroup, identity
    ├── SignerIndexError        (ValueError)  signer index 0 or > n
    ├── DuplicateSignerError    (ValueError)  the same signer appears twice in a share set
    ├── NotEnoughSharesError    (ValueError)  fewer than t shares (or not all n for aggregate_all)
    ├── GroupMismatchError      (ValueError)  a share that belongs to another group
    ├── InvalidShareError                     combine(message=...) found < t valid shares;
    │                                         ``.invalid`` names the bad signers
    └── DkgError                              distributed key generation (thresh_sig.dkg)
        ├── DkgMessageError     (ValueError)  a well-formed message of another session, t or n,
        │                                     or one whose sender is not who the channel says
        ├── DkgPhaseError                     a driver call out of order (end_of_dealing twice)
        └── DkgFailedError                    fewer qualified dealers than the run requires
"""

from __future__ import annotations

__all__ = [
    "DkgError",
    "DkgFailedError",
    "DkgMessageError",
    "DkgPhaseError",
    "DuplicateSignerError",
    "GroupMismatchError",
    "InvalidPointError",
    "InvalidShareError",
    "MalformedError",
    "NotEnoughSharesError",
    "ParameterError",
    "SignerIndexError",
    "ThresholdError",
]


class ThresholdError(Exception):
    """Base class of every error raised by thresh_sig for bad input."""


class ParameterError(ThresholdError, ValueError):
    """Invalid scheme parameters: ``t < 1``, ``t > n``, ``n`` too large, unknown backend, ..."""


class MalformedError(ThresholdError, ValueError):
    """Bytes that cannot be decoded: wrong length, bad magic/version, bad flag bits,
    a coordinate or scalar outside its field."""


class InvalidPointError(MalformedError):
    """A well-formed encoding of something that is not a usable group element: the x
    coordinate has no point on the curve, the point is outside the prime-order subgroup, or it
    is the identity where the identity is never legitimate."""


class SignerIndexError(ThresholdError, ValueError):
    """A signer index outside ``1..n`` (index 0 would be the group secret itself)."""


class DuplicateSignerError(ThresholdError, ValueError):
    """A share set names the same signer more than once.

    Attributes:
        duplicates: the signer indices that appear more than once, ascending.
    """

    def __init__(self, duplicates: tuple[int, ...]) -> None:
        self.duplicates = duplicates
        super().__init__(f"duplicate signer(s) {list(duplicates)}")


class NotEnoughSharesError(ThresholdError, ValueError):
    """Fewer shares than needed: ``have < need`` distinct signers.

    Attributes:
        have: how many distinct signers were given.
        need: how many are needed (``t`` for combine, ``n`` for aggregate_all).
    """

    def __init__(self, have: int, need: int, what: str = "combine") -> None:
        self.have = have
        self.need = need
        super().__init__(f"{what} needs {need} distinct signers, got {have}")


class GroupMismatchError(ThresholdError, ValueError):
    """A key share or signature share carries the fingerprint of a different group key.

    The fingerprint is an 8-byte hash of the group key; it catches configuration mistakes
    (mixing files of two deals) cheaply and before any curve arithmetic. It is *not* a security
    mechanism: a malicious signer can copy the right fingerprint, and its share is then caught by
    signature verification instead.
    """


class InvalidShareError(ThresholdError):
    """``combine(group, shares, message)`` could not produce a valid signature because fewer
    than ``t`` of the given shares verify.

    Attributes:
        invalid: the signer indices whose shares failed verification, ascending.
        valid: how many shares verified.
        need: the threshold ``t``.
    """

    def __init__(self, invalid: tuple[int, ...], valid: int, need: int) -> None:
        self.invalid = invalid
        self.valid = valid
        self.need = need
        super().__init__(
            f"invalid signature share(s) from signer(s) {list(invalid)}; "
            f"{valid} valid share(s) left, {need} needed"
        )


class DkgError(ThresholdError):
    """Base class of the distributed key generation's own errors (see :mod:`thresh_sig.dkg`).

    Undecodable DKG messages raise :class:`MalformedError` / :class:`InvalidPointError` like
    every other undecodable input of this package.
    """


class DkgMessageError(DkgError, ValueError):
    """A well-formed DKG message that this participant must not accept: it belongs to another
    session (other participants, t, n or context), or its sender field names someone other than
    the participant the authenticated channel delivered it from."""


class DkgPhaseError(DkgError):
    """A driver call out of order: dealing twice, ending a phase twice, or asking for the result
    before the last phase ended."""


class DkgFailedError(DkgError):
    """The run ended with fewer qualified dealers than required (``min_qualified``): too few
    contributions to be sure that one came from an honest dealer, so no key is produced.

    Attributes:
        qualified: the dealers that qualified, ascending.
        disqualified: ``{dealer: reason}`` for the others.
    """

    def __init__(self, qualified: tuple[int, ...], disqualified: dict[int, str], need: int) -> None:
        self.qualified = qualified
        self.disqualified = dict(disqualified)
        self.need = need
        super().__init__(
            f"only {len(qualified)} dealer(s) qualified ({list(qualified)}), {need} required; "
            f"disqualified: {self.disqualified}"
        )
