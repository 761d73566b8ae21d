"""One bf16 D128 attention call of tileattn or torch SDPA (flash), for ncu (bench/gpu_run.sh profiles it).

python bench/experiments/gpu_profile.py tileattn|torch [B H S D] [--causal]
"""

from __future__ import annotations

import sys

import torch

import tileattn

which = sys.argv[1]
b, h, s, d = (int(x) for x in (sys.argv[2:6] if len(sys.argv) >= 6 else (8, 16, 4096, 128)))
causal = "--causal" in sys.argv
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
out = torch.empty_like(q)
for _ in range(3):
    if which == "tileattn":
        tileattn.attention(q, k, v, causal=causal, out=out)
    else:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
torch.cuda.synchronize()
