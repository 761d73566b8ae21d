"""tileattn and torch SDPA on one shape, alternated in loops (thirty-second session, bench/RESULTS.md).

    python alternate_vs_torch.py B,H,S,D THREADS [c]        prefill: GFLOP/s and torch / tileattn
    python alternate_vs_torch.py B,Hq,Hkv,Sk,D THREADS dec  one query row per head against Sk keys:
                                                              GB/s of K and V, and torch / tileattn

Each round times tileattn, then torch, for SECONDS (1.5) of calls back to back and prints the medians,
so that both see nearly the same minute; three rounds. Pin one thread with `taskset -c 1`. A check of
one sweep row (`bench/sweep_vs_torch.py`) without the sweep's other shapes in between; the decode form
reads the same K and V on every call, so they stay in the L3 when they fit there.
"""

import sys
import time

import numpy as np
import torch

import tileattn

SECONDS = 1.5


def median_s(fn) -> float:
    fn()
    ts = []
    end = time.perf_counter() + SECONDS
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main() -> None:
    dims = list(map(int, sys.argv[1].split(",")))
    threads = int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "n"
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    if mode == "dec":
        b, hq, hkv, sk, d = dims
        q = rng.standard_normal((b, hq, 1, d)).astype(np.float32)
        k, v = (rng.standard_normal((b, hkv, sk, d)).astype(np.float32) for _ in range(2))
        causal, work, unit = True, 2.0 * b * hkv * sk * d * 4, "GB/s"
        gqa = {"enable_gqa": hq != hkv}
    else:
        b, h, s, d = dims
        q, k, v = (rng.standard_normal((b, h, s, d)).astype(np.float32) for _ in range(3))
        causal = mode == "c"
        work, unit, gqa = 2.0 * b * h * s * s * 2 * d * (0.5 if causal else 1.0), "GFLOP/s", {}
    tq, tk, tv = map(torch.from_numpy, (q, k, v))

    def ours():
        tileattn.attention(q, k, v, causal=causal, num_threads=threads)

    def theirs():
        torch.nn.functional.scaled_dot_product_attention(
            tq, tk, tv, is_causal=causal and mode != "dec", **gqa
        )

    for _ in range(3):
        a, t = median_s(ours), median_s(theirs)
        print(
            f"{sys.argv[1]} {mode} {threads} thread(s): tileattn {work / a / 1e9:.1f}, "
            f"torch {work / t / 1e9:.1f} {unit}, torch / tileattn time {t / a:.3f}"
        )


if __name__ == "__main__":
    main()
