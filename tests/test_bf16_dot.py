"""bfloat16 inputs' Q K^T as bfloat16 pairs (AVX512_BF16's vdpbf16ps) at the AVX-512 level: K^T and the
query rows packed as pairs, in place or staged (odd head dims, strided or misaligned rows), against the
oracle with the same error rule as every path, and against the float32-conversion path that
TILEATTN_BF16_DOT=0 selects. Skipped where the CPU lacks AVX512_BF16 (the emulated-CPU test covers the
dispatch that keeps such CPUs off it)."""

from __future__ import annotations

import numpy as np
import pytest

import tileattn
from tileattn import _core
from tileattn._config import _bfloat16_qk

from conftest import BF16, check_against_oracle, qkv, run, runnable_isas

pytestmark = [
    pytest.mark.skipif(
        BF16 is None, reason="ml_dtypes is not installed (pip install ml_dtypes) for bfloat16"
    ),
    pytest.mark.skipif(
        "avx512" not in runnable_isas() or "avx512_bf16" not in _core.cpu_info()["features"],
        reason="this CPU has no AVX512_BF16 (or the AVX-512 kernels are not runnable)",
    ),
]

AVX512 = ("tiled", "avx512")


@pytest.fixture(params=["pairs", "float32"])
def qk_mode(request, monkeypatch):
    """Both ways of multiplying bfloat16 Q K^T at the AVX-512 level."""
    monkeypatch.setenv("TILEATTN_BF16_DOT", "1" if request.param == "pairs" else "0")
    return request.param


@pytest.mark.parametrize("d", [1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 100, 128, 256])
def test_head_dims(rng, qk_mode, d):
    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=77, sk=203, d=d, dv=24, dtype="bfloat16")
    check_against_oracle(q, k, v, AVX512, causal=True)


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("scale", [None, -0.3, 2.5])
def test_layouts_and_scale_signs(rng, qk_mode, layout, scale):
    """A negative scale flips the sign bits of the query pairs (both halves, not the padding)."""
    q, k, v = qkv(rng, b=1, hq=6, hkv=3, sq=130, sk=257, d=33, layout=layout, dtype="bfloat16")
    check_against_oracle(q, k, v, AVX512, scale=scale, layout=layout)


def _strided_keys(rng, kind: str, d: int = 48):
    """K whose rows the packing cannot read in place as 32-bit pairs (or reads with a negative stride)."""
    q, k, v = qkv(rng, b=1, hq=4, hkv=2, sq=70, sk=150, d=d, dtype="bfloat16")
    if kind == "every_other_key":
        big = np.repeat(k, 2, axis=2)
        big[:, :, 1::2] = np.nan  # never read
        k = big[:, :, ::2]
    elif kind == "dim_stride":
        k = np.ascontiguousarray(np.swapaxes(k, -1, -2)).swapaxes(-1, -2)
    elif kind == "odd_row_stride":
        wide = np.zeros((*k.shape[:-1], d + 1), k.dtype)
        wide[..., :d] = k
        k = wide[..., :d]
    elif kind == "misaligned":
        wide = np.zeros((*k.shape[:-1], d + 2), k.dtype)
        wide[..., 1 : d + 1] = k
        k = wide[..., 1 : d + 1]  # rows start 2 bytes past a 4-byte boundary
    elif kind == "reversed":
        k = k[:, :, ::-1]  # in place, a negative row stride
    return q, k, v


@pytest.mark.parametrize(
    "kind", ["every_other_key", "dim_stride", "odd_row_stride", "misaligned", "reversed"]
)
def test_keys_not_in_place(rng, qk_mode, kind):
    q, k, v = _strided_keys(rng, kind)
    before = k.copy()
    out = check_against_oracle(q, k, v, AVX512, causal=True)[0]
    assert np.array_equal(k.view(np.uint16), before.view(np.uint16))  # inputs never modified
    contiguous = run(q, np.ascontiguousarray(k), v, AVX512, causal=True)
    assert np.array_equal(
        out.view(np.uint16), contiguous.view(np.uint16)
    )  # the staging changes no bit


@pytest.mark.parametrize(
    "options",
    [
        {"softcap": 5.0},
        {"alibi_slopes": np.array([0.5, 0.25, 0.125, 0.0625])},
        {"window": (40, 3)},
        {"causal": "top_left"},
        {"mask": "random"},
        {"bias": "random"},
    ],
    ids=["softcap", "alibi", "window", "top_left", "mask", "bias"],
)
def test_options(rng, qk_mode, options):
    """The options' epilogue reads the pairs' sums as it reads the float sums (fused and second pass)."""
    q, k, v = qkv(rng, b=1, hq=4, hkv=2, sq=150, sk=300, d=64, dtype="bfloat16")
    kw = dict(options)
    if kw.get("mask") == "random":
        kw["mask"] = rng.random((150, 300)) > 0.2
    if kw.get("bias") == "random":
        kw["bias"] = rng.standard_normal((4, 150, 300)).astype(np.float32)
    check_against_oracle(q, k, v, AVX512, **kw)


