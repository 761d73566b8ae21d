"""merge_attention, attention_weights and attention_received against the oracle and against attention()."""

from __future__ import annotations

import numpy as np
import pytest

import tileattn
from tileattn import reference

from conftest import ALL_DTYPES, qkv


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_merge_equals_attention_over_the_union(rng, dtype, layout):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=30, sk=200, d=16, dtype=dtype, layout=layout)
    axis = 2 if layout == "bhsd" else 1
    cuts = [0, 17, 17, 90, 200]  # a split of the keys, with an empty part
    outs, lses = [], []
    for a, b in zip(cuts, cuts[1:]):
        sl = [slice(None)] * 4
        sl[axis] = slice(a, b)
        o, l = tileattn.attention(q, k[tuple(sl)], v[tuple(sl)], layout=layout, return_lse=True)
        outs.append(o)
        lses.append(l)
    out, lse = tileattn.merge_attention(outs, lses, layout=layout)
    ref, ref_lse = reference.attention(q, k, v, layout=layout, return_lse=True)
    assert out.dtype == q.dtype and out.shape == ref.shape
    tol = 1e-12 if dtype == "float64" else 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(out.astype(np.float64), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(lse, ref_lse, rtol=tol, atol=tol)
    ro, _rl = reference.merge_attention(outs, lses, layout=layout)
    np.testing.assert_allclose(out.astype(np.float64), ro, rtol=tol, atol=tol)


def test_merge_empty_partials(rng):
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=8, d=4, dtype="float64")
    o, l = tileattn.attention(q, k, v, return_lse=True)
    garbage = np.full_like(o, np.nan)  # an empty partial's output is ignored, whatever it holds
    empty = np.full_like(l, -np.inf)
    out, lse = tileattn.merge_attention([garbage, o, garbage], [empty, l, empty])
    np.testing.assert_array_equal(out, o)
    np.testing.assert_array_equal(lse, l)
    out, lse = tileattn.merge_attention([garbage], [empty])
    assert (out == 0).all() and np.isneginf(lse).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_merge_nan_lse_is_not_hidden(rng, bad):
    """A NaN or +inf LSE (a partial whose scores held NaN or +inf) makes the merged rows NaN, as in the
    oracle, never 0."""
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=8, d=4, dtype="float32")
    o, l = tileattn.attention(q, k, v, return_lse=True)
    l_bad = l.copy()
    l_bad[0, 1, 2] = bad
    out, lse = tileattn.merge_attention([o, 2 * o], [l_bad, l])
    ref, ref_lse = reference.merge_attention([o, 2 * o], [l_bad, l])
    assert np.isnan(out[0, 1, 2]).all() and np.isnan(ref[0, 1, 2]).all()
    np.testing.assert_allclose(out, ref, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-6, equal_nan=True)


def test_merge_ranks(rng):
    q, k, v = qkv(rng, b=1, hq=1, sq=6, sk=10, d=4, dtype="float64", rank=2)
    parts = [tileattn.attention(q, k[a:b], v[a:b], return_lse=True) for a, b in [(0, 4), (4, 10)]]
    out, lse = tileattn.merge_attention([p[0] for p in parts], [p[1] for p in parts])
    o, l = tileattn.attention(q, k, v, return_lse=True)
    np.testing.assert_allclose(out, o, rtol=1e-13)
    np.testing.assert_allclose(lse, l, rtol=1e-13)


def test_merge_errors(rng):
    o = np.zeros((1, 2, 3, 4), np.float32)
    l = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="at least one"):
        tileattn.merge_attention([], [])
    with pytest.raises(ValueError, match="same length"):
        tileattn.merge_attention([o, o], [l])
    with pytest.raises(ValueError, match=r"lses\[0\] must have shape \(1, 2, 3\)"):
        tileattn.merge_attention([o], [l[0]])
    with pytest.raises(TypeError, match=r"outs\[1\] has dtype float64"):
        tileattn.merge_attention([o, o.astype(np.float64)], [l, l])


OPTION_SETS = [
    {},
    dict(causal=True),
    dict(causal="top_left", window=(4, 0)),
    dict(bias="bias", mask="mask", alibi_slopes="alibi", softcap=2.0),
    dict(q_lengths=np.array([7, 12]), kv_lengths=np.array([20, 3]), causal=True),
]


def concrete(opts, rng, hq, sq, sk):
    out = dict(opts)
    if out.get("bias") == "bias":
        out["bias"] = rng.standard_normal((sq, sk))
    if out.get("mask") == "mask":
        out["mask"] = rng.random((sq, sk)) > 0.3
    if isinstance(out.get("alibi_slopes"), str):
        out["alibi_slopes"] = rng.random(hq)
    return out


