"""The masking speed cases as pytest-benchmark groups: the option, the plain kernel it is compared to, and
torch SDPA with the option as attn_mask.

    python -m pytest bench/test_masks_speed.py --benchmark-only
    python -m pytest bench --benchmark-only -k "window or document"

Benchmarks, not tests: nothing asserts a time. Targets and ratios come from
`python -m tileattn bench --masks`, which interleaves each case with its baseline.
"""

from __future__ import annotations

import numpy as np
import pytest

from tileattn import attention, bench_masks, get_num_threads

CASES = bench_masks.mask_cases()
IDS = [c.label().replace(" ", "-") for c in CASES]


@pytest.fixture(params=list(enumerate(CASES)), ids=IDS, scope="module")
def case_data(request):
    n, case = request.param
    rng = np.random.default_rng(n)
    shape = (1, case.heads, case.seq, case.head_dim)
    q, k, v = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
    return case, q, k, v, case.options(rng, case.heads, case.seq)


def test_option(benchmark, case_data):
    case, q, k, v, options = case_data
    benchmark.group = case.label()
    out = np.empty_like(q)
    benchmark.pedantic(lambda: attention(q, k, v, out=out, **options), rounds=7, warmup_rounds=1)


def test_baseline(benchmark, case_data):
    case, q, k, v, _ = case_data
    benchmark.group = case.label()
    benchmark.extra_info["baseline"] = "plain causal" if case.base_causal else "plain"
    out = np.empty_like(q)
    benchmark.pedantic(
        lambda: attention(q, k, v, causal=case.base_causal, out=out), rounds=7, warmup_rounds=1
    )


def test_torch(benchmark, case_data):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    case, q, k, v, options = case_data
    mask = bench_masks.torch_mask(options, case.seq)
    if mask is None:
        pytest.skip("torch SDPA cannot express this option")
    benchmark.group = case.label()
    torch.set_num_threads(get_num_threads())
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run():
        with torch.no_grad():
            return sdpa(tq, tk, tv, attn_mask=mask)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
