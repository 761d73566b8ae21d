"""Masking options of tileattn.attention against the oracle: causal alignments, windows, boolean masks,
additive bias, ALiBi, softcap, padded lengths, in every combination, dtype, layout and kernel path; the
semantics of masked rows and of NaN/inf in masked places; the option errors."""

from __future__ import annotations

import numpy as np
import pytest

import tileattn
from tileattn import reference

from conftest import ALL_DTYPES, BF16, check_against_oracle, dtype_of, qkv, run, tile_info

OPTIONS = {
    "top_left": dict(causal="top_left"),
    "bottom_right": dict(causal="bottom_right"),
    "window": dict(window=(7, 3)),
    "window_left_only": dict(window=(5, None)),
    "window_right_only": dict(window=(-1, 4)),
    "causal_window": dict(causal=True, window=(9, 2)),
    "top_left_window": dict(causal="top_left", window=(6, -1)),
    "mask": "mask",
    "bias": "bias",
    "alibi": "alibi",
    "alibi_per_batch": "alibi_b",
    "softcap": dict(softcap=1.7),
    "lengths": "lengths",
    "everything": "everything",
}


def options(name, rng, b, hq, sq, sk):
    """Concrete keyword arguments for an entry of OPTIONS on a (b, hq, sq, sk) problem."""
    spec = OPTIONS[name]
    if isinstance(spec, dict):
        return dict(spec)
    if spec == "mask":
        return dict(mask=rng.random((b, 1, sq, sk)) > 0.3)
    if spec == "bias":
        return dict(bias=rng.standard_normal((hq, sq, sk)).astype(np.float32))
    if spec == "alibi":
        return dict(alibi_slopes=2.0 ** -np.arange(1, hq + 1))
    if spec == "alibi_b":
        return dict(alibi_slopes=rng.random((b, hq)), causal=True)
    if spec == "lengths":
        return dict(
            q_lengths=rng.integers(0, sq + 1, b), kv_lengths=rng.integers(0, sk + 1, b), causal=True
        )
    return dict(  # everything at once
        causal=True,
        window=(11, 0),
        mask=rng.random((sq, sk)) > 0.2,
        bias=rng.standard_normal((sq, sk)),
        alibi_slopes=rng.random(hq),
        softcap=3.0,
        q_lengths=rng.integers(1, sq + 1, b),
        kv_lengths=rng.integers(1, sk + 1, b),
    )


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_options(rng, path, dtype, name):
    for sq, sk in [(37, 53), (53, 37), (1, 70)]:
        q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=sq, sk=sk, d=24, dtype=dtype)
        kw = options(name, rng, 2, 4, sq, sk)
        check_against_oracle(q, k, v, path, **kw)


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_options_long_head_dim(rng, path, dtype, name):
    """A head dim whose KV tile is larger than L1 keeps: the register blocks then go in groups (the scores
    and softmax of every block of the group, then their P V); several groups, tiles and a partial block."""
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=61, sk=150, d=128, dtype=dtype)
    check_against_oracle(q, k, v, path, **options(name, rng, 2, 4, 61, 150))


@pytest.mark.parametrize("d", [24, 128])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("option", ["bias", "causal", "window", "causal_sk_odd"])
def test_rows_do_not_depend_on_their_block(rng, path, d, dtype, option):
    """A row gets the same bits whichever rows share its register block or group (shifted query rows):
    with a bias, and on the causal diagonal's blocks (a prefix of the tile per row: their own softmax, and
    Q K^T only over the key vectors the block sees), a window's edges, and a last tile seen in part."""
    if dtype == "bfloat16" and BF16 is None:
        pytest.skip("needs ml_dtypes")
    sk = 203 if option == "causal_sk_odd" else 200
    q, k, v = qkv(rng, b=1, hq=2, sq=100, sk=sk, d=d, dtype=dtype)
    kw, rows = {}, lambda start: {}
    if option == "bias":
        bias = rng.standard_normal((2, 100, sk)).astype(np.float32)
        rows = lambda start: dict(bias=bias[:, start:])  # noqa: E731
    elif option == "window":
        kw = dict(window=(37, 5))
    else:
        kw = dict(causal=True)
    full = run(q, k, v, path, **kw, **rows(0), return_lse=True)
    for start in (1, 5, 7, 31):
        part = run(q[:, :, start:], k, v, path, **kw, **rows(start), return_lse=True)
        assert np.array_equal(part[0], full[0][:, :, start:]), f"rows from {start} differ"
        assert np.array_equal(part[1], full[1][:, :, start:]), f"LSEs of rows from {start} differ"