@pytest.mark.parametrize(
    "opts", OPTION_SETS, ids=["plain", "causal", "window", "elementwise", "lengths"]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_and_received(rng, opts, dtype):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=12, sk=20, d=8, dtype=dtype)
    kw = concrete(opts, rng, 4, 12, 20)
    w = tileattn.attention_weights(q, k, **kw)
    ref = reference.attention_weights(q, k, **kw)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert w.shape == (2, 4, 12, 20) and w.dtype == np.dtype(dtype)
    np.testing.assert_allclose(w, ref, rtol=tol, atol=tol)
    sums = w.astype(np.float64).sum(-1)
    assert np.allclose(sums[sums > 0], 1.0, atol=10 * tol)  # each row that sees a key sums to 1
    out = tileattn.attention(q, k, v, **kw)  # the weights reproduce the output
    np.testing.assert_allclose(
        w.astype(np.float64) @ np.repeat(v, 2, axis=1), out, rtol=100 * tol, atol=100 * tol
    )
    sel = np.array([11, 0, 5, 5])
    np.testing.assert_array_equal(tileattn.attention_weights(q, k, rows=sel, **kw), w[:, :, sel])
    received = tileattn.attention_received(q, k, **kw)
    np.testing.assert_allclose(
        received, w.astype(np.float64).sum(axis=2), rtol=10 * tol, atol=10 * tol
    )
    np.testing.assert_allclose(
        received, reference.attention_received(q, k, **kw), rtol=10 * tol, atol=10 * tol
    )


def test_weights_chunked_over_rows(rng, monkeypatch):
    """Rows are processed a block at a time; the result does not depend on the block size."""
    from tileattn import _analysis

    q, k, _ = qkv(rng, b=1, hq=2, sq=50, sk=30, d=8, dtype="float64")
    full = tileattn.attention_weights(q, k, causal=True)
    monkeypatch.setattr(_analysis, "_CHUNK_BYTES", 2 * 30 * 8 * 3)  # three rows at a time
    np.testing.assert_array_equal(tileattn.attention_weights(q, k, causal=True), full)
    np.testing.assert_allclose(
        tileattn.attention_received(q, k, causal=True), full.sum(axis=2), rtol=1e-13
    )


def test_weights_never_expand_broadcast_masks(rng, monkeypatch):
    """A broadcast (Sq, Sk) bias and mask are read a block of rows at a time and never expanded over
    batch and heads: (B, Hq, Sq, Sk) would be 256 MiB as float32 here, 512 MiB for this float64 bias."""
    import tracemalloc

    from tileattn import _analysis

    monkeypatch.setattr(_analysis, "_CHUNK_BYTES", 2 << 20)  # 8 rows at a time
    b, h, s = 4, 16, 1024
    q, k, _ = qkv(rng, b=b, hq=h, sq=s, sk=s, d=8, dtype="float32")
    bias, mask = rng.standard_normal((s, s)), rng.random((s, s)) > 0.3
    tracemalloc.start()
    try:
        w = tileattn.attention_weights(q, k, rows=[0, 7], bias=bias, mask=mask)
        received = tileattn.attention_received(q, k, bias=bias, mask=mask)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    ref = reference.attention_weights(q[:1, :2], k[:1, :2], rows=[0, 7], bias=bias, mask=mask)
    np.testing.assert_allclose(w[:1, :2], ref, rtol=1e-5, atol=1e-6)
    assert received.shape == (b, h, s)


def test_weights_at_the_dtype_limits(rng):
    """Finite biases of any size are ordinary scores, as in attention(): rows all at finfo.min have
    uniform weights; a float64 bias beyond float32's range saturates on float32 inputs."""
    q, k, v = qkv(rng, b=1, hq=2, sq=4, sk=6, d=8, dtype="float32")
    for bias in (np.full((4, 6), np.finfo(np.float32).min, np.float32), np.full((4, 6), -1e300)):
        bias[1, 2] = 0
        bias[2, ::2] = -np.inf
        w = tileattn.attention_weights(q, k, bias=bias)
        expect = np.broadcast_to(np.full(6, 1 / 6), (1, 2, 4, 6)).copy()
        expect[:, :, 1] = np.eye(6)[2]
        expect[:, :, 2] = np.tile([0, 1 / 3], 3)
        np.testing.assert_allclose(w, expect, rtol=1e-6, atol=1e-7)
        out = tileattn.attention(q, k, v, bias=bias)
        np.testing.assert_allclose(w @ v, out, rtol=1e-5, atol=1e-6)


def test_weights_ranks_and_errors(rng):
    q, k, _ = qkv(rng, b=1, hq=1, sq=6, sk=9, d=4, rank=2)
    assert tileattn.attention_weights(q, k).shape == (6, 9)
    assert tileattn.attention_weights(q, k, rows=[]).shape == (0, 9)
    assert tileattn.attention_received(q, k).shape == (9,)
    with pytest.raises(ValueError, match=r"rows must lie in \[-6, 6\)"):
        tileattn.attention_weights(q, k, rows=[6])
    with pytest.raises(TypeError, match="rows must be an integer array"):
        tileattn.attention_weights(q, k, rows=[0.5])
