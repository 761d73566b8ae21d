"""Small calls: the one-step path of the common call (the core checks and runs attention(q, k, v) with at
most causal, scale, layout, out and num_threads) gives exactly what the Python layer's path gives, hands
everything else to that path (same results, same errors), and small calls run on one thread without
starting the pool."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tileattn
from tileattn import _core
from tileattn._api import attention_impl

from conftest import dtype_of, qkv

SHAPES = [
    dict(b=1, hq=1, sq=1, sk=1, d=1),
    dict(b=2, hq=4, hkv=2, sq=7, sk=13, d=24, dv=40),
    dict(b=1, hq=8, hkv=1, sq=1, sk=300, d=64),
    dict(b=3, hq=3, sq=65, sk=65, d=17),
    dict(b=1, hq=2, sq=200, sk=90, d=128, dv=8),
]


def full_path(q, k, v, *, causal=False, scale=None, layout="bhsd", out=None, num_threads=None):
    """The Python layer's path (attention_impl), bypassing the one-step path."""
    return attention_impl(q, k, v, causal, scale, layout, False, out, num_threads)


@pytest.mark.parametrize("shape", SHAPES, ids=[f"s{i}" for i in range(len(SHAPES))])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("causal", [False, True])
def test_same_bits_as_the_python_path(rng, shape, dtype, layout, causal):
    q, k, v = qkv(rng, dtype=dtype, layout=layout, **shape)
    for kw in (dict(), dict(scale=-0.3, num_threads=1), dict(scale=2.5, num_threads=2)):
        before = [x.copy() for x in (q, k, v)]
        got = tileattn.attention(q, k, v, causal=causal, layout=layout, **kw)
        want = full_path(q, k, v, causal=causal, layout=layout, **kw)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        for x, y in zip((q, k, v), before):
            np.testing.assert_array_equal(x, y)  # inputs untouched


def test_strided_and_negative_strides(rng):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=40, sk=50, d=32)
    views = (q[:, :, ::2, :], k[:, ::-1, :, ::-1][..., :16], v[:, :, ::-1, 1::2])
    q2 = np.ascontiguousarray(views[0][..., :16])
    got = tileattn.attention(q2, views[1], views[2], causal=True)
    want = full_path(q2, views[1], views[2], causal=True)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_out_written_in_place(rng, layout):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=9, sk=31, d=16, layout=layout)
    out = np.full(q.shape, np.nan, np.float32)
    got = tileattn.attention(q, k, v, layout=layout, out=out)
    assert got is out
    np.testing.assert_array_equal(out, full_path(q, k, v, layout=layout))


def test_out_that_is_not_simple(rng):
    """Strided, Fortran-ordered or overlapping outputs go through the Python layer: same results."""
    q, k, v = qkv(rng, b=1, hq=2, sq=12, sk=12, d=8)
    want = full_path(q, k, v)
    wide = np.zeros((*q.shape[:-1], 16), np.float32)
    got = tileattn.attention(q, k, v, out=wide[..., ::2])
    np.testing.assert_array_equal(got, want)
    fortran = np.asfortranarray(np.zeros(q.shape, np.float32))
    np.testing.assert_array_equal(tileattn.attention(q, k, v, out=fortran), want)
    # C-contiguous by NumPy's flag, with a stride of no whole items on an axis of extent 1
    buf = np.zeros(q.size + 1, np.float32)
    odd = np.lib.stride_tricks.as_strided(buf, q.shape, (3, 12 * 8 * 4, 8 * 4, 4))
    assert odd.flags.c_contiguous
    np.testing.assert_array_equal(tileattn.attention(q, k, v, out=odd), want)
    q2 = q.copy()
    got = tileattn.attention(q2, k, v, out=q2)  # out is q: computed aside, then copied in
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(q2, want)


def test_arguments_the_one_step_path_leaves_to_python(rng):
    """Values of other types than the plain ones (NumPy scalars, ints, subclasses, byte-swapped or
    bfloat16 arrays) still work, through the Python layer."""
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=6, d=8)
    want = full_path(q, k, v, causal=True, scale=0.5)
    for kw in (
        dict(causal=np.bool_(True), scale=0.5),
        dict(causal="bottom_right", scale=np.float64(0.5)),
        dict(causal=True, scale=np.float32(0.5), num_threads=np.int64(2)),
    ):
        np.testing.assert_array_equal(tileattn.attention(q, k, v, **kw), want)
    np.testing.assert_array_equal(
        tileattn.attention(q, k, v, causal=True, scale=1),
        full_path(q, k, v, causal=True, scale=1.0),
    )

    class Sub(np.ndarray):
        pass

    got = tileattn.attention(q.view(Sub), k, v, causal=True, scale=0.5)
    np.testing.assert_array_equal(got, want)
    swapped = [x.astype(x.dtype.newbyteorder(">")) for x in (q, k, v)]
    np.testing.assert_array_equal(tileattn.attention(*swapped, causal=True, scale=0.5), want)
    if dtype_of("bfloat16") is not None:
        qb, kb, vb = (x.astype(dtype_of("bfloat16")) for x in (q, k, v))
        np.testing.assert_array_equal(tileattn.attention(qb, kb, vb), full_path(qb, kb, vb))


