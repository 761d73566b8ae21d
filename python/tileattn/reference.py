"""The NumPy oracle: tileattn's semantics in plain, readable NumPy.

:func:`attention` takes the same arguments as :func:`tileattn.attention` and computes in float64 with
the full score matrix. It is the executable specification and the oracle of every test, and returns
float64 results (the exact answer the library's output is compared with).

:func:`naive_attention` is the textbook computation in the inputs' own precision
(``softmax(scale * q @ k^T) @ v`` in float32 for float32, float16 and bfloat16, float64 for float64):
the "plain NumPy" competitor of the benchmarks and the yardstick of the tests' error bounds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "allowed_keys",
    "attention",
    "attention_in",
    "attention_received",
    "attention_rows",
    "attention_varlen",
    "attention_weights",
    "merge_attention",
    "naive_attention",
    "scores",
    "visible_keys",
]


def _to_bhsd(x: np.ndarray, layout: str) -> np.ndarray:
    """(S, D), (H, S, D) / (S, H, D) or (B, H, S, D) / (B, S, H, D) -> (B, H, S, D)."""
    if layout not in ("bhsd", "bshd"):
        raise ValueError(f"layout must be 'bhsd' or 'bshd', got {layout!r}")
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        x = x[None]
    return np.swapaxes(x, 1, 2) if layout == "bshd" else x


def _from_bhsd(x: np.ndarray, layout: str, rank: int) -> np.ndarray:
    """(B, H, S, D) -> the layout and rank of the inputs (B = 1 below rank 4, H = 1 at rank 2)."""
    if rank == 2:
        return x[0, 0]
    if rank == 3:
        x = x[0]
    return np.swapaxes(x, -3, -2) if layout == "bshd" else x


def alignment(causal: Any) -> tuple[bool, bool]:
    """(is causal, top-left aligned) from ``causal``: False, True / "bottom_right", or "top_left"."""
    if causal is False or causal is None:
        return False, False
    if causal is True or causal == "bottom_right":
        return True, False
    if causal == "top_left":
        return True, True
    raise ValueError(f"causal must be False, True, 'bottom_right' or 'top_left', got {causal!r}")


def window_bounds(causal: Any, window: Any) -> tuple[int | None, int | None]:
    """(left, right) of the key window around a query's diagonal, None = unbounded; causal caps right at 0."""
    left = right = None
    if window is not None:
        # A bound past 2**62 reaches past every key (capped, so that int64 index arithmetic cannot overflow).
        left, right = (None if w is None or w == -1 else min(int(w), 2**62) for w in window)
    if alignment(causal)[0]:
        right = 0 if right is None else min(right, 0)
    return left, right


def visible_keys(seq_q: int, seq_k: int, causal: Any = False, window: Any = None) -> np.ndarray:
    """Boolean (Sq, Sk) matrix: may query i see key j? Bottom-right alignment puts query i's diagonal at
    key i + (Sk - Sq), top-left at key i; the window is [diagonal - left, diagonal + right]."""
    return allowed_keys(1, seq_q, seq_k, causal=causal, window=window)[0, 0]


def allowed_keys(
    batch: int,
    seq_q: int,
    seq_k: int,
    *,
    causal: Any = False,
    window: Any = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
    align: str | None = None,
) -> np.ndarray:
    """Boolean (B, 1, Sq, Sk): the structured part of the mask (lengths, causal, window).

    Sequence b has q_lengths[b] query rows and kv_lengths[b] keys (default: all); rows and keys past them
    see / are seen by nothing. Its diagonal offset is d = kv_len - q_len (bottom-right) or 0 (top-left;
    `align` overrides the alignment that `causal` implies).
    """
    q_len, kv_len, d = _lengths(batch, seq_q, seq_k, causal, q_lengths, kv_lengths, align)
    i = np.arange(seq_q)[None, None, :, None]
    j = np.arange(seq_k)[None, None, None, :]
    ok = (i < q_len) & (j < kv_len)
    left, right = window_bounds(causal, window)
    if left is not None:
        ok = ok & (j >= i + d - left)
    if right is not None:
        ok = ok & (j <= i + d + right)
    return ok


def _lengths(batch, seq_q, seq_k, causal, q_lengths, kv_lengths, align):
    """Per-sequence (q_len, kv_len, diagonal offset) as (B, 1, 1, 1) arrays."""
    q_len = np.full(batch, seq_q) if q_lengths is None else np.asarray(q_lengths).reshape(batch)
    kv_len = np.full(batch, seq_k) if kv_lengths is None else np.asarray(kv_lengths).reshape(batch)
    top_left = alignment(causal)[1] if align is None else align == "top_left"
    d = np.zeros(batch, dtype=np.int64) if top_left else kv_len - q_len
    return (x.reshape(batch, 1, 1, 1).astype(np.int64) for x in (q_len, kv_len, d))


