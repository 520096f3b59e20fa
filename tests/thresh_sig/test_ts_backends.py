"""Both backends give byte-identical results; the py_ecc reference works end to end.

py_ecc is pure Python (~0.15 s per signature, ~0.4 s per verification), so this module covers a
few small cases only.
"""

from __future__ import annotations

import pytest
from py_ecc.bls import G2Basic

from tests.thresh_sig.ts_helpers import g1_outside_subgroup, g2_outside_subgroup
from thresh_sig import (
    BACKEND_ENV,
    GroupKey,
    InvalidPointError,
    InvalidShareError,
    ParameterError,
    Signature,
    SignatureShare,
    aggregate_all,
    combine,
    deal,
    get_backend,
    sign_share,
    verify,
    verify_all,
    verify_share,
)
from thresh_sig.field import lagrange_plan

MSG = b"cross-backend"
SEED = b"cross-backend seed"


@pytest.fixture(scope="module")
def both() -> dict[str, object]:
    gb, kb = deal(3, 4, seed=SEED, backend="blspy")
    gp, kp = deal(3, 4, seed=SEED, backend="py_ecc")
    return {"gb": gb, "kb": kb, "gp": gp, "kp": kp}


def test_deal_identical(both: dict) -> None:
    assert both["gp"].backend == "py_ecc" and both["gb"].backend == "blspy"
    assert bytes(both["gp"]) == bytes(both["gb"])
    assert [bytes(s) for s in both["kp"]] == [bytes(s) for s in both["kb"]]
    assert both["gp"].verification_keys == both["gb"].verification_keys
    assert both["gp"].aggregate_key == both["gb"].aggregate_key
    assert both["gp"].verify_key_share(both["kp"][1])


def test_shares_signatures_identical(both: dict) -> None:
    gb, gp = both["gb"], both["gp"]
    # Signers {1, 2, 4}: the interpolation needs the post-multiplication (q > 1), and the
    # aggregate below needs all four; this covers both MSM phases on py_ecc.
    assert lagrange_plan((1, 2, 4)).post != 1
    sp = [sign_share(both["kp"][i], MSG) for i in range(4)]
    sb = [sign_share(both["kb"][i], MSG) for i in range(4)]
    assert [bytes(s) for s in sp] == [bytes(s) for s in sb]
    subset = [0, 1, 3]
    sig_p = combine(gp, [sp[i] for i in subset], MSG)
    sig_b = combine(gb, [sb[i] for i in subset], MSG)
    assert bytes(sig_p) == bytes(sig_b)
    assert G2Basic.Verify(gp.public_key, MSG, bytes(sig_p))
    assert verify_share(gp, sp[2], MSG)
    agg_p = aggregate_all(gp, sp)
    assert bytes(agg_p) == bytes(aggregate_all(gb, sb))
    assert verify_all(gp, MSG, agg_p)
    # Mixed: shares made by one backend combine under a group on the other.
    assert bytes(combine(gb, [sp[i] for i in subset])) == bytes(sig_b)
    assert verify(gb, MSG, Signature.from_bytes(bytes(sig_p), backend="py_ecc"))


def test_pyecc_blame(both: dict) -> None:
    gp = both["gp"]
    good = [sign_share(both["kp"][i], MSG) for i in (0, 1)]
    bad = sign_share(both["kp"][2], MSG + b"!")
    with pytest.raises(InvalidShareError) as info:
        combine(gp, [*good, bad], MSG)
    assert info.value.invalid == (3,)


def test_pyecc_rejects_bad_points() -> None:
    with pytest.raises(InvalidPointError):
        Signature.from_bytes(g2_outside_subgroup(), backend="py_ecc")
    with pytest.raises(InvalidPointError):
        SignatureShare.from_parts(1, g2_outside_subgroup(), bytes(8), backend="py_ecc")
    with pytest.raises(InvalidPointError):
        GroupKey(1, 1, [g1_outside_subgroup()], backend="py_ecc")


def test_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "py_ecc")
    group, shares = deal(1, 2, seed=b"env")
    assert group.backend == "py_ecc" and shares[0].backend == "py_ecc"
    assert get_backend().name == "py_ecc"
    monkeypatch.setenv(BACKEND_ENV, "blspy")
    assert GroupKey.from_bytes(bytes(group)).backend == "blspy"
    assert get_backend("PY-ECC").name == "py_ecc"  # aliases, case-insensitive
    monkeypatch.setenv(BACKEND_ENV, "nonsense")
    with pytest.raises(ParameterError):
        deal(1, 2)
    monkeypatch.delenv(BACKEND_ENV)
    assert get_backend().name == "blspy"
