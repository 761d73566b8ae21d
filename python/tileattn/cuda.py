"""tileattn on NVIDIA GPUs (optional build: ``pip install . -Ccmake.define.TILEATTN_CUDA=ON``).

:func:`tileattn.attention` runs here with ``device="cuda"`` (NumPy arrays are copied to the current
GPU and the result copied back) or when its inputs already live on a GPU: anything with
``__cuda_array_interface__`` or ``__dlpack__`` on a CUDA device (CuPy arrays, PyTorch CUDA tensors) is
read in place, and the result is a new array of the same kind on the same device (or ``out=``),
computed on the caller's current stream (PyTorch's or CuPy's) or on ``stream=``.

>>> import tileattn.cuda
>>> tileattn.cuda.is_available()       # built with CUDA, a driver, and a visible device
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core

__all__ = ["info", "is_available", "is_gpu_array"]

_DL_CUDA, _DL_CUDA_MANAGED = 2, 13  # DLPack device types
_DL_FLOAT, _DL_BFLOAT, _DL_UINT, _DL_INT, _DL_BOOL = 2, 4, 1, 0, 6
_DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}


def info() -> dict[str, Any]:
    """What was built and what the driver offers now: ``built``, ``runtime_version``, ``driver_version``,
    ``device_count``, ``architectures``, ``devices`` and ``error`` (why no GPU can be used, if so)."""
    return dict(_core.cuda_info())


def is_available() -> bool:
    """True when tileattn was built with CUDA, a driver is installed and a device is visible."""
    i = _core.cuda_info()
    return bool(i["built"] and i["device_count"] > 0)


def _dlpack_device(x: Any) -> tuple[int, int] | None:
    f = getattr(x, "__dlpack_device__", None)
    if f is None:
        return None
    try:
        kind, index = f()
    except Exception:
        return None
    return int(kind), int(index)


def is_gpu_array(x: Any) -> bool:
    """Whether `x` is an array on a CUDA device (CUDA array interface, or DLPack on a CUDA device)."""
    if isinstance(x, np.ndarray):
        return False
    dev = _dlpack_device(x)
    if dev is not None:
        return dev[0] in (_DL_CUDA, _DL_CUDA_MANAGED)
    try:  # torch raises RuntimeError, not AttributeError, for tensors that require grad
        return hasattr(x, "__cuda_array_interface__")
    except Exception:
        return False


class GpuArray:
    """A view of a GPU array: pointer, shape and element strides, dtype name, device, and its owner
    (kept alive while the view exists). Supports what the shape checks use: ``ndim``, ``shape``,
    ``[None]`` and ``transpose``."""

    def __init__(self, owner, ptr, shape, strides, dtype, device, capsule=None):
        self.owner, self.ptr, self.dtype, self.device = owner, int(ptr), dtype, device
        self.shape, self.strides = tuple(int(s) for s in shape), tuple(int(s) for s in strides)
        self._capsule = capsule  # keeps a DLPack export alive

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is not None for k in key):
            raise TypeError("GpuArray supports only new axes")
        n = len(key)
        return GpuArray(
            self.owner,
            self.ptr,
            (1,) * n + self.shape,
            (0,) * n + self.strides,
            self.dtype,
            self.device,
            self._capsule,
        )

    def transpose(self, *axes):
        return GpuArray(
            self.owner,
            self.ptr,
            tuple(self.shape[a] for a in axes),
            tuple(self.strides[a] for a in axes),
            self.dtype,
            self.device,
            self._capsule,
        )

    def broadcast_to(self, target: tuple[int, ...], name: str) -> GpuArray:
        """NumPy broadcasting as zero strides."""
        if self.ndim > len(target):
            raise ValueError(
                f"{name} of shape {self.shape} does not broadcast to (B, Hq, Sq, Sk) = {target}"
            )
        pad = len(target) - self.ndim
        shape, strides = (1,) * pad + self.shape, (0,) * pad + self.strides
        out_strides = []
        for n, s, t in zip(shape, strides, target):
            if n == t:
                out_strides.append(s if t > 1 else 0)
            elif n == 1:
                out_strides.append(0)
            else:
                raise ValueError(
                    f"{name} of shape {self.shape} does not broadcast to (B, Hq, Sq, Sk) = {target}"
                )
        return GpuArray(
            self.owner, self.ptr, target, out_strides, self.dtype, self.device, self._capsule
        )

    def descriptor(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        return (self.ptr, self.shape, self.strides)


def _typestr_name(typestr: str) -> str:
    kind, size = typestr[1], int(typestr[2:])
    names = {
        ("f", 2): "float16",
        ("f", 4): "float32",
        ("f", 8): "float64",
        ("b", 1): "bool",
        ("u", 1): "uint8",
        ("i", 4): "int32",
        ("i", 8): "int64",
    }
    if typestr[0] == ">":
        raise TypeError(f"big-endian GPU arrays are not supported (typestr {typestr!r})")
    return names.get((kind, size), f"unsupported ({typestr})")


def _dl_name(code: int, bits: int, lanes: int) -> str:
    if lanes != 1:
        return f"unsupported (vector lanes {lanes})"
    names = {
        (_DL_FLOAT, 16): "float16",
        (_DL_FLOAT, 32): "float32",
        (_DL_FLOAT, 64): "float64",
        (_DL_BFLOAT, 16): "bfloat16",
        (_DL_BOOL, 8): "bool",
        (_DL_UINT, 8): "uint8",
        (_DL_INT, 32): "int32",
        (_DL_INT, 64): "int64",
    }
    return names.get((code, bits), f"unsupported (DLPack code {code}, {bits} bits)")


def as_gpu_array(x: Any, name: str) -> GpuArray:
    """A GpuArray view of a CUDA array (CUDA array interface first, DLPack for bfloat16 and others)."""
    if getattr(x, "requires_grad", False):
        raise ValueError(
            f"{name} requires grad: pass {name}.detach() (tileattn computes no gradients)"
        )
    cai = getattr(x, "__cuda_array_interface__", None) if not _is_bfloat16_tensor(x) else None
    if cai is not None:
        shape = tuple(cai["shape"])
        dtype = _typestr_name(cai["typestr"])
        itemsize = int(cai["typestr"][2:])
        if cai.get("strides") is None:
            strides, acc = [], 1
            for n in reversed(shape):
                strides.append(acc)
                acc *= n
            strides = tuple(reversed(strides))
        else:
            if any(s % itemsize for s in cai["strides"]):
                raise ValueError(
                    f"{name} has a byte stride that is not a multiple of its item size"
                )
            strides = tuple(s // itemsize for s in cai["strides"])
        return GpuArray(x, cai["data"][0], shape, strides, dtype, _device_of(x))
    if hasattr(x, "__dlpack__"):
        try:
            capsule = x.__dlpack__(
                stream=-1
            )  # we run on the producer's current stream: no sync needed
        except TypeError:
            capsule = x.__dlpack__()
        ptr, dev_type, dev_id, code, bits, lanes, shape, strides = _core.dlpack_info(capsule)
        if dev_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
            raise ValueError(f"{name} is not on a CUDA device (DLPack device type {dev_type})")
        if strides is None:
            strides, acc = [], 1
            for n in reversed(shape):
                strides.append(acc)
                acc *= n
            strides = tuple(reversed(strides))
        return GpuArray(x, ptr, shape, strides, _dl_name(code, bits, lanes), dev_id, capsule)
    raise TypeError(f"{name} is not a GPU array (no __cuda_array_interface__ or __dlpack__)")


def _is_bfloat16_tensor(x: Any) -> bool:
    return "bfloat16" in str(getattr(x, "dtype", ""))


def _device_of(x: Any) -> int:
    dev = _dlpack_device(x)
    if dev is not None:
        return dev[1]
    d = getattr(x, "device", None)
    return int(getattr(d, "index", None) or getattr(d, "id", 0) or 0)


def _framework(x: Any) -> str:
    mod = type(x).__module__.split(".")[0]
    return mod if mod in ("torch", "cupy") else "other"


def _empty_like_kind(like: Any, shape: tuple[int, ...], dtype: str, device: int) -> Any:
    """A new C-contiguous array of the kind of `like` (torch tensor or CuPy array) on `device`."""
    fw = _framework(like)
    if fw == "torch":
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype), device=f"cuda:{device}")
    if fw == "cupy":
        import cupy

        with cupy.cuda.Device(device):
            return cupy.empty(shape, dtype=dtype)
    raise TypeError(
        f"cannot allocate a result like a {type(like).__name__}: pass out= (a GPU array of the "
        "output's shape and dtype), or use CuPy arrays or PyTorch tensors"
    )


def current_stream(like: Any, device: int, stream: Any) -> int:
    """The stream to run on: `stream` (an int handle, or an object with .cuda_stream / .ptr), else the
    current stream of the inputs' framework, else the legacy default stream (0)."""
    if stream is not None:
        for attr in ("cuda_stream", "ptr"):
            if hasattr(stream, attr):
                return int(getattr(stream, attr))
        if isinstance(stream, (bool, np.bool_)) or not isinstance(stream, (int, np.integer)):
            raise TypeError(
                f"stream must be an int handle or a torch / CuPy stream, got {type(stream).__name__}"
            )
        return int(stream)
    fw = _framework(like)
    if fw == "torch":
        import torch

        return int(torch.cuda.current_stream(device).cuda_stream)
    if fw == "cupy":
        import cupy

        with cupy.cuda.Device(device):
            return int(cupy.cuda.get_current_stream().ptr)
    return 0


