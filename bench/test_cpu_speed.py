"""The CPU-speed cases as pytest-benchmark groups: tileattn, plain NumPy and torch SDPA side by side.

    python -m pytest bench --benchmark-only                 # every case
    python -m pytest bench --benchmark-only -k decode       # one case
    python -m pytest bench --benchmark-only --benchmark-columns=min,median,ops

These are benchmarks, not tests: nothing here asserts a time. The targets and their ratios come from
`python -m tileattn bench --compare`, which also measures the machine's FMA and bandwidth probes.
"""

from __future__ import annotations

import numpy as np
import pytest

from tileattn import attention, bench

CASES = bench.cases()
IDS = [f"{c.name}:{c.label()}".replace(" ", "-") for c in CASES]


@pytest.fixture(params=CASES, ids=IDS, scope="module")
def case_data(request):
    case = request.param
    q, k, v = bench.make_inputs(case)
    return case, q, k, v


def _extra(benchmark, case):
    benchmark.group = case.label()
    benchmark.extra_info["gflop"] = case.flops() / 1e9
    benchmark.extra_info["kv_mbytes"] = case.kv_bytes() / 1e6


def test_tileattn(benchmark, case_data):
    case, q, k, v = case_data
    _extra(benchmark, case)
    out = np.empty((case.batch, case.heads_q, case.seq_q, case.head_dim_v), q.dtype)
    benchmark.pedantic(
        lambda: attention(q, k, v, causal=case.causal, out=out), rounds=7, warmup_rounds=1
    )


def test_numpy(benchmark, case_data):
    case, q, k, v = case_data
    if case.dtype == "bfloat16":
        pytest.skip("NumPy has no bfloat16 matmul (ml_dtypes computes it element by element)")
    _extra(benchmark, case)
    rounds = 3 if case.flops() > 5e10 else 7
    benchmark.pedantic(
        lambda: bench.textbook_numpy(q, k, v, case.causal), rounds=rounds, warmup_rounds=1
    )


def test_torch(benchmark, case_data):
    pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    case, q, k, v = case_data
    _extra(benchmark, case)
    from tileattn import get_num_threads

    run = bench.torch_runner(case, q, k, v, get_num_threads())
    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
