"""Drop-in wrappers with the signatures and semantics of the attention functions of PyTorch, FlashAttention
and JAX, on NumPy arrays (they return NumPy arrays).

Where the libraries disagree (every case is tested against the real library when it is installed):

============================  =====================  ======================  ======================  =========
behaviour                     torch SDPA 2.13        flash-attn 2.x          jax.nn 0.10             tileattn
============================  =====================  ======================  ======================  =========
causal alignment, Sq != Sk    top-left (j <= i)      bottom-right            top-left                both
layout                        (N, ..., H, L, E)      (B, S, H, D)            (B, T, N, H)            both
GQA (Hq multiple of Hkv)      needs enable_gqa=True  implicit                implicit                implicit
mask and causal together      intersected (raises    no boolean mask         intersected             intersected
                              on some shapes)
row whose keys are all        0                      0, LSE +inf             mean of the values      0, LSE -inf
masked                                                                       (masks with finfo.min,
                                                                             not -inf)
window reference point        -                      bottom-right diagonal   top-left (index i)      either
window bound -1               -                      unbounded               literal: one key past   unbounded
                                                                             the diagonal
padded query rows             -                      -                       0                       0
dropout                       supported              supported               -                       no
============================  =====================  ======================  ======================  =========

Each wrapper follows its library (``dot_product_attention`` reads a negative ``local_window_size`` bound
literally, as JAX does: ``(-1, 1)`` sees key i + 1 only), except for rows whose every key is masked: they give 0 everywhere and LSE
-inf (log of an empty sum), tileattn's convention, which merges correctly with
:func:`tileattn.merge_attention`. ``dropout_p != 0`` raises NotImplementedError.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import re
from typing import Any, Callable

import numpy as np

from ._analysis import attention_weights
from ._api import as_array, attention_impl, check_flag, varlen_impl

__all__ = [
    "dot_product_attention",
    "flash_attn_func",
    "flash_attn_varlen_func",
    "scaled_dot_product_attention",
]


def _no_dropout(dropout_p: Any) -> None:
    if isinstance(dropout_p, (bool, np.bool_)) or not isinstance(dropout_p, numbers.Real):
        raise TypeError(f"dropout_p must be a real number, got {type(dropout_p).__name__}")
    if dropout_p != 0:
        raise NotImplementedError(
            "dropout_p != 0 is not supported by tileattn (exact attention only)"
        )


def _softcap(softcap: Any) -> Any:
    """flash-attn's softcap: 0 = off (tileattn's None); anything else goes to tileattn's checks."""
    zero = (
        isinstance(softcap, numbers.Real)
        and not isinstance(softcap, (bool, np.bool_))
        and softcap == 0
    )
    return None if zero else softcap


