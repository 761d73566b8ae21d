"""Linking the installed core from C++, C, Cython and ctypes (issue: one shared library, headers, CMake package).

Every program is built in a temporary folder against the *installed* package (tileattn.get_include() and
friends), runs, and its results are compared with the float64 oracle and, bit for bit, with the Python
module: both run the kernels of the same libtileattn. Tests skip with the reason when a compiler, CMake or
Cython is missing; .ci/run installs them.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import tileattn
from tileattn import reference

from conftest import assert_close, magnitude

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The examples' inputs: q[i] = sin(0.37 i), k[i] = cos(0.11 i), v[i] = sin(0.23 i + 1) (flat bhsd index).
B, HQ, HKV, SQ, SK, D, DV = 2, 4, 2, 37, 45, 40, 24


def example_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def fill(shape, f):
        return f(np.arange(math.prod(shape), dtype=np.float64)).astype(np.float32).reshape(shape)

    q = fill((B, HQ, SQ, D), lambda i: np.sin(0.37 * i))
    k = fill((B, HKV, SK, D), lambda i: np.cos(0.11 * i))
    v = fill((B, HKV, SK, DV), lambda i: np.sin(0.23 * i + 1.0))
    return q, k, v


def check_oracle(out, q, k, v, **kw):
    ref = reference.attention(q, k, v, **kw)
    naive = reference.naive_attention(q, k, v, **kw)
    assert_close(out, ref, naive, np.float32, magnitude(q, k, v, **kw))


def compiler(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no compiler found (looked for {', '.join(names)})")


def cmake_exe() -> str:
    found = shutil.which("cmake")
    if found is None:
        pytest.skip("cmake is not installed (pip install cmake)")
    return found


def examples_dir(name: str) -> Path:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} is not next to the tests (installed without the source tree)")
    return path


def run(cmd, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


# ---- What pip install puts on disk


def test_locations():
    include = Path(tileattn.get_include())
    for header in ("tileattn.hpp", "tileattn.h", "version.h"):
        assert (include / "tileattn" / header).is_file()
    assert Path(tileattn.get_library()).is_file()
    assert Path(tileattn.get_library()).parent == Path(tileattn.get_library_dir())
    assert (Path(tileattn.get_cmake_dir()) / "tileattnConfig.cmake").is_file()
    assert (Path(tileattn.get_cmake_dir()) / "tileattnConfigVersion.cmake").is_file()
    assert (Path(tileattn.get_pkgconfig_dir()) / "tileattn.pc").is_file()
    assert (Path(tileattn.__file__).parent / "capi.pxd").is_file()
    version_h = (include / "tileattn" / "version.h").read_text()
    assert f'#define TILEATTN_VERSION_STRING "{tileattn.__version__}"' in version_h


def test_cli_locations():
    def ask(*flags):
        return run([sys.executable, "-m", "tileattn", *flags]).stdout.splitlines()

    assert ask("--includes") == [f"-I{tileattn.get_include()}"]
    assert ask("--libdir") == [tileattn.get_library_dir()]
    assert ask("--cmakedir") == [tileattn.get_cmake_dir()]
    assert ask("--pkgconfigdir") == [tileattn.get_pkgconfig_dir()]
    libdir = tileattn.get_library_dir()
    assert ask("--includes", "--libs") == [
        f"-I{tileattn.get_include()}",
        f"-L{libdir} -Wl,-rpath,{libdir} -ltileattn",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps (Linux)")
def test_python_module_uses_the_shared_library():
    """One copy of the kernels in the process: the extension maps libtileattn from get_library_dir(),
    and the thread-count default set from Python is the one the C ABI sees."""
    lib_path = os.path.realpath(tileattn.get_library())
    maps = Path("/proc/self/maps").read_text()
    mapped = {line.split()[-1] for line in maps.splitlines() if "libtileattn" in line}
    assert mapped == {lib_path}
    lib = ctypes.CDLL(tileattn.get_library())
    before = tileattn.get_num_threads()
    try:
        tileattn.set_num_threads(3)
        assert lib.tileattn_get_num_threads() == 3
        assert lib.tileattn_set_num_threads(2) == 0
        assert tileattn.get_num_threads() == 2
    finally:
        tileattn.set_num_threads(before)
    # The extension itself holds no kernels: it is a small binding layer.
    core = Path(tileattn._core.__file__)
    assert core.stat().st_size < Path(lib_path).stat().st_size


def test_exports_only_the_public_api():
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    listing = run([nm, "-D", "-C", "--defined-only", tileattn.get_library()]).stdout
    names = [line.split(maxsplit=2)[-1] for line in listing.splitlines() if line.strip()]
    for symbol in (
        "tileattn_attention",
        "tileattn_attention_f32",
        "tileattn_attention_f64",
        "tileattn_merge_attention",
        "tileattn_last_error",
        "tileattn_version",
        "tileattn_abi_version",
        "tileattn_params_init",
    ):
        assert symbol in names
    assert any(n.startswith("tileattn::attention(") for n in names)
    assert any(n.startswith("tileattn::merge_attention(") for n in names)
    leaked = [
        n for n in names if re.match(r"tileattn::(kernels|detail)|.*\(anonymous namespace\)", n)
    ]
    assert leaked == [], leaked[:10]


# ---- The C ABI through ctypes


@pytest.fixture(scope="module")
def capi():
    lib = ctypes.CDLL(tileattn.get_library())
    f32 = ctypes.POINTER(ctypes.c_float)
    i64 = ctypes.c_int64
    lib.tileattn_attention_f32.argtypes = [f32] * 5 + [i64] * 7 + [ctypes.c_float, ctypes.c_int]
    lib.tileattn_attention_f32.restype = ctypes.c_int
    f64 = ctypes.POINTER(ctypes.c_double)
    lib.tileattn_attention_f64.argtypes = [f64] * 5 + [i64] * 7 + [ctypes.c_double, ctypes.c_int]
    lib.tileattn_attention_f64.restype = ctypes.c_int
    lib.tileattn_last_error.restype = ctypes.c_char_p
    lib.tileattn_version.restype = ctypes.c_char_p
    lib.tileattn_merge_attention.argtypes = [
        ctypes.c_int32,
        i64,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p,
        ctypes.c_void_p,
        i64,
        i64,
        ctypes.c_int32,
    ]
    return lib


def ptr(x: np.ndarray, ctype):
    return x.ctypes.data_as(ctypes.POINTER(ctype))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ctypes_contiguous(capi, rng, dtype, causal):
    q = rng.standard_normal((2, 6, 77, 59)).astype(dtype)
    k = rng.standard_normal((2, 3, 91, 59)).astype(dtype)
    v = rng.standard_normal((2, 3, 91, 33)).astype(dtype)
    q0, k0, v0 = q.copy(), k.copy(), v.copy()
    out = np.full((2, 6, 77, 33), np.nan, dtype)
    lse = np.full((2, 6, 77), np.nan, dtype)
    ctype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn = capi.tileattn_attention_f32 if dtype == np.float32 else capi.tileattn_attention_f64
    args = [ptr(a, ctype) for a in (q, k, v, out, lse)]
    assert fn(*args, 2, 6, 3, 77, 91, 59, 33, math.nan, int(causal)) == 0
    expected, expected_lse = tileattn.attention(q, k, v, causal=causal, return_lse=True)
    np.testing.assert_array_equal(out, expected)  # the same kernels, bit for bit
    np.testing.assert_array_equal(lse, expected_lse)
    if dtype == np.float32:
        check_oracle(out, q, k, v, causal=causal)
    np.testing.assert_array_equal(q, q0)
    np.testing.assert_array_equal(k, k0)
    np.testing.assert_array_equal(v, v0)
    # An explicit scale, and no LSE wanted (NULL).
    out2 = np.empty_like(out)
    assert fn(*args[:3], ptr(out2, ctype), None, 2, 6, 3, 77, 91, 59, 33, 0.3, 0) == 0
    np.testing.assert_array_equal(out2, tileattn.attention(q, k, v, scale=0.3))


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ((2, 6, 4, 7, 7, 8, 8), "heads_q (6) must be a multiple of heads_kv (4)"),
        ((2, 6, 3, -1, 7, 8, 8), "seq_q must be >= 0"),
        ((2, 6, 3, 7, 7, 0, 8), "head_dim must be >= 1"),
    ],
)
def test_ctypes_errors(capi, sizes, message):
    buf = np.zeros(4096, np.float32)
    p = ptr(buf, ctypes.c_float)
    status = capi.tileattn_attention_f32(p, p, p, p, None, *sizes, math.nan, 0)
    assert status == 1  # TILEATTN_ERROR_INVALID_ARGUMENT
    assert message in capi.tileattn_last_error().decode()
    assert not buf.any()  # nothing written


def test_ctypes_error_cases(capi):
    buf = np.zeros(64, np.float32)
    p = ptr(buf, ctypes.c_float)
    assert capi.tileattn_attention_f32(None, p, p, p, None, 1, 1, 1, 2, 2, 4, 4, math.nan, 0) == 1
    assert "q is null" in capi.tileattn_last_error().decode()
    assert capi.tileattn_attention_f32(p, p, p, p, None, 1, 1, 1, 2, 2, 4, 4, math.inf, 0) == 1
    assert "scale must be finite" in capi.tileattn_last_error().decode()
    assert capi.tileattn_attention_f32(p, p, p, p, None, 1, 1, 1, 2, 2, 4, 4, math.nan, 2) == 1
    assert "causal must be 0 or 1" in capi.tileattn_last_error().decode()
    assert capi.tileattn_set_num_threads(0) == 1
    assert "num_threads must be in [1, 4096], got 0" in capi.tileattn_last_error().decode()
    # each thread is an OS thread: capped as the variable
    assert capi.tileattn_set_num_threads(4097) == 1
    assert capi.tileattn_attention(None) == 1
    assert "params is null" in capi.tileattn_last_error().decode()
    # A struct that is too short for this library (for example garbage) is refused, not read past.
    short = (ctypes.c_uint64 * 64)(8)
    assert capi.tileattn_attention(ctypes.byref(short)) == 1
    assert "struct_size" in capi.tileattn_last_error().decode()


def test_ctypes_last_error_is_per_thread(capi):
    buf = np.zeros(64, np.float32)
    p = ptr(buf, ctypes.c_float)
    assert capi.tileattn_attention_f32(p, p, p, p, None, 1, 2, 3, 2, 2, 4, 4, math.nan, 0) == 1
    mine = capi.tileattn_last_error().decode()
    seen = []

    def other():
        seen.append(capi.tileattn_last_error().decode())
        capi.tileattn_attention_f32(p, p, p, p, None, 1, 1, 1, 2, 2, 0, 4, math.nan, 0)
        seen.append(capi.tileattn_last_error().decode())

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen[0] == ""
    assert "head_dim" in seen[1]
    assert capi.tileattn_last_error().decode() == mine


def test_ctypes_versions(capi):
    assert capi.tileattn_version().decode() == tileattn.__version__
    header = (Path(tileattn.get_include()) / "tileattn" / "tileattn.h").read_text()
    abi = int(re.search(r"#define TILEATTN_ABI_VERSION (\d+)", header).group(1))
    assert capi.tileattn_abi_version() == abi


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_ctypes_merge(capi, rng, dtype):
    q = rng.standard_normal((2, 3, 29, 16)).astype(dtype)
    k = rng.standard_normal((2, 3, 50, 16)).astype(dtype)
    v = rng.standard_normal((2, 3, 50, 12)).astype(dtype)
    # Keys 0..19 and 20..49: the merge is the attention over all 50.
    parts = [
        tileattn.attention(q, k[:, :, a:b], v[:, :, a:b], return_lse=True)
        for a, b in ((0, 20), (20, 50))
    ]
    outs = [np.ascontiguousarray(o) for o, _ in parts]
    lses = [np.ascontiguousarray(l) for _, l in parts]
    rows = 2 * 3 * 29
    out = np.empty_like(outs[0])
    lse = np.empty_like(lses[0])
    code = {"float32": 0, "float64": 1, "float16": 2}[dtype]
    vp = (ctypes.c_void_p * 2)(*[o.ctypes.data for o in outs])
    lp = (ctypes.c_void_p * 2)(*[l.ctypes.data for l in lses])
    status = capi.tileattn_merge_attention(
        code, 2, vp, lp, out.ctypes.data, lse.ctypes.data, rows, 12, 0
    )
    assert status == 0, capi.tileattn_last_error()
    expected, expected_lse = tileattn.merge_attention(outs, lses)
    tol = {"float32": 1e-5, "float64": 1e-12, "float16": 2e-3}[dtype]
    np.testing.assert_allclose(
        out.astype(np.float64), expected.astype(np.float64), atol=tol, rtol=tol
    )
    np.testing.assert_allclose(lse, expected_lse, rtol=tol, atol=tol)
    full, full_lse = tileattn.attention(q, k, v, return_lse=True)
    np.testing.assert_allclose(out.astype(np.float64), full.astype(np.float64), atol=10 * tol)
    np.testing.assert_allclose(lse, full_lse, atol=10 * tol, rtol=10 * tol)
    # Rows empty in every part: 0 and -inf, whatever the partial outputs hold.
    outs[0][:] = np.nan
    outs[1][:] = np.nan
    lses[0][:] = -np.inf
    lses[1][:] = -np.inf
    assert capi.tileattn_merge_attention(code, 2, vp, lp, out.ctypes.data, None, rows, 12, 1) == 0
    assert (out == 0).all()
    assert capi.tileattn_merge_attention(code, 0, vp, lp, out.ctypes.data, None, rows, 12, 1) == 1
    assert "parts must be >= 1" in capi.tileattn_last_error().decode()


# ---- Headers compile cleanly on their own


def test_headers_compile_strictly(tmp_path):
    include = tileattn.get_include()
    cc = compiler(os.environ.get("CC", "cc"), "gcc", "clang")
    cxx = compiler(os.environ.get("CXX", "c++"), "g++", "clang++")
    (tmp_path / "c.c").write_text(
        "#include <tileattn/tileattn.h>\nint main(void) { return tileattn_abi_version() != TILEATTN_ABI_VERSION; }\n"
    )
    (tmp_path / "cxx.cpp").write_text(
        "#include <tileattn/tileattn.hpp>\n#include <tileattn/tileattn.h>\n"
        "int main() { return tileattn::get_num_threads() < 1; }\n"
    )
    flags = ["-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{include}", "-c"]
    run([cc, "-std=c99", *flags, str(tmp_path / "c.c"), "-o", str(tmp_path / "c.o")])
    run([cxx, "-std=c++17", *flags, str(tmp_path / "cxx.cpp"), "-o", str(tmp_path / "cxx.o")])


# ---- C++ and C programs through the CMake package and pkg-config


def check_example_outputs(cpp_bin: Path | None, c_bin: Path | None):
    q, k, v = example_inputs()
    expected, expected_lse = tileattn.attention(q, k, v, causal=True, return_lse=True)
    n = expected.size
    if cpp_bin is not None:
        data = np.fromfile(cpp_bin, np.float32)
        assert data.size == n + expected_lse.size
        out, lse = data[:n].reshape(expected.shape), data[n:].reshape(expected_lse.shape)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(lse, expected_lse)
        check_oracle(out, q, k, v, causal=True)
    if c_bin is not None:
        data = np.fromfile(c_bin, np.float32)
        assert data.size == 2 * n
        out, window = data[:n].reshape(expected.shape), data[n:].reshape(expected.shape)
        np.testing.assert_array_equal(out, expected)
        check_oracle(out, q, k, v, causal=True)
        check_oracle(window, q, k, v, window=(8, 0))


@pytest.mark.slow
def test_cmake_find_package(tmp_path):
    cmake = cmake_exe()
    compiler(os.environ.get("CXX", "c++"), "g++", "clang++")
    source = examples_dir("cpp")
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(
        [
            cmake,
            "-S",
            str(source),
            "-B",
            str(build),
            *generator,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-Dtileattn_DIR={tileattn.get_cmake_dir()}",
        ]
    )
    run([cmake, "--build", str(build), "-j2"])
    exe = ".exe" if sys.platform == "win32" else ""
    cpp = run([str(build / f"attend{exe}"), str(tmp_path / "cpp.bin")]).stdout
    assert "rejected as expected: heads_q (4) must be a multiple of heads_kv (3)" in cpp
    c = run([str(build / f"attend_c{exe}"), str(tmp_path / "c.bin")]).stdout
    assert 'bad call: status 1, "heads_q (4) must be a multiple of heads_kv (3)"' in c
    assert f"tileattn {tileattn.__version__}" in cpp and f"tileattn {tileattn.__version__}" in c
    check_example_outputs(tmp_path / "cpp.bin", tmp_path / "c.bin")
    # The same package found through CMAKE_PREFIX_PATH (the folder above lib/cmake).
    build2 = tmp_path / "build2"
    prefix = Path(tileattn.get_library_dir()).parent
    run([cmake, "-S", str(source), "-B", str(build2), *generator, f"-DCMAKE_PREFIX_PATH={prefix}"])


def test_pkg_config(tmp_path):
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        pytest.skip("pkg-config is not installed")
    cc = compiler(os.environ.get("CC", "cc"), "gcc", "clang")
    source = examples_dir("cpp") / "attend_c.c"
    env = {**os.environ, "PKG_CONFIG_PATH": tileattn.get_pkgconfig_dir()}
    flags = run([pkg_config, "--cflags", "--libs", "tileattn"], env=env).stdout.split()
    version = run([pkg_config, "--modversion", "tileattn"], env=env).stdout.strip()
    assert version == tileattn.__version__
    exe = tmp_path / "attend_c"
    run([cc, "-O2", str(source), "-o", str(exe), *flags, "-lm"])
    run([str(exe), str(tmp_path / "c.bin")])
    check_example_outputs(None, tmp_path / "c.bin")


# ---- A Cython extension that cimports tileattn.capi and calls it without the GIL


@pytest.mark.slow
def test_cython_extension(tmp_path):
    pytest.importorskip("Cython", reason="Cython is not installed (pip install cython)")
    pytest.importorskip("setuptools", reason="setuptools is not installed")
    compiler(
        sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC") else "cc",
        "cc",
        "gcc",
    )
    source = examples_dir("cython")
    work = tmp_path / "cython"
    shutil.copytree(source, work)
    run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=work)
    generated = (work / "attend.c").read_text()
    assert "PyEval_SaveThread" in generated  # the `with nogil:` block
    script = textwrap.dedent(
        """
        import threading
        import numpy as np
        import attend, tileattn

        header, library = attend.abi_version()
        assert header == library, (header, library)
        rng = np.random.default_rng(0)
        q = rng.standard_normal((2, 4, 67, 48), dtype=np.float32)
        k = rng.standard_normal((2, 2, 80, 48), dtype=np.float32)
        v = rng.standard_normal((2, 2, 80, 40), dtype=np.float32)
        out = attend.attention(q, k, v, causal=True)
        assert isinstance(out, np.ndarray) and out.shape == (2, 4, 67, 40), type(out)
        np.save("q.npy", q), np.save("k.npy", k), np.save("v.npy", v), np.save("out.npy", out)
        assert np.array_equal(out, tileattn.attention(q, k, v, causal=True))

        # Without the GIL: a Python thread keeps running while Cython calls compute.
        ticks, done = [0], threading.Event()
        def tick():
            while not done.is_set():
                ticks[0] += 1
        t = threading.Thread(target=tick)
        t.start()
        big = rng.standard_normal((1, 8, 1024, 64), dtype=np.float32)
        during = []
        for _ in range(3):
            before = ticks[0]  # no bytecode runs between here and the call: only a released GIL lets t tick
            attend.attention(big, big, big)
            during.append(ticks[0] - before)
        done.set()
        t.join()
        assert max(during) > 100, during

        try:
            attend.attention(q, k[:, :1].repeat(3, axis=1).copy(), v[:, :1].repeat(3, axis=1).copy())
        except ValueError as e:
            assert "heads_q (4) must be a multiple of heads_kv (3)" in str(e), e
        else:
            raise AssertionError("no error")
        print("cython ok")
        """
    )
    result = run([sys.executable, "-c", script], cwd=work)
    assert "cython ok" in result.stdout
    q, k, v, out = (np.load(work / f"{n}.npy") for n in ("q", "k", "v", "out"))
    check_oracle(out, q, k, v, causal=True)


class Params(ctypes.Structure):
    """tileattn_params of tileattn.h, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_uint64),
        ("dtype", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("q", ctypes.c_void_p),
        ("k", ctypes.c_void_p),
        ("v", ctypes.c_void_p),
        ("out", ctypes.c_void_p),
        ("lse", ctypes.c_void_p),
        *[
            (n, ctypes.c_int64)
            for n in ("batch", "heads_q", "heads_kv", "seq_q", "seq_k", "head_dim", "head_dim_v")
        ],
        ("q_strides", ctypes.c_int64 * 4),
        ("k_strides", ctypes.c_int64 * 4),
        ("v_strides", ctypes.c_int64 * 4),
        ("out_strides", ctypes.c_int64 * 4),
        ("lse_strides", ctypes.c_int64 * 3),
        ("scale", ctypes.c_double),
        ("causal", ctypes.c_int32),
        ("top_left", ctypes.c_int32),
        ("window_left", ctypes.c_int64),
        ("window_right", ctypes.c_int64),
        ("q_lengths", ctypes.c_void_p),
        ("kv_lengths", ctypes.c_void_p),
        ("cu_seqlens_q", ctypes.c_void_p),
        ("cu_seqlens_k", ctypes.c_void_p),
        ("mask", ctypes.c_void_p),
        ("mask_strides", ctypes.c_int64 * 4),
        ("bias", ctypes.c_void_p),
        ("bias_dtype", ctypes.c_int32),
        ("isa", ctypes.c_int32),
        ("bias_strides", ctypes.c_int64 * 4),
        ("alibi_slopes", ctypes.c_void_p),
        ("alibi_strides", ctypes.c_int64 * 2),
        ("softcap", ctypes.c_double),
    ]


