"""Any strides: the result on a view equals the result on a contiguous copy bit for bit, inputs are never
modified, and copies happen only where the core cannot read the memory in place."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_DTYPES, BF16, check_against_oracle, dtype_of, qkv, run


def contiguous_result(q, k, v, **kw):
    return run(
        np.ascontiguousarray(q),
        np.ascontiguousarray(k),
        np.ascontiguousarray(v),
        return_lse=True,
        **kw,
    )


def assert_same_as_contiguous(q, k, v, path=("auto", "auto"), **kw):
    before = [x.copy() for x in (q, k, v)]
    out, lse = run(q, k, v, path, return_lse=True, **kw)
    ref_out, ref_lse = contiguous_result(q, k, v, path=path, **kw)
    assert out.dtype == ref_out.dtype and out.shape == ref_out.shape
    assert np.array_equal(out, ref_out, equal_nan=True)
    assert np.array_equal(lse, ref_lse, equal_nan=True)
    for x, x0 in zip((q, k, v), before):
        assert np.array_equal(x, x0, equal_nan=True)  # inputs untouched
    return out


def big(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype_of(dtype))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_transposed_views(rng, path, dtype):
    # Arrays stored as (B, D, S, H) and viewed as (B, H, S, D): every stride is non-unit.
    q = big(rng, (2, 24, 40, 4), dtype).transpose(0, 3, 2, 1)
    k = big(rng, (2, 24, 57, 2), dtype).transpose(0, 3, 2, 1)
    v = big(rng, (2, 16, 57, 2), dtype).transpose(0, 3, 2, 1)
    assert_same_as_contiguous(q, k, v, path, causal=True)
    check_against_oracle(q, k, v, path, causal=True)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_step_slices_and_negative_strides(rng, path, dtype):
    q = big(rng, (3, 8, 70, 40), dtype)[::2, ::-2, 3::2, ::-2]
    k = big(rng, (3, 4, 90, 40), dtype)[::2, 1::2, ::-1, 1::2]
    v = big(rng, (3, 4, 90, 25), dtype)[::2, 1::2, ::-1, :]
    assert q.shape[1] == 4 and k.shape[1] == 2
    assert_same_as_contiguous(q, k, v, path, causal=True)
    check_against_oracle(q, k, v, path, causal=True)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_broadcast_kv(rng, path, dtype):
    """Zero strides (np.broadcast_to) are read in place, never copied."""
    q = big(rng, (3, 4, 33, 16), dtype)
    k = np.broadcast_to(big(rng, (1, 1, 50, 16), dtype), (3, 2, 50, 16))
    v = np.broadcast_to(big(rng, (1, 2, 1, 16), dtype), (3, 2, 50, 16))
    assert_same_as_contiguous(q, k, v, path)
    check_against_oracle(q, k, v, path, causal=True)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_fortran_order(rng, path, dtype):
    q, k, v = (
        np.asfortranarray(x) for x in qkv(rng, b=2, hq=4, hkv=2, sq=31, sk=45, d=20, dtype=dtype)
    )
    assert_same_as_contiguous(q, k, v, path, causal=True)


def test_read_only_inputs(rng, path):
    q, k, v = qkv(rng, b=1, hq=2, sq=20, sk=30, d=8)
    for x in (q, k, v):
        x.flags.writeable = False
    assert_same_as_contiguous(q, k, v, path, causal=True)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_unaligned_data(rng, path, dtype):
    """Data pointers at odd byte addresses are read in place (and out written in place)."""
    dt = np.dtype(dtype)
    shape = (1, 2, 37, 13)

    def unaligned(x):
        buf = np.empty(x.nbytes + 1, np.uint8)
        y = np.frombuffer(buf.data, dtype=dt, count=x.size, offset=1).reshape(x.shape)
        y[...] = x
        return y

    q, k, v = (unaligned(x) for x in qkv(rng, b=1, hq=2, sq=37, sk=37, d=13, dtype=dtype))
    assert not q.flags.aligned
    out = unaligned(np.zeros(shape, dt))
    res = run(q, k, v, path, causal=True, out=out)
    assert res is out
    ref = run(q.copy(), k.copy(), v.copy(), path, causal=True)
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [32, 64, 128])
@pytest.mark.parametrize("sq", [40, 300])
def test_rows_at_every_offset_within_a_cache_line(rng, path, dtype, d, sq):
    """V rows whose vectors are whole but not aligned to the vector size are copied per tile by items of
    many rows (sq 300), read in place by items of few (sq 40: at most kVInPlaceRows), aligned ones read in
    place: the same bits either way, and against the oracle."""
    dt = np.dtype(dtype)
    q, k, v = qkv(rng, b=2, hq=2, sq=sq, sk=300, d=d, dtype=dtype)

    def at_offset(x, offset):
        buf = np.empty(x.nbytes + 128, np.uint8)
        start = (-buf.ctypes.data) % 64 + offset
        y = np.frombuffer(buf.data, dtype=dt, count=x.size, offset=start).reshape(x.shape)
        y[...] = x
        return y

    base = check_against_oracle(
        at_offset(q, 0), at_offset(k, 0), at_offset(v, 0), path, causal=True
    )
    for offset in (dt.itemsize, 16, 32, 48):
        out = run(
            at_offset(q, offset),
            at_offset(k, offset),
            at_offset(v, offset),
            path,
            causal=True,
            return_lse=True,
        )
        assert np.array_equal(out[0], base[0]) and np.array_equal(out[1], base[1]), (
            f"offset {offset}"
        )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [16, 64, 128])
@pytest.mark.parametrize("opts", ["plain", "causal", "window", "kv_lengths"])
@pytest.mark.parametrize("group", [1, 4, 6])
def test_one_row_decode_in_place_and_staged(rng, path, dtype, d, opts, group):
    """One query row per query head (decoding one token) with up to a register block's heads per kv head
    (MHA; GQA groups of 4, and of 6: a whole block on AVX-512 and AVX2, more than one on the baseline,
    which takes the general path) whose K and V rows are read in place takes its own loop over the KV
    tiles (decode_rows); the same K and V as views with a step along D take the general path (rows
    staged, V packed). The same bits either way (4500 keys: two chunks, merged), and against the
    oracle."""
    b, hkv, sk = 2, 2, 4500
    q, k, v = qkv(rng, b=b, hq=hkv * group, hkv=hkv, sq=1, sk=sk, d=d, dtype=dtype)
    kw = {
        "plain": {},
        "causal": {"causal": True},
        "window": {"window": (700, None)},
        "kv_lengths": {"kv_lengths": np.array([1300, sk])},
    }[opts]
    base = check_against_oracle(q, k, v, path, **kw)

    def stepped(x):
        y = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), x.dtype)
        y[..., ::2] = x
        return y[..., ::2]

    out = run(q, stepped(k), stepped(v), path, return_lse=True, **kw)
    assert np.array_equal(out[0], base[0]) and np.array_equal(out[1], base[1])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_non_native_byte_order(rng, dtype):
    q, k, v = qkv(rng, b=1, hq=2, sq=20, sk=25, d=12, dtype=dtype)
    swapped = [x.astype(x.dtype.newbyteorder(">" if np.little_endian else "<")) for x in (q, k, v)]
    out = run(*swapped, causal=True)
    assert out.dtype == np.dtype(dtype)
    assert np.array_equal(out, run(q, k, v, causal=True))


def test_structured_field_views_are_copied(rng):
    """Byte strides that are not a multiple of the item size cannot be read in place: copied."""
    rec = np.zeros((1, 2, 20, 8), dtype=[("pad", "u1"), ("x", "<f4")])
    rec["x"] = rng.standard_normal((1, 2, 20, 8))
    q = rec["x"]
    assert q.strides[-1] % 4 != 0
    out = run(q, q, q, causal=True)
    assert np.array_equal(out, run(q.copy(), q.copy(), q.copy(), causal=True))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_out_with_strides(rng, dtype):
    q, k, v = qkv(rng, b=2, hq=4, hkv=1, sq=19, sk=23, d=8, dv=6, dtype=dtype)
    expected = run(q, k, v, causal=True)
    store = np.full((2, 6, 19, 4, 2), 7, dtype=q.dtype)  # out = a strided, transposed view
    out = store[..., 0].transpose(0, 3, 2, 1)[:, :, :, ::-1][:, :, :, ::-1]
    assert out.shape == expected.shape and not out.flags.c_contiguous
    res = run(q, k, v, causal=True, out=out)
    assert res is out
    assert np.array_equal(out, expected)
    assert (store[..., 1] == 7).all()  # nothing written outside the view


def test_out_overlapping_inputs(rng, path):
    """out may share memory with q, k or v (numpy semantics: as if computed into a fresh array)."""
    q, k, v = qkv(rng, b=1, hq=2, sq=30, sk=30, d=16)
    expected = run(q, k, v, path, causal=True)
    q2 = q.copy()
    assert run(q2, k, v, path, causal=True, out=q2) is q2
    assert np.array_equal(q2, expected)
    k2 = k.copy()
    run(q, k2, v, path, causal=True, out=k2)
    assert np.array_equal(k2, expected)


def test_out_non_native_byte_order(rng):
    q, k, v = qkv(rng, b=1, hq=2, sq=10, sk=12, d=8)
    out = np.zeros(q.shape, dtype=">f4" if np.little_endian else "<f4")
    assert run(q, k, v, out=out) is out
    assert np.array_equal(out, run(q, k, v))


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
def test_bfloat16_views(rng, path):
    q = big(rng, (2, 12, 40, 4), "bfloat16").transpose(0, 3, 2, 1)[:, ::2]
    k = big(rng, (2, 12, 40, 2), "bfloat16").transpose(0, 3, 2, 1)[:, :, ::-1]
    assert_same_as_contiguous(q, k, k, path, causal=True)
