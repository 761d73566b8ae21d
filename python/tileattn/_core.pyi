"""Type stubs of the compiled core (private; use the tileattn package's functions)."""

from typing import Any

import numpy as np

__version__: str

def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    lse: np.ndarray | None,
    dtype: int,
    scale: float,
    causal: bool,
    num_threads: int,
    path: int,
    isa: int,
) -> None: ...
def attention_simple(
    q: Any,
    k: Any,
    v: Any,
    causal: Any,
    scale: Any,
    layout: Any,
    out: Any,
    num_threads: Any,
) -> np.ndarray | None: ...
def tile_info(
    dtype: int,
    batch: int,
    heads_q: int,
    heads_kv: int,
    seq_q: int,
    seq_k: int,
    head_dim: int,
    head_dim_v: int,
    num_threads: int,
    isa: int,
) -> tuple[int, int]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def available_cpus() -> int: ...
def build_info() -> dict[str, Any]: ...
def cpu_info() -> dict[str, Any]: ...
