"""One hash of many outputs of a build, to check that a change keeps every bit (twenty-third session).

    TILEATTN_ISA=avx512 python output_hashes.py PKG_DIR

Prints the SHA-256 of the outputs and LSEs of 154 calls (float32, float64, float16 and bfloat16; GQA;
decoding; causal in both alignments, a window, a boolean mask, query and key lengths, none; 1 and 2
threads) of the tileattn package in PKG_DIR (`pip install . --no-build-isolation --no-deps --target PKG_DIR`). Two
builds give the same hash when they give the same bits; run it under each TILEATTN_ISA (and
TILEATTN_BF16_DOT=0/1) the machine can run.
"""

import hashlib
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import ml_dtypes

import tileattn

SHAPES = [  # batch, query heads, kv heads, seq_q, seq_k, head dim, dtype
    (1, 8, 8, 512, 512, 64, np.float32),
    (2, 4, 2, 70, 70, 16, np.float32),
    (1, 4, 1, 300, 333, 64, np.float64),
    (1, 3, 3, 257, 129, 128, np.float32),
    (2, 6, 2, 131, 517, 32, np.float32),
    (1, 2, 2, 1000, 1000, 80, np.float64),
    (1, 4, 4, 200, 200, 64, ml_dtypes.bfloat16),
    (1, 4, 2, 190, 250, 48, np.float16),
    # decoding (few query rows per kv head: keys split in chunks), added in the twenty-fourth session
    (1, 32, 8, 1, 9000, 128, np.float32),
    (1, 16, 2, 3, 5000, 80, np.float32),
    (2, 8, 8, 1, 3000, 64, np.float16),
]
OPTIONS = ["causal", "window", "top_left", "mask", "q_lengths", "none", "kv_lengths"]


def options(name: str, b: int, sq: int, sk: int) -> dict:
    if name == "causal":
        return {"causal": True}
    if name == "window":
        return {"causal": True, "window": (40, 0)}
    if name == "top_left":
        return {"causal": "top_left"}
    if name == "mask":
        return {"mask": np.tril(np.ones((sq, sk), bool), k=sk - sq - 3)}
    if name == "q_lengths":
        return {
            "causal": True,
            "q_lengths": np.array([max(1, sq - 5 - 11 * i) for i in range(b)], np.int64),
        }
    if name == "kv_lengths":
        return {
            "causal": True,
            "kv_lengths": np.array([max(1, sk - 7 - 13 * i) for i in range(b)], np.int64),
        }
    return {}


def main() -> None:
    rng = np.random.default_rng(1)
    digest = hashlib.sha256()
    calls = 0
    for b, hq, hkv, sq, sk, d, dtype in SHAPES:
        for name in OPTIONS:
            q = rng.standard_normal((b, hq, sq, d)).astype(dtype)
            k = rng.standard_normal((b, hkv, sk, d)).astype(dtype)
            v = rng.standard_normal((b, hkv, sk, d)).astype(dtype)
            for threads in (1, 2):
                out, lse = tileattn.attention(
                    q, k, v, num_threads=threads, return_lse=True, **options(name, b, sq, sk)
                )
                digest.update(np.ascontiguousarray(out).view(np.uint8).tobytes())
                digest.update(np.ascontiguousarray(lse).view(np.uint8).tobytes())
                calls += 1
    print(digest.hexdigest(), calls)


if __name__ == "__main__":
    main()
