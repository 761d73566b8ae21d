"""attention_varlen: packed sequences against the oracle and against attention() on each sequence; every
option per sequence; zero-length sequences; the offsets' checks happen before any memory is read."""

from __future__ import annotations

import numpy as np
import pytest

import tileattn
from tileattn import reference
from tileattn._api import varlen_impl

from conftest import (
    ALL_DTYPES,
    BF16,
    assert_close,
    assert_lse_close,
    dtype_of,
    oracle,
    unit_roundoff,
)


def packed(rng, lens_q, lens_k, hq=4, hkv=2, d=16, dv=None, dtype="float32"):
    dt = dtype_of(dtype)
    dv = d if dv is None else dv
    cq = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    ck = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int64)
    q = rng.standard_normal((cq[-1], hq, d)).astype(dt)
    k = rng.standard_normal((ck[-1], hkv, d)).astype(dt)
    v = rng.standard_normal((ck[-1], hkv, dv)).astype(dt)
    return q, k, v, cq, ck


VARIANTS = {
    "plain": {},
    "causal": dict(causal=True),
    "top_left": dict(causal="top_left"),
    "window": dict(window=(5, 2)),
    "alibi": "alibi",
    "softcap": dict(softcap=2.5, causal=True),
}


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_against_oracle(rng, path, dtype, name):
    lens_q, lens_k = [5, 0, 40, 1, 17, 64], [9, 3, 40, 200, 0, 70]
    q, k, v, cq, ck = packed(rng, lens_q, lens_k, dtype=dtype)
    kw = (
        dict(VARIANTS[name])
        if name != "alibi"
        else dict(alibi_slopes=rng.random((6, 4)), causal=True)
    )
    out, lse = varlen_impl(q, k, v, cq, ck, return_lse=True, path=path[0], isa=path[1], **kw)
    ref_f64, _ = reference.attention_varlen(q, k, v, cq, ck, return_lse=True, **kw)
    assert out.shape == (q.shape[0], 4, 16) and lse.shape == (4, q.shape[0])
    assert out.dtype == q.dtype
    # Per sequence: the oracle (extended precision for float64) and the naive same-precision yardstick.
    ref = np.zeros(out.shape, dtype=np.longdouble)
    ref_lse = np.full(lse.shape, -np.inf, dtype=np.longdouble)
    naive = np.zeros(out.shape, dtype=q.dtype)
    for b in range(len(lens_q)):
        rows, keys = slice(cq[b], cq[b + 1]), slice(ck[b], ck[b + 1])
        kb = dict(kw)
        if "alibi_slopes" in kb:
            kb["alibi_slopes"] = kb["alibi_slopes"][b]
        ref[rows], ref_lse[:, rows] = oracle(
            q[rows], k[keys], v[keys], layout="bshd", return_lse=True, **kb
        )
        naive[rows] = reference.naive_attention(q[rows], k[keys], v[keys], layout="bshd", **kb)
    np.testing.assert_allclose(
        ref.astype(np.float64), ref_f64, rtol=1e-12, atol=1e-12
    )  # the two oracles agree
    assert_close(out, ref, naive, q.dtype)
    assert_lse_close(lse, ref_lse, q.dtype)