def _max_seqlen(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def _named(**names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Errors of tileattn's argument checks inside a wrapper name the wrapper's own arguments
    (``softmax_scale``, not ``scale``): whole words of the message are renamed as in `names`."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (TypeError, ValueError) as e:
                message = pattern.sub(lambda m: names[m.group(1)], str(e))
                if type(e) not in (TypeError, ValueError) or message == str(e):
                    raise
                raise type(e)(message) from e

        return call

    return wrap


@_named(q="query", k="key", v="value", mask="attn_mask", bias="attn_mask")
def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> np.ndarray:
    """``torch.nn.functional.scaled_dot_product_attention`` on NumPy arrays.

    query ``(N, ..., Hq, L, E)``, key ``(N, ..., H, S, E)``, value ``(N, ..., H, S, Ev)`` (any number of
    leading dims, at least one: the heads) -> ``(N, ..., Hq, L, Ev)``. ``attn_mask``: boolean (True = take
    part) or float (added to the scores), broadcastable to ``(N, ..., Hq, L, S)``. ``is_causal``: top-left
    (query i sees keys j <= i), intersected with attn_mask as torch does. ``Hq != H`` needs
    ``enable_gqa=True`` (query head h reads kv head h // (Hq // H)).
    """
    _no_dropout(dropout_p)
    is_causal = check_flag(is_causal, "is_causal")
    enable_gqa = check_flag(enable_gqa, "enable_gqa")
    q, k, v = as_array(query, "query"), as_array(key, "key"), as_array(value, "value")
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"query, key and value must have the same rank >= 2; got {q.shape}, {k.shape}, {v.shape}"
        )
    one_head = q.ndim == 2
    if one_head:  # (L, E): one head
        q, k, v = q[None], k[None], v[None]
    # The batch dims broadcast against each other, as in torch: read with zero strides when they collapse
    # into one dim as a view (one batch dim, or broadcasting that keeps them uniform), else copied.
    try:
        lead = np.broadcast_shapes(q.shape[:-3], k.shape[:-3], v.shape[:-3])
    except ValueError:
        raise ValueError(
            f"the leading dims of query, key and value must broadcast; got {q.shape}, {k.shape}, "
            f"{v.shape}"
        ) from None
    out_shape = (*lead, *q.shape[-3:-1], v.shape[-1])[1 if one_head else 0 :]
    hq, hkv = q.shape[-3], k.shape[-3]
    if hq != hkv and not enable_gqa:
        raise ValueError(
            f"query has {hq} heads and key {hkv}: pass enable_gqa=True for grouped-query attention"
        )
    n = math.prod(lead)
    sq, sk = q.shape[-2], k.shape[-2]
    q4, k4, v4 = (
        np.broadcast_to(x, (*lead, *x.shape[-3:])).reshape((n, *x.shape[-3:])) for x in (q, k, v)
    )
    mask = bias = None
    if attn_mask is not None:
        m = as_array(attn_mask, "attn_mask")
        if m.dtype != np.bool_ and m.dtype.kind != "f" and m.dtype.name != "bfloat16":
            raise TypeError(f"attn_mask must be a boolean or float array, got dtype {m.dtype}")
        target = (*lead, hq, sq, sk)
        try:
            full = np.broadcast_to(m, target)
        except ValueError:
            raise ValueError(
                f"attn_mask of shape {m.shape} does not broadcast to (N, ..., Hq, L, S) = {target}"
            ) from None
        m4 = full.reshape((n, hq, sq, sk))
        if m.dtype == np.bool_:
            mask = m4
        else:
            bias = m4
    out = attention_impl(
        q4,
        k4,
        v4,
        "top_left" if is_causal else False,
        scale,
        "bhsd",
        False,
        None,
        None,
        mask=mask,
        bias=bias,
    )
    return out.reshape(out_shape)


def _probs_bshd(q, k, *, causal, scale, window, softcap, alibi_slopes):
    return attention_weights(
        q,
        k,
        layout="bshd",
        causal=causal,
        scale=scale,
        window=window,
        softcap=softcap,
        alibi_slopes=alibi_slopes,
    )


@_named(scale="softmax_scale", window="window_size")
def flash_attn_func(
    q: Any,
    k: Any,
    v: Any,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Any = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``flash_attn.flash_attn_func`` on NumPy arrays: q ``(B, Sq, Hq, D)``, k ``(B, Sk, Hkv, D)``, v
    ``(B, Sk, Hkv, Dv)`` -> ``(B, Sq, Hq, Dv)``; causal and ``window_size = (left, right)`` (-1 unbounded)
    around the bottom-right diagonal; ALiBi adds ``-slope * |i + Sk - Sq - j|``. With
    ``return_attn_probs``: ``(out, softmax_lse (B, Hq, Sq), probs (B, Hq, Sq, Sk))``, the exact
    probabilities (flash-attn returns a dropout-encoded matrix meant for its tests). ``deterministic`` is
    accepted; tileattn is always deterministic."""
    _no_dropout(dropout_p)
    causal = check_flag(causal, "causal")
    check_flag(deterministic, "deterministic")
    return_attn_probs = check_flag(return_attn_probs, "return_attn_probs")
    window = window_size  # checked as tileattn's window (its errors name window_size)
    cap = _softcap(softcap)
    out, lse = attention_impl(
        q,
        k,
        v,
        causal,
        softmax_scale,
        "bshd",
        True,
        None,
        None,
        window=window,
        softcap=cap,
        alibi_slopes=alibi_slopes,
    )
    if not return_attn_probs:
        return out
    probs = _probs_bshd(
        q,
        k,
        causal=causal,
        scale=softmax_scale,
        window=window,
        softcap=cap,
        alibi_slopes=alibi_slopes,
    )
    return out, lse, probs


@_named(scale="softmax_scale", window="window_size")
def flash_attn_varlen_func(
    q: Any,
    k: Any,
    v: Any,
    cu_seqlens_q: Any,
    cu_seqlens_k: Any,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Any = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
    block_table: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``flash_attn.flash_attn_varlen_func`` on NumPy arrays: packed q ``(total_q, Hq, D)``, k/v
    ``(total_k, Hkv, D|Dv)``, offsets ``(B + 1,)``. ``max_seqlen_q/k`` must be at least the longest
    sequence. With ``return_attn_probs``: ``(out, softmax_lse (Hq, total_q), probs)`` where probs is the
    list of each sequence's exact probabilities ``(Hq, Sq_b, Sk_b)``. ``block_table`` (paged KV cache) is
    not supported."""
    _no_dropout(dropout_p)
    causal = check_flag(causal, "causal")
    check_flag(deterministic, "deterministic")
    return_attn_probs = check_flag(return_attn_probs, "return_attn_probs")
    if block_table is not None:
        raise NotImplementedError(
            "block_table (paged KV cache) is not supported; pass packed k and v"
        )
    most_q = _max_seqlen(max_seqlen_q, "max_seqlen_q")
    most_k = _max_seqlen(max_seqlen_k, "max_seqlen_k")
    window = window_size  # checked as tileattn's window (its errors name window_size)
    cap = _softcap(softcap)
    out, lse = varlen_impl(  # checks the offsets
        q,
        k,
        v,
        cu_seqlens_q,
        cu_seqlens_k,
        causal=causal,
        scale=softmax_scale,
        window=window,
        alibi_slopes=alibi_slopes,
        softcap=cap,
        return_lse=True,
    )
    cq, ck = np.asarray(cu_seqlens_q), np.asarray(cu_seqlens_k)
    for name, cu, most in (("max_seqlen_q", cq, most_q), ("max_seqlen_k", ck, most_k)):
        if cu.size > 1 and int(np.diff(cu).max()) > most:
            raise ValueError(
                f"{name} = {most} is below the longest sequence ({int(np.diff(cu).max())})"
            )
    if not return_attn_probs:
        return out
    qa, ka = np.asarray(q), np.asarray(k)
    slopes = None if alibi_slopes is None else np.asarray(alibi_slopes)
    probs = []
    for b in range(len(cq) - 1):
        s = None if slopes is None or slopes.ndim == 1 else slopes[b]
        probs.append(
            attention_weights(
                qa[cq[b] : cq[b + 1]],
                ka[ck[b] : ck[b + 1]],
                layout="bshd",
                causal=causal,
                scale=softmax_scale,
                window=window,
                softcap=cap,
                alibi_slopes=slopes if s is None else s,
            )
        )
    return out, lse, probs


def _jax_window(local_window_size: Any, q: np.ndarray, k: np.ndarray, mask: Any) -> tuple[Any, Any]:
    """(window, mask) for tileattn from JAX's local_window_size (w or (left, right), around key i): bounds
    >= 0 (or None, unbounded) become tileattn's window; a negative bound is read literally, as JAX does
    (key j is seen when i - left <= j <= i + right, so (-1, 1) sees key i + 1 only), through a (T, S) mask
    intersected with the caller's."""
    if local_window_size is None:
        return None, mask
    pair = (
        (local_window_size, local_window_size)
        if np.ndim(local_window_size) == 0
        else local_window_size
    )
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise ValueError(
            f"local_window_size must be an int or a pair (left, right) of ints, got {local_window_size!r}"
        )
    bounds = []
    for name, w in zip(("left", "right"), pair):
        if w is None:
            bounds.append(None)
            continue
        if isinstance(w, (bool, np.bool_)):
            raise TypeError(f"local_window_size ({name}) must be an int, got a bool")
        try:
            bounds.append(operator.index(w))
        except TypeError:
            raise TypeError(
                f"local_window_size ({name}) must be an int, got {type(w).__name__}"
            ) from None
    if all(b is None or b >= 0 for b in bounds):
        return tuple(bounds), mask
    if q.ndim < 3 or k.ndim < 3:
        raise ValueError(f"query and key must have 3 or 4 dims; got shapes {q.shape} and {k.shape}")
    i = np.arange(q.shape[-3])[:, None]
    j = np.arange(k.shape[-3])[None, :]
    seen = np.ones((i.size, j.size), dtype=bool)
    if bounds[0] is not None:
        seen &= j >= i - bounds[0]
    if bounds[1] is not None:
        seen &= j <= i + bounds[1]
    if mask is None:
        return None, seen
    m = as_array(mask, "mask")
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array, got dtype {m.dtype}")
    try:
        return None, np.logical_and(m, seen)
    except ValueError:
        raise ValueError(
            f"mask of shape {m.shape} does not broadcast to (..., T, S) = {seen.shape}"
        ) from None


@_named(
    q="query",
    k="key",
    v="value",
    q_lengths="query_seq_lengths",
    kv_lengths="key_value_seq_lengths",
    window="local_window_size",
)
def dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    bias: Any = None,
    mask: Any = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Any = None,
    key_value_seq_lengths: Any = None,
    local_window_size: int | tuple[int, int] | None = None,
    implementation: str | None = None,
    return_residual: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``jax.nn.dot_product_attention`` on NumPy arrays: query ``(B, T, N, H)`` (or ``(T, N, H)``), key /
    value ``(B, S, K, H)`` with N a multiple of K -> ``(B, T, N, H)``. ``bias`` and ``mask`` broadcast to
    ``(B, N, T, S)``; ``is_causal`` and ``local_window_size`` (``w`` or ``(left, right)``) are measured from
    query index i (top-left), as JAX does; ``query_seq_lengths`` / ``key_value_seq_lengths`` mask padding
    (padded query rows give 0). ``return_residual`` also returns the LSE ``(B, T, N)``. ``implementation``
    is accepted and ignored (tileattn computes on the CPU). Rows whose every key is masked give 0, where JAX
    gives the mean of the values."""
    del implementation
    is_causal = check_flag(is_causal, "is_causal")
    return_residual = check_flag(return_residual, "return_residual")
    q = as_array(query, "query")
    batched = q.ndim == 4
    window, mask = _jax_window(local_window_size, q, as_array(key, "key"), mask)
    out, lse = attention_impl(
        query,
        key,
        value,
        is_causal,
        scale,
        "bshd",
        True,
        None,
        None,
        window=window,
        mask=mask,
        bias=bias,
        q_lengths=query_seq_lengths,
        kv_lengths=key_value_seq_lengths,
        align="top_left",
    )
    if not return_residual:
        return out
    residual = (
        np.swapaxes(lse, -1, -2) if batched else lse.T
    )  # (B, N, T) -> (B, T, N); (N, T) -> (T, N)
    return out, residual
