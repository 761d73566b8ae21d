"""The public attention function: option parsing and array checks around the compiled core."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from . import _core

LAYOUTS = ("bhsd", "bshd")
_PATHS = {"auto": 0, "tiled": 1, "reference": 2}
_ISAS = {"auto": -1, "baseline": 0, "avx2": 1, "avx512": 2}
_NATIVE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}
_BFLOAT16_CODE = 3
_DTYPE_NAMES = "float32, float64, float16 or bfloat16 (ml_dtypes)"

_bfloat16_cache: list[np.dtype | None] = []


def bfloat16_dtype() -> np.dtype | None:
    """``ml_dtypes.bfloat16`` as a NumPy dtype, or None when ml_dtypes is not installed."""
    if not _bfloat16_cache:
        try:
            import ml_dtypes
        except ImportError:
            _bfloat16_cache.append(None)
        else:
            _bfloat16_cache.append(np.dtype(ml_dtypes.bfloat16))
    return _bfloat16_cache[0]


def _native(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def dtype_code(dtype: np.dtype, name: str) -> int:
    """The core's code for a supported dtype (byte order ignored); TypeError naming `name` otherwise."""
    dtype = _native(dtype)
    code = _NATIVE_CODES.get(dtype)
    if code is not None:
        return code
    if dtype.name == "bfloat16" and dtype.itemsize == 2 and dtype == bfloat16_dtype():
        return _BFLOAT16_CODE
    raise TypeError(f"{name} must be a {_DTYPE_NAMES} array, got dtype {dtype}")


def as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a GPU array; this build computes on NumPy arrays only")
    try:
        return np.asarray(x)
    except Exception as exc:  # e.g. ragged nested lists
        raise TypeError(f"{name} cannot be converted to a NumPy array: {exc}") from None


