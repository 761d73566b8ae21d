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

__all__ = ["attention", "attention_in", "attention_rows", "naive_attention", "visible_keys"]


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


def visible_keys(seq_q: int, seq_k: int, causal: bool) -> np.ndarray:
    """Boolean (Sq, Sk) matrix: may query i see key j? Causal is bottom-right: j <= i + (Sk - Sq)."""
    i = np.arange(seq_q)[:, None]
    j = np.arange(seq_k)[None, :]
    if causal:
        return j <= i + (seq_k - seq_q)
    return np.ones((seq_q, seq_k), dtype=bool)


def _weighted_values(p: np.ndarray, v: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """sum_j p[..., i, j] * v[..., j, :] over the keys row i sees.

    A matrix product would let 0 * inf or 0 * NaN from a value row that query i cannot see reach row
    i; the keys whose value rows are not finite are therefore added only to the rows that see them.
    """
    finite = np.isfinite(v).all(axis=-1)  # (B, H, Sk)
    o = p @ np.where(finite[..., None], v, 0.0)
    for b, h, j in zip(*np.nonzero(~finite)):
        o[b, h] += np.where(visible[:, j, None], p[b, h, :, j, None] * v[b, h, j], 0.0)
    return o


def attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "bhsd",
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
        return_lse=return_lse,
        out=out,
    )


def attention_in(
    precision: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "bhsd",
    return_lse: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:func:`attention` evaluated in another floating-point type, e.g. ``np.longdouble``.

    The tests check float64 results against the oracle in ``np.longdouble`` (extended precision on
    x86-64), so that the comparison is not limited by the float64 oracle's own rounding. Results are
    returned in `precision`.
    """
    q, k, v = (np.asarray(x) for x in (q, k, v))
    rank = q.ndim
    qf, kf, vf = (_to_bhsd(x, layout).astype(precision) for x in (q, k, v))
    sq, sk = qf.shape[2], kf.shape[2]
    o, lse = _attend(qf, kf, vf, visible_keys(sq, sk, causal), scale)
    result = _from_bhsd(o, layout, rank)
    if out is not None:
        np.copyto(out, result, casting="unsafe")
        result = out
    if return_lse:
        return result, lse.reshape(lse.shape[4 - rank :])
    return result


def attention_rows(
    q: Any,
    k: Any,
    v: Any,
    rows: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "bhsd",
) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's output and LSE for the query positions `rows` only, in float64, as
    ``(B, Hq, len(rows), Dv)`` and ``(B, Hq, len(rows))`` whatever the layout: for checking large
    problems on sampled rows without the full score matrix."""
    rows = np.asarray(rows)
    qf, kf, vf = (_to_bhsd(np.asarray(x), layout) for x in (q, k, v))
    visible = visible_keys(qf.shape[2], kf.shape[2], causal)[rows]
    q_rows = qf[:, :, rows].astype(np.float64)
    return _attend(q_rows, kf.astype(np.float64), vf.astype(np.float64), visible, scale)


def _attend(qf, kf, vf, visible, scale):
    """The specification on (B, H, S, D) arrays of one float type and a (rows, keys) visibility matrix."""
    hq, d = qf.shape[1], qf.shape[3]
    hkv = kf.shape[1]
    if hkv == 0 or hq % hkv:
        raise ValueError("Hq must be a multiple of Hkv")
    group = hq // hkv
    kf = np.repeat(kf, group, axis=1)  # query head h reads kv head h // group
    vf = np.repeat(vf, group, axis=1)
    if scale is None:
        scale = 1.0 / math.sqrt(d)

    with np.errstate(all="ignore"):  # inf - inf and 0 * inf are part of the specification
        s = qf.dtype.type(scale) * (qf @ np.swapaxes(kf, -1, -2))  # (B, Hq, Sq, Sk)
        s = np.where(visible, s, -np.inf)  # select, so a NaN in an invisible key stays out
        m = s.max(axis=-1, keepdims=True, initial=-np.inf)
        m_safe = np.where(m == -np.inf, 0.0, m)  # a row with nothing visible: every p is 0
        p = np.exp(s - m_safe)
        l = p.sum(axis=-1, keepdims=True)
        o = _weighted_values(p, vf, visible)
        o = np.where(l == 0, 0.0, o / np.where(l == 0, 1.0, l))  # a row that saw no key: 0
        lse = np.where(l == 0, -np.inf, m_safe + np.log(np.where(l == 0, 1.0, l)))[..., 0]
    return o, lse


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
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``softmax(scale * q @ k^T) @ v`` in the inputs' precision with plain NumPy.

    Heads are processed in groups so that one group's score matrix stays under ``max_score_bytes``.
    The output has the inputs' dtype; with ``return_lse`` the LSE ``(B, Hq, Sq)`` (leading dims following
    the rank), computed in the same working precision, comes too.
    """
    q, k, v = (np.asarray(x) for x in (q, k, v))
    rank = q.ndim
    work = _working_dtype(q.dtype)
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
