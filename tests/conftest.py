"""Shared helpers: input generation, the error rule against the oracle, and the kernel paths to test.

The error rule (FlashAttention's, adapted): with ``err(x) = ||x - oracle||_2 / ||oracle||_2`` computed in
float64, a result passes when

    err(out) <= 2 * err(naive) + 4u * cond / sqrt(N)      and      err(out) <= cap[dtype]

where ``naive`` is the textbook computation in the same precision (``tileattn.reference.naive_attention``),
``u`` the unit roundoff of the accumulation type, N the number of output elements and
``cond = ||attention with |v| || / ||attention||`` the condition number of the weighted sums (how much they
cancel). The caps are fixed: float32 1e-5, float64 1e-12, float16/bfloat16 1e-2. The additive term is a
few roundings of the terms, spread over the N elements: it keeps outputs of a handful of elements, where
err(naive) is one lucky rounding of a cancelling sum, from failing on noise, and vanishes at realistic
sizes (it is below u/4 for N >= 256 well-conditioned outputs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

# Small calls run on the calling thread alone (the core's choice, for speed); the tests make them use the
# threads they ask for, so that the kernels' splits of small problems are tested too (results do not
# depend on the thread count either way; test_small_calls.py tests the choice itself).
os.environ.setdefault("TILEATTN_SPLIT_SMALL_CALLS", "1")

import tileattn
from tileattn import _core, reference
from tileattn._api import attention_impl, bfloat16_dtype

BF16 = bfloat16_dtype()
CAPS = {"float32": 1e-5, "float64": 1e-12, "float16": 1e-2, "bfloat16": 1e-2}
DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}


def dtype_of(name: str) -> np.dtype:
    if name == "bfloat16":
        if BF16 is None:
            pytest.skip("ml_dtypes is not installed (pip install ml_dtypes) for bfloat16")
        return BF16
    return np.dtype(name)


ALL_DTYPES = ["float32", "float64", "float16", "bfloat16"]


def unit_roundoff(dtype: np.dtype) -> float:
    """Unit roundoff of the accumulation type of `dtype`."""
    return 2.0**-53 if np.dtype(dtype) == np.float64 else 2.0**-24


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    """Relative L2 error, computed in the oracle's precision (float64 or long double)."""
    ref = np.asarray(ref)
    diff = (np.asarray(x).astype(np.float64) - ref).ravel()
    num = float(np.sqrt(np.sum(diff * diff)))
    den = float(np.sqrt(np.sum(ref.ravel() * ref.ravel())))
    return num / den if den > 0 else num


def assert_close(out, ref, naive, dtype, ref_abs=None, floor_roundings=None) -> None:
    """The error rule of this module's docstring (ref_abs: the oracle's output for |v|, for cond).

    floor_roundings, when given, replaces the additive term by floor_roundings * u * cond: for the property
    tests, whose tiny random shapes include degenerate ones (a zero scale makes every row equal, so N
    overstates the independent errors; Dv = 1 sends NumPy to gemv, whose many partial sums are more accurate
    than any blocked product). Their purpose is catching indexing and masking errors, which are 1e5 times
    larger.
    """
    name = np.dtype(dtype).name
    assert out.shape == ref.shape
    assert np.isfinite(np.asarray(out, dtype=np.float64)).all()
    err = rel_err(out, ref)
    err_naive = rel_err(naive, ref)
    ref_norm = float(np.linalg.norm(np.asarray(ref, dtype=np.float64).ravel()))
    cond = 1.0
    if ref_abs is not None and ref_norm > 0:
        cond = max(
            1.0, float(np.linalg.norm(np.asarray(ref_abs, dtype=np.float64).ravel())) / ref_norm
        )
    if floor_roundings is None:
        floor = 4 * unit_roundoff(dtype) * cond / np.sqrt(max(out.size, 1))
    else:
        floor = floor_roundings * unit_roundoff(dtype) * cond
    bound = min(CAPS[name], 2 * err_naive + floor)
    assert err <= bound, (
        f"error {err:.3g} > bound {bound:.3g} (naive {err_naive:.3g}, cond {cond:.3g}, {name})"
    )


def assert_lse_close(lse, ref_lse, dtype, naive_lse=None, score_bound=None) -> None:
    """LSE: -inf exactly where the oracle has -inf; elsewhere the largest error, relative to max(1, |lse|),
    at most 2 x that of the naive same-precision LSE (whose error is set by the rounding of the scores,
    large when they are) + 8u, or 8u when no naive LSE is given.

    score_bound (property tests): per row, |scale| * ||q_i|| * max_j ||k_j||, a bound of the scores' size;
    adds the dot products' rounding bound 4u sqrt(D) * score_bound to each row's allowance."""
    lse = np.asarray(lse, dtype=np.float64)
    ref_lse = np.asarray(ref_lse, dtype=np.float64)
    assert lse.shape == ref_lse.shape
    assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    finite = np.isfinite(ref_lse)
    if finite.any():

        def err_of(x):
            x = np.asarray(x, dtype=np.float64)[finite]
            return float(
                (np.abs(x - ref_lse[finite]) / np.maximum(1.0, np.abs(ref_lse[finite]))).max()
            )

        tol = 8 * unit_roundoff(dtype) + (2 * err_of(naive_lse) if naive_lse is not None else 0.0)
        if score_bound is not None:
            scale = np.maximum(1.0, np.abs(ref_lse[finite]))
            per_row = np.abs(lse[finite] - ref_lse[finite]) / scale
            allowed = tol + np.asarray(score_bound, dtype=np.float64)[finite] / scale
            worst = int(np.argmax(per_row - allowed))
            assert per_row[worst] <= allowed[worst], (
                f"lse error {per_row[worst]:.3g} > {allowed[worst]:.3g}"
            )
            return
        err = err_of(lse)
        assert err <= tol, f"lse error {err:.3g} > {tol:.3g}"


