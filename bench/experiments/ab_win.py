"""A/B of the options' per-score cost (twelfth session, bench/RESULTS.md): python ab_win.py PKG_DIR [D] ...,
where PKG_DIR holds a tileattn package (pip install . --target PKG_DIR); run two builds alternately."""

import sys
import time

sys.path.insert(0, sys.argv[1])
import numpy as np

import tileattn

rng = np.random.default_rng(0)
H, S, D = 8, 8192, 64


def t(fn, n=3):
    fn()
    r = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        r.append(time.perf_counter() - t0)
    return np.median(r) * 1e3


q, k, v = (rng.standard_normal((1, H, S, D)).astype(np.float32) for _ in range(3))
c, w = [], []
for _ in range(3):
    c.append(t(lambda: tileattn.attention(q, k, v, causal=True), 1))
    w.append(t(lambda: tileattn.attention(q, k, v, causal=True, window=(255, 0)), 5))
print(
    f"{sys.argv[1]} causal {np.median(c):.1f} window {np.median(w):.2f} ratio {np.median(c) / np.median(w):.2f}x",
    flush=True,
)
