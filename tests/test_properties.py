"""Hypothesis property tests over random shapes, layouts, ranks, strides, dtypes and options: the result
passes the oracle's error rule (with the rounding floor for tiny shapes, see conftest.assert_close) and
equals, bit for bit, the result on contiguous copies.

TILEATTN_FUZZ_EXAMPLES sets the examples per path (default 60) for a longer search, e.g.
``TILEATTN_FUZZ_EXAMPLES=8000 python -m pytest tests/test_properties.py -p no:benchmark``.

The small problems above do not reach the kernels' paths for larger ones; test_random_large_problems
draws those (a tenth as many examples): decoding against up to 20k keys (the keys split in chunks merged
through their LSE, the lean loop for one row per query head), few rows per kv head against long keys,
items of hundreds of rows (the larger KV tiles, register blocks in groups), GQA groups up to 8; also
bit for bit the same result on one thread as on two."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tileattn import reference

from conftest import BF16, PATHS, assert_close, assert_lse_close, magnitude, oracle, run

EXAMPLES = int(os.environ.get("TILEATTN_FUZZ_EXAMPLES", "60"))
DTYPES = ["float32", "float64", "float16"] + (["bfloat16"] if BF16 is not None else [])


@st.composite
def problems(draw):
    rank = draw(st.sampled_from([2, 3, 4]))
    layout = draw(st.sampled_from(["bhsd", "bshd"]))
    b = draw(st.integers(1, 3)) if rank == 4 else 1
    hkv = draw(st.integers(1, 3)) if rank > 2 else 1
    hq = hkv * (draw(st.integers(1, 3)) if rank > 2 else 1)
    sq = draw(st.integers(1, 70))
    sk = draw(st.integers(0, 150))
    d = draw(st.integers(1, 72))
    dv = draw(st.one_of(st.just(d), st.integers(1, 40)))
    dtype = draw(st.sampled_from(DTYPES))
    causal = draw(st.sampled_from([False, True, "top_left"]))
    scale = draw(st.one_of(st.none(), st.floats(-2, 2, allow_nan=False)))
    bound = st.one_of(st.none(), st.just(-1), st.integers(0, 40))
    window = draw(st.one_of(st.none(), st.tuples(bound, bound)))
    # Element-wise options: drawn as flags, materialised from the seed below.
    extras = draw(
        st.lists(
            st.sampled_from(["mask", "bias", "alibi", "softcap", "lengths"]),
            unique=True,
            max_size=3,
        )
    )
    seed = draw(st.integers(0, 2**32 - 1))
    # How each array is laid out in memory: a permutation of its axes, steps and flips.
    layouts = [
        (
            draw(st.permutations(range(rank))),
            draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)),
            draw(st.lists(st.booleans(), min_size=rank, max_size=rank)),
        )
        for _ in range(3)
    ]
    return dict(
        rank=rank,
        layout=layout,
        b=b,
        hq=hq,
        hkv=hkv,
        sq=sq,
        sk=sk,
        d=d,
        dv=dv,
        dtype=dtype,
        causal=causal,
        scale=scale,
        window=window,
        extras=extras,
        seed=seed,
        layouts=layouts,
    )


def logical_shape(pr, which):
    h, s, d = {
        "q": (pr["hq"], pr["sq"], pr["d"]),
        "k": (pr["hkv"], pr["sk"], pr["d"]),
        "v": (pr["hkv"], pr["sk"], pr["dv"]),
    }[which]
    four = (pr["b"], h, s, d) if pr["layout"] == "bhsd" else (pr["b"], s, h, d)
    return (s, d) if pr["rank"] == 2 else four[4 - pr["rank"] :]


def strided(rng, shape, dtype, perm, steps, flips):
    """An array of `shape` whose memory order, steps and signs of strides are arbitrary."""
    store_shape = [shape[p] * steps[p] for p in perm]
    store = rng.standard_normal(store_shape).astype(dtype)
    view = store[tuple(slice(None, None, steps[p]) for p in perm)]
    view = np.transpose(view, np.argsort(perm))
    view = view[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    assert view.shape == tuple(shape)
    return view


def dot_rounding_bound(q, k, pr, dtype):
    """Per query row: 4u sqrt(D) |scale| ||q_i|| max_j ||k_j||, the classic bound of the rounding of the
    scores (as (B, Hq, Sq), like the LSE); with a bias, ALiBi or softcap, also a few roundings of the
    largest term they add."""
    from tileattn._api import to_bhsd

    q4 = to_bhsd(np.asarray(q).astype(np.float64), pr["layout"])
    k4 = to_bhsd(np.asarray(k).astype(np.float64), pr["layout"])
    group = q4.shape[1] // k4.shape[1]
    kmax = np.repeat(
        np.linalg.norm(k4, axis=-1).max(axis=-1, initial=0.0), group, axis=1
    )  # (B, Hq)
    scale = 1 / np.sqrt(pr["d"]) if pr["scale"] is None else abs(pr["scale"])
    u = 2.0**-53 if np.dtype(dtype) == np.float64 else 2.0**-24
    bound = 4 * u * np.sqrt(pr["d"]) * scale * np.linalg.norm(q4, axis=-1) * kmax[..., None]
    bound = bound + 16 * u * (
        8.0 + pr["sk"] + pr["sq"]
    )  # bias (|b| < 8), ALiBi (slope < 1, |distance|)
    return bound.reshape(bound.shape[4 - pr["rank"] :])


@pytest.mark.parametrize("path", PATHS, ids=[f"{p}-{i}" for p, i in PATHS])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pr=problems())
def test_random_problems(path, pr):
    check_problem(path, pr)


@st.composite
def large_problems(draw):
    """Problems of the sizes where the kernels change paths (see the module's docstring); rank 4, each array
    laid out as in `problems` but with steps of at most 2 on one axis (the arrays are large)."""
    kind = draw(st.sampled_from(["decode", "few_rows", "many_rows", "groups"]))
    hkv = draw(st.integers(1, 3))
    group = draw(st.integers(1, 8))
    if kind == "decode":
        sq, sk = draw(st.integers(1, 2)), draw(st.integers(1, 20000))
    elif kind == "few_rows":
        sq, sk = draw(st.integers(1, 16)), draw(st.integers(100, 9000))
    elif kind == "many_rows":
        group = draw(st.integers(1, 2))
        sq, sk = draw(st.integers(200, 700)), draw(st.integers(1, 1500))
    else:
        sq, sk = draw(st.integers(33, 130)), draw(st.integers(100, 1200))
    d = draw(st.sampled_from([8, 31, 32, 64, 80, 96, 128, 129, 160]))
    pr = draw(problems())
    layouts = []
    for _ in range(3):
        steps = [1, 1, 1, 1]
        steps[draw(st.integers(0, 3))] = draw(st.integers(1, 2))
        layouts.append(
            (
                draw(st.permutations(range(4))),
                steps,
                draw(st.lists(st.booleans(), min_size=4, max_size=4)),
            )
        )
    pr.update(
        rank=4,
        b=draw(st.integers(1, 2)),
        hkv=hkv,
        hq=hkv * group,
        sq=sq,
        sk=sk,
        d=d,
        dv=draw(st.one_of(st.just(d), st.integers(1, 140))),
        layouts=layouts,
    )
    return pr


@pytest.mark.parametrize("path", PATHS, ids=[f"{p}-{i}" for p, i in PATHS])
@settings(
    max_examples=max(1, EXAMPLES // 10), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(pr=large_problems())
def test_random_large_problems(path, pr):
    check_problem(path, pr, threads=True)


def check_problem(path, pr, threads=False):
    """The checks of one drawn problem: the oracle's error rule, the same bits on contiguous copies (and, with
    `threads`, on one thread as on two)."""
    rng = np.random.default_rng(pr["seed"])
    dtype = BF16 if pr["dtype"] == "bfloat16" else np.dtype(pr["dtype"])
    q, k, v = (
        strided(rng, logical_shape(pr, w), dtype, *lay) for w, lay in zip("qkv", pr["layouts"])
    )
    kw = dict(causal=pr["causal"], scale=pr["scale"], layout=pr["layout"], window=pr["window"])
    b = pr["b"] if pr["rank"] == 4 else 1
    if "mask" in pr["extras"]:
        kw["mask"] = rng.random((pr["sq"], pr["sk"])) > 0.25
    if "bias" in pr["extras"]:
        kw["bias"] = rng.standard_normal((pr["hq"], 1, pr["sk"])).astype(np.float32)
    if "alibi" in pr["extras"]:
        kw["alibi_slopes"] = rng.random(pr["hq"])
    if "softcap" in pr["extras"]:
        kw["softcap"] = float(rng.uniform(0.5, 5))
    if "lengths" in pr["extras"]:
        kw["q_lengths"] = rng.integers(0, pr["sq"] + 1, b)
        kw["kv_lengths"] = rng.integers(0, pr["sk"] + 1, b)
    two = {"num_threads": 2} if threads else {}
    out, lse = run(q, k, v, path, return_lse=True, **two, **kw)
    contiguous = run(*(np.ascontiguousarray(x) for x in (q, k, v)), path, return_lse=True, **kw)
    assert np.array_equal(out, contiguous[0]) and np.array_equal(lse, contiguous[1])
    if threads:
        one = run(q, k, v, path, return_lse=True, num_threads=1, **kw)
        assert np.array_equal(out, one[0]) and np.array_equal(lse, one[1])
    ref, ref_lse = oracle(q, k, v, return_lse=True, **kw)
    if pr["sk"] > 0 and np.isfinite(np.asarray(ref, dtype=np.float64)).all():
        naive, naive_lse = reference.naive_attention(q, k, v, return_lse=True, **kw)
        assert_close(out, ref, naive, dtype, magnitude(q, k, v, **kw), floor_roundings=16)
        assert_lse_close(
            lse, ref_lse, dtype, naive_lse, score_bound=dot_rounding_bound(q, k, pr, dtype)
        )
    elif pr["sk"] == 0:
        assert (out.astype(np.float64) == 0).all()
        assert_lse_close(lse, ref_lse, dtype)
