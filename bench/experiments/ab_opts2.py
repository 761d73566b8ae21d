"""A/B of the options' per-score cost (twelfth session, bench/RESULTS.md): python ab_opts2.py PKG_DIR [D] ...,
where PKG_DIR holds a tileattn package (pip install . --target PKG_DIR); run two builds alternately."""

import sys
import time

sys.path.insert(0, sys.argv[1])
import numpy as np

import tileattn

assert tileattn.__file__.startswith(sys.argv[1]), tileattn.__file__
rng = np.random.default_rng(0)
H, S, D = 8, 2048, int(sys.argv[2]) if len(sys.argv) > 2 else 64
only = sys.argv[3].split(",") if len(sys.argv) > 3 else None


def t(fn, n=5):
    fn()
    r = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        r.append(time.perf_counter() - t0)
    return np.median(r) * 1e3


q, k, v = (rng.standard_normal((1, H, S, D)).astype(np.float32) for _ in range(3))
hss = rng.standard_normal((H, S, S)).astype(np.float32)
ss = hss[0].copy()
pk = np.broadcast_to(hss[0, 0], (S, S))
al = 2.0 ** -np.arange(1, H + 1)
mask = np.ones((S, S), bool)
cases = {
    "HSS": dict(bias=hss),
    "SS": dict(bias=ss),
    "perkey": dict(bias=pk),
    "alibi": dict(alibi_slopes=al),
    "softcap": dict(softcap=30.0),
    "mask": dict(mask=mask),
}
if only:
    cases = {c: cases[c] for c in only}
res = {c: [] for c in cases}
plain = []
for _ in range(3):
    plain.append(t(lambda: tileattn.attention(q, k, v)))
    for c, kw in cases.items():
        res[c].append(t(lambda kw=kw: tileattn.attention(q, k, v, **kw)))
p = np.median(plain)
print(
    f"{sys.argv[1]} D{D} plain {p:.1f}",
    " ".join(
        f"{c} {np.median(r):.1f} +{(np.median(r) / p - 1) * 100:.1f}%" for c, r in res.items()
    ),
    flush=True,
)