def qkv(
    rng: np.random.Generator,
    *,
    b=1,
    hq=2,
    hkv=None,
    sq=16,
    sk=None,
    d=8,
    dv=None,
    dtype="float32",
    layout="bhsd",
    rank=4,
):
    """Random standard-normal q, k, v in the requested layout, rank and dtype."""
    hkv = hq if hkv is None else hkv
    sk = sq if sk is None else sk
    dv = d if dv is None else dv
    dt = dtype_of(dtype) if isinstance(dtype, str) else np.dtype(dtype)

    def make(h, s, dd):
        x = rng.standard_normal((b, h, s, dd))
        if rank == 2:
            x = x[0, 0]
        elif rank == 3:
            x = x[0]
        if layout == "bshd" and rank > 2:
            x = np.swapaxes(x, -3, -2)
        return np.ascontiguousarray(x).astype(dt)

    return make(hq, sq, d), make(hkv, sk, d), make(hkv, sk, dv)


def runnable_isas() -> list[str]:
    """Instruction-set levels compiled in and runnable on this CPU, lowest first."""
    compiled = _core.build_info()["compiled_isas"]
    best = _core.cpu_info()["best_isa"]
    order = ["baseline", "avx2", "avx512", "amx"]
    return [isa for isa in order if isa in compiled and order.index(isa) <= order.index(best)]


# Every kernel path this machine can run: the tiled kernel at each instruction-set level, and the
# scalar C++ reference path.
PATHS = [("tiled", isa) for isa in runnable_isas()] + [("reference", "auto")]
PATH_IDS = [f"{p}-{i}" if p == "tiled" else p for p, i in PATHS]


@pytest.fixture(params=PATHS, ids=PATH_IDS)
def path(request):
    return request.param


def run(q, k, v, path=("auto", "auto"), **kw):
    """tileattn.attention through a chosen kernel path (("tiled", isa) or ("reference", "auto")); every
    other keyword is an option of attention()."""
    return attention_impl(
        q,
        k,
        v,
        kw.pop("causal", False),
        kw.pop("scale", None),
        kw.pop("layout", "bhsd"),
        kw.pop("return_lse", False),
        kw.pop("out", None),
        kw.pop("num_threads", None),
        path[0],
        path[1],
        **kw,
    )


def oracle(q, k, v, **kw):
    """The oracle: reference.attention (float64), or for float64 inputs the same specification in
    extended precision, so that float64 results are not judged by float64 rounding noise."""
    if np.dtype(q.dtype) == np.float64:
        return reference.attention_in(np.longdouble, q, k, v, **kw)
    return reference.attention(q, k, v, **kw)


def magnitude(q, k, v, **kw):
    """The oracle's output with |v| for v: the size of the terms of the weighted sums."""
    with np.errstate(all="ignore"):
        return reference.attention(q, k, np.abs(np.asarray(v).astype(np.float64)), **kw)


def check_against_oracle(q, k, v, path=("auto", "auto"), **kw):
    """Runs tileattn (with LSE) and checks output and LSE against the oracle with the error rule."""
    out, lse = run(q, k, v, path, return_lse=True, **dict(kw))
    assert out.dtype == q.dtype
    assert lse.dtype == (np.float64 if q.dtype == np.float64 else np.float32)
    kw.pop("num_threads", None)
    ref, ref_lse = oracle(q, k, v, return_lse=True, **kw)
    naive, naive_lse = reference.naive_attention(q, k, v, return_lse=True, **kw)
    assert_close(out, ref, naive, q.dtype, magnitude(q, k, v, **kw))
    assert_lse_close(lse, ref_lse, q.dtype, naive_lse)
    return out, lse


def tile_info(dtype, b, hq, hkv, sq, sk, d, dv, isa="auto", threads=0):
    return _core.tile_info(
        DTYPE_CODES[dtype],
        b,
        hq,
        hkv,
        sq,
        sk,
        d,
        dv,
        threads,
        {"auto": -1, "baseline": 0, "avx2": 1, "avx512": 2, "amx": 3}[isa],
    )


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


def pytest_report_header(config):
    cfg = tileattn.show_config(as_dict=True)
    return [
        f"tileattn {cfg['version']}: compiled {cfg['build']['compiled_isas']}, "
        f"selected {cfg['kernel']['selected_isa']}, threads {cfg['threads']['num_threads']}, "
        f"bfloat16 {'yes' if BF16 is not None else 'no (ml_dtypes missing)'}",
        f"TILEATTN_ISA={os.environ.get('TILEATTN_ISA', '')!r}",
    ]


ROOT = Path(__file__).resolve().parent.parent


def cmake_configure(build: Path, *options: str, env: dict | None = None) -> str:
    """Configures the project's CMake build in `build` without Python (Ninja when there is one), with the
    given -D options; skips the test when cmake is missing, fails it when configuring fails. Returns the
    cmake executable, for the build step."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [cmake, "-S", str(ROOT), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release"]
    configure += ["-DTILEATTN_PYTHON=OFF", *options]
    result = subprocess.run(configure, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return cmake
