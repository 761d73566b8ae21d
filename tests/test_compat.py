"""tileattn.compat against the real libraries when installed (torch installs offline, JAX from PyPI) and
against the oracle always; the documented disagreements are checked too."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from tileattn import compat, reference


def arrays(rng, *shapes, dtype=np.float32):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed (pip install torch)")


def _jax():
    pytest.importorskip("jax", reason="jax is not installed (pip install jax)")
    import jax

    return jax


@contextlib.contextmanager
def jax_exact(jax):
    """JAX on its CPU backend at full float32 precision: where a GPU is present JAX would run there, with
    TF32 products by default (relative errors near 1e-3, seen on an H100 host), which is not the function
    the wrappers are compared on."""
    with jax.default_device(jax.devices("cpu")[0]), jax.default_matmul_precision("highest"):
        yield


# --- torch.nn.functional.scaled_dot_product_attention -------------------------------------------------

SDPA_CASES = {
    "plain": dict(),
    "causal": dict(is_causal=True),
    "bool_mask": dict(attn_mask="bool"),
    "float_mask": dict(attn_mask="float"),
    "mask_and_causal": dict(attn_mask="bool", is_causal=True),
    "scale": dict(scale=0.37),
    "fully_masked_row": dict(attn_mask="empty_row"),
}


def sdpa_kwargs(name, rng, sq, sk):
    kw = dict(SDPA_CASES[name])
    if kw.get("attn_mask") == "bool":
        kw["attn_mask"] = rng.random((sq, sk)) > 0.3
    elif kw.get("attn_mask") == "float":
        kw["attn_mask"] = rng.standard_normal((sq, sk)).astype(np.float32)
    elif kw.get("attn_mask") == "empty_row":
        m = np.ones((sq, sk), bool)
        m[1] = False
        kw["attn_mask"] = m
    return kw


@pytest.mark.parametrize("name", list(SDPA_CASES))
@pytest.mark.parametrize(("sq", "sk"), [(9, 9), (5, 12), (12, 5)])
def test_sdpa_against_torch(rng, name, sq, sk):
    torch = _torch()
    q, k, v = arrays(rng, (2, 4, sq, 16), (2, 2, sk, 16), (2, 2, sk, 16))
    kw = sdpa_kwargs(name, rng, sq, sk)
    ours = compat.scaled_dot_product_attention(q, k, v, enable_gqa=True, **kw)
    tkw = {
        key: torch.from_numpy(val) if isinstance(val, np.ndarray) else val
        for key, val in kw.items()
    }
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), enable_gqa=True, **tkw
    ).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa_against_oracle(rng, name):
    q, k, v = arrays(rng, (2, 4, 7, 8), (2, 4, 10, 8), (2, 4, 10, 8), dtype=np.float64)
    kw = sdpa_kwargs(name, rng, 7, 10)
    ours = compat.scaled_dot_product_attention(q, k, v, **kw)
    mask = kw.get("attn_mask")
    ref = reference.attention(
        q,
        k,
        v,
        causal="top_left" if kw.get("is_causal") else False,
        scale=kw.get("scale"),
        mask=mask if mask is not None and mask.dtype == bool else None,
        bias=mask if mask is not None and mask.dtype != bool else None,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)


def test_sdpa_shapes(rng):
    q, k, v = arrays(rng, (2, 3, 4, 5, 8), (2, 3, 4, 7, 8), (2, 3, 4, 7, 6))
    assert compat.scaled_dot_product_attention(q, k, v).shape == (
        2,
        3,
        4,
        5,
        6,
    )  # extra leading dims
    assert compat.scaled_dot_product_attention(q[0, 0], k[0, 0], v[0, 0]).shape == (4, 5, 6)
    assert compat.scaled_dot_product_attention(q[0, 0, 0], k[0, 0, 0], v[0, 0, 0]).shape == (5, 6)


def test_sdpa_errors(rng):
    q, k, v = arrays(rng, (1, 4, 5, 8), (1, 2, 7, 8), (1, 2, 7, 8))
    with pytest.raises(ValueError, match="enable_gqa=True"):
        compat.scaled_dot_product_attention(q, k, v)
    with pytest.raises(NotImplementedError, match="dropout_p"):
        compat.scaled_dot_product_attention(q, k, v, dropout_p=0.1, enable_gqa=True)
    q, k, v = arrays(rng, (2, 2, 5, 8), (2, 2, 7, 8), (2, 2, 7, 8))
    with pytest.raises(TypeError, match="attn_mask must be a boolean or float array"):
        compat.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((5, 7), np.int32))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 6\) does not broadcast"):
        compat.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((5, 6), bool))
    with pytest.raises(ValueError, match="leading dims of query, key and value must broadcast"):
        compat.scaled_dot_product_attention(q, k[:1].repeat(3, 0), v[:1].repeat(3, 0))


def test_wrapper_errors_name_the_wrappers_arguments(rng):
    q = np.zeros((1, 3, 2, 4), np.float32)
    with pytest.raises(TypeError, match=r"^softmax_scale must be"):
        compat.flash_attn_func(q, q, q, softmax_scale="x")
    with pytest.raises(ValueError, match=r"^window_size must be a pair"):
        compat.flash_attn_func(q, q, q, window_size=(1, 2, 3))
    with pytest.raises(TypeError, match=r"^query_seq_lengths must be an integer array"):
        compat.dot_product_attention(q, q, q, query_seq_lengths=np.array([1.5]))
    with pytest.raises(TypeError, match=r"^local_window_size \(left\) must be an int"):
        compat.dot_product_attention(q, q, q, local_window_size=(1.5, 1))  # negative ints are JAX's
    with pytest.raises(TypeError, match=r"^query"):
        compat.scaled_dot_product_attention(q.astype(np.int32), q, q)


def test_sdpa_broadcasts_batch_dims(rng):
    """Leading dims of key and value broadcast against the query's, as in torch (key/value shared by
    a batch)."""
    q, k, v = arrays(rng, (3, 2, 4, 5, 8), (1, 2, 4, 7, 8), (3, 1, 4, 7, 8), dtype=np.float64)
    out = compat.scaled_dot_product_attention(q, k, v, is_causal=True)
    kb, vb = np.broadcast_to(k, (3, 2, 4, 7, 8)), np.broadcast_to(v, (3, 2, 4, 7, 8))
    np.testing.assert_array_equal(
        out, compat.scaled_dot_product_attention(q, kb.copy(), vb.copy(), is_causal=True)
    )
    assert out.shape == (3, 2, 4, 5, 8)
    try:
        import torch
    except ImportError:
        return
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(x) for x in (q, k, v)), is_causal=True
    ).numpy()
    np.testing.assert_allclose(out, theirs, rtol=1e-12, atol=1e-13)


# --- flash_attn_func / flash_attn_varlen_func (flash-attn needs a GPU: checked against the oracle) ------


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(causal=True),
        dict(window_size=(3, 1)),
        dict(causal=True, window_size=(4, -1)),
        dict(softcap=1.5),
        dict(alibi_slopes="alibi"),
        dict(softmax_scale=0.2),
    ],
    ids=["plain", "causal", "window", "causal_window", "softcap", "alibi", "scale"],
)
def test_flash_attn_func(rng, kw):
    kw = dict(kw)
    if kw.get("alibi_slopes") == "alibi":
        kw["alibi_slopes"] = rng.random(4)
    q, k, v = arrays(rng, (2, 7, 4, 8), (2, 11, 2, 8), (2, 11, 2, 8), dtype=np.float64)
    out, lse, probs = compat.flash_attn_func(q, k, v, return_attn_probs=True, **kw)
    opts = dict(
        causal=kw.get("causal", False),
        scale=kw.get("softmax_scale"),
        window=kw.get("window_size"),
        softcap=kw.get("softcap"),
        alibi_slopes=kw.get("alibi_slopes"),
    )
    ref, ref_lse = reference.attention(q, k, v, layout="bshd", return_lse=True, **opts)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12)
    assert lse.shape == (2, 4, 7) and probs.shape == (2, 4, 7, 11)
    np.testing.assert_allclose(
        probs, reference.attention_weights(q, k, layout="bshd", **opts), rtol=1e-12, atol=1e-14
    )
    assert np.array_equal(compat.flash_attn_func(q, k, v, **kw), out)


def test_flash_attn_varlen_func(rng):
    cq, ck = np.array([0, 3, 10], np.int32), np.array([0, 8, 9], np.int32)
    q, k, v = arrays(rng, (10, 4, 8), (9, 2, 8), (9, 2, 8), dtype=np.float64)
    out, lse, probs = compat.flash_attn_varlen_func(
        q, k, v, cq, ck, 7, 8, causal=True, return_attn_probs=True
    )
    ref, ref_lse = reference.attention_varlen(q, k, v, cq, ck, causal=True, return_lse=True)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12)
    assert [p.shape for p in probs] == [(4, 3, 8), (4, 7, 1)]
    with pytest.raises(ValueError, match="max_seqlen_q = 6 is below the longest sequence"):
        compat.flash_attn_varlen_func(q, k, v, cq, ck, 6, 8)
    with pytest.raises(NotImplementedError, match="block_table"):
        compat.flash_attn_varlen_func(q, k, v, cq, ck, 7, 8, block_table=np.zeros((2, 1), np.int32))
    with pytest.raises(NotImplementedError, match="dropout_p"):
        compat.flash_attn_func(q[None], k[None], v[None], dropout_p=0.5)


def test_flash_attn_fully_masked_rows(rng):
    """flash-attn reports LSE +inf for rows with no key; tileattn reports -inf (log of an empty sum)."""
    q, k, v = arrays(rng, (1, 6, 2, 8), (1, 3, 2, 8), (1, 3, 2, 8))
    out, lse, _ = compat.flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
    assert (out[:, :3] == 0).all() and np.isneginf(lse[:, :, :3]).all()


# --- jax.nn.dot_product_attention ---------------------------------------------------------------------

JAX_CASES = {
    "plain": {},
    "causal": dict(is_causal=True),
    "window": dict(local_window_size=(2, 1)),
    "symmetric_window": dict(local_window_size=2),
    "causal_window": dict(local_window_size=(3, 0), is_causal=True),
    "lengths": dict(query_seq_lengths=np.array([3, 5]), key_value_seq_lengths=np.array([4, 9])),
    "bias_mask": "bias_mask",
    "scale": dict(scale=0.3),
}


def jax_kwargs(name, rng):
    kw = JAX_CASES[name]
    if kw == "bias_mask":
        return dict(
            bias=rng.standard_normal((4, 5, 9)).astype(np.float32),
            mask=rng.random((2, 1, 5, 9)) > 0.2,
        )
    return dict(kw)


@pytest.mark.parametrize("name", list(JAX_CASES))
def test_dot_product_attention_against_jax(rng, name):
    jax = _jax()
    q, k, v = arrays(rng, (2, 5, 4, 8), (2, 9, 2, 8), (2, 9, 2, 8))
    kw = jax_kwargs(name, rng)
    ours, res = compat.dot_product_attention(q, k, v, return_residual=True, **kw)
    with jax_exact(jax):
        theirs, their_res = jax.nn.dot_product_attention(q, k, v, return_residual=True, **kw)
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=2e-5, atol=2e-6)
    finite = np.isfinite(res)
    np.testing.assert_allclose(res[finite], np.asarray(their_res)[finite], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", list(JAX_CASES))
def test_dot_product_attention_against_oracle(rng, name):
    q, k, v = arrays(rng, (2, 5, 4, 8), (2, 9, 2, 8), (2, 9, 2, 8), dtype=np.float64)
    kw = jax_kwargs(name, rng)
    ours = compat.dot_product_attention(q, k, v, **kw)
    w = kw.get("local_window_size")
    window = None if w is None else (w, w) if np.ndim(w) == 0 else w
    ref = reference.attention_in(
        np.float64,
        q,
        k,
        v,
        layout="bshd",
        causal=kw.get("is_causal", False),
        scale=kw.get("scale"),
        window=window,
        mask=kw.get("mask"),
        bias=kw.get("bias"),
        q_lengths=kw.get("query_seq_lengths"),
        kv_lengths=kw.get("key_value_seq_lengths"),
        align="top_left",
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)


def test_jax_fully_masked_row_disagreement(rng):
    """JAX masks with a large finite negative, so a row whose keys are all masked gets the mean of the
    values; tileattn (and torch) give 0."""
    jax = _jax()
    q, k, v = arrays(rng, (1, 4, 1, 8), (1, 6, 1, 8), (1, 6, 1, 8))
    mask = np.ones((1, 1, 4, 6), bool)
    mask[..., 2, :] = False
    ours = compat.dot_product_attention(q, k, v, mask=mask)
    with jax_exact(jax):
        theirs = np.asarray(jax.nn.dot_product_attention(q, k, v, mask=mask))
    assert (ours[0, 2] == 0).all()
    np.testing.assert_allclose(theirs[0, 2, 0], v[0, :, 0].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        np.delete(ours, 2, axis=1), np.delete(theirs, 2, axis=1), rtol=2e-5, atol=2e-6
    )