def check_layout(layout: Any) -> str:
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def check_scale(scale: Any, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    value = float(scale)
    if not math.isfinite(value):
        raise ValueError(f"scale must be finite, got {value}")
    return value


def check_causal(causal: Any) -> bool:
    if isinstance(causal, (bool, np.bool_)):
        return bool(causal)
    raise TypeError(f"causal must be True or False, got {causal!r}")


def check_num_threads(num_threads: Any) -> int:
    """0 (the process default) for None, else a positive int."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, (bool, np.bool_)):
        raise TypeError("num_threads must be a positive int or None, got a bool")
    try:
        n = operator.index(num_threads)
    except TypeError:
        raise TypeError(
            f"num_threads must be a positive int or None, got {type(num_threads).__name__}"
        ) from None
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    return n


def dim_names(layout: str, rank: int, heads: str, seq: str, dim: str) -> tuple[str, ...]:
    """Names of the dimensions of an array of this rank in this layout, e.g. ('B', 'Hkv', 'Sk', 'D')."""
    four = ("B", heads, seq, dim) if layout == "bhsd" else ("B", seq, heads, dim)
    return four[4 - rank :]


def to_bhsd(x: np.ndarray, layout: str) -> np.ndarray:
    """A (batch, head, seq, dim) view of an array given in `layout` with rank 2, 3 or 4."""
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        x = x[None]
    return x.transpose(0, 2, 1, 3) if layout == "bshd" else x


def from_bhsd_shape(shape4: tuple[int, ...], layout: str, rank: int) -> tuple[int, ...]:
    """The shape, in `layout` and `rank`, of an array whose (batch, head, seq, dim) shape is shape4."""
    b, h, s, d = shape4
    if rank == 2:
        return (s, d)
    four = (b, h, s, d) if layout == "bhsd" else (b, s, h, d)
    return four[4 - rank :]


def _fmt_expected(names: tuple[str, ...], known: dict[str, int]) -> str:
    values = ", ".join(str(known[n]) if n in known else "*" for n in names)
    return f"({', '.join(names)}) = ({values})"


def check_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray, layout: str) -> None:
    """ValueError naming the argument and the expected shape when q, k, v do not fit together."""
    rank = q.ndim
    if rank not in (2, 3, 4):
        raise ValueError(
            f"q must have 2, 3 or 4 dimensions {dim_names(layout, 2, 'H', 'S', 'D')}, "
            f"{dim_names(layout, 3, 'H', 'S', 'D')} or {dim_names(layout, 4, 'H', 'S', 'D')} "
            f"(layout {layout!r}); got shape {q.shape}"
        )
    for name, x in (("k", k), ("v", v)):
        if x.ndim != rank:
            raise ValueError(
                f"{name} must have {rank} dimensions like q (layout {layout!r}); got shape {x.shape}"
            )
    q4, k4, v4 = to_bhsd(q, layout), to_bhsd(k, layout), to_bhsd(v, layout)
    b, hq, _, d = q4.shape
    _, hkv, sk, dk = k4.shape
    q_names = dim_names(layout, rank, "Hq", "Sq", "D")
    if d < 1:
        raise ValueError(f"q must have shape {q_names} with D >= 1; got {q.shape}")
    known = {"B": b, "D": d}
    k_names = dim_names(layout, rank, "Hkv", "Sk", "D")
    if k4.shape[0] != b or dk != d:
        raise ValueError(
            f"k must have shape {_fmt_expected(k_names, known)} to match q of shape {q.shape} "
            f"(layout {layout!r}); got {k.shape}"
        )
    if (hkv == 0 and hq > 0) or (hkv > 0 and hq % hkv != 0):
        raise ValueError(
            f"the number of k/v heads (Hkv = {hkv}) must divide the number of q heads "
            f"(Hq = {hq}); k has shape {k.shape}, q has shape {q.shape}"
        )
    v_names = dim_names(layout, rank, "Hkv", "Sk", "Dv")
    if v4.shape[:3] != k4.shape[:3]:
        known_v = {"B": b, "Hkv": hkv, "Sk": sk}
        raise ValueError(
            f"v must have shape {_fmt_expected(v_names, known_v)} to match k of shape {k.shape} "
            f"(layout {layout!r}); got {v.shape}"
        )
    if v4.shape[3] < 1:
        raise ValueError(f"v must have shape {v_names} with Dv >= 1; got {v.shape}")


def kernel_ready(x: np.ndarray) -> np.ndarray:
    """The array itself when the core can read it in place, else a copy it can read.

    Copies happen only for non-native byte order and for byte strides that are not a multiple of the
    item size (structured-array fields); views, negative, zero and Fortran strides and unaligned data
    pointers are read in place.
    """
    if not x.dtype.isnative:
        return x.astype(_native(x.dtype))
    if any(s % x.itemsize for s in x.strides):
        return np.ascontiguousarray(x)
    return x


def _writable_in_place(out: np.ndarray) -> bool:
    return out.dtype.isnative and not any(s % out.itemsize for s in out.strides)


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
    """Exact softmax attention ``softmax(scale * q @ k^T) @ v``, computed in tiles.

    Shapes (``layout="bhsd"``, the default; ``"bshd"`` swaps the head and sequence axes):
    q ``(B, Hq, Sq, D)``, k ``(B, Hkv, Sk, D)``, v ``(B, Hkv, Sk, Dv)`` -> out ``(B, Hq, Sq, Dv)``.
    3-D inputs ``(H, S, D)`` / ``(S, H, D)`` and 2-D inputs ``(S, D)`` give an output of the same rank.
    Query head ``h`` reads kv head ``h // (Hq // Hkv)`` (GQA/MQA); Hq must be a multiple of Hkv.

    Args:
        q, k, v: float32, float64, float16 or bfloat16 (``ml_dtypes``) arrays of one dtype, any strides.
            float16 and bfloat16 accumulate in float32; the output has the input dtype.
        causal: query ``i`` sees keys ``j <= i + (Sk - Sq)`` (bottom-right, as FlashAttention); a row
            that sees no key outputs 0 and has LSE -inf.
        scale: multiplies the scores; default ``1 / sqrt(D)``. Any finite value.
        layout: ``"bhsd"`` or ``"bshd"``.
        return_lse: also return ``lse = log(sum_j exp(scale * q . k_j))`` over the visible keys, shape
            ``(B, Hq, Sq)`` (leading dims follow the rank), float32 (float64 for float64 inputs).
        out: array of the output's exact shape and dtype (any strides) that receives the result.
        num_threads: threads for this call; default :func:`get_num_threads`.

    Returns:
        ``out``, or ``(out, lse)`` with ``return_lse=True``. Inputs are never modified.

    Raises:
        ValueError: bad shapes, layout, scale or thread count. TypeError: unsupported or mixed dtypes.
        MemoryError: the output or scratch memory cannot be allocated.
    """
    return attention_impl(q, k, v, causal, scale, layout, return_lse, out, num_threads)


def attention_impl(
    q: Any,
    k: Any,
    v: Any,
    causal: Any,
    scale: Any,
    layout: Any,
    return_lse: Any,
    out: Any,
    num_threads: Any,
    path: str = "auto",
    isa: str = "auto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """attention() with the kernel path and instruction set selectable (for tests and benchmarks)."""
    layout = check_layout(layout)
    q, k, v = as_array(q, "q"), as_array(k, "k"), as_array(v, "v")
    code = dtype_code(q.dtype, "q")
    for name, x in (("k", k), ("v", v)):
        if dtype_code(x.dtype, name) != code:
            raise TypeError(
                f"{name} has dtype {x.dtype} but q has dtype {q.dtype}; q, k and v must share one "
                f"dtype (convert explicitly, e.g. {name}.astype(q.dtype))"
            )
    check_shapes(q, k, v, layout)
    causal = check_causal(causal)
    threads = check_num_threads(num_threads)
    rank = q.ndim
    q4, k4, v4 = to_bhsd(q, layout), to_bhsd(k, layout), to_bhsd(v, layout)
    b, hq, sq, d = q4.shape
    scale = check_scale(scale, d)
    dtype = _native(q.dtype)
    out_shape = from_bhsd_shape((b, hq, sq, v4.shape[3]), layout, rank)

    if out is None:
        result = np.empty(out_shape, dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
        if out.shape != out_shape:
            raise ValueError(
                f"out must have shape {out_shape} (the output's shape); got {out.shape}"
            )
        if _native(out.dtype) != dtype:
            raise TypeError(f"out must have dtype {dtype} (the inputs' dtype); got {out.dtype}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        result = out
    lse_dtype = np.float64 if dtype == np.float64 else np.float32
    lse = np.empty((b, hq, sq), lse_dtype) if return_lse else None

    if b * hq * sq > 0:
        target = result
        if out is not None and (
            not _writable_in_place(out) or any(np.may_share_memory(out, x) for x in (q, k, v))
        ):
            target = np.empty(out_shape, dtype)  # computed aside, then copied into out
        _core.attention(
            kernel_ready(q4),
            kernel_ready(k4),
            kernel_ready(v4),
            to_bhsd(target, layout),
            lse,
            code,
            scale,
            causal,
            threads,
            _PATHS[path],
            _ISAS[isa],
        )
        if target is not result:
            np.copyto(result, target)
    if not return_lse:
        return result
    return result, lse.reshape(lse.shape[4 - rank :])


def set_num_threads(n: int) -> None:
    """Set the default number of threads of later calls (n >= 1)."""
    if isinstance(n, (bool, np.bool_)):
        raise TypeError("n must be a positive int, got a bool")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The default number of threads: set_num_threads(), else $TILEATTN_NUM_THREADS, else all the
    CPUs this process may use."""
    return _core.get_num_threads()
