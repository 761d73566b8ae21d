// A model of the decoding loop's memory traffic on one core (twenty-fourth session): where to issue the
// software prefetches. Not part of the build.
//
//   g++ -O2 -mavx512f -mfma decode_prefetch_model.cpp -o model && taskset -c 0 ./model
//
// 128 MiB of "K" rows and 128 MiB of "V" rows (512 bytes each, D128 float32) are read in tiles of T rows:
// the tile's K rows (dot products against 4 query rows), then its V rows (4 rows of output accumulated),
// as tileattn's decoding kernel does. Variants, best of 5 passes each, in GB/s:
//   read-1:   one stream, loads only (the bandwidth probe's loop)
//   read-2:   K and V tiles alternating, loads only
//   none:     with the arithmetic, no software prefetch
//   k-phase:  with the arithmetic; the K phase asks for K rows 32 ahead and for the next tile's V rows
//             (tileattn until this session: every request in the Q K^T phase)
//   spread:   with the arithmetic; the K phase asks for this tile's V rows, the V phase for the next
//             tile's K rows (one row's worth of requests per row of either phase)
#include <immintrin.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr long kRowFloats = 128;
constexpr long kRowBytes = kRowFloats * 4;

enum class Mode { kRead1, kRead2, kNone, kKPhase, kSpread };

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void ask_row(const float* row) {
  const char* p = reinterpret_cast<const char*>(row);
  for (long o = 0; o < kRowBytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
}

struct State {
  __m512 q[4][8], o[4][8], acc[8];
};

void pass(Mode mode, const float* k, const float* v, long rows, long tile, State& s) {
  if (mode == Mode::kRead1) {  // k and v are adjacent: one stream over both
    for (long i = 0; i < 2 * rows * kRowFloats; i += kRowFloats) {
      for (int c = 0; c < 8; ++c) s.acc[c] = _mm512_add_ps(s.acc[c], _mm512_load_ps(k + i + 16 * c));
    }
    return;
  }
  const bool arith = mode != Mode::kRead2;
  for (long j0 = 0; j0 < rows; j0 += tile) {
    for (long j = j0; j < j0 + tile; ++j) {
      if (mode == Mode::kKPhase) ask_row(k + (j + 32) * kRowFloats), ask_row(v + (j + tile) * kRowFloats);
      if (mode == Mode::kSpread) ask_row(v + j * kRowFloats);
      const float* kr = k + j * kRowFloats;
      for (int c = 0; c < 8; ++c) {
        const __m512 kv = _mm512_load_ps(kr + 16 * c);
        if (!arith) {
          s.acc[c] = _mm512_add_ps(s.acc[c], kv);
          continue;
        }
        for (int r = 0; r < 4; ++r) s.acc[c] = _mm512_fmadd_ps(kv, s.q[r][c], s.acc[c]);
      }
    }
    for (long j = j0; j < j0 + tile; ++j) {
      if (mode == Mode::kSpread) ask_row(k + (j + tile) * kRowFloats);
      const float* vr = v + j * kRowFloats;
      const __m512 p = _mm512_set1_ps(k[j]);
      for (int c = 0; c < 8; ++c) {
        const __m512 vv = _mm512_load_ps(vr + 16 * c);
        if (!arith) {
          s.acc[c] = _mm512_add_ps(s.acc[c], vv);
          continue;
        }
        for (int r = 0; r < 4; ++r) s.o[r][c] = _mm512_fmadd_ps(p, vv, s.o[r][c]);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long tile = argc > 1 ? std::atol(argv[1]) : 64;
  const long bytes = 256L << 20;
  auto* buf = static_cast<float*>(std::aligned_alloc(2L << 20, bytes));
  madvise(buf, bytes, MADV_HUGEPAGE);  // as NumPy does for large arrays
  std::memset(buf, 0, bytes);
  const long rows = bytes / 2 / kRowBytes;
  const float* k = buf;
  const float* v = buf + rows * kRowFloats;
  State s;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 8; ++c) s.q[r][c] = _mm512_set1_ps(0.001f * static_cast<float>(r * 8 + c)), s.o[r][c] = _mm512_setzero_ps();
  }
  for (auto& a : s.acc) a = _mm512_setzero_ps();
  const struct {
    Mode mode;
    const char* name;
  } variants[] = {{Mode::kRead1, "read-1"}, {Mode::kRead2, "read-2"}, {Mode::kNone, "none"},
                  {Mode::kKPhase, "k-phase"}, {Mode::kSpread, "spread"}};
  std::printf("tile %ld rows\n", tile);
  for (const auto& x : variants) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const double t0 = seconds();
      pass(x.mode, k, v, rows, tile, s);
      const double gbs = static_cast<double>(bytes) / (seconds() - t0) / 1e9;
      if (gbs > best) best = gbs;
    }
    std::printf("%-8s %5.1f GB/s\n", x.name, best);
  }
  __m512 sum = s.acc[0];
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 8; ++c) sum = _mm512_add_ps(sum, s.o[r][c]);
  }
  float out[16];
  _mm512_storeu_ps(out, sum);
  std::printf("(checksum %g)\n", static_cast<double>(out[0]));
  std::free(buf);
  return 0;
}