@pytest.mark.parametrize(
    ("kw", "error", "text"),
    [
        (dict(causal=1), TypeError, "causal"),
        (dict(scale=float("nan")), ValueError, "scale"),
        (dict(scale=True), TypeError, "scale"),
        (dict(num_threads=0), ValueError, "num_threads"),
        (dict(num_threads=True), TypeError, "num_threads"),
        (dict(num_threads=5000), ValueError, "num_threads"),
        (dict(layout="bhds"), ValueError, "layout"),
        (dict(layout="\ud800"), ValueError, "layout"),  # not encodable as UTF-8
        (dict(out=np.zeros((1, 2, 5, 7), np.float32)), ValueError, "out"),
        (dict(out=np.zeros((1, 2, 5, 8), np.float64)), TypeError, "out"),
    ],
)
def test_bad_arguments_get_the_python_layers_errors(rng, kw, error, text):
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=6, d=8)
    with pytest.raises(error, match=text):
        tileattn.attention(q, k, v, **kw)


def test_read_only_out_and_bad_shapes(rng):
    q, k, v = qkv(rng, b=1, hq=4, hkv=3, sq=5, sk=6, d=8)
    with pytest.raises(ValueError, match="divide"):
        tileattn.attention(q, k, v)
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=6, d=8)
    out = np.zeros(q.shape, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        tileattn.attention(q, k, v, out=out)
    with pytest.raises(ValueError, match="k must have shape"):
        tileattn.attention(q, k[..., :4], v)
    with pytest.raises(TypeError, match="dtype"):
        tileattn.attention(q, k.astype(np.float64), v)
    empty = tileattn.attention(q[:, :, :0], k, v)
    assert empty.shape == (1, 2, 0, 8)


def test_one_step_path_declines(rng):
    """The core's one-step entry returns None for what it does not take."""
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=6, d=8)
    simple = _core.attention_simple
    assert simple(q, k, v, False, None, "bhsd", None, None) is not None
    assert simple(q, k, v, np.bool_(False), None, "bhsd", None, None) is None
    assert simple(q, k, v, False, 1, "bhsd", None, None) is None
    assert simple(q, k, v, False, None, "BHSD", None, None) is None
    assert simple(q, k, v, False, None, "bhsd", None, 0) is None
    assert simple(q, k, v.astype(np.float64), False, None, "bhsd", None, None) is None
    assert simple(q[0], k[0], v[0], False, None, "bhsd", None, None) is None  # 3-D
    assert simple(q, k, v, False, None, "bhsd", q, None) is None  # out overlaps q
    assert simple(q, k, v, False, None, "bhsd", np.asfortranarray(q * 0), None) is None


THREAD_COUNT = """
import os, time, numpy as np, tileattn
def threads():
    return len(os.listdir("/proc/self/task"))
rng = np.random.default_rng(0)
small = [rng.standard_normal((1, 2, 4, 16), dtype=np.float32) for _ in range(3)]
large = [rng.standard_normal((1, 8, 512, 64), dtype=np.float32) for _ in range(3)]
start = threads()
a = tileattn.attention(*small, num_threads=2)
after_small = threads()
b = tileattn.attention(*large, num_threads=2)
after_large = threads()
assert np.array_equal(a, tileattn.attention(*small, num_threads=1))
assert np.array_equal(b, tileattn.attention(*large, num_threads=1))
print(start, after_small, after_large)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_a_small_call_starts_no_thread():
    env = {k: v for k, v in os.environ.items() if k != "TILEATTN_SPLIT_SMALL_CALLS"}
    out = subprocess.run(
        [sys.executable, "-c", THREAD_COUNT], env=env, capture_output=True, text=True, check=True
    )
    start, after_small, after_large = (int(x) for x in out.stdout.split())
    assert after_small == start  # one thread: no pool
    assert after_large == start + 1  # the pool's one worker