def test_pairs_are_used_and_thread_invariant(rng, monkeypatch):
    """The switch changes the summation order (so the two modes differ in some bit: the pairs path ran),
    and the pairs path gives the same bits for any thread count."""
    q, k, v = qkv(rng, b=1, hq=4, sq=256, sk=512, d=64, dtype="bfloat16")
    monkeypatch.setenv("TILEATTN_BF16_DOT", "1")
    pairs = [run(q, k, v, AVX512, num_threads=t, return_lse=True) for t in (1, 2, 3)]
    monkeypatch.setenv("TILEATTN_BF16_DOT", "0")
    floats = run(q, k, v, AVX512, return_lse=True)
    for out, lse in pairs[1:]:
        assert np.array_equal(out.view(np.uint16), pairs[0][0].view(np.uint16))
        assert np.array_equal(lse, pairs[0][1])
    assert not np.array_equal(pairs[0][1], floats[1])


@pytest.mark.parametrize("sk", [16, 48, 80, 336])
def test_pairs_in_tiles_of_whole_vectors(rng, monkeypatch, sk):
    """Key tiles of whole vectors but not whole chunks take the full blocks' softmax on the pairs too,
    with the narrow chunk's row maxima (test_correctness.py::test_tiles_of_whole_vectors for the rest)."""
    monkeypatch.setenv("TILEATTN_BF16_DOT", "1")
    q, k, v = qkv(rng, b=2, hq=2, sq=40, sk=sk, d=64, dtype="bfloat16")
    check_against_oracle(q, k, v, AVX512)
    check_against_oracle(q, k, v, AVX512, causal=True)


def test_show_config_reports_it(monkeypatch):
    if _core.cpu_info()["selected_isa"] not in ("avx512", "amx"):
        pytest.skip("TILEATTN_ISA selects a level below AVX-512 in this process")
    monkeypatch.setenv("TILEATTN_BF16_DOT", "1")
    mode = tileattn.show_config(as_dict=True)["kernel"]["bfloat16_qk"]
    assert "AVX512_BF16" in mode
    monkeypatch.setenv("TILEATTN_BF16_DOT", "0")
    mode = tileattn.show_config(as_dict=True)["kernel"]["bfloat16_qk"]
    assert "AVX512_BF16" not in mode and mode.endswith("float32")


@pytest.mark.parametrize(
    "isa, pairs, expected",
    [
        ("amx", 1, "AMX tiles; vector path: bfloat16 pairs (AVX512_BF16)"),
        ("amx", 0, "AMX tiles; vector path: float32"),
        ("avx512", 1, "bfloat16 pairs (AVX512_BF16)"),
        ("avx512", 0, "float32"),
        ("avx2", 1, "float32"),
        ("baseline", 0, "float32"),
    ],
)
def test_show_config_wording_per_level(isa, pairs, expected):
    """Each level's wording, whatever this machine selects (the AMX one was first seen on a host with AMX,
    where the test above had expected the AVX-512 wording)."""
    assert _bfloat16_qk({"selected_isa": isa, "bf16_pairs": pairs}) == expected


def test_default_is_pairs_only_where_faster(rng, monkeypatch):
    """Unset, TILEATTN_BF16_DOT leaves the pairs on where vdpbf16ps outruns two FMAs (AMD) and off on
    Intel cores (where it runs at about half the FMAs' multiply-add rate): the default gives the bits of
    that forced mode, and show_config says which."""
    q, k, v = qkv(rng, b=1, hq=4, sq=256, sk=512, d=64, dtype="bfloat16")
    forced = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("TILEATTN_BF16_DOT", mode)
        forced[mode] = run(q, k, v, AVX512, return_lse=True)
    monkeypatch.delenv("TILEATTN_BF16_DOT")
    default = run(q, k, v, AVX512, return_lse=True)
    pairs = _core.cpu_info()["vendor"] != "GenuineIntel"
    expected = forced["1" if pairs else "0"]
    assert np.array_equal(default[0].view(np.uint16), expected[0].view(np.uint16))
    assert np.array_equal(default[1], expected[1])
    assert not np.array_equal(forced["1"][1], forced["0"][1])  # the two modes are told apart
    assert _core.cpu_info()["bf16_pairs"] is pairs
