// The tile unit's rate on the step patterns of the kernel's AMX path (cpp/src/tiled_kernel.hpp, amx_step),
// one thread, in T bfloat16 multiply-adds per second (1 tile product = 16 x 16 x 32 = 8192).
//
//   g++ -O2 -std=c++17 -mamx-tile -mamx-bf16 bench/cpp/amx_step_patterns.cpp -o amx_step_patterns && ./amx_step_patterns
//
// Patterns, each on 2 x 2 accumulator tiles (tiles 0-3), A tiles 4-5, B tiles 6-7:
//   in-tiles:  products only (the operands stay in their tiles): the unit's ceiling;
//   scores:    per step 2 B loads (+2 A loads every other step) from a 96 KiB region (L2), the
//              accumulators stored and zeroed every 12 steps (a 32-key step of Q K^T at D64);
//   pv:        the P V job: A = probability parts (3 x 32 rows, row stride `lda` bytes), B = value parts from
//              a panel, the six part products per 32 keys in the kernel's order and loads, accumulators
//              loaded from and stored to O around each unit of 8 key steps (or not: pv-noacc).
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Config {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

uint16_t* alloc_bf16(long n) {
  auto* p = static_cast<uint16_t*>(aligned_alloc(4096, static_cast<size_t>(n) * 2));
  for (long i = 0; i < n; ++i) p[i] = 0x3f80;  // 1.0
  return p;
}

template <class F>
void report(const char* name, F&& body) {
  body();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  const long products = body();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%-28s %.2f T multiply-adds/s\n", name, products * 8192.0 / s / 1e12);
}

}  // namespace

int main() {
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) {
    std::printf("the OS does not grant the AMX tile state\n");
    return 1;
  }
  Config c{};
  c.palette = 1;
  for (int t = 0; t < 8; ++t) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
  uint16_t* b = alloc_bf16(96 * 512);
  uint16_t* a = alloc_bf16(32 * 1024);
  auto* s = static_cast<float*>(aligned_alloc(4096, 32 * 256 * 4));
  report("in-tiles", [&] {
    long n = 0;
    for (long i = 0; i < 2000000; ++i, n += 4) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    return n;
  });
  report("scores (L2 B, store/zero)", [&] {
    long n = 0;
    for (int rep = 0; rep < 40000; ++rep) {
      for (long t = 0; t < 96; t += 2, n += 4) {
        if ((t & 2) == 0) {
          _tile_loadd(4, a + (t % 32) * 512, 64);
          _tile_loadd(5, a + (t % 32) * 512 + 8192, 64);
        }
        _tile_loadd(6, b + t * 512, 64);
        _tile_loadd(7, b + (t + 1) * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        if (t % 24 == 22) {
          _tile_stored(0, s, 1024);
          _tile_stored(1, s + 16, 1024);
          _tile_stored(2, s + 16 * 256, 1024);
          _tile_stored(3, s + 16 * 256 + 16, 1024);
          _tile_zero(0), _tile_zero(1), _tile_zero(2), _tile_zero(3);
        }
      }
    }
    return n;
  });
  const long panel_keys = 2048, vplane = panel_keys * 64, next_cols = panel_keys * 16;
  uint16_t* v = alloc_bf16(3 * vplane);
  uint16_t* p = alloc_bf16(3 * 32 * 1024);
  auto* o = static_cast<float*>(aligned_alloc(4096, 32 * 64 * 4));
  std::memset(o, 0, 32 * 64 * 4);
  const int row_part[6] = {2, 1, 1, 0, 0, 0}, col_part[6] = {0, 0, 1, 1, 2, 0};
  const bool load_row[6] = {true, true, false, true, false, false};
  const bool load_col[6] = {true, false, true, false, true, true};
  for (int acc = 1; acc >= 0; --acc) {
    for (int lda : {512, 576}) {
      char name[64];
      std::snprintf(name, sizeof name, "%s, lda %d", acc ? "pv" : "pv-noacc", lda);
      report(name, [&] {
        long n = 0;
        for (int rep = 0; rep < 300; ++rep) {
          for (long j0 = 0; j0 < panel_keys; j0 += 256) {
            for (int col = 0; col < 4; col += 2) {
              if (acc) {
                _tile_loadd(0, o + col * 16, 256);
                _tile_loadd(2, o + 16 * 64 + col * 16, 256);
                _tile_loadd(1, o + col * 16 + 16, 256);
                _tile_loadd(3, o + 16 * 64 + col * 16 + 16, 256);
              }
              for (int kc = 0; kc < 8; ++kc) {
                for (int k = 0; k < 6; ++k, n += 4) {
                  if (load_row[k]) {
                    const uint16_t* pk = p + row_part[k] * 32 * (lda / 2) + kc * 32;
                    _tile_loadd(4, pk, lda);
                    _tile_loadd(5, pk + 16 * (lda / 2), lda);
                  }
                  const uint16_t* vk = v + col_part[k] * vplane + col * next_cols + (j0 + kc * 32) / 2 * 32;
                  if (load_col[k]) {
                    _tile_loadd(6, vk, 64);
                    _tile_loadd(7, vk + next_cols, 64);
                  }
                  _tile_dpbf16ps(0, 4, 6);
                  _tile_dpbf16ps(1, 4, 7);
                  _tile_dpbf16ps(2, 5, 6);
                  _tile_dpbf16ps(3, 5, 7);
                }
              }
              if (acc) {
                _tile_stored(0, o + col * 16, 256);
                _tile_stored(2, o + 16 * 64 + col * 16, 256);
                _tile_stored(1, o + col * 16 + 16, 256);
                _tile_stored(3, o + 16 * 64 + col * 16 + 16, 256);
              }
            }
          }
        }
        return n;
      });
    }
  }
  _tile_release();
  return 0;
}