def elem_strides(x: np.ndarray) -> list[int]:
    return [s // x.itemsize for s in x.strides]


def test_ctypes_params_every_option(capi, rng):
    """The general entry maps every field: a strided bshd call with window, mask, float16 bias, ALiBi,
    softcap, lengths and top-left alignment equals tileattn.attention bit for bit; and packed sequences."""
    capi.tileattn_params_init.argtypes = [ctypes.POINTER(Params)]
    capi.tileattn_attention.argtypes = [ctypes.POINTER(Params)]
    p = Params()
    capi.tileattn_params_init(ctypes.byref(p))
    assert p.struct_size == ctypes.sizeof(Params)
    assert math.isnan(p.scale) and p.window_left == -1 and p.isa == -1 and p.q_strides[3] == 1
    b, hq, hkv, sq, sk, d, dv = 2, 4, 2, 37, 45, 24, 16
    q = rng.standard_normal((b, sq, hq, d)).astype(np.float32)  # bshd
    k = rng.standard_normal((b, sk, hkv, d)).astype(np.float32)[:, ::-1]  # negative seq stride
    v = np.asfortranarray(rng.standard_normal((b, sk, hkv, dv)).astype(np.float32))
    mask = rng.random((sq, sk)) < 0.8
    bias = rng.standard_normal((hq, 1, sk)).astype(np.float16)
    slopes = rng.random((b, hq))
    ql, kl = np.array([30, 37], np.int64), np.array([45, 20], np.int64)
    opts = dict(
        causal="top_left",
        window=(9, 3),
        mask=mask,
        bias=bias,
        alibi_slopes=slopes,
        softcap=7.0,
        q_lengths=ql,
        kv_lengths=kl,
        scale=0.3,
    )
    expected, expected_lse = tileattn.attention(q, k, v, layout="bshd", return_lse=True, **opts)
    out = np.full((b, sq, hq, dv), np.nan, np.float32)
    lse = np.full((b, hq, sq), np.nan, np.float32)
    mask_u8 = np.broadcast_to(mask.view(np.uint8), (b, hq, sq, sk))
    bias4 = np.broadcast_to(bias, (b, hq, sq, sk))
    slopes_c = np.ascontiguousarray(slopes)
    for name, x in (("q", q), ("k", k), ("v", v), ("out", out)):
        setattr(p, name, x.ctypes.data)
        st = elem_strides(x)
        getattr(p, f"{name}_strides")[:] = [st[0], st[2], st[1], st[3]]  # bshd -> (b, h, s, d)
    p.lse = lse.ctypes.data
    p.lse_strides[:] = elem_strides(lse)
    p.batch, p.heads_q, p.heads_kv, p.seq_q, p.seq_k, p.head_dim, p.head_dim_v = (
        b,
        hq,
        hkv,
        sq,
        sk,
        d,
        dv,
    )
    p.scale, p.causal, p.top_left, p.window_left, p.window_right = 0.3, 1, 1, 9, 3
    p.mask, p.mask_strides[:] = mask_u8.ctypes.data, elem_strides(mask_u8)
    p.bias, p.bias_dtype, p.bias_strides[:] = bias4.ctypes.data, 2, elem_strides(bias4)
    p.alibi_slopes, p.alibi_strides[:] = slopes_c.ctypes.data, elem_strides(slopes_c)
    p.softcap = 7.0
    p.q_lengths, p.kv_lengths = ql.ctypes.data, kl.ctypes.data
    p.num_threads = 2
    assert capi.tileattn_attention(ctypes.byref(p)) == 0, capi.tileattn_last_error()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(lse, expected_lse)
    p.bias_dtype = 9
    assert capi.tileattn_attention(ctypes.byref(p)) == 1
    assert "bias_dtype = 9 is not a tileattn_dtype" in capi.tileattn_last_error().decode()

    # Packed sequences through cu_seqlens.
    cu_q, cu_k = np.array([0, 5, 5, 30], np.int64), np.array([0, 9, 20, 41], np.int64)
    qv = rng.standard_normal((30, hq, d)).astype(np.float32)
    kv = rng.standard_normal((41, hkv, d)).astype(np.float32)
    vv = rng.standard_normal((41, hkv, dv)).astype(np.float32)
    expected = tileattn.attention_varlen(qv, kv, vv, cu_q, cu_k, causal=True)
    out = np.zeros((30, hq, dv), np.float32)
    capi.tileattn_params_init(ctypes.byref(p))
    for name, x in (("q", qv), ("k", kv), ("v", vv), ("out", out)):
        setattr(p, name, x.ctypes.data)
        st = elem_strides(x)
        getattr(p, f"{name}_strides")[:] = [0, st[1], st[0], st[2]]
    p.batch, p.heads_q, p.heads_kv, p.seq_q, p.seq_k, p.head_dim, p.head_dim_v = (
        3,
        hq,
        hkv,
        30,
        41,
        d,
        dv,
    )
    p.causal = 1
    p.cu_seqlens_q, p.cu_seqlens_k = cu_q.ctypes.data, cu_k.ctypes.data
    assert capi.tileattn_attention(ctypes.byref(p)) == 0, capi.tileattn_last_error()
    np.testing.assert_array_equal(out, expected)
