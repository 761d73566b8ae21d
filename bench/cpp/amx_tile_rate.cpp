// How fast the AMX tile unit multiplies on this machine (Linux, x86-64, Sapphire Rapids or later): the
// rate of TDPBF16PS (16 x 16 float32 accumulators += 16 x 32 bfloat16 times 32 x 16 bfloat16, 8192
// multiply-adds) with the operands already in tile registers, and with tile loads (TILELOADD, 1 KiB from
// L1) between the products, in the patterns a tiled attention kernel would use. One thread.
//
//   g++ -O2 -std=c++17 bench/cpp/amx_tile_rate.cpp -o amx_tile_rate && ./amx_tile_rate
//
// Compare with the AVX-512 FMA probe (`python -m tileattn bench --compare` prints it): 16 float32
// multiply-adds per instruction, two instructions per cycle. The tile instructions are written as inline
// assembly, so no compiler flag is needed; the program exits with a message where the CPU or the kernel
// offers no AMX.
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cpuid.h>
#include <cstdint>
#include <cstdio>

#define TLOAD(t, p) __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"(int64_t{64}) : "memory")
#define TDP(c, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::: "memory")

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

alignas(64) uint16_t a_tiles[32][512];
alignas(64) uint16_t b_tiles[64][512];

template <class F>
double gmacs(F&& body, int64_t iters, int products_per_iter) {
  body(int64_t{0});  // warm up
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) body(it);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(iters) * products_per_iter * 8192.0 / s / 1e9;
}

}  // namespace

int main() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 22) & 1)) {
    std::puts("this CPU has no AMX-BF16");
    return 0;
  }
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    std::puts("the kernel does not grant AMX tile state to this process");
    return 0;
  }
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
  for (auto& t : a_tiles)
    for (auto& x : t) x = 0x3f80;  // 1.0
  for (auto& t : b_tiles)
    for (auto& x : t) x = 0x3f80;
  __asm__ volatile("tilezero %%tmm0\n tilezero %%tmm1\n tilezero %%tmm2\n tilezero %%tmm3" ::: "memory");
  TLOAD(4, a_tiles[0]);
  TLOAD(5, a_tiles[1]);
  TLOAD(6, b_tiles[0]);
  TLOAD(7, b_tiles[1]);
  const int64_t n = 1 << 20;
  const double resident = gmacs([](int64_t) { TDP(0, 4, 6); TDP(1, 4, 7); TDP(2, 5, 6); TDP(3, 5, 7); }, n, 4);
  const double one_a_four_b = gmacs(
      [](int64_t it) {
        const int k = static_cast<int>(it & 15);
        TLOAD(4, a_tiles[k]);
        TLOAD(5, b_tiles[4 * k]);
        TDP(0, 4, 5);
        TLOAD(6, b_tiles[4 * k + 1]);
        TDP(1, 4, 6);
        TLOAD(7, b_tiles[4 * k + 2]);
        TDP(2, 4, 7);
        TLOAD(5, b_tiles[4 * k + 3]);
        TDP(3, 4, 5);
      },
      n, 4);
  const double two_by_two = gmacs(
      [](int64_t it) {
        const int k = static_cast<int>(it & 15);
        TLOAD(4, a_tiles[2 * k]);
        TLOAD(5, a_tiles[2 * k + 1]);
        TLOAD(6, b_tiles[2 * k]);
        TLOAD(7, b_tiles[2 * k + 1]);
        TDP(0, 4, 6);
        TDP(1, 4, 7);
        TDP(2, 5, 6);
        TDP(3, 5, 7);
      },
      n, 4);
  __asm__ volatile("tilerelease" ::: "memory");
  std::printf("TDPBF16PS, operands in tiles:                   %6.0f G multiply-adds/s\n", resident);
  std::printf("16 rows x 64 columns (1 A + 4 B loads, 4 TDP):  %6.0f G multiply-adds/s\n", one_a_four_b);
  std::printf("32 rows x 32 columns (2 A + 2 B loads, 4 TDP):  %6.0f G multiply-adds/s\n", two_by_two);
  std::printf("float32 through six bfloat16 products: a sixth of these\n");
  return 0;
}
