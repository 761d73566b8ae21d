"""The extension built here runs correctly on older x86-64 CPUs: the same Python and build run under
qemu-user emulating a CPU without AVX (Nehalem: the baseline kernels) and one with AVX2 but no AVX-512
(Haswell: the AVX2 kernels). An instruction from a higher level anywhere on those paths would kill the
process with SIGILL; the results are checked against the oracle."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import numpy as np, tileattn
from tileattn import reference
cfg = tileattn.show_config(as_dict=True)
print("isa", cfg["kernel"]["selected_isa"])
rng = np.random.default_rng(0)
cases = [  # (b, hq, hkv, sq, sk, d, causal): prefill, GQA, decode (split keys), Sq > Sk
    (1, 2, 2, 70, 70, 24, True), (2, 4, 2, 33, 90, 40, False), (1, 8, 2, 1, 5000, 64, True),
    (1, 2, 1, 50, 20, 16, True),
]
dtypes = [np.float32, np.float64, np.float16]
try:
    import ml_dtypes
    dtypes.append(ml_dtypes.bfloat16)
except ImportError:
    pass
worst = 0.0
for b, hq, hkv, sq, sk, d, causal in cases:
    for dt in dtypes:
        q = rng.standard_normal((b, hq, sq, d)).astype(dt)
        k = rng.standard_normal((b, hkv, sk, d)).astype(dt)
        v = rng.standard_normal((b, hkv, sk, d)).astype(dt)
        out = tileattn.attention(q, k, v, causal=causal, num_threads=2)
        ref = reference.attention(q, k, v, causal=causal)
        naive = reference.naive_attention(q, k, v, causal=causal)
        err = np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref)
        err_naive = np.linalg.norm(naive.astype(np.float64) - ref) / np.linalg.norm(ref)
        tol = {2: 1e-2, 4: 1e-5, 8: 1e-12}[np.dtype(dt).itemsize]
        assert err <= min(tol, 2 * err_naive + 1e-6 * tol), (dt, b, hq, sq, sk, d, causal, err, err_naive)
        worst = max(worst, err / tol)
print("ok", worst)
"""


def run_emulated(cpu: str) -> subprocess.CompletedProcess:
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-user is not installed (apt-get install qemu-user)")
    if platform.machine() != "x86_64" or not sys.platform.startswith("linux"):
        pytest.skip("emulating older x86-64 CPUs needs an x86-64 Linux host")
    # NumPy's OpenBLAS picks its kernels from CPUID, and under qemu-user on an AMD host it took the
    # emulated Nehalem for a Haswell (its AVX kernels then died with SIGILL in NumPy's import-time
    # sanity check, before tileattn ran). Naming the core for OpenBLAS leaves tileattn's own dispatch,
    # which the test is about, to CPUID.
    env = dict(os.environ, OPENBLAS_CORETYPE=cpu)
    return subprocess.run(
        [qemu, "-cpu", cpu, sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("cpu", "isa"), [("Nehalem", "baseline"), ("Haswell", "avx2")])
def test_runs_on_older_cpus(cpu, isa):
    proc = run_emulated(cpu)
    assert proc.returncode == 0, (
        f"exit {proc.returncode} under -cpu {cpu}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )
    assert f"isa {isa}" in proc.stdout
    assert "ok" in proc.stdout
