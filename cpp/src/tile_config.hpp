// Block sizes of the tiled kernels, in one place.
//
// A work item is (batch, kv head, block of query positions) and holds the query rows of every query head
// that shares the kv head (GQA), so each packed K/V tile serves all of them. Per item a thread keeps, in
// its scratch: the packed query rows and their float accumulators (kItemBytes), one packed K/V tile
// (kKvTileBytes, or kKvTileBytesManyRows) and a tile of scores. The KV tile size fixes where the online
// softmax rescales, so it depends only on the head dims, the dtype, the instruction set and the query rows
// per kv head (the shape); never on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tileattn::detail {

// Packed K^T + V of one KV tile (in L2; its K^T or V half in L1), or twice that for kv heads of at least
// kManyRows query rows: a register block's fixed work per tile (row bookkeeping, maxima, rescales) is then
// spread over twice the keys. Measured (one thread, A/B in pinned pairs, 5-6 rounds; bench/RESULTS.md):
// S2048 D64 +3.0 %, causal +3.7 %, S1024 D128 +4.2 %, GQA 512 rows x 4096 keys D128 +4.0 %; 256-384 rows
// +1-3 %; 128 rows -2 % to +1 %; 64 rows of a kv head against 8192 keys -7 % (the keys stream from memory
// and a larger tile's prefetches come in larger bursts), 16 rows -5 %: hence only for many rows. Never
// depends on the thread count.
constexpr int64_t kKvTileBytes = 64 * 1024;
constexpr int64_t kKvTileBytesManyRows = 128 * 1024;
constexpr int64_t kManyRows = 256;
constexpr int64_t kL1TileBytes = 32 * 1024;  // a larger tile: register blocks in groups (see TiledForward)
// Packed Q rows + output accumulators of one work item. Every item packs each K/V tile it visits, so the
// packing is paid once per item: 512 KiB items (512 rows at D 64 + Dv 64 in float32, 256 at 128 + 128)
// pack half as often as 256 KiB ones, +2-5 % on one thread at S2048 D64 / S4096 D128 (about +1 % on two;
// 1 MiB measured the same as 512 KiB; bench/RESULTS.md, nineteenth session). Never changes a result.
constexpr int64_t kItemBytes = 512 * 1024;
// The matrix unit's path (AMX) splits K and V once per call into panels, not per item, so larger items save
// it nothing: it keeps the budget it was measured with.
constexpr int64_t kAmxItemRowBytes = 256 * 1024;
constexpr int64_t kChunkBytes = 512 * 1024;  // KV tiles packed at once by an item with a row-wise bias
constexpr int64_t kChunkMinKeys = 128;       // ... where a KV tile holds at least this many keys
constexpr int64_t kMaxBlockK = 256;          // keys per KV tile, at most (also the longest P V sum chain)
constexpr int64_t kDotBlock = 32;            // q . k sums run in blocks of this many terms (accuracy)
constexpr int64_t kPvChain = 64;             // p . v sums run in chains of this many keys (accuracy)
constexpr int64_t kMinBlockQ = 32;           // query positions per item, at least (when there are that many)
constexpr int64_t kVInPlaceRows = 64;         // items of at most this many rows read unaligned V in place
constexpr int64_t kQInPlaceTiles = 4;         // strided query rows are read in place for at most this many KV tiles
constexpr int64_t kItemsPerThread = 8;       // aim for this many items per thread, for load balance
constexpr int64_t kClaimAheadItems = 32;     // per thread, at least, for a thread to claim its next item early

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

struct TileShape {
  int64_t block_q;  // query positions per work item (per query head)
  int64_t block_k;  // keys per KV tile, a multiple of key_quantum
};

// key_quantum: keys computed by one register block; elem_bytes: size of the accumulation type;
// item_bytes: the budget of an item's rows (kItemBytes, or kAmxItemRowBytes on the matrix unit's path).
inline TileShape choose_tiles(int64_t batch, int64_t heads_kv, int64_t group, int64_t seq_q, int64_t head_dim,
                              int64_t head_dim_v_padded, int64_t elem_bytes, int64_t key_quantum, int threads,
                              int64_t item_bytes = kItemBytes) {
  const int64_t row_bytes = (head_dim + head_dim_v_padded) * elem_bytes;
  TileShape t{};
  const int64_t max_k = std::max(key_quantum, kMaxBlockK / key_quantum * key_quantum);
  const int64_t tile_bytes = group * seq_q >= kManyRows ? kKvTileBytesManyRows : kKvTileBytes;
  t.block_k = std::clamp(tile_bytes / row_bytes / key_quantum * key_quantum, key_quantum, max_k);
  t.block_q = std::clamp(item_bytes / row_bytes / group, int64_t{1}, std::max<int64_t>(seq_q, 1));
  // Smaller items when there are too few for the threads; block_q never changes any result.
  const int64_t heads = std::max<int64_t>(batch * heads_kv, 1);
  while (t.block_q > kMinBlockQ && heads * ceil_div(seq_q, t.block_q) < kItemsPerThread * threads) {
    t.block_q = std::max(kMinBlockQ, t.block_q / 2);
  }
  return t;
}

// Decoding: when a kv head has at most kDecodeRows query rows (group * seq_q), packing K^T cannot pay off;
// q . k runs as dot products on the K rows as stored, and the keys are split into chunks computed in
// parallel and merged through their log-sum-exp. The split depends only on the shape (never on the thread
// count): chunks of at least kDecodeChunkKeys keys, at most kDecodeMaxChunks over all kv heads.
constexpr int64_t kDecodeRows = 8;
// Up to kSplitRows rows per kv head, the tiled path too holds all of them in one item and splits the keys in
// the same chunks (choose_decode_split).
constexpr int64_t kSplitRows = 16;
constexpr int64_t kDecodeChunkKeys = 2048;
constexpr int64_t kDecodeMaxChunks = 256;
constexpr int64_t kDecodeBlockK = 64;  // keys per tile when decoding
constexpr int64_t kPrefetchKeys = 32;   // decoding streams K rows from memory: prefetch this many keys ahead
constexpr int64_t kDecodePvChain = 16;  // decoding sums p * v in chains of this many keys (accuracy)
constexpr int64_t kPrefetchTiles = 2;   // a row's mask and bias are prefetched this many KV tiles ahead

struct DecodeSplit {
  int64_t chunks;      // per (batch, kv head)
  int64_t chunk_keys;  // a multiple of the KV tile
};

inline DecodeSplit choose_decode_split(int64_t batch, int64_t heads_kv, int64_t seq_k, int64_t block_k) {
  const int64_t heads = std::max<int64_t>(batch * heads_kv, 1);
  const int64_t most = std::max<int64_t>(1, kDecodeMaxChunks / heads);
  const int64_t chunks = std::clamp<int64_t>(seq_k / kDecodeChunkKeys, 1, most);
  const int64_t keys = round_up(ceil_div(std::max<int64_t>(seq_k, 1), chunks), block_k);
  return {ceil_div(std::max<int64_t>(seq_k, 1), keys), keys};
}

}  // namespace tileattn::detail
