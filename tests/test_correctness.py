"""tileattn.attention against the float64 oracle: head dims, sequence lengths around the tile sizes,
MHA/GQA/MQA, both layouts and every rank, causal on and off, every dtype and every kernel path."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_DTYPES, check_against_oracle, qkv, run, tile_info

HEAD_DIMS = [1, 3, 8, 31, 59, 64, 111, 128, 256]
SEQ_PAIRS = [(1, 1), (1, 239), (113, 203), (203, 113), (1023, 1024), (1024, 1023)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", HEAD_DIMS)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_head_dims(rng, path, dtype, d, causal):
    q, k, v = qkv(rng, b=1, hq=4, hkv=2, sq=37, sk=70, d=d, dtype=dtype)
    check_against_oracle(q, k, v, path, causal=causal)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("sq", "sk"), SEQ_PAIRS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seq_lengths(rng, path, dtype, sq, sk, causal):
    q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=sq, sk=sk, d=64, dtype=dtype)
    check_against_oracle(q, k, v, path, causal=causal)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_seq_lengths_low_precision(rng, path, dtype, causal):
    for sq, sk in [(1, 239), (203, 113), (1023, 1024)]:
        q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=sq, sk=sk, d=32, dtype=dtype)
        check_against_oracle(q, k, v, path, causal=causal)


@pytest.mark.parametrize("d", [8, 64, 128])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tile_boundaries(rng, path, dtype, d):
    """Sequence lengths one below, at and one above the KV tile and the query block of the kernel. The
    tile is twice as large for kv heads of 256 query rows or more (kManyRows): key lengths around either,
    with query rows of that regime."""
    few = tile_info(dtype, 1, 2, 2, 200, 4096, d, d, isa=path[1])[1]
    many = tile_info(dtype, 1, 2, 2, 600, 4096, d, d, isa=path[1])[1]
    assert many >= few
    assert tile_info(dtype, 1, 2, 2, 255, 4096, d, d, isa=path[1])[1] == few
    assert tile_info(dtype, 1, 4, 1, 64, 4096, d, d, isa=path[1])[1] == many  # 4 heads x 64 rows
    for block_k, rows in ((few, (7, 200)), (many, (600,))):
        for n in sorted({block_k - 1, block_k, block_k + 1, 2 * block_k + 1}):
            for causal in (False, True):
                for sq in rows:
                    q, k, v = qkv(rng, b=1, hq=2, sq=sq, sk=n, d=d, dtype=dtype)
                    check_against_oracle(q, k, v, path, causal=causal)
                q, k, v = qkv(rng, b=1, hq=2, sq=n, sk=n, d=d, dtype=dtype)  # the causal diagonal
                check_against_oracle(q, k, v, path, causal=causal)
    block_q, _ = tile_info(dtype, 1, 1, 1, 4096, 64, d, d, isa=path[1], threads=1)
    for n in sorted({block_q - 1, block_q, block_q + 1}):
        q, k, v = qkv(rng, b=1, hq=1, sq=n, sk=64, d=d, dtype=dtype)
        check_against_oracle(q, k, v, path, causal=True, num_threads=1)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_tiles_of_whole_vectors(rng, path, dtype):
    """Key tiles of whole vectors but not whole chunks of the register block (16, 32, 48, 80 keys...: a
    tile's last chunk of fewer vectors) take the full blocks' softmax, with the row maxima from Q K^T:
    against the oracle, alone and as the last tile of a longer sequence, and with an option (whose
    blocks take the other softmax)."""
    _, block_k = tile_info(dtype, 1, 2, 2, 40, 4096, 64, 64, isa=path[1])
    # Vectors of 16 (AVX-512 float) down to 4 keys (AVX2 double) in chunks of 2 to 4; one-chunk tiles
    # (16, 32, 48 at AVX-512) see no key at all if the narrow chunk's maxima were left out.
    for sk in (4, 8, 12, 16, 24, 32, 40, 48, 80, 96, 112, block_k + 48):
        for sq in (20, 40):  # above the decoding path's 8 rows
            q, k, v = qkv(rng, b=2, hq=2, sq=sq, sk=sk, d=64, dtype=dtype)
            check_against_oracle(q, k, v, path)
            # Causal only where most rows see keys (the error rule's floor counts the exact zeros).
            if sk >= sq:
                check_against_oracle(q, k, v, path, causal=True)
    q, k, v = qkv(rng, b=1, hq=3, sq=33, sk=48, d=32, dtype=dtype)
    check_against_oracle(q, k, v, path, softcap=5.0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_few_rows_split_keys(rng, path, dtype):
    """9 to 16 query rows per kv head (speculative decoding, MQA, a short prompt) take the tiled path with
    their keys split in chunks of at least 2048 keys, as decoding splits them, merged through their
    log-sum-exp: against the oracle (with chunks a causal row does not reach, and a partial last tile),
    and the same bits for any thread count."""
    for b, hq, hkv, sq, sk, d, causal in [
        (1, 12, 1, 1, 4500, 64, True),
        (1, 4, 1, 4, 6200, 40, False),
        (2, 2, 2, 9, 4097, 16, True),
        (1, 16, 4, 4, 8300, 128, False),
        (1, 1, 1, 16, 5000, 33, True),
    ]:
        q, k, v = qkv(rng, b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d, dtype=dtype)
        out, lse = check_against_oracle(q, k, v, path, causal=causal, num_threads=1)
        for threads in (2, 3):
            out_t, lse_t = run(q, k, v, path, causal=causal, return_lse=True, num_threads=threads)
            assert np.array_equal(out_t, out) and np.array_equal(lse_t, lse), (hq, hkv, sq, threads)


def test_few_rows_of_very_long_head_dims(rng, path):
    """16 rows of a kv head whose rows exceed the item budget (D + Dv 4112 in float64: 15 rows per item by
    size) still go in one item, with their keys split: the merge reads all of a kv head's rows there."""
    q, k, v = qkv(rng, b=1, hq=1, sq=16, sk=4100, d=2056, dtype="float64")
    for causal in (False, True):
        check_against_oracle(q, k, v, path, causal=causal)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_decode_rows_and_key_counts(rng, path, dtype):
    """The decode path (at most 8 query rows per kv head: dot products on K rows, kDotKeys keys at a time,
    P V of the rows that see the same keys together; 9-16 rows take the tiled path, keys split as below):
    every count of rows per kv head from 1 to 16, key
    counts that leave 1-3 keys past a group of 4 and a partial last tile, head dims below, at and off the
    vector width, Dv != D, causal with sq > 1 (rows that see different keys go apart), strided K and V."""
    for hq, hkv, sq in [
        (1, 1, 1),
        (2, 1, 1),
        (3, 1, 1),
        (8, 2, 1),
        (5, 1, 1),
        (6, 1, 1),
        (7, 1, 1),
        (4, 1, 2),
        (3, 1, 3),
        (16, 1, 1),
        (4, 2, 4),
        (12, 3, 1),
        (1, 1, 16),
    ]:
        for sk, d, dv in [(1, 8, 8), (5, 3, 17), (70, 64, 64), (131, 128, 96), (2049 + 2, 33, 16)]:
            for causal in (False, True):
                q, k, v = qkv(rng, b=2, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d, dv=dv, dtype=dtype)
                check_against_oracle(q, k, v, path, causal=causal)
    q, k, v = qkv(rng, b=1, hq=8, hkv=2, sq=1, sk=2 * 131, d=64, dtype=dtype)
    k, v = k[:, :, ::2, :], v[:, :, 1::2, :]  # every other key row
    check_against_oracle(q, k, v, path)
    k_cols = np.swapaxes(np.swapaxes(k, 2, 3).copy(), 2, 3)  # K's columns strided
    check_against_oracle(q, k_cols, v, path)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    ("hq", "hkv"),
    [(6, 6), (6, 3), (6, 2), (6, 1), (1, 1)],
    ids=["mha", "gqa2", "gqa3", "mqa", "single"],
)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_head_groups(rng, path, dtype, hq, hkv, causal):
    q, k, v = qkv(rng, b=2, hq=hq, hkv=hkv, sq=45, sk=77, d=16, dtype=dtype)
    check_against_oracle(q, k, v, path, causal=causal)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rank", [2, 3, 4])
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_layouts_and_ranks(rng, path, dtype, layout, rank, causal):
    hq, hkv = (4, 2) if rank > 2 else (1, 1)
    q, k, v = qkv(
        rng,
        b=3 if rank == 4 else 1,
        hq=hq,
        hkv=hkv,
        sq=29,
        sk=41,
        d=24,
        dv=40,
        dtype=dtype,
        layout=layout,
        rank=rank,
    )
    out, lse = check_against_oracle(q, k, v, path, causal=causal, layout=layout)
    expected = {
        4: (3, 29, 4, 40) if layout == "bshd" else (3, 4, 29, 40),
        3: (29, 4, 40) if layout == "bshd" else (4, 29, 40),
        2: (29, 40),
    }[rank]
    assert out.shape == expected
    assert lse.shape == {4: (3, 4, 29), 3: (4, 29), 2: (29,)}[rank]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize(("sq", "sk", "d"), [(33, 50, 16), (40, 600, 64)])
