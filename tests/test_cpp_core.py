"""Builds the C++ core tests (cpp/tests/test_core.cpp) with CMake, without Python, and runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_cpp_core(tmp_path):
    if not (ROOT / "cpp" / "tests" / "test_core.cpp").exists():
        pytest.skip("the C++ sources are not next to the tests (installed without the source tree)")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [
        cmake,
        "-S",
        str(ROOT),
        "-B",
        str(build),
        *generator,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DTILEATTN_BUILD_TESTS=ON",
        "-DTILEATTN_PYTHON=OFF",
    ]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    result = subprocess.run(
        [cmake, "--build", str(build), "--target", "tileattn_core_tests", "-j2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run(
        [str(build / "cpp" / "tileattn_core_tests")], capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tileattn core tests: ok" in run.stdout
