"""The CUDA build: compiled with nvcc when present, and on a GPU the same semantics as the CPU path.

The GPU tests use the oracle and the error rule of the CPU tests (conftest.assert_close) and skip when no
GPU can be used (tileattn.cuda.is_available()); tests on GPU arrays also need PyTorch with CUDA. The
build test compiles cuda/ for one architecture whenever nvcc is installed, GPU or not.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import tileattn
from tileattn import reference

from conftest import (
    ROOT,
    assert_close,
    assert_lse_close,
    cmake_configure,
    dtype_of,
    magnitude,
    oracle,
)

GPU = tileattn.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason=f"no usable GPU: {tileattn.cuda.info()['error']}")


def torch_cuda():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    return torch


# ---- Without a GPU: reporting and errors


def test_config_reports_cuda():
    cfg = tileattn.show_config(as_dict=True)
    info = tileattn.cuda.info()
    assert cfg["cuda"]["built"] == info["built"] == cfg["build"]["cuda"]
    assert cfg["cuda"]["available"] == tileattn.cuda.is_available()
    if not info["built"]:
        assert "built without CUDA" in info["error"]
        assert info["device_count"] == 0
    else:
        assert info["runtime_version"] >= 11000
        assert info["architectures"]


def test_device_argument_errors():
    x = np.zeros((1, 1, 4, 8), np.float32)
    with pytest.raises(ValueError, match="device must be"):
        tileattn.attention(x, x, x, device="gpu")
    with pytest.raises(ValueError, match="stream= applies to GPU arrays only"):
        tileattn.attention(x, x, x, stream=0)
    np.testing.assert_array_equal(
        tileattn.attention(x, x, x, device="cpu"), tileattn.attention(x, x, x)
    )


@pytest.mark.skipif(GPU, reason="checks the error raised when no GPU can be used")
def test_cuda_without_gpu_is_a_clear_error():
    x = np.zeros((1, 1, 4, 8), np.float32)
    with pytest.raises(RuntimeError, match="device='cuda' needs a usable GPU"):
        tileattn.attention(x, x, x, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda' needs a usable GPU"):
        tileattn.attention_varlen(
            x[0, 0], x[0, 0], x[0, 0], np.array([0, 4]), np.array([0, 4]), device="cuda"
        )


class FakeGpuArray:
    """Looks like a GPU array to the protocol checks; its pointer is never dereferenced on the CPU."""

    def __init__(self, shape, typestr="<f4"):
        self.shape = shape
        self.typestr = typestr

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.typestr, "data": (0, False), "version": 3}


def test_gpu_arrays_mixed_with_numpy_are_refused():
    x = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="q is a GPU array but k is not"):
        tileattn.attention(FakeGpuArray((2, 2)), x, x)
    with pytest.raises(ValueError, match="device='cpu'"):
        tileattn.attention(FakeGpuArray((2, 2)), x, x, device="cpu")


@pytest.mark.skipif(GPU, reason="checks the error raised when no GPU can be used")
def test_gpu_arrays_without_gpu():
    g = FakeGpuArray((2, 2))
    with pytest.raises(RuntimeError, match="needs a usable GPU"):
        tileattn.attention(g, g, g)


def test_gpu_array_views():
    """The descriptor arithmetic of GPU arrays: layouts, new axes and broadcasting as element strides."""
    g = tileattn.cuda.as_gpu_array(FakeGpuArray((2, 3, 5, 4)), "q")
    assert g.dtype == "float32"
    assert g.strides == (60, 20, 4, 1)
    t = g.transpose(0, 2, 1, 3)
    assert t.shape == (2, 5, 3, 4) and t.strides == (60, 4, 20, 1)
    assert g[None, None].shape == (1, 1, 2, 3, 5, 4)
    m = tileattn.cuda.as_gpu_array(FakeGpuArray((5, 7), "|b1"), "mask")
    assert m.dtype == "bool"
    b = m.broadcast_to((2, 3, 5, 7), "mask")
    assert b.strides == (0, 0, 7, 1)
    with pytest.raises(ValueError, match="does not broadcast"):
        m.broadcast_to((2, 3, 4, 7), "mask")


# ---- The CUDA build compiles and links (nvcc present, GPU or not)


@pytest.mark.slow
def test_cuda_build_compiles(tmp_path):
    if not (ROOT / "cuda" / "attention_cuda.cu").exists():
        pytest.skip("the CUDA sources are not next to the tests")
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed: the CUDA build cannot be checked here")
    build = tmp_path / "build"
    env = {**os.environ, "CUDACXX": nvcc}
    cmake = cmake_configure(
        build,
        "-DTILEATTN_CUDA=ON",
        "-DCMAKE_CUDA_ARCHITECTURES=80",
        "-DTILEATTN_BUILD_TESTS=ON",
        env=env,
    )
    result = subprocess.run(
        [cmake, "--build", str(build), "--target", "tileattn", "tileattn_core_tests", "-j2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    listing = subprocess.run(
        ["nm", "-DC", "--defined-only", str(build / "cpp" / "libtileattn.so")],
        capture_output=True,
        text=True,
    ).stdout
    assert "tileattn::attention_cuda(" in listing
    assert "tileattn::cuda::" not in listing  # kernels and launch code stay hidden


# ---- On a GPU: NumPy arrays with device="cuda"

SHAPES = [
    # B, Hq, Hkv, Sq, Sk, D, Dv
    (1, 1, 1, 1, 1, 8, 8),
    (2, 4, 2, 77, 91, 64, 64),
    (1, 6, 3, 129, 65, 59, 33),
    (2, 2, 1, 200, 333, 128, 128),
    (1, 2, 2, 64, 300, 256, 200),
    (1, 2, 2, 100, 100, 111, 111),
    (1, 3, 1, 150, 170, 96, 80),  # multiples of 8 below the bucket's 128: fast copies, zero padding
    (2, 2, 2, 300, 260, 128, 64),  # several full and partial key tiles per block
]


def inputs(rng, shape, dtype):
    b, hq, hkv, sq, sk, d, dv = shape
    dt = dtype_of(dtype)
    q = rng.standard_normal((b, hq, sq, d)).astype(dt)
    k = rng.standard_normal((b, hkv, sk, d)).astype(dt)
    v = rng.standard_normal((b, hkv, sk, dv)).astype(dt)
    return q, k, v


def check(out, lse, q, k, v, **kw):
    # The CPU tests' oracle: float64 results are judged in extended precision (with causal="top_left"
    # the naive path is the float64 oracle itself, so err(naive) = 0 leaves no room for rounding).
    ref, ref_lse = oracle(q, k, v, return_lse=True, **kw)
    naive, naive_lse = reference.naive_attention(q, k, v, return_lse=True, **kw)
    assert out.dtype == q.dtype
    assert_close(out, ref, naive, q.dtype, magnitude(q, k, v, **kw))
    if lse is not None:
        assert_lse_close(lse, ref_lse, q.dtype, naive_lse)


@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True, "top_left"])
def test_numpy_on_gpu(rng, shape, dtype, causal):
    q, k, v = inputs(rng, shape, dtype)
    out, lse = tileattn.attention(q, k, v, causal=causal, return_lse=True, device="cuda")
    check(out, lse, q, k, v, causal=causal)
    again = tileattn.attention(q, k, v, causal=causal, device="cuda")
    np.testing.assert_array_equal(out, again)  # deterministic


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(
    "options",
    [
        {"window": (16, 0)},
        {"window": (5, 7), "causal": False},
        {"softcap": 5.0},
        {"alibi_slopes": np.array([0.5, 0.25, 0.125, 0.0625])},
        {"q_lengths": np.array([3, 0]), "kv_lengths": np.array([70, 9])},
        {"mask": "random"},
        {"bias": "random"},
        {"scale": -0.3},  # the tensor-core kernel needs scale > 0: these run on CUDA cores
        {"scale": 0.0, "causal": True},
    ],
    ids=lambda o: "-".join(o),
)
def test_numpy_on_gpu_options(rng, dtype, options):
    q, k, v = inputs(rng, (2, 4, 2, 67, 70, 64, 48), dtype)
    kw = dict(options)
    if kw.get("mask") == "random":
        kw["mask"] = rng.random((2, 1, 67, 70)) < 0.7
    if kw.get("bias") == "random":
        kw["bias"] = rng.standard_normal((4, 67, 70)).astype(np.float32)
    out, lse = tileattn.attention(q, k, v, return_lse=True, device="cuda", **kw)
    check(out, lse, q, k, v, **kw)


@needs_gpu
@pytest.mark.parametrize(
    ("dtype", "value", "dim"),
    [
        ("float16", 12000.0, 64),
        ("float16", 10496.0, 64),
        ("float16", 12000.0, 128),
        ("bfloat16", 3e4, 128),
    ],
)
def test_huge_scores_on_tensor_cores(rng, dtype, value, dim):
    """Scores so large that the rounding of a row's maximum times scale log2(e) no longer cancels
    (|m'| >= 2^28): the largest key's weight would overflow (12000) or vanish (10496) in 16 bits. Every
    key has the same score here, so each row is the mean of V over its visible keys."""
    dt = dtype_of(dtype)
    q = np.full((1, 2, 40, dim), value).astype(dt)
    k = np.full((1, 2, 50, dim), value).astype(dt)
    v = rng.standard_normal((1, 2, 50, dim)).astype(dt)
    for causal in (False, True):
        out = tileattn.attention(q, k, v, causal=causal, device="cuda").astype(np.float64)
        ref = reference.attention(q, k, v, causal=causal)
        np.testing.assert_allclose(out, ref, rtol=2e-2, atol=2e-2)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_scale_below_float_range_on_gpu(rng, dtype):
    """A positive scale whose product with log2(e) is 0 in float32 (the tensor-core kernel needs it
    finite and positive; such calls run on CUDA cores): uniform weights over the visible keys."""
    q, k, v = inputs(rng, (1, 2, 2, 70, 90, 64, 64), dtype)
    out = tileattn.attention(q, k, v, causal=True, scale=1e-300, device="cuda")
    check(out, None, q, k, v, causal=True, scale=1e-300)


@needs_gpu
def test_float64_bias_saturates_on_gpu():
    """As on the CPU (test_masks.test_float64_bias_saturates_on_every_path): a float64 bias beyond
    float32's range on float32 inputs saturates at float32's largest value, so a row whose keys all
    carry -1e39 or -1e300 has uniform weights (not an empty row, not NaN)."""
    q = np.zeros((1, 1, 2, 4), np.float32)
    k = np.zeros((1, 1, 3, 4), np.float32)
    v = np.array([[1, 0], [0, 1], [5, 5]], np.float32).reshape(1, 1, 3, 2)
    bias = np.array([[-1e39, -1e300, -1e300]] * 2)
    out, lse = tileattn.attention(q, k, v, bias=bias, return_lse=True, device="cuda")
    np.testing.assert_allclose(out, reference.attention(q, k, v, bias=bias), rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], [2, 2], rtol=1e-6)
    cpu_out, cpu_lse = tileattn.attention(q, k, v, bias=bias, return_lse=True)
    np.testing.assert_allclose(out, cpu_out, rtol=1e-6)
    np.testing.assert_array_equal(lse, cpu_lse)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_varlen_on_gpu(rng, dtype):
    cu_q = np.array([0, 5, 5, 70, 71])
    cu_k = np.array([0, 9, 20, 20, 90])
    dt = dtype_of(dtype)
    q = rng.standard_normal((71, 4, 64)).astype(dt)
    k = rng.standard_normal((90, 2, 64)).astype(dt)
    v = rng.standard_normal((90, 2, 32)).astype(dt)
    out, lse = tileattn.attention_varlen(
        q, k, v, cu_q, cu_k, causal=True, return_lse=True, device="cuda"
    )
    ref, ref_lse = tileattn.attention_varlen(q, k, v, cu_q, cu_k, causal=True, return_lse=True)
    tol = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[dtype]
    np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), atol=tol, rtol=tol)
    np.testing.assert_allclose(lse, ref_lse, atol=tol, rtol=tol)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("dim", [64, 128, 256])
def test_nan_in_hidden_keys_stays_hidden(rng, dtype, dim):
    """A NaN in a key (or value) a row cannot see must not reach that row (tensor cores: 0 * NaN; the
    exact path's P rows have their own buffer at D 64 and share the K tile's at 128 and 256)."""
    q, k, v = inputs(rng, (1, 2, 2, 100, 100, dim, dim), dtype)
    k[:, :, 60] = np.nan
    v[:, :, 60] = np.nan
    out = tileattn.attention(q, k, v, causal=True, device="cuda")
    assert np.isfinite(out[:, :, :60].astype(np.float32)).all()
    assert np.isnan(out[:, :, 60:].astype(np.float32)).all()
    check(out[:, :, :60], None, q[:, :, :60], k[:, :, :60], v[:, :, :60], causal=True)


@needs_gpu
def test_strided_numpy_on_gpu(rng):
    q, k, v = inputs(rng, (2, 4, 2, 50, 60, 64, 64), "float16")
    qs = np.asfortranarray(q)[:, ::-1]
    ks = np.broadcast_to(k[:, :1], k.shape)
    out = np.zeros((2, 50, 4, 64), np.float16).transpose(0, 2, 1, 3)
    tileattn.attention(qs, ks, v, out=out, device="cuda")
    check(out, None, qs, ks, v)


# ---- On a GPU: arrays already there (PyTorch CUDA tensors)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_torch_tensors_in_place(rng, dtype, layout):
    torch = torch_cuda()
    q, k, v = inputs(rng, (2, 4, 2, 70, 90, 64, 64), "float32")
    tdt = getattr(torch, dtype)
    tq, tk, tv = (torch.from_numpy(x).to("cuda", tdt) for x in (q, k, v))
    if layout == "bshd":
        tq, tk, tv = (x.transpose(1, 2) for x in (tq, tk, tv))  # strided views, read in place
    out, lse = tileattn.attention(tq, tk, tv, causal=True, layout=layout, return_lse=True)
    assert isinstance(out, torch.Tensor) and out.is_cuda and out.dtype == tdt
    torch.cuda.current_stream().synchronize()
    host = out.float().cpu().numpy()
    if layout == "bshd":
        host = host.transpose(0, 2, 1, 3)
    qn, kn, vn = (x.float().cpu().numpy() for x in (tq, tk, tv))
    if layout == "bshd":
        qn, kn, vn = (x.transpose(0, 2, 1, 3) for x in (qn, kn, vn))
    ref = reference.attention(qn, kn, vn, causal=True)
    cap = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}[dtype]
    err = np.linalg.norm(host - ref) / np.linalg.norm(ref)
    assert err < cap
    assert lse.shape == (2, 4, 70) and lse.dtype == torch.float32


@needs_gpu
def test_torch_out_and_stream(rng):
    torch = torch_cuda()
    q, k, v = (torch.randn(1, 8, 256, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = torch.empty_like(q)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        result = tileattn.attention(q, k, v, out=out)
    s.synchronize()
    assert result is out
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert (out.float() - expected).abs().max().item() < 2e-2
    explicit = tileattn.attention(q, k, v, stream=s)
    s.synchronize()
    assert torch.equal(explicit, out)


@needs_gpu
def test_gpu_out_sharing_memory_with_an_input_is_refused():
    """GPU arrays: the blocks of a launch write out while others still read the inputs, so an out that
    shares memory with q, k, v, mask or bias is a ValueError naming both (the CPU computes aside)."""
    torch = torch_cuda()
    q, k, v = (torch.randn(1, 2, 64, 32, device="cuda") for _ in range(3))
    for name, out in (("q", q), ("k", k), ("v", v)):
        with pytest.raises(ValueError, match=f"out overlaps {name}"):
            tileattn.attention(q, k, v, out=out)
    bias = torch.randn(1, 2, 64, 64, device="cuda")
    with pytest.raises(ValueError, match="out overlaps bias"):
        tileattn.attention(q, k, v, bias=bias, out=bias[..., :32])
    before = k.clone()
    out = torch.empty_like(q)
    tileattn.attention(q, k, v, out=out)  # separate arrays: fine, and the inputs untouched
    torch.cuda.synchronize()
    assert torch.equal(k, before)


def test_gpu_path_plumbing(monkeypatch):
    """What the GPU path hands the core (without a GPU): element strides of the bhsd views of bshd
    arrays, broadcast masks as zero strides, options, the stream, and out returned as given."""
    calls = []
    monkeypatch.setattr(tileattn.cuda, "require_available", lambda: None)
    monkeypatch.setattr(tileattn._api._core, "attention", lambda *a, **kw: calls.append((a, kw)))
    q = FakeGpuArray((2, 5, 4, 8))  # bshd: B=2, S=5, H=4, D=8
    k = FakeGpuArray((2, 6, 2, 8))
    v = FakeGpuArray((2, 6, 2, 3))
    out = FakeGpuArray((2, 5, 4, 3))
    mask = FakeGpuArray((5, 6), "|b1")
    result = tileattn.attention(
        q,
        k,
        v,
        layout="bshd",
        causal=True,
        window=(2, 0),
        mask=mask,
        out=out,
        stream=7,
        alibi_slopes=np.ones(4),
        kv_lengths=np.array([6, 3]),
    )
    assert result is out
    ((args, kw),) = calls
    qd, kd, vd, od, lse = args[:5]
    assert qd[1:] == ((2, 4, 5, 8), (160, 8, 32, 1))
    assert kd[1:] == ((2, 2, 6, 8), (96, 8, 16, 1))
    assert vd[1:] == ((2, 2, 6, 3), (36, 3, 6, 1))
    assert od[1:] == ((2, 4, 5, 3), (60, 3, 12, 1))
    assert lse is None
    assert args[5:8] == (0, 1 / np.sqrt(8), True)
    assert kw["mask"][1:] == ((2, 4, 5, 6), (0, 0, 6, 1))
    assert kw["device"] == 2 and kw["stream"] == 7
    assert (kw["window_left"], kw["window_right"]) == (2, 0)
    assert kw["kv_lengths"].tolist() == [6, 3] and kw["alibi_slopes"].shape == (1, 4)
    with pytest.raises(ValueError, match="out must have shape"):
        tileattn.attention(q, k, v, layout="bshd", out=FakeGpuArray((2, 4, 5, 3)))
    with pytest.raises(TypeError, match="q, k and v must share one dtype"):
        tileattn.attention(q, FakeGpuArray((2, 6, 2, 8), "<f2"), v, layout="bshd", out=out)
    with pytest.raises(TypeError, match="pass out="):
        tileattn.attention(q, k, v, layout="bshd")  # a result like an unknown GPU array kind
    # Packed sequences: (total, H, D) arrays as (1, H, total, D) views, offsets on the host.
    calls.clear()
    qv, kv_, vv = FakeGpuArray((9, 4, 8)), FakeGpuArray((7, 2, 8)), FakeGpuArray((7, 2, 8))
    tileattn.attention_varlen(
        qv, kv_, vv, np.array([0, 4, 9]), np.array([0, 3, 7]), out=FakeGpuArray((9, 4, 8))
    )
    ((args, kw),) = calls
    assert args[0][1:] == ((1, 4, 9, 8), (0, 8, 32, 1))
    assert kw["cu_seqlens_q"].tolist() == [0, 4, 9] and kw["device"] == 2


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cupy_arrays_in_place(rng, dtype):
    """CuPy arrays (the CUDA array interface): read in place, a CuPy result on CuPy's current stream."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    q, k, v = inputs(rng, (2, 4, 2, 70, 90, 64, 40), dtype)
    cq, ck, cv = (cupy.asarray(x) for x in (q, k, v))
    mask = rng.random((70, 90)) < 0.8
    out, lse = tileattn.attention(
        cq, ck[:, :, ::-1], cv, causal=True, mask=cupy.asarray(mask), return_lse=True
    )
    assert isinstance(out, cupy.ndarray) and isinstance(lse, cupy.ndarray)
    cupy.cuda.get_current_stream().synchronize()
    check(out.get(), lse.get(), q, k[:, :, ::-1], v, causal=True, mask=mask)


@needs_gpu
def test_torch_options_on_gpu(rng):
    """Masks, biases and lengths given as torch CUDA tensors (bias in bfloat16 through DLPack)."""
    torch = torch_cuda()
    q, k, v = inputs(rng, (2, 4, 2, 33, 47, 64, 64), "float32")
    mask = rng.random((2, 1, 33, 47)) < 0.7
    bias = rng.standard_normal((4, 33, 47)).astype(np.float32)
    tq, tk, tv = (torch.from_numpy(x).cuda() for x in (q, k, v))
    out, lse = tileattn.attention(
        tq,
        tk,
        tv,
        mask=torch.from_numpy(mask).cuda(),
        bias=torch.from_numpy(bias).cuda().to(torch.bfloat16),
        kv_lengths=torch.tensor([47, 20], device="cuda"),
        return_lse=True,
    )
    torch.cuda.current_stream().synchronize()
    bias_rounded = torch.from_numpy(bias).to(torch.bfloat16).float().numpy()
    check(
        out.cpu().numpy(),
        lse.cpu().numpy(),
        q,
        k,
        v,
        mask=mask,
        bias=bias_rounded,
        kv_lengths=np.array([47, 20]),
    )