class _DeviceContext:
    """Makes `device` current for the call (through the inputs' framework, which then restores it)."""

    def __init__(self, like: Any, device: int):
        self.ctx = None
        fw = _framework(like)
        if fw == "torch":
            import torch

            self.ctx = torch.cuda.device(device)
        elif fw == "cupy":
            import cupy

            self.ctx = cupy.cuda.Device(device)

    def __enter__(self):
        if self.ctx is not None:
            self.ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self.ctx is not None:
            return self.ctx.__exit__(*exc)
        return False


def to_host(x: Any, name: str) -> Any:
    """Small index arrays given on the GPU (lengths, offsets, slopes) as NumPy; others unchanged."""
    if x is None or isinstance(x, np.ndarray) or not is_gpu_array(x):
        return x
    if hasattr(x, "get"):  # CuPy
        return x.get()
    if hasattr(x, "cpu"):  # torch
        return x.detach().cpu().numpy()
    raise TypeError(f"{name}: cannot copy a {type(x).__name__} to the host; pass a NumPy array")


def require_available() -> None:
    i = _core.cuda_info()
    if not i["built"] or i["device_count"] == 0:
        raise RuntimeError(f"device='cuda' needs a usable GPU: {i['error']}")


def check_dtype(x: GpuArray, name: str, code_of_q: int | None) -> int:
    if x.dtype not in _DTYPE_CODES:
        raise TypeError(
            f"{name} has dtype {x.dtype}; tileattn takes float32, float64, float16 or bfloat16"
        )
    code = _DTYPE_CODES[x.dtype]
    if code_of_q is not None and code != code_of_q:
        raise TypeError(
            f"{name} has dtype {x.dtype} but q does not; q, k and v must share one dtype"
        )
    return code