def test_layouts_agree(rng, dtype, sq, sk, d):
    """bshd input gives the transpose of the bhsd result, bit for bit (its query rows, strided, are read
    in place for keys of a few KV tiles and packed for more: the same values either way)."""
    from conftest import run

    q, k, v = qkv(rng, b=2, hq=4, hkv=2, sq=sq, sk=sk, d=d, dtype=dtype)
    a, lse_a = run(q, k, v, causal=True, return_lse=True)
    t = (0, 2, 1, 3)
    b_, lse_b = run(
        q.transpose(t).copy(),
        k.transpose(t).copy(),
        v.transpose(t).copy(),
        causal=True,
        layout="bshd",
        return_lse=True,
    )
    assert np.array_equal(a.transpose(t), b_)
    assert np.array_equal(lse_a, lse_b)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_value_dim_differs(rng, path, dtype):
    for d, dv in [(64, 16), (16, 64), (3, 129), (129, 3), (256, 8)]:
        q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=20, sk=150, d=d, dv=dv, dtype=dtype)
        check_against_oracle(q, k, v, path, causal=True)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_value_dims_in_passes(rng, path, dtype):
    """P V covers a row's output vectors in passes of at most four, as even as they go (5 as 3 + 2, 10 as
    4 + 3 + 3): every count of vectors from 1 to 12 at vectors of 16 and of 8 lanes, with whole register
    blocks, a causal diagonal and a last vector cut short."""
    for dv in (8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 120, 136, 152, 168, 184, 190):
        q, k, v = qkv(rng, b=1, hq=2, hkv=1, sq=40, sk=150, d=16, dv=dv, dtype=dtype)
        check_against_oracle(q, k, v, path, causal=True)


