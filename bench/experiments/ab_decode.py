"""A/B of two builds on decoding shapes, in alternated processes (thirty-eighth session, bench/RESULTS.md).

    python ab_decode.py PKG_A PKG_B ROUNDS THREADS CPUS HQ,HKV,SK,D[,DTYPE] ...

For each shape (one query position, no mask), each round runs one process per build, one after the other
(the order swapped every round), pinned to CPUS with `taskset`, each timing calls for 1.5 s and printing the
median K and V bytes per second. The ratio B/A is taken per round; the median and range of the rounds are
printed. PKG_A and PKG_B hold a tileattn package (`pip install . --no-build-isolation --no-deps --target PKG`).
"""

import subprocess
import sys

import numpy as np

CHILD = r"""
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import tileattn
spec = sys.argv[2].split(",")
hq, hkv, sk, d = map(int, spec[:4])
dt = np.dtype(spec[4]) if len(spec) > 4 else np.dtype(np.float32)
th = int(sys.argv[3])
rng = np.random.default_rng(0)
q = rng.standard_normal((1, hq, 1, d)).astype(dt)
k = rng.standard_normal((1, hkv, sk, d)).astype(dt)
v = rng.standard_normal((1, hkv, sk, d)).astype(dt)
out = np.empty_like(q)
for _ in range(3):
    tileattn.attention(q, k, v, out=out, num_threads=th)
ts = []
t0 = time.perf_counter()
while time.perf_counter() - t0 < 1.5:
    t1 = time.perf_counter()
    tileattn.attention(q, k, v, out=out, num_threads=th)
    ts.append(time.perf_counter() - t1)
print((k.nbytes + v.nbytes) / float(np.median(ts)) / 1e9)
"""


def measure(pkg: str, shape: str, threads: str, cpus: str) -> float:
    cmd = ["taskset", "-c", cpus, sys.executable, "-c", CHILD, pkg, shape, threads]
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    pkg_a, pkg_b, rounds, threads, cpus = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4],
        sys.argv[5],
    )
    for shape in sys.argv[6:]:
        ra: list[float] = []
        rb: list[float] = []
        for r in range(rounds):
            order = ((pkg_a, ra), (pkg_b, rb)) if r % 2 == 0 else ((pkg_b, rb), (pkg_a, ra))
            for pkg, out in order:
                out.append(measure(pkg, shape, threads, cpus))
        ratio = [b / a for a, b in zip(ra, rb)]
        print(
            f"{shape:28s} A {np.median(ra):6.1f} GB/s  B {np.median(rb):6.1f} GB/s  "
            f"B/A median {np.median(ratio):.3f} range {min(ratio):.3f}-{max(ratio):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
