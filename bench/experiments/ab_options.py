"""A/B of the options' per-score cost on the CPU (twelfth session, bench/RESULTS.md), one build per run:

    python ab_options.py PKG_DIR options [D] [case,case,...]   bias (H,S,S), (S,S), per key, ALiBi, softcap, mask
    python ab_options.py PKG_DIR masks [D]                      masks of several shapes
    python ab_options.py PKG_DIR window                         S8192 window (255, 0) against plain causal

PKG_DIR holds a tileattn package (`pip install . --target PKG_DIR`); run two builds alternately and
compare the percentages (each against the plain call of its own build, in the same process).
"""

import sys
import time

sys.path.insert(0, sys.argv[1])
import numpy as np

import tileattn

rng = np.random.default_rng(0)


def median_ms(fn, n=5):
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.median(times) * 1e3


def per_score_costs(q, k, v, cases, rounds=3):
    res = {c: [] for c in cases}
    plain = []
    for _ in range(rounds):
        plain.append(median_ms(lambda: tileattn.attention(q, k, v)))
        for c, kw in cases.items():
            res[c].append(median_ms(lambda kw=kw: tileattn.attention(q, k, v, **kw)))
    p = np.median(plain)
    return f"plain {p:.1f} " + " ".join(
        f"{c} {np.median(r):.1f} +{(np.median(r) / p - 1) * 100:.1f}%" for c, r in res.items()
    )


def main():
    mode = sys.argv[2]
    if mode == "window":
        q, k, v = (rng.standard_normal((1, 8, 8192, 64)).astype(np.float32) for _ in range(3))
        c, w = [], []
        for _ in range(3):
            c.append(median_ms(lambda: tileattn.attention(q, k, v, causal=True), 1))
            w.append(median_ms(lambda: tileattn.attention(q, k, v, causal=True, window=(255, 0))))
        print(
            f"{sys.argv[1]} causal {np.median(c):.1f} window {np.median(w):.2f} ratio {np.median(c) / np.median(w):.2f}x"
        )
        return
    h, s, d = 8, 2048, int(sys.argv[3]) if len(sys.argv) > 3 else 64
    q, k, v = (rng.standard_normal((1, h, s, d)).astype(np.float32) for _ in range(3))
    if mode == "masks":
        cases = {
            "maskSS": dict(mask=np.ones((s, s), bool)),
            "maskkey": dict(mask=np.ones((1, s), bool)),
            "maskHSS": dict(mask=np.ones((h, s, s), bool)),
            "mask_rand": dict(mask=rng.random((s, s)) > 0.01),
        }
    else:
        hss = rng.standard_normal((h, s, s)).astype(np.float32)
        cases = {
            "HSS": dict(bias=hss),
            "SS": dict(bias=hss[0].copy()),
            "perkey": dict(bias=np.broadcast_to(hss[0, 0], (s, s))),
            "alibi": dict(alibi_slopes=2.0 ** -np.arange(1, h + 1)),
            "softcap": dict(softcap=30.0),
            "mask": dict(mask=np.ones((s, s), bool)),
        }
        if len(sys.argv) > 4:
            cases = {c: cases[c] for c in sys.argv[4].split(",")}
    print(f"{sys.argv[1]} D{d}", per_score_costs(q, k, v, cases), flush=True)


if __name__ == "__main__":
    main()