@pytest.mark.parametrize("scale", [0.0, -0.7, 1e-3, 3.0])
def test_scales(rng, path, scale):
    q, k, v = qkv(rng, b=1, hq=2, sq=30, sk=60, d=32, dtype="float64")
    check_against_oracle(q, k, v, path, scale=scale, causal=True)
    q, k, v = qkv(rng, b=1, hq=2, sq=30, sk=60, d=32, dtype="float32")
    check_against_oracle(q, k, v, path, scale=scale)


def test_default_scale_is_inverse_sqrt_d(rng):
    from conftest import run

    q, k, v = qkv(rng, sq=10, sk=12, d=37, dtype="float64")
    assert np.array_equal(run(q, k, v), run(q, k, v, scale=1.0 / np.sqrt(37.0)))


def test_large_scores(rng, path):
    """Scores of order 1e3: the online softmax must rescale exactly, no overflow."""
    q, k, v = qkv(rng, b=1, hq=2, sq=50, sk=300, d=16, dtype="float32")
    check_against_oracle(q * 40, k * 40, v, path, causal=True)
    q, k, v = qkv(rng, b=1, hq=2, sq=50, sk=300, d=16, dtype="float64")
    check_against_oracle(q * 40, k * 40, v, path)


def test_increasing_scores_rescale(path):
    """Each new KV tile raises the row max: every tile triggers a rescale."""
    sk = 700
    k = np.linspace(0, 30, sk)[None, None, :, None] * np.ones((1, 1, 1, 4))
    q = np.ones((1, 1, 3, 4))
    v = np.random.default_rng(1).standard_normal((1, 1, sk, 5))
    for dt in (np.float32, np.float64):
        check_against_oracle(q.astype(dt), k.astype(dt), v.astype(dt), path, scale=1.0)