def _weighted_values(p: np.ndarray, v: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """sum_j p[..., i, j] * v[..., j, :] over the keys row i may see.

    A matrix product would let 0 * inf or 0 * NaN from a value row that query i cannot see reach row
    i; the keys whose value rows are not finite are therefore added only to the rows that see them.
    """
    allowed = np.broadcast_to(allowed, p.shape)
    finite = np.isfinite(v).all(axis=-1)  # (B, H, Sk)
    o = p @ np.where(finite[..., None], v, 0.0)
    for b, h, j in zip(*np.nonzero(~finite)):
        o[b, h] += np.where(allowed[b, h, :, j, None], p[b, h, :, j, None] * v[b, h, j], 0.0)
    return o


def _rows_of(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Query rows `rows` of an array broadcastable to (B, H, Sq, Sk) (of rank 4, or of lower rank as a
    trailing part of it), broadcastable to (B, H, len(rows), Sk): axes read with zero strides (broadcast
    views) shrink to length 1 first, so that selecting rows copies only distinct values."""
    x = x[(None,) * (4 - x.ndim)]
    x = x[tuple(slice(0, 1) if st == 0 else slice(None) for st in x.strides)]
    return x if x.shape[2] == 1 else x[:, :, rows]


def _clamp(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """x with its finite values beyond `dtype`'s range at that range's largest value (x's own dtype)."""
    x, dtype = np.asarray(x), np.dtype(dtype)
    if x.dtype.kind == dtype.kind == "f" and x.dtype.itemsize > dtype.itemsize:
        big = np.finfo(dtype).max
        x = np.where(np.isinf(x), x, np.clip(x, -big, big))
    return x


def _saturate(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """x as `dtype`, finite values beyond its range at its largest finite value rather than infinite:
    only -inf masks, so a float64 bias of finfo.min on scores computed in float32 stays finite."""
    return _clamp(x, dtype).astype(dtype)


def _bias_limit(dtype: np.dtype) -> Any:
    """The range a bias saturates to for inputs of `dtype`: float32's for inputs that tileattn computes in
    float32 (all but float64; a float64 bias beyond it saturates there, as documented), else none."""
    return None if np.dtype(dtype) == np.float64 else np.float32


def scores(
    qf: np.ndarray,
    kf: np.ndarray,
    *,
    scale: float | None = None,
    causal: Any = False,
    window: Any = None,
    mask: Any = None,
    bias: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
    align: str | None = None,
    rows: Any = None,
    bias_limit: Any = None,
    row_invariant: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The scores of (B, H, S, D) arrays of one float type, in that type, and where they are allowed.

    Returns ``(s, allowed)``, both (B, Hq, R, Sk) with R the query rows (all, or `rows`):
    ``s = softcap * tanh(scale * q.k / softcap) + bias - slope * |i + d - j|``, -inf where not allowed
    (masking selects: a NaN in a score that is masked never survives), and ``allowed``, the keys each
    row may see: the structured mask (lengths, causal, window) and the boolean `mask`. `bias_limit`: a
    float dtype whose range finite bias values saturate to (after selecting rows, so a broadcast bias is
    never expanded). `row_invariant`: sum each dot product in an order that depends on nothing but its
    own row (NumPy's einsum loop); BLAS, the default, may sum a row's products in an order that depends
    on how many rows it is given (OpenBLAS does on some CPUs), so a row's last bits could change with
    `rows`.
    """
    b, hq, sq, dim = qf.shape
    hkv, sk = kf.shape[1], kf.shape[2]
    if hkv == 0 or hq % hkv:
        raise ValueError("Hq must be a multiple of Hkv")
    kf = np.repeat(kf, hq // hkv, axis=1)  # query head h reads kv head h // group
    # Negative rows count from the end, as NumPy indexing does (the ALiBi distance needs the positions).
    rows = np.arange(sq) if rows is None else np.asarray(rows, dtype=np.int64)
    rows = np.where(rows < 0, rows + sq, rows)
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    typ = qf.dtype.type
    allowed = allowed_keys(
        b,
        sq,
        sk,
        causal=causal,
        window=window,
        q_lengths=q_lengths,
        kv_lengths=kv_lengths,
        align=align,
    )
    # The selected rows only, and a broadcast mask or bias is never expanded over batch and heads.
    allowed = _rows_of(allowed, rows)
    if mask is not None:
        allowed = allowed & _rows_of(np.asarray(mask, dtype=bool), rows)
    allowed = np.broadcast_to(allowed, (b, hq, len(rows), sk))
    with np.errstate(all="ignore"):
        if row_invariant:
            qr, kc = np.ascontiguousarray(qf[:, :, rows]), np.ascontiguousarray(kf)
            dots = np.einsum("bhid,bhjd->bhij", qr, kc, optimize=False)
        else:
            dots = qf[:, :, rows] @ np.swapaxes(kf, -1, -2)
        s = typ(scale) * dots
        if softcap:
            s = typ(softcap) * np.tanh(s / typ(softcap))
        if bias is not None:
            bias = _rows_of(np.asarray(bias), rows)
            if bias_limit is not None:
                bias = _clamp(bias, bias_limit)
            s = s + _saturate(bias, qf.dtype)
        if alibi_slopes is not None:
            slopes = np.asarray(alibi_slopes).astype(qf.dtype)
            slopes = np.broadcast_to(
                slopes.reshape((1,) * (2 - slopes.ndim) + slopes.shape), (b, hq)
            )
            _, _, d = _lengths(b, sq, sk, causal, q_lengths, kv_lengths, align)
            dist = np.abs(rows[None, None, :, None] + d - np.arange(sk)[None, None, None, :])
            s = s - slopes[:, :, None, None] * dist.astype(qf.dtype)
        s = np.where(allowed, s, -np.inf)
    return s, allowed


def _softmax_values(s: np.ndarray, vf: np.ndarray, allowed: np.ndarray):
    """Output and LSE from masked scores: exp(s - max) over each row, normalised. A row where nothing
    is above -inf (every key masked, however) outputs 0 and has LSE -inf."""
    with np.errstate(all="ignore"):  # inf - inf and 0 * inf are part of the specification
        m = s.max(axis=-1, keepdims=True, initial=-np.inf)
        m_safe = np.where(m == -np.inf, 0.0, m)  # a row with nothing visible: every p is 0
        p = np.exp(s - m_safe)
        l = p.sum(axis=-1, keepdims=True)
        live = allowed & (s != -np.inf)  # a key whose score is -inf is masked too
        o = _weighted_values(p, vf, live)
        o = np.where(l == 0, 0.0, o / np.where(l == 0, 1.0, l))  # a row that saw no key: 0
        lse = np.where(l == 0, -np.inf, m_safe + np.log(np.where(l == 0, 1.0, l)))[..., 0]
    return o, lse


OPTION_NAMES = (
    "causal",
    "scale",
    "window",
    "mask",
    "bias",
    "alibi_slopes",
    "softcap",
    "q_lengths",
    "kv_lengths",
)


def attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: Any = False,
    scale: float | None = None,
    layout: str = "bhsd",
    window: Any = None,
    mask: Any = None,
    bias: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
    return_lse: bool = False,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exact attention in float64 (see :func:`tileattn.attention` for the arguments).

    Returns float64 arrays (out in the inputs' layout and rank; lse ``(B, Hq, Sq)`` with leading dims
    following the rank). ``out``, when given, receives the result cast to its dtype. ``num_threads`` is
    accepted and ignored.
    """
    del num_threads
    return attention_in(
        np.float64,
        q,
        k,
        v,
        causal=causal,
        scale=scale,
        layout=layout,
        window=window,
        mask=mask,
        bias=bias,
        alibi_slopes=alibi_slopes,
        softcap=softcap,
        q_lengths=q_lengths,
        kv_lengths=kv_lengths,
        return_lse=return_lse,
        out=out,
    )


def attention_in(
    precision: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    layout: str = "bhsd",
    return_lse: bool = False,
    out: np.ndarray | None = None,
    align: str | None = None,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:func:`attention` evaluated in another floating-point type, e.g. ``np.longdouble``.

    The tests check float64 results against the oracle in ``np.longdouble`` (extended precision on
    x86-64), so that the comparison is not limited by the float64 oracle's own rounding. Results are
    returned in `precision`.
    """
    q, k, v = (np.asarray(x) for x in (q, k, v))
    rank = q.ndim
    qf, kf, vf = (_to_bhsd(x, layout).astype(precision) for x in (q, k, v))
    s, allowed = scores(qf, kf, align=align, bias_limit=_bias_limit(q.dtype), **options)
    vf = np.repeat(vf, qf.shape[1] // max(vf.shape[1], 1), axis=1) if vf.shape[1] else vf
    o, lse = _softmax_values(s, vf, allowed)
    result = _from_bhsd(o, layout, rank)
    if out is not None:
        np.copyto(out, result, casting="unsafe")
        result = out
    if return_lse:
        return result, lse.reshape(lse.shape[4 - rank :])
    return result


def attention_rows(q: Any, k: Any, v: Any, rows: Any, *, layout: str = "bhsd", **options: Any):
    """The oracle's output and LSE for the query positions `rows` only, in float64, as
    ``(B, Hq, len(rows), Dv)`` and ``(B, Hq, len(rows))`` whatever the layout: for checking large
    problems on sampled rows without the full score matrix."""
    q = np.asarray(q)
    qf, kf, vf = (_to_bhsd(np.asarray(x), layout).astype(np.float64) for x in (q, k, v))
    s, allowed = scores(qf, kf, rows=rows, bias_limit=_bias_limit(q.dtype), **options)
    vf = np.repeat(vf, qf.shape[1] // vf.shape[1], axis=1)
    return _softmax_values(s, vf, allowed)


def attention_varlen(
    q: Any,
    k: Any,
    v: Any,
    cu_seqlens_q: Any,
    cu_seqlens_k: Any,
    *,
    return_lse: bool = False,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Packed sequences: q (total_q, Hq, D), k/v (total_k, Hkv, D|Dv); sequence b holds rows
    cu_seqlens_q[b]:cu_seqlens_q[b+1] and keys cu_seqlens_k[b]:cu_seqlens_k[b+1], attended as one
    (S, H, D) problem with every option. LSE: (Hq, total_q). float64."""
    q, k, v = (np.asarray(x) for x in (q, k, v))
    cq, ck = np.asarray(cu_seqlens_q), np.asarray(cu_seqlens_k)
    options.pop("num_threads", None)
    slopes = options.pop("alibi_slopes", None)
    out = np.zeros((q.shape[0], q.shape[1], v.shape[2]))
    lse = np.full((q.shape[1], q.shape[0]), -np.inf)
    for b in range(len(cq) - 1):
        rows, keys = slice(cq[b], cq[b + 1]), slice(ck[b], ck[b + 1])
        s = None if slopes is None else np.asarray(slopes)[b] if np.ndim(slopes) == 2 else slopes
        o, l = attention(
            q[rows], k[keys], v[keys], layout="bshd", return_lse=True, alibi_slopes=s, **options
        )
        out[rows], lse[:, rows] = o, l
    return (out, lse) if return_lse else out


def merge_attention(outs: Any, lses: Any, *, layout: str = "bhsd") -> tuple[np.ndarray, np.ndarray]:
    """Combines attention over disjoint sets of keys: with L = log(sum_i exp(lse_i)),
    out = sum_i exp(lse_i - L) out_i and lse = L; partials with lse -inf weigh nothing, and if all are
    -inf the result is 0 with lse -inf. float64."""
    lses = np.stack([np.asarray(x, dtype=np.float64) for x in lses])
    outs = np.stack(
        [
            _to_bhsd(np.asarray(x, dtype=np.float64), layout)
            if np.ndim(x) >= 3
            else np.asarray(x, np.float64)[None, None]
            for x in outs
        ]
    )
    with np.errstate(all="ignore"):
        m = lses.max(axis=0)
        m_safe = np.where(m == -np.inf, 0.0, m)
        w = np.exp(lses - m_safe)  # (n, ...) weights before normalisation; 0 for empty partials
        total = w.sum(axis=0)
        lse = np.where(total == 0, -np.inf, m_safe + np.log(np.where(total == 0, 1.0, total)))
        wn = np.where(total == 0, 0.0, w / np.where(total == 0, 1.0, total))
        lse4 = lse.reshape((1,) * (3 - lse.ndim) + lse.shape)
        wn4 = wn.reshape(wn.shape[:1] + (1,) * (3 - lse.ndim) + wn.shape[1:])
        o = np.where(wn4[..., None] == 0, 0.0, wn4[..., None] * outs).sum(axis=0)
    rank = np.ndim(lses[0]) + 1
    return _from_bhsd(o, layout, rank), lse4.reshape(lse4.shape[4 - rank :]) if rank < 4 else lse4


def attention_weights(
    q: Any, k: Any, *, rows: Any = None, layout: str = "bhsd", **options: Any
) -> np.ndarray:
    """The probabilities softmax(scores) of the query rows `rows` (all by default), float64, as
    (B, Hq, R, Sk) whatever the layout (leading dims follow the rank); masked entries and rows that
    see no key are 0."""
    q, k = np.asarray(q), np.asarray(k)
    rank = q.ndim
    qf, kf = (_to_bhsd(x, layout).astype(np.float64) for x in (q, k))
    s, _ = scores(qf, kf, rows=rows, bias_limit=_bias_limit(q.dtype), **options)
    with np.errstate(all="ignore"):
        m = s.max(axis=-1, keepdims=True, initial=-np.inf)
        p = np.exp(s - np.where(m == -np.inf, 0.0, m))
        l = p.sum(axis=-1, keepdims=True)
        p = np.where(l == 0, 0.0, p / np.where(l == 0, 1.0, l))
    return p.reshape(p.shape[4 - rank :]) if rank < 4 else p


def attention_received(q: Any, k: Any, *, layout: str = "bhsd", **options: Any) -> np.ndarray:
    """For each key, the probability it receives summed over all query rows: (B, Hq, Sk), float64."""
    p = attention_weights(q, k, layout=layout, **options)
    return p.sum(axis=-2)


def _working_dtype(dtype: np.dtype) -> type:
    return np.float64 if dtype == np.float64 else np.float32


def naive_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "bhsd",
    return_lse: bool = False,
    max_score_bytes: int = 1 << 28,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``softmax(scale * q @ k^T) @ v`` in the inputs' precision with plain NumPy.

    Heads are processed in groups so that one group's score matrix stays under ``max_score_bytes``.
    The output has the inputs' dtype; with ``return_lse`` the LSE ``(B, Hq, Sq)`` (leading dims following
    the rank), computed in the same working precision, comes too. The other options of
    :func:`attention` (window, mask, bias, ...) take the straightforward path over the whole score
    matrix, still in the working precision.
    """
    q, k, v = (np.asarray(x) for x in (q, k, v))
    rank = q.ndim
    work = _working_dtype(q.dtype)
    if any(val is not None for val in options.values()) or isinstance(causal, str):
        qf, kf, vf = (_to_bhsd(x, layout).astype(work) for x in (q, k, v))
        s, _ = scores(qf, kf, scale=scale, causal=causal, **options)
        vf = np.repeat(vf, qf.shape[1] // max(vf.shape[1], 1), axis=1) if vf.shape[1] else vf
        with np.errstate(all="ignore"):
            m = s.max(axis=-1, keepdims=True, initial=-np.inf)
            m = np.where(m == -np.inf, work(0), m)
            p = np.exp(s - m)
            total = p.sum(axis=-1, keepdims=True)
            o = np.where(total == 0, work(0), (p @ vf) / np.where(total == 0, work(1), total))
            lse4 = np.where(total == 0, -np.inf, m + np.log(np.where(total == 0, work(1), total)))[
                ..., 0
            ]
        o = _from_bhsd(o, layout, rank).astype(q.dtype, copy=False)
        return (o, lse4.reshape(lse4.shape[4 - rank :])) if return_lse else o
    q4, k4, v4 = (_to_bhsd(x, layout) for x in (q, k, v))
    b, hq, sq, d = q4.shape
    hkv, sk = k4.shape[1], k4.shape[2]
    group = hq // hkv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    hidden = ~visible_keys(sq, sk, causal)
    out = np.zeros((b, hq, sq, v4.shape[3]), dtype=work)
    lse = np.full((b, hq, sq), -np.inf, dtype=work)

    def result():
        o = _from_bhsd(out, layout, rank).astype(q.dtype, copy=False)
        return (o, lse.reshape(lse.shape[4 - rank :])) if return_lse else o

    if sk == 0:
        return result()
    per_head = max(1, sq * sk * np.dtype(work).itemsize)
    step = max(1, min(hq, max_score_bytes // per_head))
    with np.errstate(all="ignore"):
        for bi in range(b):
            for h0 in range(0, hq, step):
                heads = np.arange(h0, min(hq, h0 + step))
                qh = q4[bi, heads].astype(work, copy=False)
                kh = k4[bi, heads // group].astype(work, copy=False)
                vh = v4[bi, heads // group].astype(work, copy=False)
                s = (qh @ np.swapaxes(kh, -1, -2)) * work(scale)
                s[:, hidden] = -np.inf
                m = s.max(axis=-1, keepdims=True)
                m[m == -np.inf] = 0  # rows that see no key end up all zero
                s -= m
                np.exp(s, out=s)
                total = s.sum(axis=-1, keepdims=True)
                lse[bi, heads] = np.where(
                    total == 0, -np.inf, m + np.log(np.where(total == 0, 1, total))
                )[..., 0]
                s /= np.where(total == 0, 1, total)
                out[bi, heads] = s @ vh
    return result()
