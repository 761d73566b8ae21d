"""Builds the C++ core tests (cpp/tests/test_core.cpp, test_exp2.cpp) with CMake, without Python, and runs them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import ROOT, cmake_configure


@pytest.mark.slow
def test_cpp_core(tmp_path):
    if not (ROOT / "cpp" / "tests" / "test_core.cpp").exists():
        pytest.skip("the C++ sources are not next to the tests (installed without the source tree)")
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    build = tmp_path / "build"
    cmake = cmake_configure(build, "-DTILEATTN_BUILD_TESTS=ON")
    result = subprocess.run(
        [
            cmake,
            "--build",
            str(build),
            "--target",
            "tileattn_core_tests",
            "tileattn_exp2_tests",
            "-j2",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run(
        [str(build / "cpp" / "tileattn_core_tests")], capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tileattn core tests: ok" in run.stdout
    # The vector exp2 of every level this CPU runs: its error in ulps and its contract (cpp/tests/test_exp2.cpp).
    run = subprocess.run(
        [str(build / "cpp" / "tileattn_exp2_tests")], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tileattn exp2 tests: ok" in run.stdout