def test_matches_attention_per_sequence(rng, path):
    lens_q, lens_k = [7, 30, 2], [7, 31, 50]
    q, k, v, cq, ck = packed(rng, lens_q, lens_k, dtype="float64")
    out, lse = varlen_impl(q, k, v, cq, ck, causal=True, return_lse=True, path=path[0], isa=path[1])
    for b in range(3):
        rows, keys = slice(cq[b], cq[b + 1]), slice(ck[b], ck[b + 1])
        o, l = tileattn.attention(
            q[rows], k[keys], v[keys], causal=True, layout="bshd", return_lse=True
        )
        np.testing.assert_allclose(out[rows], o, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(lse[:, rows], l, rtol=1e-13)


def test_zero_length_sequences(rng):
    q, k, v, cq, ck = packed(rng, [0, 3, 0], [4, 0, 0])
    out, lse = tileattn.attention_varlen(q, k, v, cq, ck, return_lse=True)
    assert out.shape == (3, 4, 16)
    assert (out == 0).all() and np.isneginf(lse).all()  # the only rows see no key
    q, k, v, cq, ck = packed(rng, [0, 0], [0, 0])
    out, lse = tileattn.attention_varlen(q, k, v, cq, ck, return_lse=True)
    assert out.shape == (0, 4, 16) and lse.shape == (4, 0)


def test_thread_determinism(rng):
    q, k, v, cq, ck = packed(rng, [300, 1, 129], [400, 3000, 129], hq=8, hkv=2, d=32)
    base = tileattn.attention_varlen(q, k, v, cq, ck, causal=True, num_threads=1)
    for t in (2, 5):
        assert np.array_equal(
            tileattn.attention_varlen(q, k, v, cq, ck, causal=True, num_threads=t), base
        )


def test_out_argument(rng):
    q, k, v, cq, ck = packed(rng, [5, 6], [7, 8])
    out = np.empty((11, 4, 16), np.float32)
    assert tileattn.attention_varlen(q, k, v, cq, ck, out=out) is out
    np.testing.assert_array_equal(out, tileattn.attention_varlen(q, k, v, cq, ck))


@pytest.mark.parametrize(
    ("cq", "ck", "error", "message"),
    [
        (
            np.array([0.0, 5.0]),
            np.array([0, 7]),
            TypeError,
            "cu_seqlens_q must be an int32 or int64 array",
        ),
        (
            np.array([0, 5]),
            np.array([True, False]),
            TypeError,
            "cu_seqlens_k must be an int32 or int64",
        ),
        (np.array([1, 5]), np.array([0, 7]), ValueError, "cu_seqlens_q must start at 0"),
        (
            np.array([0, 6, 5]),
            np.array([0, 3, 7]),
            ValueError,
            "cu_seqlens_q must be non-decreasing",
        ),
        (
            np.array([0, 4]),
            np.array([0, 7]),
            ValueError,
            "cu_seqlens_q must end at the total length 5",
        ),
        (
            np.array([0, 5]),
            np.array([0, 7 + 10**12]),
            ValueError,
            "cu_seqlens_k must end at the total length 7",
        ),
        (np.array([0, 5]), np.array([0, 3, 7]), ValueError, "the same shape"),
        (
            np.array([[0, 5]]),
            np.array([0, 7]),
            ValueError,
            r"cu_seqlens_q must have shape \(B \+ 1,\)",
        ),
    ],
)
def test_offset_errors(rng, cq, ck, error, message):
    q = rng.standard_normal((5, 2, 8)).astype(np.float32)
    k = rng.standard_normal((7, 2, 8)).astype(np.float32)
    with pytest.raises(error, match=message):
        tileattn.attention_varlen(q, k, k, cq, ck)


def test_shape_errors(rng):
    q, k, v, cq, ck = packed(rng, [3], [4])
    with pytest.raises(ValueError, match=r"q must have shape \(total_q, Hq, D\)"):
        tileattn.attention_varlen(q[None], k, v, cq, ck)
    with pytest.raises(ValueError, match=r"k must have shape \(total_k, Hkv, D\)"):
        tileattn.attention_varlen(q, k[..., :8], v, cq, ck)
    with pytest.raises(ValueError, match=r"must divide the number of q heads"):
        tileattn.attention_varlen(q, k[:, :1].repeat(3, axis=1), v[:, :1].repeat(3, axis=1), cq, ck)


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
def test_bfloat16_lse_dtype(rng):
    q, k, v, cq, ck = packed(rng, [3, 4], [5, 6], dtype="bfloat16")
    out, lse = tileattn.attention_varlen(q, k, v, cq, ck, return_lse=True)
    assert out.dtype == BF16 and lse.dtype == np.float32
    assert unit_roundoff(np.float32) > 0
