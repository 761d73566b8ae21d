"""Bad input gets a clear error naming the argument: ValueError for shapes and values, TypeError for
dtypes, MemoryError for allocation. Never a crash, never a silent cast."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tileattn

from conftest import BF16, qkv


@pytest.fixture
def arrays(rng):
    return qkv(rng, b=2, hq=4, hkv=2, sq=8, sk=10, d=16)


def test_unknown_layout(arrays):
    with pytest.raises(ValueError, match="layout"):
        tileattn.attention(*arrays, layout="bsdh")
    with pytest.raises(ValueError, match="layout"):
        tileattn.attention(*arrays, layout=None)


@pytest.mark.parametrize(
    "bad",
    [
        np.int32,
        np.int64,
        np.uint8,
        np.bool_,
        np.complex64,
        np.complex128,
        object,
        np.float128 if hasattr(np, "float128") else np.int16,
    ],
)
@pytest.mark.parametrize("which", [0, 1, 2])
def test_bad_dtypes(arrays, bad, which):
    args = list(arrays)
    args[which] = args[which].astype(bad)
    name = "qkv"[which]
    with pytest.raises(TypeError, match=rf"^{name} "):
        tileattn.attention(*args)


@pytest.mark.parametrize("which", [1, 2])
def test_mixed_dtypes(arrays, which):
    args = list(arrays)
    args[which] = args[which].astype(np.float64)
    with pytest.raises(
        TypeError, match=rf"{'qkv'[which]} has dtype float64 but q has dtype float32"
    ):
        tileattn.attention(*args)


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
def test_bfloat16_mixed_with_float16(arrays):
    q, k, v = arrays
    with pytest.raises(TypeError, match="k has dtype"):
        tileattn.attention(q.astype(BF16), k.astype(np.float16), v.astype(BF16))


def test_lists_of_ints_are_rejected():
    with pytest.raises(TypeError, match="q must be a float32"):
        tileattn.attention([[1, 2]], [[1, 2]], [[1, 2]])


def test_ragged_input():
    with pytest.raises(TypeError, match="q cannot be converted"):
        tileattn.attention([[1.0], [1.0, 2.0]], np.zeros((2, 2)), np.zeros((2, 2)))


def test_python_floats_are_float64():
    q = [[0.5, 1.0], [1.0, -1.0]]
    out = tileattn.attention(q, q, q)
    assert out.dtype == np.float64


@pytest.mark.parametrize("rank", [0, 1, 5])
def test_wrong_rank(rank):
    x = np.zeros((2,) * rank, np.float32)
    with pytest.raises(ValueError, match=r"q must have 2, 3 or 4 dimensions.*got shape"):
        tileattn.attention(x, x, x)


def test_mismatched_ranks(arrays):
    q, k, v = arrays
    with pytest.raises(ValueError, match=r"k must have 4 dimensions like q"):
        tileattn.attention(q, k[0], v)
    with pytest.raises(ValueError, match=r"v must have 4 dimensions like q"):
        tileattn.attention(q, k, v[0])


def test_k_shape_errors(arrays):
    q, k, v = arrays
    with pytest.raises(
        ValueError, match=re.escape("k must have shape (B, Hkv, Sk, D) = (2, *, *, 16)")
    ):
        tileattn.attention(q, k[:, :, :, :8], v)
    with pytest.raises(
        ValueError, match=re.escape("k must have shape (B, Hkv, Sk, D) = (2, *, *, 16)")
    ):
        tileattn.attention(q, k[:1], v[:1])
    with pytest.raises(
        ValueError, match=re.escape("k must have shape (B, Sk, Hkv, D) = (2, *, *, 16)")
    ):
        tileattn.attention(q, k[:, :, :, :8], v, layout="bshd")


def test_v_shape_errors(arrays):
    q, k, v = arrays
    with pytest.raises(
        ValueError, match=re.escape("v must have shape (B, Hkv, Sk, Dv) = (2, 2, 10, *)")
    ):
        tileattn.attention(q, k, v[:, :, :9])
    with pytest.raises(
        ValueError, match=re.escape("v must have shape (B, Hkv, Sk, Dv) = (2, 2, 10, *)")
    ):
        tileattn.attention(q, k, v[:, :1])


def test_heads_not_divisible(rng):
    q, k, v = qkv(rng, hq=4, hkv=3, sq=5, d=8)
    with pytest.raises(ValueError, match=r"Hkv = 3\) must divide the number of q heads \(Hq = 4"):
        tileattn.attention(q, k, v)
    q, k, v = qkv(rng, hq=4, hkv=1, sq=5, d=8)
    with pytest.raises(ValueError, match=r"Hkv = 0"):
        tileattn.attention(q, k[:, :0], v[:, :0])


def test_zero_head_dim():
    x = np.zeros((1, 1, 4, 0), np.float32)
    with pytest.raises(ValueError, match=r"q must have shape .* with D >= 1"):
        tileattn.attention(x, x, np.zeros((1, 1, 4, 3), np.float32))
    x = np.zeros((0, 1, 4, 0), np.float32)  # even with nothing to compute
    with pytest.raises(ValueError, match=r"D >= 1"):
        tileattn.attention(x, x, x)


def test_zero_value_dim():
    x = np.zeros((1, 1, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"v must have shape .* with Dv >= 1"):
        tileattn.attention(x, x, np.zeros((1, 1, 4, 0), np.float32))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_non_finite_scale(arrays, scale):
    with pytest.raises(ValueError, match="scale must be finite"):
        tileattn.attention(*arrays, scale=scale)


@pytest.mark.parametrize("scale", ["0.5", [0.5], 1j, True])
def test_scale_type(arrays, scale):
    with pytest.raises(TypeError, match="scale must be a real number"):
        tileattn.attention(*arrays, scale=scale)


def test_scale_numpy_scalars(arrays):
    a = tileattn.attention(*arrays, scale=np.float32(0.25))
    b = tileattn.attention(*arrays, scale=0.25)
    c = tileattn.attention(*arrays, scale=np.int64(1))
    assert np.array_equal(a, b)
    assert np.array_equal(c, tileattn.attention(*arrays, scale=1.0))


@pytest.mark.parametrize("causal", [1, None, 0.0])
def test_causal_type(arrays, causal):
    with pytest.raises(
        TypeError, match=r"causal must be one of \(False, True, 'bottom_right', 'top_left'\)"
    ):
        tileattn.attention(*arrays, causal=causal)


@pytest.mark.parametrize("causal", ["yes", "bottom_right_typo", "TOP_LEFT"])
def test_causal_value(arrays, causal):
    with pytest.raises(ValueError, match="causal must be one of"):
        tileattn.attention(*arrays, causal=causal)


@pytest.mark.parametrize("n", [0, -1, 4097, 2**40])
def test_bad_thread_counts(arrays, n):
    with pytest.raises(ValueError, match=r"num_threads must be in \[1, 4096\]"):
        tileattn.attention(*arrays, num_threads=n)
    with pytest.raises(ValueError, match=r"n must be in \[1, 4096\]"):
        tileattn.set_num_threads(n)


@pytest.mark.parametrize("n", [1.5, "2", True])
def test_thread_count_types(arrays, n):
    with pytest.raises(TypeError, match="num_threads must be a positive int"):
        tileattn.attention(*arrays, num_threads=n)


def test_out_errors(arrays):
    q, k, v = arrays
    with pytest.raises(ValueError, match=re.escape("out must have shape (2, 4, 8, 16)")):
        tileattn.attention(q, k, v, out=np.empty((2, 4, 8, 15), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        tileattn.attention(q, k, v, out=np.empty((2, 4, 8, 16), np.float64))
    with pytest.raises(TypeError, match="out must be a NumPy array"):
        tileattn.attention(q, k, v, out=[0.0])
    ro = np.empty((2, 4, 8, 16), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        tileattn.attention(q, k, v, out=ro)


def test_out_shape_follows_layout(arrays):
    q, k, v = (x.transpose(0, 2, 1, 3) for x in arrays)  # (B, S, H, D)
    with pytest.raises(ValueError, match=re.escape("out must have shape (2, 8, 4, 16)")):
        tileattn.attention(q, k, v, layout="bshd", out=np.empty((2, 4, 8, 16), np.float32))


def test_errors_leave_out_untouched(arrays):
    q, k, v = arrays
    out = np.full((2, 4, 8, 16), 3.0, np.float32)
    with pytest.raises(ValueError):
        tileattn.attention(q, k, v, scale=float("nan"), out=out)
    assert (out == 3.0).all()


def test_output_allocation_failure():
    """An output too large to allocate raises MemoryError (inputs broadcast from one element)."""
    one = np.zeros((1, 1, 1, 1), np.float32)
    q = np.broadcast_to(one, (1 << 20, 1 << 10, 1 << 10, 1))
    k = np.broadcast_to(one, (1 << 20, 1 << 10, 1, 1))
    v = np.broadcast_to(one, (1 << 20, 1 << 10, 1, 1 << 10))
    with pytest.raises(MemoryError):
        tileattn.attention(q, k, v)


def test_scratch_allocation_failure():
    """A head dim whose scratch rows cannot be allocated raises MemoryError, not a crash."""
    q = np.broadcast_to(np.zeros((1, 1, 1, 1), np.float32), (1, 1, 1, 1 << 36))
    v = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(MemoryError):
        tileattn.attention(q, q, v)


def test_gpu_like_arrays_are_refused():
    class FakeCuda:
        @property
        def __cuda_array_interface__(self):
            return {"shape": (2, 2), "typestr": "<f4", "data": (0, False), "version": 3}

    with pytest.raises(ValueError, match="q is a GPU array but k is not"):
        tileattn.attention(FakeCuda(), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
