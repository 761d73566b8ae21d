"""A/B of two builds (sixteenth session, bench/RESULTS.md): one build per process, one thread each.

    python ab_pair.py PKG_DIR options S [THREADS]   per-score cost of biases and ALiBi over the plain call
    python ab_pair.py PKG_DIR plain [THREADS]       GFLOP/s of plain calls (D64, D64 causal, D128, float64)

PKG_DIR holds a tileattn package (`pip install . --target PKG_DIR`). Run the two builds at the same time,
each pinned to its own core, then swap the cores, so that both see the same minute of this noisy machine:

    taskset -c 0 python ab_pair.py /tmp/pkgA plain & taskset -c 1 python ab_pair.py /tmp/pkgB plain; wait

(or alternate the processes with two threads each, as ab_options.py does).
"""

import sys

import numpy as np
from ab_options import median_ms, rng, tileattn  # puts PKG_DIR (argv[1]) on the path first


def median_s(fn, n=7):
    return median_ms(fn, n) / 1e3


def options(s, threads):
    q, k, v = (rng.standard_normal((1, 8, s, 64)).astype(np.float32) for _ in range(3))
    hss = rng.standard_normal((8, s, s)).astype(np.float32)
    cases = {
        "plain": {},
        "HSS": dict(bias=hss),
        "SS": dict(bias=hss[0].copy()),
        "alibi": dict(alibi_slopes=2.0 ** -np.arange(1, 9)),
    }
    res = {c: [] for c in cases}
    for _ in range(7):  # the cases interleaved, call by call
        for c, kw in cases.items():
            res[c].append(
                median_s(lambda kw=kw: tileattn.attention(q, k, v, num_threads=threads, **kw), 1)
            )
    p = np.median(res["plain"])
    cost = " ".join(
        f"{c} +{(np.median(r) / p - 1) * 100:.1f}%" for c, r in res.items() if c != "plain"
    )
    return f"S{s} plain {p * 1e3:.1f} ms {cost}"


def plain(threads):
    out = []
    for s, d, dtype, causal in [
        (2048, 64, np.float32, False),
        (2048, 64, np.float32, True),
        (2048, 128, np.float32, False),
        (2048, 64, np.float64, False),
    ]:
        q, k, v = (rng.standard_normal((1, 8, s, d)).astype(dtype) for _ in range(3))
        t = median_s(
            lambda q=q, k=k, v=v, c=causal: tileattn.attention(
                q, k, v, causal=c, num_threads=threads
            ),
            5,
        )
        flops = 2 * 8 * s * s * 2 * d * (0.5 if causal else 1)
        out.append(
            f"D{d}{' causal' if causal else ''}{' f64' if dtype == np.float64 else ''} {flops / t / 1e9:.0f}"
        )
    return "GFLOP/s " + ", ".join(out)


if __name__ == "__main__":
    if sys.argv[2] == "options":
        report = options(int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    else:
        report = plain(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    print(sys.argv[1], report, flush=True)
