"""A/B of two builds in rounds of simultaneous pinned processes (twenty-third session, bench/RESULTS.md).

    python ab_rounds.py PKG_A PKG_B B,H,S,D n|c SECONDS ROUNDS [f32|f64|f16|bf16]

Each round starts one process per build at the same time, each on one thread pinned to its own core
(cores swapped every round), times calls of the shape for SECONDS and prints GFLOP/s (median). The
ratio B/A is taken per round, so both builds always share the same minute of a noisy machine; the
median of the rounds is the result. PKG_A and PKG_B hold a tileattn package (`pip install .
--no-build-isolation --no-deps --target PKG`); give the same directory twice for an A/A run, and two
builds of the same source to see how much a rebuild alone moves (code placement).
"""

import statistics
import subprocess
import sys
import time

import numpy as np


def worker(pkg: str, shape: str, causal: bool, seconds: float, dtype: str) -> None:
    sys.path.insert(0, pkg)
    import tileattn

    b, h, s, d = map(int, shape.split(","))
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((b, h, s, d)).astype(np.float32) for _ in range(3))
    if dtype == "f64":
        q, k, v = (x.astype(np.float64) for x in (q, k, v))
    elif dtype == "f16":
        q, k, v = (x.astype(np.float16) for x in (q, k, v))
    elif dtype == "bf16":
        import ml_dtypes

        q, k, v = (x.astype(ml_dtypes.bfloat16) for x in (q, k, v))
    pairs = s * (s + 1) / 2 if causal else s * s
    flops = 2 * b * h * pairs * 2 * d
    tileattn.attention(q, k, v, causal=causal, num_threads=1)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        tileattn.attention(q, k, v, causal=causal, num_threads=1)
        times.append(time.perf_counter() - t0)
    print(flops / statistics.median(times) / 1e9)


def main() -> None:
    if sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4] == "c", float(sys.argv[5]), sys.argv[6])
        return
    pkg_a, pkg_b, shape, mode, seconds, rounds = sys.argv[1:7]
    dtype = sys.argv[7] if len(sys.argv) > 7 else "f32"

    def start(pkg: str, core: int) -> subprocess.Popen:
        cmd = [
            "taskset",
            "-c",
            str(core),
            sys.executable,
            __file__,
            "--worker",
            pkg,
            shape,
            mode,
            seconds,
            dtype,
        ]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    a_all, b_all, ratios = [], [], []
    for r in range(int(rounds)):
        pa, pb = start(pkg_a, r % 2), start(pkg_b, 1 - r % 2)
        a, b = float(pa.communicate()[0]), float(pb.communicate()[0])
        a_all.append(a)
        b_all.append(b)
        ratios.append(b / a)
    print(
        f"{shape} {mode} {dtype}: A {statistics.median(a_all):.1f} B {statistics.median(b_all):.1f} GFLOP/s, "
        f"B/A median {statistics.median(ratios):.3f}; rounds "
        + " ".join(f"{x:.3f}" for x in ratios)
    )


if __name__ == "__main__":
    main()