@pytest.mark.parametrize("name", ["window", "mask", "bias", "alibi", "softcap", "everything"])
@pytest.mark.parametrize("layout", ["bshd", "bhsd"])
@pytest.mark.parametrize("rank", [2, 3, 4])
def test_options_layouts_ranks(rng, name, layout, rank):
    b, hq, hkv = (2, 4, 2) if rank == 4 else (1, 4, 2) if rank == 3 else (1, 1, 1)
    q, k, v = qkv(
        rng, b=b, hq=hq, hkv=hkv, sq=40, sk=60, d=16, dtype="float32", layout=layout, rank=rank
    )
    kw = options(name, rng, b, hq, 40, 60)
    if rank < 4:  # masks, bias and lengths of a rank-3/2 problem have no batch dimension
        for key in ("mask", "bias"):
            if key in kw and np.ndim(kw[key]) == 4:
                kw[key] = kw[key][0]
        if "alibi_slopes" in kw and np.ndim(kw["alibi_slopes"]) == 2:
            kw["alibi_slopes"] = kw["alibi_slopes"][0]
        for key in ("q_lengths", "kv_lengths"):
            if key in kw:
                kw[key] = kw[key][:1]
    check_against_oracle(q, k, v, layout=layout, **kw)


@pytest.mark.parametrize("keys", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sq", [48, 3])
def test_mask_tiles_all_true_or_almost(rng, path, dtype, keys, sq):
    """Tiles whose mask is all true are not read (the mask summary's second bit); a tile true but for one
    key must still be masked there. Rows: all true; one or two False keys at a tile's first or last key,
    or next to them; a document mask (blocks of true tiles, edges inside tiles); all true; each alone,
    with a bias, and with a causal window. sq = 3: the decode path (keys split in chunks)."""
    sk, d = 700, 32
    isa = path[1] if path[0] == "tiled" else "auto"
    block_k = tile_info(dtype, 2, 2, 2, sq, sk, d, d, isa=isa)[1]
    edges = sorted(
        {
            e
            for t in range(0, sk, block_k)
            for e in (t - 1, t, t + 1, t + block_k - 1)
            if 0 <= e < sk
        }
    )
    mask = np.ones((sq, sk), dtype=bool)
    mask[-1, sk - 1] = False  # the short last tile's last key (the summary's scalar tail)
    for i in range(sq):
        if i % 3 == 1:
            mask[i, edges[i % len(edges)]] = False
        elif i % 3 == 2:
            mask[i, edges[(i * 7) % len(edges)]] = False
            mask[i, edges[(i * 5 + 3) % len(edges)]] = False
    doc = np.zeros((sq, sk), dtype=bool)
    cut = [0, 137, 300, 512, sk]
    for a, e in zip(cut[:-1], cut[1:]):
        doc[(a * sq) // sk : (e * sq) // sk, a:e] = True
    q, k, v = qkv(rng, b=2, hq=2, sq=sq, sk=sk, d=d, dtype=dtype)
    for m in (mask, doc, np.ones((sq, sk), dtype=bool)):
        if keys == "strided":  # a key stride of 2 bytes: the summary's strided scan
            m = np.repeat(m, 2, axis=-1)[..., ::2]
        check_against_oracle(q, k, v, path, mask=m)
        check_against_oracle(q, k, v, path, mask=m, bias=rng.standard_normal((sq, sk)))
        check_against_oracle(q, k, v, path, mask=m, causal=True, window=(200, 0))


@pytest.mark.parametrize("sq", [1, 300])
def test_long_keys_with_options(rng, path, sq):
    """Several KV tiles, and the decode path with its split keys (sq = 1), under every option."""
    q, k, v = qkv(rng, b=1, hq=4, hkv=2, sq=sq, sk=3000, d=32, dtype="float32")
    kw = options("everything", rng, 1, 4, sq, 3000)
    kw["window"] = (700, 0)
    check_against_oracle(q, k, v, path, **kw)


def test_causal_true_is_window_minus_one_zero(rng, path):
    q, k, v = qkv(rng, b=1, hq=2, sq=50, sk=80, d=16)
    assert np.array_equal(run(q, k, v, path, causal=True), run(q, k, v, path, window=(-1, 0)))
    assert np.array_equal(run(q, k, v, path, causal=True), run(q, k, v, path, window=(None, 0)))


def test_top_left_and_bottom_right(rng, path):
    q, k, v = qkv(rng, b=1, hq=1, sq=4, sk=10, d=8, dtype="float64")
    tl = run(q, k, v, path, causal="top_left")
    br = run(q, k, v, path, causal="bottom_right")
    for i in range(4):  # top-left: row i sees keys 0..i; bottom-right: keys 0..i + 6
        np.testing.assert_allclose(
            tl[:, :, i],
            run(q[:, :, i : i + 1], k[:, :, : i + 1], v[:, :, : i + 1], path)[:, :, 0],
            rtol=1e-13,
        )
        np.testing.assert_allclose(
            br[:, :, i],
            run(q[:, :, i : i + 1], k[:, :, : i + 7], v[:, :, : i + 7], path)[:, :, 0],
            rtol=1e-13,
        )


def test_fully_masked_rows_are_zero(rng, path):
    """However a row is masked (boolean mask, -inf bias, window past the keys, zero length), it outputs
    exactly +0.0 and LSE -inf, never NaN."""
    q, k, v = qkv(rng, b=2, hq=2, sq=6, sk=9, d=8)
    mask = np.ones((6, 9), bool)
    mask[1] = False
    bias = np.zeros((6, 9), np.float32)
    bias[2] = -np.inf
    out, lse = run(q, k, v, path, mask=mask, bias=bias, return_lse=True)
    for row in (1, 2):
        assert (out[:, :, row] == 0).all() and not np.signbit(out[:, :, row]).any()
        assert np.isneginf(lse[:, :, row]).all()
    assert np.isfinite(out).all()
    out, lse = run(
        q, k, v, path, q_lengths=np.array([0, 6]), kv_lengths=np.array([9, 0]), return_lse=True
    )
    assert (out == 0).all() and np.isneginf(lse).all()


def test_very_negative_finite_row_is_normal(rng, path):
    q, k, v = qkv(rng, b=1, hq=1, sq=3, sk=5, d=4, dtype="float64")
    bias = np.full((3, 5), -1e30)
    out, lse = run(q, k, v, path, bias=bias, return_lse=True)
    ref, _ref_lse = reference.attention(q, k, v, bias=bias, return_lse=True)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert np.isfinite(lse).all()


def limit_rows(rng, bias_dtype, n, sk):
    """n rows of bias (n >= 4) whose first four hold values at the limits of bias_dtype's range: all keys
    at its most negative finite value (a normal row: the scores are all equal to it, as finfo.min masks
    in Hugging Face code); that value but for one key at 0 (all weight there); one key at the largest
    finite value, the others 0 (all weight there); half the keys -inf (masked), half at the most negative
    finite value. The other rows are ordinary."""
    dt = dtype_of(bias_dtype)
    lo, hi = np.finfo(dt).min, np.finfo(dt).max
    bias = rng.standard_normal((n, sk)).astype(dt)
    bias[0] = lo
    bias[1] = lo
    bias[1, sk // 3] = 0
    bias[2] = 0
    bias[2, sk - 5] = hi
    bias[3] = lo
    bias[3, ::2] = -np.inf
    return bias


@pytest.mark.parametrize(
    ("dtype", "bias_dtype"),
    [
        ("float32", "float32"),
        ("float64", "float64"),
        ("float16", "float32"),
        ("bfloat16", "float32"),
        ("float32", "float64"),
    ],
)
def test_bias_at_the_dtype_limits(rng, path, dtype, bias_dtype):
    """Biases as large as the dtype allows are finite scores like any other (only -inf masks): a row all
    at finfo.min is a normal row with uniform weights and a finite LSE, never a masked one, and a key at
    finfo.max takes all the weight. Prefill rows (several KV tiles, the row-wise bias chunks) and
    decoding (one query row per head, keys split into chunks merged by their LSE)."""
    # A float64 bias beyond float32's range on float32 inputs: the kernel's float32 scores and LSE
    # saturate at float32's largest value (the oracle's LSE, in float64, is not representable), so the
    # outputs are checked against the oracle and the LSE for being finite.
    check = (
        check_against_oracle if bias_dtype != "float64" or dtype == "float64" else run_and_compare
    )
    sk = 2 * 128 + 37
    q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=13, sk=sk, d=64, dtype=dtype)
    bias = limit_rows(rng, bias_dtype, 13, sk)
    out, lse = check(q, k, v, path, bias=bias)
    vv = v.astype(np.float64)[0, 0]
    tol = dict(rtol=2e-2 if dtype in ("float16", "bfloat16") else 1e-5, atol=1e-2)
    np.testing.assert_allclose(
        out[0, :, 0].astype(np.float64), np.broadcast_to(vv.mean(0), (2, 64)), **tol
    )
    np.testing.assert_allclose(
        out[0, :, 1].astype(np.float64), np.broadcast_to(vv[sk // 3], (2, 64)), **tol
    )
    np.testing.assert_allclose(
        out[0, :, 2].astype(np.float64), np.broadcast_to(vv[sk - 5], (2, 64)), **tol
    )
    np.testing.assert_allclose(
        out[0, :, 3].astype(np.float64), np.broadcast_to(vv[1::2].mean(0), (2, 64)), **tol
    )
    assert np.isfinite(lse).all()

    sk = 2 * 2048 + 37  # decoding: 4 query heads on one kv head, one row each
    q, k, v = qkv(rng, b=1, hq=4, hkv=1, sq=1, sk=sk, d=32, dtype=dtype)
    bias = limit_rows(rng, bias_dtype, 4, sk)[:, None, :]
    out, lse = check(q, k, v, path, bias=bias)
    assert np.isfinite(lse).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_huge_scores_and_values(rng, path, dtype):
    """Scores far beyond a softmax's usual range (scale up to 1e30, 1e200 in float64) and values near the
    dtype's largest (their weighted sums overflow the working precision) give the oracle's result,
    never NaN, 0 with LSE -inf, or infinity: the kernels compute such rows again in double."""
    q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=37, sk=150, d=16, dtype=dtype)
    scales = [1e19, 1e200] if dtype == "float64" else [1e9, 1e12, 1e30]
    for scale in scales:
        for kw in (dict(), dict(causal=True), dict(window=(20, 3), q_lengths=[30])):
            out, lse = check_against_oracle(q, k, v, path, scale=scale, **kw)
            assert np.isfinite(out).all() and (np.isfinite(lse) | (lse == -np.inf)).all(), (
                scale,
                kw,
            )
    if dtype != "float16":  # float16 values cannot overflow the float32 sums
        big = 1e306 if dtype == "float64" else 1e37
        v = (big * (1 + 0.1 * rng.standard_normal(v.shape))).astype(v.dtype)
        v[..., ::3, :] *= -1
        tol = {"float64": 1e-12, "float32": 1e-5}.get(dtype, 2e-2)
        for kw in (
            dict(),
            dict(causal=True),
        ):  # compared in units of `big` (squares would overflow)
            out = run(q, k, v, path, **kw).astype(np.float64) / big
            ref = reference.attention(q, k, v, **kw) / big
            np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_huge_alibi_slopes(rng, path, dtype):
    """ALiBi slopes beyond the working precision's range (finite as float64, as the argument check
    requires; 1e39 is infinite in float32) give the oracle's result: such calls run in double, where the
    tiled kernels would meet inf * 0 on the diagonal (NaN)."""
    q, k, v = qkv(rng, b=2, hq=2, hkv=1, sq=9, sk=12, d=8, dtype=dtype)
    big = 1e306 if dtype == "float64" else 1e39
    slopes = np.array([[big, 0.5], [-big, 1e-3]])
    for kw in (dict(), dict(causal=True), dict(window=(3, 2))):
        out, lse = run(q, k, v, path, alibi_slopes=slopes, return_lse=True, **kw)
        ref, _ref_lse = reference.attention_in(
            np.longdouble, q, k, v, alibi_slopes=slopes, return_lse=True, **kw
        )
        tol = {"float64": 1e-12, "float32": 1e-5}.get(dtype, 2e-2)
        np.testing.assert_allclose(out.astype(np.float64), ref, rtol=tol, atol=tol)
        assert not np.isnan(lse).any()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_scores_at_the_dtype_limits(rng, path, dtype):
    """Finite scores whose product with log2(e) would overflow (|score| within a factor 1.44 of the
    largest value), plain or under element-wise options, and rows of such scores all hugely negative
    (they would read as masked), give the oracle's result, never NaN or an empty row; a softcap near the
    largest value (|scale| / softcap below the normal range) too, and a zero scale times a q . k that
    overflows the working precision (0 x inf: the reference path, as the oracle's uniform mean)."""
    big = 1.3e308 if dtype == "float64" else 2.5e38
    q = np.array([1.0, 0.5]).reshape(1, 1, 1, 2)
    k = np.array([[1, 0.5], [0.5, 0.5], [-1, 0]]).reshape(1, 1, 3, 2)
    v = np.arange(1.0, 7.0).reshape(1, 1, 3, 2)
    cases = [
        (q, k, dict(scale=big)),
        (q, k, dict(scale=big, mask=np.ones((1, 3), bool))),
        (q, k, dict(scale=big, alibi_slopes=[0.0])),
        (-q, k, dict(scale=big)),  # every score hugely negative
        (q, np.abs(k) + 1, dict(scale=-big)),
    ]
    # q . k overflowing the working precision, times a zero scale (float16's range cannot reach it)
    if dtype != "float16":
        cases.append((q * big, np.abs(k) * 2 + 1, dict(scale=0.0)))
        cases.append((q * big, np.abs(k) * 2 + 1, dict(scale=0.0, softcap=5.0)))
    tol = {"float64": 1e-12, "float32": 1e-5}.get(dtype, 2e-2)
    dt = dtype_of(dtype)
    for qq, kk, kw in cases:
        qq, kk, vv = (np.asarray(x).astype(dt) for x in (qq, kk, v))
        out, lse = run(qq, kk, vv, path, return_lse=True, **kw)
        ref = reference.attention_in(np.longdouble, qq, kk, vv, **kw)
        np.testing.assert_allclose(
            out.astype(np.float64), ref.astype(np.float64), rtol=tol, atol=tol
        )
        assert not np.isnan(lse).any() and not np.isneginf(lse).any(), kw
    if dtype != "float64":
        q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=20, sk=40, d=8, dtype=dtype)
        for softcap in (1e37, 3e38):
            check_against_oracle(q, k, v, path, softcap=softcap, scale=3.0)


def test_float64_bias_saturates_on_every_path(rng, path):
    """A float64 bias beyond float32's range on float32 inputs saturates at float32's largest value on
    every path, including rows that the tiled kernels compute again in double (values near float32's
    largest, whose sums overflow): the same uniform weights as the oracle, which clamps likewise."""
    q = np.zeros((1, 1, 2, 4), np.float32)
    k = np.zeros((1, 1, 3, 4), np.float32)
    bias = np.array([[-1e39, -1e300, -1e300]] * 2)
    for values in ([[1, 0], [0, 1], [5, 5]], [[1, 0], [3e38, 3e38], [3e38, 3e38]]):
        v = np.array(values, np.float32).reshape(1, 1, 3, 2)
        out = run(q, k, v, path, bias=bias)
        ref = reference.attention(q, k, v, bias=bias)
        np.testing.assert_allclose(out, ref, rtol=1e-6)
        np.testing.assert_allclose(out[0, 0, 0], v[0, 0].astype(np.float64).mean(0), rtol=1e-6)


def run_and_compare(q, k, v, path, **kw):
    out, lse = run(q, k, v, path, return_lse=True, **kw)
    np.testing.assert_allclose(out, reference.attention(q, k, v, **kw), rtol=1e-5, atol=1e-6)
    return out, lse


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_scale_with_mask(rng, path, dtype):
    """scale=0 under a mask: every visible score is 0, so each row averages its visible values (a hidden
    key's -inf must not meet the zero scale as -inf * 0 = NaN)."""
    q, k, v = qkv(rng, b=1, hq=2, sq=5, sk=70, d=8, dtype=dtype)
    mask = rng.random((5, 70)) > 0.3
    mask[:, 0] = True
    out = run(q, k, v, path, mask=mask, scale=0.0)
    ref = reference.attention(q, k, v, mask=mask, scale=0.0)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    means = np.stack([v[0][:, mask[i]].astype(np.float64).mean(axis=1) for i in range(5)], axis=1)
    np.testing.assert_allclose(out[0], means, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_infinite_value_gives_infinite_output(rng, path, dtype):
    """A row that sees an infinite value with nonzero probability outputs that infinity, with its sign
    (O / l: inf / l is inf, never NaN, however the division is carried out); the other elements are the
    oracle's."""
    q, k, v = qkv(rng, b=1, hq=2, sq=40, sk=70, d=32, dtype=dtype)
    v = v.copy()
    v[0, 0, 3, 5] = np.inf
    v[0, 1, 10, 7] = -np.inf
    out = run(q, k, v, path)
    ref = reference.attention(q, k, v)
    assert not np.isnan(out).any()
    assert np.array_equal(np.isposinf(out), np.isposinf(ref)) and np.isposinf(out[0, 0, :, 5]).all()
    assert np.array_equal(np.isneginf(out), np.isneginf(ref)) and np.isneginf(out[0, 1, :, 7]).all()
    finite = np.isfinite(ref)
    np.testing.assert_allclose(out[finite], ref[finite], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_keys_past_kv_lengths_are_never_read(rng, path, bad):
    """NaN or inf stored past kv_lengths[b] changes no output or LSE bit."""
    q, k, v = qkv(rng, b=2, hq=2, sq=20, sk=300, d=16)
    lengths = np.array([120, 250])
    clean = run(q, k, v, path, kv_lengths=lengths, causal=True, return_lse=True)
    k2, v2 = k.copy(), v.copy()
    for b, n in enumerate(lengths):
        k2[b, :, n:] = bad
        v2[b, :, n:] = bad
    dirty = run(q, k2, v2, path, kv_lengths=lengths, causal=True, return_lse=True)
    assert np.array_equal(clean[0], dirty[0]) and np.array_equal(clean[1], dirty[1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_masked_non_finite_values_do_not_leak(rng, path, bad):
    """NaN or inf in a value row that the boolean mask or a -inf bias hides never reaches the row."""
    q, k, v = qkv(rng, b=1, hq=2, sq=30, sk=90, d=16, dtype="float64")
    v = v.copy()
    v[:, :, 40] = bad
    mask = np.ones((30, 90), bool)
    mask[:, 40] = False
    out = run(q, k, v, path, mask=mask)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, reference.attention(q, k, v, mask=mask), rtol=1e-10, atol=1e-12)
    bias = np.zeros((30, 90))
    bias[:, 40] = -np.inf
    out = run(q, k, v, path, bias=bias)
    assert np.isfinite(out).all()


def test_broadcast_mask_and_bias_are_not_materialised(rng):
    """A (B, H, S, S) broadcast of a (S, S) mask and bias: 64 GiB nominal, read with zero strides."""
    q, k, v = qkv(rng, b=64, hq=64, hkv=8, sq=128, sk=128, d=8)
    small = rng.random((128, 128)) > 0.5
    mask = np.broadcast_to(small, (64, 64, 128, 128))
    bias = np.broadcast_to(
        rng.standard_normal((1, 64, 1, 128)).astype(np.float32), (64, 64, 128, 128)
    )
    out = tileattn.attention(q, k, v, mask=mask, bias=bias)
    ref = reference.attention(q[:1, :4], k[:1, :1], v[:1, :1], mask=small, bias=bias[:1, :4])
    np.testing.assert_allclose(out[:1, :4], ref, rtol=2e-5, atol=2e-6)


def test_bias_dtypes(rng):
    q, k, v = qkv(rng, b=1, hq=2, sq=20, sk=30, d=8, dtype="float64")
    base = rng.standard_normal((20, 30))
    ref = reference.attention(q, k, v, bias=base.astype(np.float16))
    for dt in (np.float16, np.float32, np.float64):
        np.testing.assert_allclose(
            run(q, k, v, bias=base.astype(dt).astype(np.float64)),
            reference.attention(q, k, v, bias=base.astype(dt)),
            rtol=1e-12,
        )
    np.testing.assert_allclose(run(q, k, v, bias=base.astype(np.float16)), ref, rtol=1e-12)


@pytest.mark.parametrize("bias_dtype", ALL_DTYPES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_bias_dtype_matrix(rng, path, dtype, bias_dtype):
    """Every bias dtype with every input dtype (read in place, converted a tile row at a time, or
    gathered), contiguous and strided along the keys, on every kernel path."""
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=37, sk=133, d=24, dtype=dtype)
    base = rng.standard_normal((4, 37, 2 * 133)).astype(dtype_of(bias_dtype))
    for bias in (np.ascontiguousarray(base[..., :133]), base[..., ::2]):
        check_against_oracle(q, k, v, path, bias=bias, causal=True)
        check_against_oracle(
            q, k, v, path, bias=bias, softcap=5.0, mask=rng.random((37, 133)) > 0.2
        )


@pytest.mark.parametrize(
    ("dtype", "bias_dtype"),
    [
        ("float32", "float32"),
        ("float32", "float64"),
        ("float16", "float32"),
        ("float64", "float64"),
    ],
)
def test_row_bias_walks_chunks_of_tiles(rng, path, dtype, bias_dtype):
    """A bias that differs from row to row over long rows (the kernel packs several KV tiles and walks
    each group of register blocks over all of them): against the oracle, and bit for bit the result of
    the same values given as a per-key bias (read one tile at a time). Keys span several chunks and a
    partial one; the mask hides two whole tiles inside a chunk; rows span several groups."""
    sq, sk, d = 61, 2 * 1024 + 77, 32
    _, block_k = tile_info(
        dtype, 1, 3, 1, sq, sk, d, d, isa=path[1] if path[0] == "tiled" else "auto"
    )
    assert sk > 4 * block_k
    q, k, v = qkv(rng, b=1, hq=3, hkv=1, sq=sq, sk=sk, d=d, dtype=dtype)
    row = rng.standard_normal(sk).astype(dtype_of(bias_dtype))
    mask = np.ones((sq, sk), bool)
    mask[:, block_k : 3 * block_k] = False
    mask[5, :] = False
    for kw in (dict(), dict(causal=True, mask=mask), dict(window=(300, 40), softcap=4.0)):
        full = run(q, k, v, path, bias=np.tile(row, (3, sq, 1)), **kw)
        per_key = run(q, k, v, path, bias=row, **kw)
        assert np.array_equal(full, per_key, equal_nan=True), kw
    check_against_oracle(q, k, v, path, bias=np.tile(row, (3, sq, 1)), causal=True, mask=mask)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(window=(1, 2, 3)), ValueError, "window must be a pair"),
        (dict(window=5), ValueError, "window must be a pair"),
        (dict(window=(-2, 0)), ValueError, r"window\[0\] \(left\) must be >= 0"),
        (dict(window=(1.5, 0)), TypeError, r"window\[0\] \(left\) must be an int"),
        (dict(mask=np.ones((3, 3))), TypeError, "mask must be a boolean array"),
        (
            dict(mask=np.ones((5, 5), bool)),
            ValueError,
            r"mask of shape \(5, 5\) does not broadcast to",
        ),
        (dict(bias=np.ones((8, 10), np.int32)), TypeError, "bias must be a float array"),
        (dict(bias=np.ones((7, 10))), ValueError, r"bias of shape \(7, 10\) does not broadcast"),
        (dict(alibi_slopes=np.ones(3)), ValueError, r"alibi_slopes must have shape \(Hq,\)"),
        (
            dict(alibi_slopes=np.array([1.0, np.nan, 1, 1])),
            ValueError,
            "alibi_slopes must be finite",
        ),
        (
            dict(alibi_slopes=np.array(["a", "b", "c", "d"])),
            TypeError,
            "alibi_slopes must be a real array",
        ),
        (dict(softcap=-1.0), ValueError, "softcap must be finite and >= 0"),
        (dict(softcap=float("inf")), ValueError, "softcap must be finite"),
        (dict(softcap="1"), TypeError, "softcap must be a real number"),
        (dict(q_lengths=np.array([1.0, 2.0])), TypeError, "q_lengths must be an integer array"),
        (
            dict(q_lengths=np.array([1, 2, 3])),
            ValueError,
            r"q_lengths must have shape \(B,\) = \(2,\)",
        ),
        (dict(kv_lengths=np.array([1, 11])), ValueError, r"kv_lengths must lie in \[0, 10\]"),
        (dict(q_lengths=np.array([-1, 2])), ValueError, r"q_lengths must lie in \[0, 8\]"),
    ],
)
def test_option_errors(rng, kwargs, error, message):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=8, sk=10, d=4)
    with pytest.raises(error, match=message):
        tileattn.attention(q, k, v, **kwargs)


@pytest.mark.parametrize("name", ["window", "mask", "everything"])
def test_options_thread_determinism(rng, path, name):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=300, sk=400, d=32)
    kw = options(name, rng, 2, 4, 300, 400)
    base = run(q, k, v, path, num_threads=1, return_lse=True, **kw)
    for threads in (2, 3, 7):
        got = run(q, k, v, path, num_threads=threads, return_lse=True, **kw)
        assert np.array_equal(got[0], base[0]) and np.array_equal(got[1], base[1])


def test_window_skips_work(rng):
    """A narrow window must cost much less than full causal attention (a complexity check: both timed in
    the same test; the speed targets themselves are in bench/)."""
    import time

    q, k, v = qkv(rng, b=1, hq=2, sq=4096, sk=4096, d=64)

    def best(**kw):
        tileattn.attention(q, k, v, **kw)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            tileattn.attention(q, k, v, **kw)
            times.append(time.perf_counter() - t0)
        return min(times)

    assert best(causal=True, window=(127, 0)) < 0.5 * best(causal=True)
