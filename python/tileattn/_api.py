"""The public attention function: option parsing and array checks around the compiled core."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from . import _core
from . import cuda as _cuda

LAYOUTS = ("bhsd", "bshd")
_PATHS = {"auto": 0, "tiled": 1, "reference": 2}
_ISAS = {"auto": -1, "baseline": 0, "avx2": 1, "avx512": 2, "amx": 3}
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


def _is_bfloat16(dtype: np.dtype) -> bool:
    """Whether dtype is ml_dtypes' bfloat16 (never true without ml_dtypes: np.dtype("float64") == None is
    True in NumPy, so the comparison must not be made with None)."""
    bf16 = bfloat16_dtype()
    return bf16 is not None and dtype == bf16


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


def _as_float(x: numbers.Real, name: str) -> float:
    """float(x); ValueError naming `name` for a number beyond the float range (a huge int or Fraction)."""
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got a number beyond the float range") from None


def check_scale(scale: Any, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    value = _as_float(scale, "scale")
    if not math.isfinite(value):
        raise ValueError(f"scale must be finite, got {value}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """A bool (or NumPy bool) argument; TypeError naming it for anything else (truthiness is not asked:
    a string or an array would pass or fail it by accident)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


CAUSAL_VALUES = (False, True, "bottom_right", "top_left")


def check_causal(causal: Any) -> tuple[bool, bool]:
    """(causal, top-left aligned) from False, True / "bottom_right", or "top_left"."""
    if isinstance(causal, (bool, np.bool_)):
        return bool(causal), False
    if isinstance(causal, str):
        if causal == "bottom_right":
            return True, False
        if causal == "top_left":
            return True, True
        raise ValueError(f"causal must be one of {CAUSAL_VALUES}, got {causal!r}")
    raise TypeError(f"causal must be one of {CAUSAL_VALUES}, got {causal!r}")


# Window bounds are capped here: no sequence is 2**62 keys long, so a larger bound (any Python int) already
# reaches past every key, and the core's int64 arithmetic on the diagonal stays far from overflow.
MAX_WINDOW_BOUND = 2**62


def _bound(value: Any, name: str) -> int:
    """A window bound: an int >= 0 (capped at MAX_WINDOW_BOUND), or -1 / None for unbounded (-1)."""
    if value is None:
        return -1
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int >= -1 or None, got a bool")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int >= -1 or None, got {type(value).__name__}"
        ) from None
    if n < -1:
        raise ValueError(f"{name} must be >= 0, or -1 / None for unbounded; got {n}")
    return min(n, MAX_WINDOW_BOUND)


def check_window(window: Any) -> tuple[int, int]:
    """(left, right) keys around each query's diagonal, -1 = unbounded."""
    if window is None:
        return -1, -1
    ordered = hasattr(window, "__len__") and hasattr(window, "__getitem__")  # not a set
    if isinstance(window, (str, bytes)) or not ordered or len(window) != 2:
        raise ValueError(
            f"window must be a pair (left, right) of ints (-1 or None = unbounded), got {window!r}"
        )
    return _bound(window[0], "window[0] (left)"), _bound(window[1], "window[1] (right)")


def _broadcast_4d(x: np.ndarray, target: tuple[int, ...], name: str) -> np.ndarray:
    try:
        return np.broadcast_to(x, target)
    except ValueError:
        raise ValueError(
            f"{name} of shape {x.shape} does not broadcast to (B, Hq, Sq, Sk) = {target}"
        ) from None


def check_mask(mask: Any, target: tuple[int, ...]) -> np.ndarray | None:
    """A (B, Hq, Sq, Sk) view of a boolean mask (True = may attend), broadcast dims with zero strides."""
    if mask is None:
        return None
    m = as_array(mask, "mask")
    if m.dtype != np.bool_:
        raise TypeError(
            f"mask must be a boolean array (True = may attend), got dtype {m.dtype}; "
            "for an additive mask use bias="
        )
    return _broadcast_4d(m, target, "mask").view(np.uint8)


