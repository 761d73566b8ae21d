"""Exact semantics: empty dimensions, rows that see no key, masking by selection, LSE, the oracle itself,
and agreement with torch SDPA and its different causal convention."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tileattn
from tileattn import reference

from conftest import ALL_DTYPES, CAPS, check_against_oracle, dtype_of, qkv, rel_err, run


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize(
    ("b", "hq", "hkv", "sq"), [(0, 4, 2, 5), (2, 0, 0, 5), (2, 0, 3, 5), (2, 4, 2, 0)]
)
def test_empty_dims(dtype, b, hq, hkv, sq):
    dt = dtype_of(dtype)
    q = np.zeros((b, hq, sq, 8), dt)
    k = np.zeros((b, hkv, 6, 8), dt)
    v = np.zeros((b, hkv, 6, 3), dt)
    out, lse = tileattn.attention(q, k, v, return_lse=True, causal=True)
    assert out.shape == (b, hq, sq, 3) and out.dtype == dt
    assert lse.shape == (b, hq, sq)
    t = (0, 2, 1, 3)
    out = tileattn.attention(q.transpose(t), k.transpose(t), v.transpose(t), layout="bshd")
    assert out.shape == (b, sq, hq, 3)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_no_keys(dtype, path):
    """Sk = 0: zeros (+0.0) and LSE -inf."""
    dt = dtype_of(dtype)
    q = np.ones((2, 4, 5, 8), dt)
    k = np.ones((2, 2, 0, 8), dt)
    v = np.ones((2, 2, 0, 3), dt)
    for causal in (False, True):
        out, lse = run(q, k, v, path, return_lse=True, causal=causal)
        assert out.shape == (2, 4, 5, 3)
        assert (out.astype(np.float64) == 0).all() and not np.signbit(out.astype(np.float64)).any()
        assert np.isneginf(lse).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_causal_rows_without_keys(rng, path, dtype):
    """Sq > Sk with bottom-right causal: the first Sq - Sk rows see no key: exactly +0.0, LSE -inf."""
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=40, sk=15, d=8, dtype=dtype)
    out, lse = check_against_oracle(q, k, v, path, causal=True)
    hidden = out[:, :, :25].astype(np.float64)
    assert (hidden == 0).all() and not np.signbit(hidden).any()
    assert np.isneginf(lse[:, :, :25]).all()
    assert np.isfinite(lse[:, :, 25:]).all()


def test_bottom_right_alignment(rng, path):
    """Query i sees keys j <= i + Sk - Sq: the last query sees every key, row i one more than row i-1."""
    q, k, v = qkv(rng, b=1, hq=1, sq=3, sk=10, d=4, dtype="float64")
    out = run(q, k, v, path, causal=True)
    for i in range(3):
        keys = slice(0, i + 10 - 3 + 1)
        expected = run(q[:, :, i : i + 1], k[:, :, keys], v[:, :, keys], path)
        np.testing.assert_allclose(out[:, :, i : i + 1], expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_invisible_non_finite_keys_do_not_leak(rng, path, dtype, bad):
    """Masking selects: NaN or inf stored in keys/values a row cannot see never reaches that row."""
    q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=70, sk=70, d=16, dtype=dtype)
    k, v = k.copy(), v.copy()
    k[:, :, 50] = bad  # visible to rows i >= 50 only
    v[:, :, 60] = bad  # visible to rows i >= 60 only
    out, lse = run(q, k, v, path, causal=True, return_lse=True)
    out64 = out.astype(np.float64)
    assert np.isfinite(out64[:, :, :50]).all()
    assert np.isfinite(lse[:, :, :50]).all()
    if bad is np.nan:  # a visible NaN key makes its rows NaN
        assert np.isnan(out64[:, :, 50:]).all()
    ref = reference.attention(q, k, v, causal=True)
    np.testing.assert_allclose(out64[:, :, :50], ref[:, :, :50], rtol=2e-2, atol=2e-2)


def test_nan_query_stays_in_its_row(rng, path):
    q, k, v = qkv(rng, b=1, hq=1, sq=20, sk=20, d=8)
    q = q.copy()
    q[0, 0, 7, 3] = np.nan
    out = run(q, k, v, path)
    assert np.isnan(out[0, 0, 7]).all()
    assert np.isfinite(np.delete(out[0, 0], 7, axis=0)).all()


def test_all_scores_minus_inf_is_an_empty_row(path):
    """A row whose every visible score is -inf behaves as a row that sees no key: +0.0 and -inf."""
    q = np.array([[[[1.0, 0.0]]]], np.float32)
    k = np.array([[[[-np.inf, 0.0], [-np.inf, 0.0]]]], np.float32)
    v = np.ones((1, 1, 2, 3), np.float32)
    out, lse = run(q, k, v, path, return_lse=True, scale=1.0)
    assert (out == 0).all() and not np.signbit(out).any()
    assert np.isneginf(lse).all()
    ref, ref_lse = reference.attention(q, k, v, return_lse=True, scale=1.0)
    assert (ref == 0).all() and np.isneginf(ref_lse).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lse_definition(rng, dtype):
    """lse = log(sum_j exp(scale * q . k_j)) in natural log, over visible keys only."""
    q, k, v = qkv(rng, b=1, hq=2, sq=6, sk=9, d=5, dtype=dtype)
    _, lse = tileattn.attention(q, k, v, causal=True, return_lse=True, scale=0.3)
    s = 0.3 * np.einsum("bhid,bhjd->bhij", q.astype(np.float64), k.astype(np.float64))
    for i in range(6):
        seen = s[:, :, i, : i + 9 - 6 + 1]
        expected = np.log(np.exp(seen).sum(-1))
        np.testing.assert_allclose(
            lse[:, :, i], expected, rtol=1e-5 if dtype == "float32" else 1e-12
        )


def test_lse_dtypes(rng):
    for dtype, lse_dtype in [
        ("float32", np.float32),
        ("float64", np.float64),
        ("float16", np.float32),
        ("bfloat16", np.float32),
    ]:
        q, k, v = qkv(rng, sq=4, d=8, dtype=dtype)
        out, lse = tileattn.attention(q, k, v, return_lse=True)
        assert out.dtype == q.dtype and lse.dtype == lse_dtype


def test_scale_zero_is_uniform_average(rng, path):
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=13, d=4, dtype="float64")
    out, lse = run(q, k, v, path, scale=0.0, return_lse=True)
    np.testing.assert_allclose(
        out, np.broadcast_to(v.mean(axis=2, keepdims=True), out.shape), rtol=1e-13
    )
    np.testing.assert_allclose(lse, math.log(13), rtol=1e-14)


def test_single_key_copies_value(rng, path):
    """Sk = 1: the output is the value row itself, exactly."""
    q, k, v = qkv(rng, b=2, hq=2, sq=9, sk=1, d=7, dtype="float32")
    out = run(q, k, v, path)
    assert np.array_equal(out, np.broadcast_to(v, out.shape))


def test_returns(rng):
    q, k, v = qkv(rng, sq=4, d=8)
    out = tileattn.attention(q, k, v)
    assert isinstance(out, np.ndarray)
    res = tileattn.attention(q, k, v, return_lse=True)
    assert isinstance(res, tuple) and len(res) == 2
    given = np.empty_like(out)
    assert tileattn.attention(q, k, v, out=given) is given
    o2, _ = tileattn.attention(q, k, v, out=given, return_lse=True)
    assert o2 is given


def test_oracle_matches_loops(rng):
    """The oracle itself against the definition, written as loops, on a small GQA causal case."""
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=5, sk=7, d=3, dv=2, dtype="float64")
    out, lse = reference.attention(q, k, v, causal=True, return_lse=True, scale=0.7)
    for b in range(2):
        for h in range(4):
            g = h // 2
            for i in range(5):
                js = [j for j in range(7) if j <= i + 7 - 5]
                s = np.array([0.7 * q[b, h, i] @ k[b, g, j] for j in js])
                p = np.exp(s - s.max())
                np.testing.assert_allclose(
                    out[b, h, i], (p[:, None] * v[b, g, js]).sum(0) / p.sum(), rtol=1e-12
                )
                np.testing.assert_allclose(lse[b, h, i], s.max() + np.log(p.sum()), rtol=1e-12)


def test_oracle_layouts_and_ranks(rng):
    q, k, v = qkv(rng, b=1, hq=1, sq=6, sk=6, d=4, dtype="float64")
    full = reference.attention(q, k, v, causal=True)
    assert np.array_equal(reference.attention(q[0, 0], k[0, 0], v[0, 0], causal=True), full[0, 0])
    t = (0, 2, 1, 3)
    assert np.array_equal(
        reference.attention(
            q.transpose(t), k.transpose(t), v.transpose(t), causal=True, layout="bshd"
        ),
        full.transpose(t),
    )


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed (pip install torch)")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("hq", "hkv"), [(8, 8), (8, 2)])
def test_matches_torch_sdpa(rng, causal, hq, hkv):
    """Same results as torch SDPA when Sq == Sk (where both causal conventions coincide)."""
    torch = _torch()
    q, k, v = qkv(rng, b=2, hq=hq, hkv=hkv, sq=77, sk=77, d=32, dtype="float32")
    ours = tileattn.attention(q, k, v, causal=causal)
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q),
        torch.from_numpy(k),
        torch.from_numpy(v),
        is_causal=causal,
        enable_gqa=hkv != hq,
    ).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_torch_causal_is_top_left(rng):
    """Documented difference: for Sq != Sk torch's is_causal aligns top-left (query i sees keys j <= i);
    tileattn (like FlashAttention) aligns bottom-right. A top-left mask equals bottom-right with the keys
    past Sq dropped when Sq < Sk."""
    torch = _torch()
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=12, d=8, dtype="float32")
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), is_causal=True
    ).numpy()
    ours_bottom_right = tileattn.attention(q, k, v, causal=True)
    assert not np.allclose(ours_bottom_right, theirs, atol=1e-3)
    ours_top_left = tileattn.attention(q, k[:, :, :5], v[:, :, :5], causal=True)
    np.testing.assert_allclose(ours_top_left, theirs, rtol=1e-4, atol=1e-5)


def test_caller_keeps_denormals(rng, path):
    """The kernels flush denormal results to zero while they run (MXCSR.FTZ) and restore the calling
    thread's setting: NumPy arithmetic after a call still produces denormals."""
    q, k, v = qkv(rng, b=1, hq=2, sq=33, sk=70, d=16, dtype="float32")
    run(q, k, v, path, causal=True)
    tiny = np.float32(1e-38) * np.float32(1e-3)
    assert tiny != 0 and tiny < np.finfo(np.float32).tiny


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_spanning_the_denormal_range(rng, path, dtype):
    """Scores that span more than the exponent range (probabilities and their products with the values
    below the smallest normal number, which the kernels flush) still match the oracle to the dtype's cap:
    what is flushed is below 1e-38 (1e-308) in magnitude. (Scores this large cost every method accuracy
    in proportion to their size, so the error rule against the naive method is not the measure here.)"""
    q, k, v = qkv(rng, b=1, hq=2, sq=40, sk=300, d=8, dtype=dtype)
    span = 400.0 if dtype == "float32" else 3000.0
    q = q * np.asarray(span / 8, dtype=q.dtype)  # scores of size ~span
    v = v * np.asarray(1e-3, dtype=v.dtype)
    for kwargs in ({}, {"alibi_slopes": np.array([0.3, 1.2])}):
        out, lse = run(q, k, v, path, return_lse=True, **kwargs)
        ref, ref_lse = reference.attention(q, k, v, return_lse=True, **kwargs)
        assert rel_err(out, ref) <= CAPS[dtype]
        np.testing.assert_allclose(lse, ref_lse, rtol=CAPS[dtype])
