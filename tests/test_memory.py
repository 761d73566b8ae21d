"""Extra memory is O(threads x tile), independent of Sq x Sk: a 32768-long sequence runs in a subprocess
whose peak resident memory, beyond its inputs and output, is checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys
import numpy as np
import tileattn

s, d, causal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, 1, s, d), dtype=np.float32) for _ in range(3))
out = np.zeros_like(q)                     # the output is allocated (and touched) up front
tileattn.attention(q[:, :, :64], k[:, :, :64], v[:, :, :64])  # threads and their scratch exist
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tileattn.attention(q, k, v, causal=causal, out=out)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_kib": after - before, "finite": bool(np.isfinite(out).all()),
                  "threads": tileattn.get_num_threads()}))
"""


@pytest.mark.slow
def test_long_sequence_peak_memory():
    seq, dim = 32768, 64
    score_matrix_mib = seq * seq * 4 / 2**20  # 4096 MiB: what a naive implementation would hold
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(seq), str(dim), "1"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["finite"]
    extra_mib = report["extra_kib"] / 1024
    assert extra_mib < 16, (
        f"extra peak memory {extra_mib:.1f} MiB (score matrix: {score_matrix_mib:.0f} MiB)"
    )