def check_bias(bias: Any, target: tuple[int, ...]) -> tuple[np.ndarray | None, int]:
    """A (B, Hq, Sq, Sk) view of a float bias and its dtype code."""
    if bias is None:
        return None, 0
    x = as_array(bias, "bias")
    if x.dtype.kind not in "fV" or (x.dtype.kind == "V" and x.dtype.name != "bfloat16"):
        raise TypeError(f"bias must be a float array ({_DTYPE_NAMES}), got dtype {x.dtype}")
    code = dtype_code(x.dtype, "bias")
    # Made readable before the broadcast: a copy (byte order, odd strides) is then of the bias as given,
    # never of its broadcast shape.
    return _broadcast_4d(kernel_ready(x), target, "bias"), code


def check_alibi(slopes: Any, batch: int, heads: int) -> np.ndarray | None:
    """ALiBi slopes as a contiguous float64 (1 or B, Hq) array."""
    if slopes is None:
        return None
    x = as_array(slopes, "alibi_slopes")
    if _is_bfloat16(x.dtype):
        x = x.astype(np.float32)  # exact; bfloat16 is a NumPy kind "V" dtype
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise TypeError(f"alibi_slopes must be a real array, got dtype {x.dtype}")
    if x.shape == (heads,):
        x = x[None]
    elif x.shape != (batch, heads):
        raise ValueError(
            f"alibi_slopes must have shape (Hq,) = ({heads},) or (B, Hq) = ({batch}, {heads}); got {x.shape}"
        )
    x = np.ascontiguousarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("alibi_slopes must be finite")
    return x


def check_softcap(softcap: Any) -> float:
    """0 (off) for None, else a finite float >= 0."""
    if softcap is None:
        return 0.0
    if isinstance(softcap, (bool, np.bool_)) or not isinstance(softcap, numbers.Real):
        raise TypeError(f"softcap must be a real number or None, got {type(softcap).__name__}")
    value = _as_float(softcap, "softcap")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"softcap must be finite and >= 0 (0 or None = off), got {value}")
    return value


def check_lengths(x: Any, name: str, batch: int, limit: int) -> np.ndarray | None:
    """Per-sequence lengths as a contiguous int64 (B,) array with values in [0, limit]."""
    if x is None:
        return None
    a = as_array(x, name)
    if a.size == 0 and not isinstance(x, np.ndarray):
        a = a.astype(np.int64)  # [] for an empty batch (NumPy makes it float64)
    if a.dtype.kind not in "iu" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.shape != (batch,):
        raise ValueError(f"{name} must have shape (B,) = ({batch},); got {a.shape}")
    if a.size and (
        a.min() < 0 or a.max() > limit
    ):  # before the cast: a uint64 may not fit in int64
        raise ValueError(f"{name} must lie in [0, {limit}]; got values from {a.min()} to {a.max()}")
    return np.ascontiguousarray(a, dtype=np.int64)


# The most threads a call may ask for (as TILEATTN_NUM_THREADS): each is an OS thread of the pool.
MAX_THREADS = 4096


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
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"num_threads must be in [1, {MAX_THREADS}], got {n}")
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


def _no_internal_overlap(x: np.ndarray) -> bool:
    """Whether no two elements of x share memory, by a sufficient test: with the dims sorted by stride,
    each stride steps past everything the smaller ones span (zero strides and odd views fail it)."""
    span = x.itemsize
    for n, s in sorted((n, abs(s)) for n, s in zip(x.shape, x.strides) if n > 1):
        if s < span:
            return False
        span = s * (n - 1) + span
    return True


def _writable_in_place(out: np.ndarray) -> bool:
    """Whether the core may write `out` itself: native byte order, strides in whole items and no two
    elements at one address (else the rows' writes would race: the result is computed aside and copied
    in, as NumPy's copyto would)."""
    return (
        out.dtype.isnative
        and not any(s % out.itemsize for s in out.strides)
        and _no_internal_overlap(out)
    )


def attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool | str = False,
    scale: float | None = None,
    layout: str = "bhsd",
    window: tuple[int | None, int | None] | None = None,
    mask: Any = None,
    bias: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
    return_lse: bool = False,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
    device: str = "auto",
    stream: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exact softmax attention ``softmax(scale * q @ k^T + bias) @ v``, computed in tiles.

    Shapes (``layout="bhsd"``, the default; ``"bshd"`` swaps the head and sequence axes):
    q ``(B, Hq, Sq, D)``, k ``(B, Hkv, Sk, D)``, v ``(B, Hkv, Sk, Dv)`` -> out ``(B, Hq, Sq, Dv)``.
    3-D inputs ``(H, S, D)`` / ``(S, H, D)`` and 2-D inputs ``(S, D)`` give an output of the same rank.
    Query head ``h`` reads kv head ``h // (Hq // Hkv)`` (GQA/MQA); Hq must be a multiple of Hkv.

    Args:
        q, k, v: float32, float64, float16 or bfloat16 (``ml_dtypes``) arrays of one dtype, any strides.
            float16 and bfloat16 accumulate in float32; the output has the input dtype.
        causal: ``True`` / ``"bottom_right"``: query ``i`` sees keys ``j <= i + (Sk - Sq)`` (as
            FlashAttention); ``"top_left"``: ``j <= i`` (as torch's ``is_causal``); ``False``: all keys.
        scale: multiplies the scores; default ``1 / sqrt(D)``. Any finite value.
        layout: ``"bhsd"`` or ``"bshd"``.
        window: ``(left, right)``: query ``i`` sees keys ``i + d - left <= j <= i + d + right`` with
            ``d = Sk - Sq`` (0 under ``"top_left"``); -1 or None = unbounded. ``causal=True`` equals
            ``window=(-1, 0)``; both together intersect.
        mask: boolean array broadcastable to ``(B, Hq, Sq, Sk)``, True = may attend (torch's convention).
        bias: float array broadcastable to ``(B, Hq, Sq, Sk)``, added to the scaled scores (-inf masks;
            finite values of any size, such as ``finfo(dtype).min``, are ordinary scores; with inputs
            computed in float32, a float64 bias beyond float32's range saturates at float32's largest
            value, as does the float32 LSE).
        alibi_slopes: ``(Hq,)`` or ``(B, Hq)``: adds ``-slope * |i + d - j|`` to the scaled scores.
        softcap: if > 0, scores become ``softcap * tanh(scores / softcap)`` (after scaling, before
            bias, ALiBi and masks).
        q_lengths, kv_lengths: integer ``(B,)`` arrays for padded batches: rows at or past
            ``q_lengths[b]`` output 0 (LSE -inf); keys at or past ``kv_lengths[b]`` are never read; the
            causal/window offset of sequence ``b`` is ``kv_lengths[b] - q_lengths[b]``.
        return_lse: also return ``lse = log(sum_j exp(score_j))`` over the visible keys, shape
            ``(B, Hq, Sq)`` (leading dims follow the rank), float32 (float64 for float64 inputs).
        out: array of the output's exact shape and dtype (any strides) that receives the result. It
            may share memory with the inputs (the result is then computed aside and copied in), except
            with GPU arrays, where sharing memory with q, k, v, mask or bias is a ValueError.
        num_threads: threads for this call; default :func:`get_num_threads` (CPU only).
        device: ``"auto"`` (default) follows the inputs: GPU arrays (``__cuda_array_interface__`` or
            ``__dlpack__`` on a CUDA device: CuPy, PyTorch CUDA tensors) run on their GPU in place and
            return the same kind of array there, NumPy arrays run on the CPU. ``"cuda"``: NumPy inputs
            are copied to the current GPU and the result copied back. ``"cpu"``: NumPy only. Needs a
            CUDA build (see :mod:`tileattn.cuda`); on the GPU D and Dv must be <= 256.
        stream: for GPU arrays, the CUDA stream to run on (an int handle or a torch / CuPy stream);
            default the inputs' framework's current stream. The call returns without waiting.

    A row that sees no key, however it is masked (only -inf masks; very negative finite scores are a
    normal row), outputs exactly +0.0 with LSE -inf, never NaN. Broadcast mask and bias dimensions are
    read with zero strides, never materialised; KV tiles that the window, causality, lengths or the mask
    hide wholly are skipped.

    Returns:
        ``out``, or ``(out, lse)`` with ``return_lse=True``. Inputs are never modified.

    Raises:
        ValueError: bad shapes, layout, options or thread count. TypeError: unsupported or mixed
        dtypes. MemoryError: the output or scratch memory cannot be allocated. RuntimeError: a GPU was
        asked for and none can be used, or a CUDA error.
    """
    if (
        window is None
        and mask is None
        and bias is None
        and alibi_slopes is None
        and softcap is None
        and q_lengths is None
        and kv_lengths is None
        and return_lse is False
        and stream is None
        and type(device) is str
        and device == "auto"
    ):
        # The common call, checked and run in one step by the core (None: not that simple after all,
        # e.g. other dtypes, strides or values, or a bad argument; the path below handles it).
        result = _core.attention_simple(q, k, v, causal, scale, layout, out, num_threads)
        if result is not None:
            return result
    where = resolve_device(device, (("q", q), ("k", k), ("v", v)), stream)
    return_lse = check_flag(return_lse, "return_lse")
    if where == "gpu":
        return attention_gpu(
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
            stream=stream,
        )
    return attention_impl(
        q,
        k,
        v,
        causal,
        scale,
        layout,
        return_lse,
        out,
        num_threads,
        window=window,
        mask=mask,
        bias=bias,
        alibi_slopes=alibi_slopes,
        softcap=softcap,
        q_lengths=q_lengths,
        kv_lengths=kv_lengths,
        device=where,
    )


def resolve_device(device: Any, arrays: tuple[tuple[str, Any], ...], stream: Any = None) -> str:
    """'cpu', 'cuda-host' (NumPy arrays computed on the GPU) or 'gpu' (GPU arrays in place); a stream
    applies to GPU arrays only."""
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu' or 'cuda', got {type(device).__name__}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    on_gpu = [name for name, x in arrays if _cuda.is_gpu_array(x)]
    if on_gpu:
        if device == "cpu":
            raise ValueError(
                f"{on_gpu[0]} is a GPU array but device='cpu'; copy it to the host first"
            )
        if len(on_gpu) != len(arrays):
            host = next(name for name, x in arrays if name not in on_gpu)
            raise ValueError(
                f"{on_gpu[0]} is a GPU array but {host} is not: pass all of them on one device"
            )
        _cuda.require_available()
        return "gpu"
    if stream is not None:
        raise ValueError("stream= applies to GPU arrays only")
    if device == "cuda":
        _cuda.require_available()
        return "cuda-host"
    return "cpu"


def _gpu_inputs(q: Any, k: Any, v: Any):
    """GpuArray views of q, k, v, checked for one dtype and one device, and the dtype code."""
    qg, kg, vg = (_cuda.as_gpu_array(x, n) for n, x in (("q", q), ("k", k), ("v", v)))
    code = _cuda.check_dtype(qg, "q", None)
    for name, x in (("k", kg), ("v", vg)):
        _cuda.check_dtype(x, name, code)
        if x.device != qg.device:
            raise ValueError(f"{name} is on cuda:{x.device} but q on cuda:{qg.device}")
    return qg, kg, vg, code


def _gpu_results(q: Any, qg: Any, out: Any, out_shape: tuple, lse_shape: tuple, return_lse: bool):
    """The output (new, of q's kind, or `out` after its checks) and the LSE array (or None)."""
    if out is None:
        result = _cuda._empty_like_kind(q, out_shape, qg.dtype, qg.device)
    else:
        og = _cuda.as_gpu_array(out, "out")
        if og.shape != tuple(out_shape):
            raise ValueError(
                f"out must have shape {tuple(out_shape)} (the output's shape); got {og.shape}"
            )
        if og.dtype != qg.dtype:
            raise TypeError(f"out must have dtype {qg.dtype} (the inputs' dtype); got {og.dtype}")
        result = out
    lse_dtype = "float64" if qg.dtype == "float64" else "float32"
    lse = _cuda._empty_like_kind(q, lse_shape, lse_dtype, qg.device) if return_lse else None
    return result, lse


def _run_gpu(like, device, stream, views, code, scale, causal, **options) -> None:
    """The core on GPU views (q, k, v, out, lse or None), on `device` and the call's stream."""
    handle = _cuda.current_stream(like, device, stream)
    descriptors = [None if x is None else x.descriptor() for x in views]
    with _cuda._DeviceContext(like, device):
        _core.attention(
            *descriptors, code, scale, causal, 0, 0, -1, device=2, stream=handle, **options
        )


def attention_gpu(
    q,
    k,
    v,
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
    return_lse,
    out,
    stream,
):
    """attention() on GPU arrays, in place, on the inputs' device and stream."""
    layout = check_layout(layout)
    qg, kg, vg, code = _gpu_inputs(q, k, v)
    dev = qg.device
    check_shapes(qg, kg, vg, layout)
    is_causal, top_left = check_causal(causal)
    left, right = check_window(window)
    rank = qg.ndim
    q4, k4, v4 = to_bhsd(qg, layout), to_bhsd(kg, layout), to_bhsd(vg, layout)
    b, hq, sq, d = q4.shape
    sk, dv = k4.shape[2], v4.shape[3]
    scale = check_scale(scale, d)
    target = (b, hq, sq, sk)
    mask_desc = bias_desc = None
    bias_code = 0
    if mask is not None:
        mg = _cuda.as_gpu_array(mask, "mask")
        if mg.dtype != "bool":
            raise TypeError(
                f"mask must be a boolean array (True = may attend), got dtype {mg.dtype}"
            )
        mask_desc = mg.broadcast_to(target, "mask").descriptor()
    if bias is not None:
        bg = _cuda.as_gpu_array(bias, "bias")
        bias_code = _cuda.check_dtype(bg, "bias", None)
        bias_desc = bg.broadcast_to(target, "bias").descriptor()
    slopes = check_alibi(_cuda.to_host(alibi_slopes, "alibi_slopes"), b, hq)
    cap = check_softcap(softcap)
    ql = check_lengths(_cuda.to_host(q_lengths, "q_lengths"), "q_lengths", b, sq)
    kl = check_lengths(_cuda.to_host(kv_lengths, "kv_lengths"), "kv_lengths", b, sk)
    out_shape = from_bhsd_shape((b, hq, sq, dv), layout, rank)
    result, lse = _gpu_results(q, qg, out, out_shape, (b, hq, sq), return_lse)
    if b * hq * sq > 0:
        res4 = to_bhsd(_cuda.as_gpu_array(result, "out"), layout)
        _run_gpu(
            q,
            dev,
            stream,
            (q4, k4, v4, res4, None if lse is None else _cuda.as_gpu_array(lse, "lse")),
            code,
            scale,
            is_causal,
            top_left=top_left,
            window_left=left,
            window_right=right,
            q_lengths=ql,
            kv_lengths=kl,
            mask=mask_desc,
            bias=bias_desc,
            bias_dtype=bias_code,
            alibi_slopes=slopes,
            softcap=cap,
        )
    if not return_lse:
        return result
    return result, lse.reshape(tuple(lse.shape[4 - rank :]))


def _check_same_dtype(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> int:
    code = dtype_code(q.dtype, "q")
    for name, x in (("k", k), ("v", v)):
        if dtype_code(x.dtype, name) != code:
            raise TypeError(
                f"{name} has dtype {x.dtype} but q has dtype {q.dtype}; q, k and v must share one "
                f"dtype (convert explicitly, e.g. {name}.astype(q.dtype))"
            )
    return code


def _result_arrays(out: Any, out_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The array that receives the result: a new one, or `out` after its checks."""
    if out is None:
        return np.empty(out_shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != out_shape:
        raise ValueError(f"out must have shape {out_shape} (the output's shape); got {out.shape}")
    if _native(out.dtype) != dtype:
        raise TypeError(f"out must have dtype {dtype} (the inputs' dtype); got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def _run_core(
    q4, k4, v4, result, result4, out, inputs, lse, code, scale, causal, threads, path, isa, **kw
):
    """Calls the core on (B, H, S, D) views; computes aside when `out` overlaps an input or cannot be
    written in place, then copies."""
    target, target4 = result, result4
    # Every array the core reads: q, k, v and the options' arrays (mask, bias, slopes, lengths, offsets).
    if out is not None and (
        not _writable_in_place(out)
        or any(np.may_share_memory(out, x) for x in inputs)
        or any(isinstance(x, np.ndarray) and np.may_share_memory(out, x) for x in kw.values())
    ):
        target = np.empty(
            result.shape, _native(result.dtype)
        )  # computed aside, then copied into out
        target4 = kw.pop("_to4")(target)
    kw.pop("_to4", None)
    _core.attention(
        kernel_ready(q4),
        kernel_ready(k4),
        kernel_ready(v4),
        target4,
        lse,
        code,
        scale,
        causal,
        threads,
        _PATHS[path],
        _ISAS[isa],
        **kw,
    )
    if target is not result:
        np.copyto(result, target)


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
    *,
    window: Any = None,
    mask: Any = None,
    bias: Any = None,
    alibi_slopes: Any = None,
    softcap: Any = None,
    q_lengths: Any = None,
    kv_lengths: Any = None,
    align: str | None = None,
    device: str = "cpu",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """attention() with the kernel path and instruction set selectable (tests and benchmarks), and the
    diagonal's alignment given apart from causality (`align`, for the compat wrappers)."""
    layout = check_layout(layout)
    q, k, v = as_array(q, "q"), as_array(k, "k"), as_array(v, "v")
    code = _check_same_dtype(q, k, v)
    check_shapes(q, k, v, layout)
    is_causal, top_left = check_causal(causal)
    if align is not None:
        top_left = align == "top_left"
    left, right = check_window(window)
    threads = check_num_threads(num_threads)
    rank = q.ndim
    q4, k4, v4 = to_bhsd(q, layout), to_bhsd(k, layout), to_bhsd(v, layout)
    b, hq, sq, d = q4.shape
    sk = k4.shape[2]
    scale = check_scale(scale, d)
    target = (b, hq, sq, sk)
    mask4 = check_mask(mask, target)
    bias4, bias_code = check_bias(bias, target)
    slopes = check_alibi(alibi_slopes, b, hq)
    cap = check_softcap(softcap)
    ql = check_lengths(q_lengths, "q_lengths", b, sq)
    kl = check_lengths(kv_lengths, "kv_lengths", b, sk)
    dtype = _native(q.dtype)
    out_shape = from_bhsd_shape((b, hq, sq, v4.shape[3]), layout, rank)
    result = _result_arrays(out, out_shape, dtype)
    lse_dtype = np.float64 if dtype == np.float64 else np.float32
    lse = np.empty((b, hq, sq), lse_dtype) if return_lse else None

    if b * hq * sq > 0:
        _run_core(
            q4,
            k4,
            v4,
            result,
            to_bhsd(result, layout),
            out,
            (q, k, v),
            lse,
            code,
            scale,
            is_causal,
            threads,
            path,
            isa,
            _to4=lambda x: to_bhsd(x, layout),
            top_left=top_left,
            window_left=left,
            window_right=right,
            q_lengths=ql,
            kv_lengths=kl,
            mask=mask4,
            bias=bias4,
            bias_dtype=bias_code,
            alibi_slopes=slopes,
            softcap=cap,
            device=1 if device == "cuda-host" else 0,
        )
    if not return_lse:
        return result
    return result, lse.reshape(lse.shape[4 - rank :])


def check_cu_seqlens(cu: Any, name: str, total: int) -> np.ndarray:
    """Offsets of packed sequences: integers, shape (B + 1,), from 0 to `total`, non-decreasing."""
    a = as_array(cu, name)
    if a.dtype.kind not in "iu" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be an int32 or int64 array, got dtype {a.dtype}")
    if a.ndim != 1 or a.shape[0] < 1:
        raise ValueError(f"{name} must have shape (B + 1,), got {a.shape}")
    if a.dtype.kind == "u" and a.max() > np.iinfo(np.int64).max:  # the cast below would wrap it
        raise ValueError(
            f"{name} must lie in [0, {total}] (the total length), got a value of {a.max()}"
        )
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a[0] != 0:
        raise ValueError(f"{name} must start at 0, got {a[0]}")
    if np.any(np.diff(a) < 0):
        raise ValueError(f"{name} must be non-decreasing")
    if a[-1] != total:
        raise ValueError(f"{name} must end at the total length {total}, got {a[-1]}")
    return a


def attention_varlen(
    q: Any,
    k: Any,
    v: Any,
    cu_seqlens_q: Any,
    cu_seqlens_k: Any,
    *,
    causal: bool | str = False,
    scale: float | None = None,
    window: tuple[int | None, int | None] | None = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    return_lse: bool = False,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
    device: str = "auto",
    stream: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Attention over packed sequences of different lengths (FlashAttention's varlen layout).

    q ``(total_q, Hq, D)``, k ``(total_k, Hkv, D)``, v ``(total_k, Hkv, Dv)``; sequence ``b`` holds query
    rows ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` and keys ``cu_seqlens_k[b]:cu_seqlens_k[b+1]``, int32 or
    int64 offsets of shape ``(B + 1,)`` from 0 to the totals. Every option applies per sequence (the
    causal/window diagonal of sequence ``b`` sits at ``i + len_k(b) - len_q(b)``, or ``i`` for
    ``"top_left"``); zero-length sequences are allowed. Returns out ``(total_q, Hq, Dv)`` and, with
    ``return_lse``, lse ``(Hq, total_q)``. ``device`` and ``stream`` as in :func:`attention` (offsets
    and slopes may live on the host or the GPU).
    """
    where = resolve_device(device, (("q", q), ("k", k), ("v", v)), stream)
    return_lse = check_flag(return_lse, "return_lse")
    if where == "gpu":
        return varlen_gpu(
            q,
            k,
            v,
            cu_seqlens_q,
            cu_seqlens_k,
            causal=causal,
            scale=scale,
            window=window,
            alibi_slopes=alibi_slopes,
            softcap=softcap,
            return_lse=return_lse,
            out=out,
            stream=stream,
        )
    return varlen_impl(
        q,
        k,
        v,
        cu_seqlens_q,
        cu_seqlens_k,
        causal=causal,
        scale=scale,
        window=window,
        alibi_slopes=alibi_slopes,
        softcap=softcap,
        return_lse=return_lse,
        out=out,
        num_threads=num_threads,
        device=where,
    )


def varlen_gpu(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    *,
    causal,
    scale,
    window,
    alibi_slopes,
    softcap,
    return_lse,
    out,
    stream,
):
    """attention_varlen() on GPU arrays, in place."""
    qg, kg, vg, code = _gpu_inputs(q, k, v)
    for name, x, dims in (
        ("q", qg, "(total_q, Hq, D)"),
        ("k", kg, "(total_k, Hkv, D)"),
        ("v", vg, "(total_k, Hkv, Dv)"),
    ):
        if x.ndim != 3:
            raise ValueError(f"{name} must have shape {dims}; got {x.shape}")
    # The shape rules are those of the CPU path, checked on (1, H, total, D) views as layout bhsd.
    q4, k4, v4 = (x.transpose(1, 0, 2)[None] for x in (qg, kg, vg))
    check_shapes(q4, k4, v4, "bhsd")
    tq, hq, d = qg.shape
    tk, dv = kg.shape[0], vg.shape[2]
    cq = check_cu_seqlens(_cuda.to_host(cu_seqlens_q, "cu_seqlens_q"), "cu_seqlens_q", tq)
    ck = check_cu_seqlens(_cuda.to_host(cu_seqlens_k, "cu_seqlens_k"), "cu_seqlens_k", tk)
    if cq.shape != ck.shape:
        raise ValueError(
            f"cu_seqlens_q and cu_seqlens_k must have the same shape (B + 1,); got {cq.shape} and {ck.shape}"
        )
    batch = cq.shape[0] - 1
    is_causal, top_left = check_causal(causal)
    left, right = check_window(window)
    scale = check_scale(scale, d)
    slopes = check_alibi(_cuda.to_host(alibi_slopes, "alibi_slopes"), batch, hq)
    cap = check_softcap(softcap)
    result, lse = _gpu_results(q, qg, out, (tq, hq, dv), (hq, tq), return_lse)
    if tq * hq > 0 and batch > 0:
        res4 = _cuda.as_gpu_array(result, "out").transpose(1, 0, 2)[None]
        lse4 = None if lse is None else _cuda.as_gpu_array(lse, "lse")[None]
        _run_gpu(
            q,
            qg.device,
            stream,
            (q4, k4, v4, res4, lse4),
            code,
            scale,
            is_causal,
            top_left=top_left,
            window_left=left,
            window_right=right,
            cu_seqlens_q=cq,
            cu_seqlens_k=ck,
            alibi_slopes=slopes,
            softcap=cap,
        )
    elif lse is not None:
        lse[...] = -math.inf
        result[...] = 0
    return (result, lse) if return_lse else result


def varlen_impl(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    *,
    causal=False,
    scale=None,
    window=None,
    alibi_slopes=None,
    softcap=None,
    return_lse=False,
    out=None,
    num_threads=None,
    path="auto",
    isa="auto",
    align=None,
    device="cpu",
):
    """attention_varlen() with the kernel path and alignment selectable."""
    q, k, v = as_array(q, "q"), as_array(k, "k"), as_array(v, "v")
    code = _check_same_dtype(q, k, v)
    for name, x, dims in (
        ("q", q, "(total_q, Hq, D)"),
        ("k", k, "(total_k, Hkv, D)"),
        ("v", v, "(total_k, Hkv, Dv)"),
    ):
        if x.ndim != 3:
            raise ValueError(f"{name} must have shape {dims}; got {x.shape}")
    tq, hq, d = q.shape
    tk, hkv, dk = k.shape
    if d < 1:
        raise ValueError(f"q must have shape (total_q, Hq, D) with D >= 1; got {q.shape}")
    if dk != d:
        raise ValueError(f"k must have shape (total_k, Hkv, D) = (*, *, {d}); got {k.shape}")
    if v.shape[:2] != (tk, hkv):
        raise ValueError(f"v must have shape (total_k, Hkv, Dv) = ({tk}, {hkv}, *); got {v.shape}")
    if v.shape[2] < 1:
        raise ValueError(f"v must have shape (total_k, Hkv, Dv) with Dv >= 1; got {v.shape}")
    if (hkv == 0 and hq > 0) or (hkv > 0 and hq % hkv != 0):
        raise ValueError(
            f"the number of k/v heads (Hkv = {hkv}) must divide the number of q heads (Hq = {hq})"
        )
    cq = check_cu_seqlens(cu_seqlens_q, "cu_seqlens_q", tq)
    ck = check_cu_seqlens(cu_seqlens_k, "cu_seqlens_k", tk)
    if cq.shape != ck.shape:
        raise ValueError(
            f"cu_seqlens_q and cu_seqlens_k must have the same shape (B + 1,); got {cq.shape} and {ck.shape}"
        )
    batch = cq.shape[0] - 1
    is_causal, top_left = check_causal(causal)
    if align is not None:
        top_left = align == "top_left"
    left, right = check_window(window)
    threads = check_num_threads(num_threads)
    scale = check_scale(scale, d)
    slopes = check_alibi(alibi_slopes, batch, hq)
    cap = check_softcap(softcap)
    dtype = _native(q.dtype)
    result = _result_arrays(out, (tq, hq, v.shape[2]), dtype)
    lse_dtype = np.float64 if dtype == np.float64 else np.float32
    lse = np.empty((hq, tq), lse_dtype) if return_lse else None

    def to4(x):  # (total, H, D) -> (1, H, total, D)
        return x.transpose(1, 0, 2)[None]

    if tq * hq > 0 and batch > 0:
        _run_core(
            to4(q),
            to4(k),
            to4(v),
            result,
            to4(result),
            out,
            (q, k, v),
            None if lse is None else lse[None],
            code,
            scale,
            is_causal,
            threads,
            path,
            isa,
            _to4=to4,
            top_left=top_left,
            window_left=left,
            window_right=right,
            cu_seqlens_q=cq,
            cu_seqlens_k=ck,
            alibi_slopes=slopes,
            softcap=cap,
            device=1 if device == "cuda-host" else 0,
        )
    elif lse is not None:
        lse.fill(-np.inf)
        result[...] = 0
    return (result, lse) if return_lse else result


def set_num_threads(n: int) -> None:
    """Set the default number of threads of later calls (1 <= n <= 4096)."""
    if isinstance(n, (bool, np.bool_)):
        raise TypeError("n must be a positive int, got a bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be a positive int, got {type(n).__name__}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be in [1, {MAX_THREADS}], got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The default number of threads: set_num_threads(), else $TILEATTN_NUM_THREADS, else all the
    CPUs this process may use."""
    return _core.get_num_threads()
