// AMX (Advanced Matrix Extensions, Sapphire Rapids and later) building blocks of the tiled kernel's
// matrix-unit path, included by tiled_kernel.hpp inside the `amx` unit's namespace and target region only.
//
// float32 products on a bfloat16 matrix unit, to float32 accuracy: each float x is split into three
// bfloat16 parts, x = x0 + x1 + x2 exactly (each part rounds to nearest even what the earlier ones left:
// 8 + 8 + 8 significant bits, the float's 24), and a product q k is the sum of the six part products whose
// weight is at least 2^-16 of q0 k0 (q0 k0, q0 k1, q1 k0, q0 k2, q1 k1, q2 k0). Each part product is exact
// in float32 (8 x 8 bits); the three left out are below 2^-24 |q k| together, under float32's own
// rounding of the product. The unit sums them in float32 (TDPBF16PS), smallest weights first. Denormal
// parts and results are flushed to zero by the unit (and by the conversion): the lower parts of values
// below about 2^-110 in magnitude, far below where a score or a probability can change a result; values
// that small are kept off the unit (tiny, tiled_kernel.hpp).
//
// The tiles: palette 1, eight tiles of 16 rows x 64 bytes, used as
//   0-3  accumulators C (16 x 16 floats): rows [0, 16) / [16, 32) of a block of 32 rows, x two column blocks
//   4-5  A operands (16 rows x 32 bfloat16), rows [0, 16) and [16, 32)
//   6-7  B operands (16 pairs x 16 columns x 2 bfloat16, "VNNI" layout), column blocks 0 and 1.
#pragma once

#include <cstdint>

namespace tileattn::kernels::TILEATTN_ISA_NS::amx_detail {

constexpr int64_t kRows = 32;   // rows of a block: two A tiles
constexpr int64_t kKeys = 32;   // keys per step: two B tiles of Q K^T, one A tile of P V
constexpr int64_t kDepth = 32;  // bfloat16 of a tile row: the products summed by one tile operation
constexpr int64_t kTileElems = 16 * 32;  // bfloat16 per A or B tile

// Loads the tile configuration for this thread on construction and releases the tiles on destruction.
class TileScope {
 public:
  TileScope() {
    Config c{};
    c.palette = 1;
    for (int t = 0; t < 8; ++t) {
      c.rows[t] = 16;
      c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
  }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;

 private:
  struct Config {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
  };
};

// The three bfloat16 parts of 16 floats (x must be splittable, see unsplittable).
inline __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
inline void split3(__m512 x, __m256i* h) {
  for (int k = 0; k < 3; ++k) {
    h[k] = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
    if (k < 2) x = _mm512_sub_ps(x, widen(h[k]));  // exact: what the part left of x
  }
}

// split3 of N vectors, interleaved (independent chains).
template <int N, class Vf>
inline void split3_n(const Vf* x, __m256i (*h)[3]) {
  __m512 r[N];
  for (int i = 0; i < N; ++i) r[i] = x[i].v;
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < N; ++i) h[i][k] = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(r[i]));
    if (k < 2) {
      for (int i = 0; i < N; ++i) r[i] = _mm512_sub_ps(r[i], widen(h[i][k]));
    }
  }
}

// Lanes that split3 cannot represent: NaN, infinite, or so large (>= 2^127) that a part may round to inf.
inline __mmask16 unsplittable(__m512 x) {
  return _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(1.7014118e38f), _CMP_NLT_UQ);
}

// Lanes of x that are nonzero but below 2^-100 in magnitude (their lower parts would be flushed).
inline __mmask16 tiny(__m512 x) {
  const __m512 a = _mm512_abs_ps(x);
  return _mm512_cmp_ps_mask(a, _mm512_set1_ps(7.888609e-31f), _CMP_LT_OQ) &
         _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NEQ_OQ);
}

// Two rows of 16 bfloat16 interleaved into 16 pairs (a[i] low, b[i] high): a row of a B tile.
inline __m512i pairs(__m256i a, __m256i b) {
  return _mm512_or_si512(_mm512_cvtepu16_epi32(a), _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
}

inline void store256(uint16_t* dst, __m256i h) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), h); }

}  // namespace tileattn::kernels::TILEATTN_ISA_NS::amx_detail
