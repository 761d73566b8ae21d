# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython example: calls libtileattn's C ABI through ``cimport tileattn.capi``, without the GIL.

Build: ``python setup.py build_ext --inplace`` (see setup.py), then::

    import numpy as np, attend
    out = attend.attention(q, k, v, causal=True)   # C-contiguous float32 (B, H, S, D) arrays
"""

from libc.math cimport NAN
from libc.stdint cimport int64_t

from tileattn cimport capi


def attention(const float[:, :, :, ::1] q, const float[:, :, :, ::1] k, const float[:, :, :, ::1] v,
              bint causal=False, float[:, :, :, ::1] out=None):
    """Attention over C-contiguous float32 bhsd arrays; returns out, a (B, Hq, Sq, Dv) float32 array."""
    cdef int64_t b = q.shape[0], hq = q.shape[1], sq = q.shape[2], d = q.shape[3]
    cdef int64_t hkv = k.shape[1], sk = k.shape[2], dv = v.shape[3]
    if out is None:
        import numpy as np
        out = np.empty((b, hq, sq, dv), dtype=np.float32)
    cdef int status
    with nogil:  # the whole computation runs without the GIL, on tileattn's own threads
        status = capi.tileattn_attention_f32(&q[0, 0, 0, 0], &k[0, 0, 0, 0], &v[0, 0, 0, 0],
                                             &out[0, 0, 0, 0], NULL, b, hq, hkv, sq, sk, d, dv,
                                             NAN, 1 if causal else 0)
    if status != capi.TILEATTN_OK:
        raise ValueError(capi.tileattn_last_error().decode())
    return out.base


def abi_version():
    """The (header, library) C ABI versions: they must be equal."""
    return capi.TILEATTN_ABI_VERSION, capi.tileattn_abi_version()
