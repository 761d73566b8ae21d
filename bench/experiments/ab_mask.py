"""A/B of the options' per-score cost (twelfth session, bench/RESULTS.md): python ab_mask.py PKG_DIR [D] ...,
where PKG_DIR holds a tileattn package (pip install . --target PKG_DIR); run two builds alternately."""

import sys
import time

sys.path.insert(0, sys.argv[1])
import numpy as np

import tileattn

rng = np.random.default_rng(0)
H, S, D = 8, 2048, int(sys.argv[2])


def t(fn, n=5):
    fn()
    r = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        r.append(time.perf_counter() - t0)
    return np.median(r) * 1e3


q, k, v = (rng.standard_normal((1, H, S, D)).astype(np.float32) for _ in range(3))
cases = {
    "maskSS": dict(mask=np.ones((S, S), bool)),
    "maskkey": dict(mask=np.ones((1, S), bool)),
    "maskHSS": dict(mask=np.ones((H, S, S), bool)),
    "mask_rand": dict(mask=rng.random((S, S)) > 0.01),
}
res = {c: [] for c in cases}
plain = []
for _ in range(3):
    plain.append(t(lambda: tileattn.attention(q, k, v)))
    for c, kw in cases.items():
        res[c].append(t(lambda kw=kw: tileattn.attention(q, k, v, **kw)))
p = np.median(plain)
print(
    f"{sys.argv[1]} D{D} plain {p:.1f}",
    " ".join(f"{c} +{(np.median(r) / p - 1) * 100:.1f}%" for c, r in res.items()),
    flush=True,
)
