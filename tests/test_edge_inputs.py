"""Edge inputs found by a review of the public API: bounds past int64, `out` sharing memory with an option
array, numbers beyond the float range, flags that are not bools, environment variables and command-line
values the library cannot use. Each must give the oracle's result or a clear error naming the argument."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tileattn
from tileattn import compat, reference

from conftest import BF16, check_against_oracle, qkv


def assert_close(got, ref):
    """Float32 results of a few terms against the float64 oracle."""
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-6)


@pytest.fixture
def small(rng):
    return qkv(rng, b=2, hq=4, hkv=2, sq=6, sk=9, d=8)


# ---- window bounds of any size ----


@pytest.mark.parametrize("big", [2**62, 2**63 - 1, 2**63, 2**64 + 5, 10**30, np.uint64(2**63)])
@pytest.mark.parametrize("side", [0, 1])
def test_huge_window_bound_is_unbounded(small, big, side):
    """A bound past every key (even past int64) is the unbounded side: no overflow, no pybind error."""
    q, k, v = small
    window = (big, 0) if side == 0 else (0, big)
    unbounded = (-1, 0) if side == 0 else (0, -1)
    for top_left in (False, True):
        causal = "top_left" if top_left else False
        got = tileattn.attention(q, k, v, window=window, causal=causal)
        want = tileattn.attention(q, k, v, window=unbounded, causal=causal)
        np.testing.assert_array_equal(got, want)
        check_against_oracle(q, k, v, window=window, causal=causal)


def test_huge_window_bound_everywhere(small):
    q, k, v = small
    big = 2**63 - 1
    want = tileattn.attention(q, k, v)
    np.testing.assert_array_equal(tileattn.attention(q, k, v, window=(big, big)), want)
    w = tileattn.attention_weights(q, k, window=(big, 2**70))
    np.testing.assert_array_equal(w, tileattn.attention_weights(q, k))
    r = tileattn.attention_received(q, k, window=(2**70, big))
    np.testing.assert_array_equal(r, tileattn.attention_received(q, k))
    qb, kb, vb = (np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in small)
    np.testing.assert_array_equal(
        compat.flash_attn_func(qb, kb, vb, window_size=(-1, big)),
        compat.flash_attn_func(qb, kb, vb),
    )
    cu_q = np.array([0, 6, 12])
    cu_k = np.array([0, 9, 18])
    pq, pk, pv = (x.reshape(-1, *x.shape[2:]) for x in (qb, kb, vb))
    np.testing.assert_array_equal(
        tileattn.attention_varlen(pq, pk, pv, cu_q, cu_k, window=(big, 2**64)),
        tileattn.attention_varlen(pq, pk, pv, cu_q, cu_k),
    )


@pytest.mark.parametrize("window", [{1, 2}, 5, "ab", (1, 2, 3)])
def test_malformed_window(small, window):
    with pytest.raises(ValueError, match="window must be a pair"):
        tileattn.attention(*small, window=window)


def test_flash_window_size_errors(small):
    qb, kb, vb = (np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in small)
    with pytest.raises(ValueError, match="window_size must be a pair"):
        compat.flash_attn_func(qb, kb, vb, window_size=3)


# ---- out sharing memory with any array the core reads ----


def test_out_overlapping_bias(rng):
    q, k = rng.standard_normal((2, 1, 2, 16, 8), dtype=np.float32)
    v = rng.standard_normal((1, 2, 16, 16), dtype=np.float32)
    buf = rng.standard_normal((1, 2, 16, 16), dtype=np.float32)
    bias = buf[:, ::-1]  # head h's bias lives in out's head 1 - h
    want = tileattn.attention(q, k, v, bias=bias.copy())
    got = tileattn.attention(q, k, v, bias=bias, out=buf)
    assert got is buf
    np.testing.assert_array_equal(got, want)


def test_out_overlapping_lengths_and_slopes(rng):
    q, k, v = qkv(rng, b=2, hq=2, sq=4, sk=4, d=1, dtype="float64")
    out = np.zeros((2, 2, 4, 1))
    flat = out.reshape(-1)
    flat[:2] = [3.0, 2.0]
    lengths = flat[:2].view(np.int64)  # the lengths' bytes are out's first two elements
    lengths[:] = [3, 2]
    slopes = flat[2:6].reshape(2, 2)
    slopes[:] = 0.5
    want = tileattn.attention(
        q, k, v, q_lengths=lengths.copy(), alibi_slopes=slopes.copy(), causal=True
    )
    got = tileattn.attention(q, k, v, q_lengths=lengths, alibi_slopes=slopes, causal=True, out=out)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_self_overlapping_out(small, threads):
    """An `out` whose elements share addresses (zero strides) gets what np.copyto would give it."""
    q, k, v = small
    want = tileattn.attention(q, k, v)
    base = np.zeros((2, 4, 1, 8), np.float32)
    out = np.lib.stride_tricks.as_strided(
        base, (2, 4, 6, 8), (*base.strides[:2], 0, 4), writeable=True
    )
    tileattn.attention(q, k, v, out=out, num_threads=threads)
    np.testing.assert_array_equal(base[:, :, 0], want[:, :, -1])  # copyto writes the rows in order


# ---- numbers and flags ----


@pytest.mark.parametrize("name", ["scale", "softcap"])
def test_numbers_beyond_float_range(small, name):
    with pytest.raises(ValueError, match=rf"^{name} must be finite"):
        tileattn.attention(*small, **{name: 10**400})


def test_empty_lengths_list():
    q = np.zeros((0, 2, 3, 4), np.float32)
    out = tileattn.attention(q, q, q, q_lengths=[], kv_lengths=[])
    assert out.shape == (0, 2, 3, 4)


def test_huge_unsigned_lengths(small):
    q, k, v = small
    with pytest.raises(ValueError, match=r"q_lengths must lie in \[0, 6\].*18446744073709551615"):
        tileattn.attention(q, k, v, q_lengths=np.array([2**64 - 1, 1], np.uint64))
    with pytest.raises(ValueError, match="cu_seqlens_q must lie in"):
        tileattn.attention_varlen(
            q[0].transpose(1, 0, 2), k[0].transpose(1, 0, 2), v[0].transpose(1, 0, 2),
            np.array([0, 2**64 - 1], np.uint64), np.array([0, 9]),
        )  # fmt: skip


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
def test_bfloat16_slopes_and_lses(small):
    q, k, v = small
    slopes = np.array([0.5, 0.25, 0.125, 1.0])
    want = tileattn.attention(q, k, v, alibi_slopes=slopes)
    np.testing.assert_array_equal(
        tileattn.attention(q, k, v, alibi_slopes=slopes.astype(BF16)), want
    )
    o1, l1 = tileattn.attention(q, k[:, :, :4], v[:, :, :4], return_lse=True)
    o2, l2 = tileattn.attention(q, k[:, :, 4:], v[:, :, 4:], return_lse=True)
    l1, l2 = l1.astype(BF16), l2.astype(BF16)
    got = tileattn.merge_attention([o1, o2], [l1, l2])
    ref = tileattn.merge_attention([o1, o2], [l1.astype(np.float32), l2.astype(np.float32)])
    np.testing.assert_array_equal(got[0], ref[0])


@pytest.mark.parametrize("rows_dtype", [np.int8, np.uint8, np.int16])
def test_small_integer_rows(rng, rows_dtype):
    q, k, _ = qkv(rng, b=1, hq=1, sq=300, sk=40, d=4)
    rows = np.array([5, 3], rows_dtype)
    got = tileattn.attention_weights(q, k, rows=rows)
    np.testing.assert_array_equal(got, tileattn.attention_weights(q, k, rows=[5, 3]))


def test_reference_negative_rows_with_alibi(rng):
    q, k, _ = qkv(rng, b=1, hq=1, sq=5, sk=7, d=4, dtype="float64")
    kw = dict(alibi_slopes=np.array([0.5]))
    full = reference.attention_weights(q, k, **kw)
    np.testing.assert_array_equal(
        reference.attention_weights(q, k, rows=[-1, 0], **kw), full[:, :, [4, 0]]
    )
    got = tileattn.attention_weights(q, k, rows=[-1, 0], **kw)
    np.testing.assert_allclose(got, full[:, :, [4, 0]], rtol=1e-12, atol=1e-15)


def test_merge_needs_sequences():
    with pytest.raises(TypeError, match="outs must be a sequence of arrays"):
        tileattn.merge_attention(None, None)


def test_set_num_threads_names_its_argument():
    for bad in (2.5, None, "2"):
        with pytest.raises(TypeError, match=r"^n must be a positive int"):
            tileattn.set_num_threads(bad)


@pytest.mark.parametrize("bad", [np.array([True, False]), "yes", 1, None])
def test_flags_must_be_bools(small, bad):
    q, k, v = small
    qb, kb, vb = (np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in small)
    with pytest.raises(TypeError, match=r"^return_lse must be a bool"):
        tileattn.attention(q, k, v, return_lse=bad)
    with pytest.raises(TypeError, match=r"^causal must be a bool"):
        compat.flash_attn_func(qb, kb, vb, causal=bad)
    with pytest.raises(TypeError, match=r"^return_attn_probs must be a bool"):
        compat.flash_attn_func(qb, kb, vb, return_attn_probs=bad)
    with pytest.raises(TypeError, match=r"^is_causal must be a bool"):
        compat.scaled_dot_product_attention(
            q, k[:, :2].repeat(2, 1), v[:, :2].repeat(2, 1), is_causal=bad
        )
    with pytest.raises(TypeError, match=r"^is_causal must be a bool"):
        compat.dot_product_attention(qb, kb, vb, is_causal=bad)


def test_device_must_be_a_string(small):
    with pytest.raises(TypeError, match=r"^device must be"):
        tileattn.attention(*small, device=np.array(["cpu", "cpu"]))


def test_dropout_p_type(small):
    q, k, v = small
    for bad in (None, "0"):
        with pytest.raises(TypeError, match=r"^dropout_p must be a real number"):
            compat.scaled_dot_product_attention(q, k.repeat(2, 1), v.repeat(2, 1), dropout_p=bad)


def test_varlen_wrapper_argument_checks(rng):
    q, k, v = (rng.standard_normal((10, 2, 4), dtype=np.float32) for _ in range(3))
    cu = np.array([0, 4, 10])
    with pytest.raises(TypeError, match=r"^max_seqlen_q must be an int"):
        compat.flash_attn_varlen_func(q, k, v, cu, cu, None, 6)
    with pytest.raises(TypeError, match=r"^max_seqlen_k must be an int"):
        compat.flash_attn_varlen_func(q, k, v, cu, cu, 6, 4.5)
    with pytest.raises(TypeError, match="cu_seqlens_q"):
        compat.flash_attn_varlen_func(q, k, v, [[0, 4], [10]], cu, 6, 6)


# ---- JAX's literal negative window bounds ----


@pytest.mark.parametrize("window", [(-1, 1), (2, -1), (-1, -1), (1, -1), -1, (-2, 3)])
def test_jax_negative_window_is_literal(rng, window):
    q, k, v = (rng.standard_normal((2, 7, 2, 4)).astype(np.float32) for _ in range(3))
    got = compat.dot_product_attention(q, k, v, local_window_size=window)
    left, right = (window, window) if np.ndim(window) == 0 else window
    i, j = np.arange(7)[:, None], np.arange(7)[None, :]
    seen = (j >= i - left) & (j <= i + right)
    ref = reference.attention(q, k, v, layout="bshd", mask=seen)
    assert_close(got, ref)
    jax = pytest.importorskip("jax", reason="jax is not installed")
    want = np.asarray(jax.nn.dot_product_attention(q, k, v, local_window_size=window))
    live = seen.any(axis=1)  # JAX gives rows that see no key the mean of the values, tileattn 0
    np.testing.assert_allclose(got[:, live], want[:, live], rtol=2e-5, atol=2e-6)
    assert (got[:, ~live] == 0).all()


def test_jax_negative_window_with_mask(rng):
    q, k, v = (rng.standard_normal((1, 6, 2, 4)).astype(np.float32) for _ in range(3))
    mask = rng.random((1, 2, 6, 6)) > 0.3
    got = compat.dot_product_attention(q, k, v, mask=mask, local_window_size=(-1, 2))
    i, j = np.arange(6)[:, None], np.arange(6)[None, :]
    ref = reference.attention(q, k, v, layout="bshd", mask=mask & (j >= i + 1) & (j <= i + 2))
    assert_close(got, ref)


# ---- environment variables and the command line ----


def _import_with(env_name, value):
    env = {**os.environ, env_name: value}
    code = "import tileattn; print(tileattn.show_config(as_dict=True)['kernel']['path'])"
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("value", ["garbage", "AVX2"])
def test_unknown_isa_warns(value):
    out = _import_with("TILEATTN_ISA", value)
    assert out.returncode == 0, out.stderr
    assert (
        "RuntimeWarning" in out.stderr and f"TILEATTN_ISA={value!r} is not understood" in out.stderr
    )


@pytest.mark.parametrize("value", ["zero", "0", "99999"])
def test_bad_thread_variable_warns(value):
    out = _import_with("TILEATTN_NUM_THREADS", value)
    assert out.returncode == 0, out.stderr
    assert f"TILEATTN_NUM_THREADS={value!r} is not a thread count" in out.stderr


def test_good_variables_do_not_warn():
    out = _import_with("TILEATTN_NUM_THREADS", "2")
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr


def test_show_config_reports_the_variables_in_effect(monkeypatch):
    before = tileattn.show_config(as_dict=True)["threads"]["TILEATTN_NUM_THREADS"]
    monkeypatch.setenv("TILEATTN_NUM_THREADS", "77")
    assert tileattn.show_config(as_dict=True)["threads"]["TILEATTN_NUM_THREADS"] == before


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tileattn", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shape", "1,1,8,8", "--threads", "5000"], "must be at most 4096"),
        (["--shape", "1,1,8,8", "--dv", "99999999999999999999"], "GiB"),
        (["--shape", "1,1,8,8", "--json", "/nonexistent/x.json"], "does not exist"),
        (["bench", "--threads", "0"], "must be >= 1"),
        (["bench", "--rounds", "0"], "must be >= 1"),
        (["bench", "--min-time", "nan"], "finite"),
        (["bench", "--json", "/nonexistent/x.json"], "does not exist"),
    ],
)
def test_cli_rejects_bad_values(args, message):
    out = _cli(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and message in out.stderr, out.stderr


def test_mask_summary_too_large_names_the_mask():
    q = np.zeros((1, 1, 1, 1), np.float32)
    k = np.broadcast_to(np.zeros((1, 1, 1, 1), np.float32), (1, 1, 2**50, 1))
    mask = np.broadcast_to(np.ones((1, 1), bool), (1, 2**50))
    with pytest.raises(MemoryError, match=r"^mask: "):
        tileattn.attention(q, k, k, mask=mask)


def test_float64_slopes_stay_float64_without_ml_dtypes(rng, monkeypatch):
    """Without ml_dtypes, bfloat16_dtype() is None, and np.dtype("float64") == None is True in NumPy: the
    bfloat16 test must not turn float64 slopes into float32."""
    from tileattn import _api

    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=7, d=4, dtype="float64")
    slopes = np.array([1 / 3, 2 / 7])  # not float32 values
    want = tileattn.attention(q, k, v, alibi_slopes=slopes)
    monkeypatch.setattr(_api, "_bfloat16_cache", [None])
    np.testing.assert_array_equal(tileattn.attention(q, k, v, alibi_slopes=slopes), want)
    np.testing.assert_array_equal(
        tileattn.attention(q, k, v, alibi_slopes=slopes.astype(np.float32)),
        tileattn.attention(q, k, v, alibi_slopes=slopes.astype(np.float32).astype(np.float64)),
    )
