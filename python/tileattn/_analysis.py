"""Merging partial attention results, and the attention probabilities themselves (maps, received mass)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reference
from ._api import (
    _check_same_dtype,
    _is_bfloat16,
    _native,
    as_array,
    check_alibi,
    check_bias,
    check_causal,
    check_layout,
    check_lengths,
    check_mask,
    check_scale,
    check_shapes,
    check_softcap,
    check_window,
    dtype_code,
    from_bhsd_shape,
    to_bhsd,
)

# Rows of query positions processed at once: the probability buffer stays under this many bytes.
_CHUNK_BYTES = 64 << 20


def _work_dtype(dtype: np.dtype) -> type:
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def _partials(xs: Any, name: str) -> list[np.ndarray]:
    """A sequence of arrays (a list, a tuple or an array's first axis) as a list; TypeError naming it else."""
    if isinstance(xs, (str, bytes)) or not hasattr(xs, "__iter__"):
        raise TypeError(f"{name} must be a sequence of arrays, got {type(xs).__name__}")
    return [as_array(x, f"{name}[{i}]") for i, x in enumerate(xs)]


def merge_attention(outs: Any, lses: Any, *, layout: str = "bhsd") -> tuple[np.ndarray, np.ndarray]:
    """Combine attention computed over disjoint sets of keys into the attention over their union.

    ``outs[i]`` and ``lses[i]`` are the output and LSE of the same queries against the i-th set of keys
    (split-KV, ring or sequence parallelism): outputs of one shape and dtype in `layout` (``(B, H, S, Dv)``
    for ``"bhsd"``, ``(B, S, H, Dv)`` for ``"bshd"``, or rank 3 / 2), LSEs ``(B, H, S)`` (leading dims
    following the rank). With ``L = log(sum_i exp(lse_i))`` the result is ``sum_i exp(lse_i - L) outs[i]``
    and ``L``. Partials with LSE -inf (they saw no key) weigh nothing, whatever their output holds; if
    every partial is empty the result is 0 with LSE -inf. A NaN or +inf LSE makes the row NaN. Computed in float32 (float64 for float64
    outputs); returns ``(out, lse)`` with out in the outputs' dtype.
    """
    layout = check_layout(layout)
    outs = _partials(outs, "outs")
    lses = _partials(lses, "lses")
    if not outs:
        raise ValueError("merge_attention needs at least one partial result")
    if len(outs) != len(lses):
        raise ValueError(
            f"outs and lses must have the same length; got {len(outs)} and {len(lses)}"
        )
    first = outs[0]
    code = dtype_code(first.dtype, "outs[0]")
    rank = first.ndim
    if rank not in (2, 3, 4):
        raise ValueError(f"outs[0] must have 2, 3 or 4 dimensions; got shape {first.shape}")
    for i, o in enumerate(outs):
        if o.shape != first.shape:
            raise ValueError(
                f"outs[{i}] has shape {o.shape}, outs[0] {first.shape}: they must match"
            )
        if dtype_code(o.dtype, f"outs[{i}]") != code:
            raise TypeError(
                f"outs[{i}] has dtype {o.dtype}, outs[0] {first.dtype}: they must match"
            )
    b, h, s, _ = to_bhsd(first, layout).shape
    lse_shape = (b, h, s)[4 - rank :] if rank > 2 else (s,)
    work = _work_dtype(first.dtype)
    for i, l in enumerate(lses):
        if l.shape != lse_shape:
            raise ValueError(
                f"lses[{i}] must have shape {lse_shape} (the LSE of outs[0]); got {l.shape}"
            )
        if l.dtype.kind != "f" and not _is_bfloat16(l.dtype):
            raise TypeError(f"lses[{i}] must be a float array, got dtype {l.dtype}")

    def lse3(x):  # (B, H, S) view whatever the rank
        return x.astype(work).reshape((b, h, s))

    with np.errstate(all="ignore"):
        stacked = np.stack([lse3(l) for l in lses])
        m = stacked.max(axis=0)
        m_safe = np.where(m == -np.inf, work(0), m)
        w = np.exp(stacked - m_safe)  # exactly 0 for empty partials
        total = w.sum(axis=0)
        lse = np.where(
            total == 0, -np.inf, m_safe + np.log(np.where(total == 0, work(1), total))
        ).astype(work)
        w = w / np.where(total == 0, work(1), total)
        acc = np.zeros((b, h, s, first.shape[-1]), dtype=work)
        for wi, o in zip(w, outs):
            term = wi[..., None] * to_bhsd(o, layout).astype(work)
            acc += np.where(
                wi[..., None] == 0, work(0), term
            )  # an empty partial adds nothing, not 0 * NaN; a NaN weight (NaN LSE) gives NaN
    dtype = _native(first.dtype)
    out = np.empty(from_bhsd_shape(acc.shape, layout, rank), dtype)
    to_bhsd(out, layout)[...] = acc
    return out, lse.reshape(lse_shape)


def _probabilities(
    q,
    k,
    rows,
    *,
    causal,
    scale,
    layout,
    window,
    mask,
    bias,
    alibi_slopes,
    softcap,
    q_lengths,
    kv_lengths,
):
    """Checked inputs, then a generator of (row slice of the result, probabilities (B, Hq, r, Sk))."""
    layout = check_layout(layout)
    q, k = as_array(q, "q"), as_array(k, "k")
    _check_same_dtype(q, k, k)
    check_shapes(q, k, k, layout)
    is_causal, top_left = check_causal(causal)
    left, right = check_window(window)
    q4, k4 = to_bhsd(q, layout), to_bhsd(k, layout)
    b, hq, sq, d = q4.shape
    sk = k4.shape[2]
    scale = check_scale(scale, d)
    target = (b, hq, sq, sk)
    mask4 = check_mask(mask, target)
    bias4, _ = check_bias(bias, target)
    slopes = check_alibi(alibi_slopes, b, hq)
    cap = check_softcap(softcap)
    ql = check_lengths(q_lengths, "q_lengths", b, sq)
    kl = check_lengths(kv_lengths, "kv_lengths", b, sk)
    if rows is None:
        rows = np.arange(sq)
    else:
        rows = as_array(rows, "rows")
        if rows.size == 0 and rows.ndim == 1:
            rows = rows.astype(np.int64)  # rows=[] (NumPy makes an empty list float64)
        if rows.dtype.kind not in "iu" or rows.dtype == np.bool_:
            raise TypeError(
                f"rows must be an integer array of query positions, got dtype {rows.dtype}"
            )
        if rows.ndim != 1:
            raise ValueError(f"rows must be 1-D, got shape {rows.shape}")
        if rows.size and (rows.min() < -sq or rows.max() >= sq):
            raise ValueError(
                f"rows must lie in [-{sq}, {sq}) (query positions); got {rows.min()} .. {rows.max()}"
            )
        rows = rows.astype(np.int64)  # first: rows + sq must not overflow a small integer dtype
        rows = np.where(rows < 0, rows + sq, rows)
    work = _work_dtype(_native(q.dtype))
    qf, kf = q4.astype(work), k4.astype(work)
    options = dict(
        scale=scale,
        causal=is_causal,
        window=(left, right),
        mask=None if mask4 is None else mask4.view(bool),
        bias=bias4,
        alibi_slopes=slopes,
        softcap=cap or None,
        q_lengths=ql,
        kv_lengths=kl,
        align="top_left" if top_left else "bottom_right",
    )
    per_row = max(1, b * hq * sk * np.dtype(work).itemsize)
    step = max(1, _CHUNK_BYTES // per_row)

    def chunks():
        for r0 in range(0, len(rows), step):
            sel = rows[r0 : r0 + step]
            s, _ = reference.scores(qf, kf, rows=sel, row_invariant=True, **options)
            with np.errstate(all="ignore"):
                m = s.max(axis=-1, keepdims=True, initial=-np.inf)
                p = np.exp(s - np.where(m == -np.inf, work(0), m))
                total = p.sum(axis=-1, keepdims=True)
                p = np.where(total == 0, work(0), p / np.where(total == 0, work(1), total))
            yield slice(r0, r0 + len(sel)), p

    return (b, hq, sq, sk), rows, work, q.ndim, chunks()


def attention_weights(
    q: Any,
    k: Any,
    *,
    rows: Any = None,
    causal: bool | str = False,
    scale: float | None = None,
    layout: str = "bhsd",
    window: Any = None,
    mask: Any = None,
    bias: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
) -> np.ndarray:
    """The exact attention probabilities of the query positions `rows` (all by default).

    Returns ``(B, Hq, len(rows), Sk)`` whatever the layout (leading dims follow the rank): row ``r`` holds
    ``softmax_j(score(rows[r], j))`` under the same options as :func:`tileattn.attention` (masked keys and
    rows that see no key are exactly 0). Computed a block of query rows at a time, in float32 (float64 for
    float64 inputs), so no ``Sq x Sk`` buffer exists unless every row is asked for. A row's values do not
    depend on which other rows are asked for, bit for bit (its dot products are summed in a fixed order,
    not by BLAS, whose order can depend on the number of rows).
    """
    shape, sel, work, rank, chunks = _probabilities(
        q,
        k,
        rows,
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
    )
    b, hq, _, sk = shape
    result = np.empty((b, hq, len(sel), sk), dtype=work)
    for part, p in chunks:
        result[:, :, part] = p
    return result.reshape(result.shape[4 - rank :]) if rank < 4 else result


def attention_received(
    q: Any,
    k: Any,
    *,
    causal: bool | str = False,
    scale: float | None = None,
    layout: str = "bhsd",
    window: Any = None,
    mask: Any = None,
    bias: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
) -> np.ndarray:
    """For each key, the probability it receives summed over all query rows: ``(B, Hq, Sk)`` (leading
    dims follow the rank), the column sums of the attention matrix that KV-cache eviction (H2O, ...)
    ranks keys by. Computed a block of query rows at a time (never the whole ``Sq x Sk`` matrix), summed in
    float64, returned in float32 (float64 for float64 inputs)."""
    shape, _, work, rank, chunks = _probabilities(
        q,
        k,
        None,
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
    )
    b, hq, _, sk = shape
    total = np.zeros((b, hq, sk), dtype=np.float64)
    for _, p in chunks:
        total += p.sum(axis=2, dtype=np.float64)
    total = total.astype(work)
    return total.reshape(total.shape[4 - rank :]) if rank < 4 else total


__all__ = ["attention_received", "attention_weights", "merge_attention"]
