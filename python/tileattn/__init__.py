"""tileattn: exact softmax attention for NumPy, computed in tiles by a C++ core.

>>> import numpy as np, tileattn
>>> q = k = v = np.random.default_rng(0).standard_normal((1, 8, 128, 64), dtype=np.float32)
>>> out = tileattn.attention(q, k, v, causal=True)           # (1, 8, 128, 64)
>>> out, lse = tileattn.attention(q, k, v, return_lse=True)  # lse: (1, 8, 128)

``tileattn.reference`` holds the NumPy oracle with the same signature.
"""

from . import cuda, reference
from ._analysis import attention_received, attention_weights, merge_attention
from ._api import LAYOUTS, attention, attention_varlen, get_num_threads, set_num_threads
from ._config import check_environment as _check_environment
from ._config import show_config
from ._core import __version__
from ._locations import get_cmake_dir, get_include, get_library, get_library_dir, get_pkgconfig_dir

_check_environment()

__all__ = [
    "LAYOUTS",
    "__version__",
    "attention",
    "attention_received",
    "attention_varlen",
    "attention_weights",
    "cuda",
    "get_cmake_dir",
    "get_include",
    "get_library",
    "get_library_dir",
    "get_num_threads",
    "get_pkgconfig_dir",
    "merge_attention",
    "reference",
    "set_num_threads",
    "show_config",
]
