"""show_config(): what was built and what runs on this machine."""

from __future__ import annotations

import os
import platform
import re
import sys
import warnings
from typing import Any

import numpy as np

from . import _core
from ._api import MAX_THREADS, bfloat16_dtype

# The variables the core reads once, as they were at import (check_environment makes the core read them
# then): what show_config reports, whatever os.environ says later.
ENV_AT_IMPORT: dict[str, str | None] = {}
_ISA_NAMES = ("amx", "avx512", "avx2", "baseline")


def check_environment() -> None:
    """At import: has the core read TILEATTN_ISA and TILEATTN_NUM_THREADS now, and warns (RuntimeWarning)
    about a value it cannot use and ignores: an unknown level; a thread count that is not an integer in
    [1, MAX_THREADS] (then all the CPUs this process may use)."""
    for name in ("TILEATTN_ISA", "TILEATTN_NUM_THREADS"):
        ENV_AT_IMPORT[name] = os.environ.get(name)
    _core.cpu_info()
    _core.get_num_threads()
    isa = ENV_AT_IMPORT["TILEATTN_ISA"]
    if isa and isa not in _ISA_NAMES:
        warnings.warn(
            f"TILEATTN_ISA={isa!r} is not understood and is ignored (use one of {', '.join(_ISA_NAMES)})",
            RuntimeWarning,
            stacklevel=3,
        )
    threads = ENV_AT_IMPORT["TILEATTN_NUM_THREADS"]
    if threads and not (
        re.fullmatch(r"\s*[+-]?[0-9]+", threads) and 1 <= int(threads) <= MAX_THREADS
    ):  # the core's rule (strtol, then the range)
        warnings.warn(
            f"TILEATTN_NUM_THREADS={threads!r} is not a thread count in [1, {MAX_THREADS}] and is ignored "
            f"(all {_core.available_cpus()} usable CPUs are used)",
            RuntimeWarning,
            stacklevel=3,
        )


def _cuda_version(v: int) -> str:
    """13000 -> '13.0'; 0 -> '-'."""
    return f"{v // 1000}.{v % 1000 // 10}" if v else "-"


def _bfloat16_qk(cpu: dict[str, Any]) -> str:
    """How the tiled kernel multiplies bfloat16 inputs' Q K^T, as the core decides it now (cpu_info reads
    TILEATTN_BF16_DOT at each call): as pairs with AVX512_BF16 (vdpbf16ps) at the AVX-512 and AMX levels
    where that is on, else converted to float32."""
    pairs = bool(cpu["bf16_pairs"])
    if cpu["selected_isa"] == "amx":
        return "AMX tiles; vector path: " + ("bfloat16 pairs (AVX512_BF16)" if pairs else "float32")
    if cpu["selected_isa"] == "avx512" and pairs:
        return "bfloat16 pairs (AVX512_BF16)"
    return "float32"


def config() -> dict[str, Any]:
    """The configuration as a nested dict (see :func:`show_config`)."""
    build = _core.build_info()
    cpu = _core.cpu_info()
    cuda = _core.cuda_info()
    env_isa = ENV_AT_IMPORT.get("TILEATTN_ISA") or ""
    kernel = f"tiled, {cpu['selected_isa']}"
    if env_isa and env_isa != cpu["selected_isa"]:
        kernel += f" (TILEATTN_ISA={env_isa!r})"
    return {
        "version": build["version"],
        "build": {
            "compiler": build["compiler"],
            "build_type": build["build_type"],
            "cxx_flags": build["cxx_flags"].strip(),
            "native": build["native_build"],
            "compiled_isas": build["compiled_isas"],
            "cuda": cuda["built"],
        },
        "cuda": {
            "built": cuda["built"],
            "runtime_version": _cuda_version(cuda["runtime_version"]),
            "architectures": cuda["architectures"] or "-",
            "driver_version": _cuda_version(cuda["driver_version"]),
            "devices": cuda["devices"],
            "available": bool(cuda["built"] and cuda["device_count"] > 0),
            "error": cuda["error"] or "-",
        },
        "cpu": {
            "vendor": cpu["vendor"],
            "brand": cpu["brand"],
            "machine": platform.machine(),
            "features": cpu["features"],
            "best_isa": cpu["best_isa"],
        },
        "kernel": {
            "path": kernel,
            "selected_isa": cpu["selected_isa"],
            "bfloat16_qk": _bfloat16_qk(cpu),
        },
        "threads": {
            "num_threads": _core.get_num_threads(),
            "available_cpus": _core.available_cpus(),
            "TILEATTN_NUM_THREADS": ENV_AT_IMPORT.get("TILEATTN_NUM_THREADS"),
        },
        "python": {
            "version": sys.version.split()[0],
            "numpy": np.__version__,
            "bfloat16": bfloat16_dtype() is not None,
        },
    }


def show_config(as_dict: bool = False) -> dict[str, Any] | None:
    """Print tileattn's version, build options, compiler, detected CPU features, the kernel path in use
    and the thread count; with ``as_dict=True`` return them as a dict instead of printing."""
    cfg = config()
    if as_dict:
        return cfg
    print(f"tileattn {cfg['version']}")
    for section in ("build", "cpu", "kernel", "threads", "cuda", "python"):
        print(f"{section}:")
        for key, value in cfg[section].items():
            if isinstance(value, list):
                value = " ".join(map(str, value)) or "-"
            print(f"  {key + ':':<22}{value}")
    return None
