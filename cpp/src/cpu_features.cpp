#include "cpu_features.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TILEATTN_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tileattn::detail {
namespace {

#if TILEATTN_X86
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if TILEATTN_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;

  __get_cpuid(1, &a, &b, &c, &d);
  f.sse2 = (d >> 26) & 1;
  f.fma = (c >> 12) & 1;
  const bool osxsave = (c >> 27) & 1;
  f.avx = (c >> 28) & 1;
  f.f16c = (c >> 29) & 1;
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;        // xmm and ymm state
    f.os_avx512 = (xcr0 & 0xe6) == 0xe6;   // plus opmask and both zmm halves
    f.os_amx = (xcr0 & 0x60000) == 0x60000;  // tile configuration and tile data
  }
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = (b >> 5) & 1;
    f.avx512f = (b >> 16) & 1;
    f.avx512dq = (b >> 17) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512_fp16 = (d >> 23) & 1;
    f.amx_bf16 = (d >> 22) & 1;
    f.amx_tile = (d >> 24) & 1;
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    f.avx512_bf16 = (a >> 5) & 1;
  }
  unsigned ext = 0;
  __get_cpuid(0x80000000u, &ext, &b, &c, &d);
  if (ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002u + leaf, &a, &b, &c, &d);
      std::memcpy(brand + 16 * leaf, &a, 4);
      std::memcpy(brand + 16 * leaf + 4, &b, 4);
      std::memcpy(brand + 16 * leaf + 8, &c, 4);
      std::memcpy(brand + 16 * leaf + 12, &d, 4);
    }
    f.brand = brand;
    const auto first = f.brand.find_first_not_of(' ');
    f.brand = first == std::string::npos ? std::string() : f.brand.substr(first);
  }
#endif
  return f;
}

struct IsaChoice {
  Isa best;
  Isa selected;
  std::string env_problem;
};

IsaChoice choose() {
  IsaChoice choice{Isa::kBaseline, Isa::kBaseline, {}};
  for (Isa isa : {Isa::kAmx, Isa::kAvx512, Isa::kAvx2}) {
    if (isa_runnable(isa)) {
      choice.best = isa;
      break;
    }
  }
  choice.selected = choice.best;
  if (const char* env = std::getenv("TILEATTN_ISA"); env != nullptr && *env != '\0') {
    Isa wanted = Isa::kAuto;
    if (std::strcmp(env, "baseline") == 0) wanted = Isa::kBaseline;
    else if (std::strcmp(env, "avx2") == 0) wanted = Isa::kAvx2;
    else if (std::strcmp(env, "avx512") == 0) wanted = Isa::kAvx512;
    else if (std::strcmp(env, "amx") == 0) wanted = Isa::kAmx;
    if (wanted == Isa::kAuto) {
      choice.env_problem = std::string("TILEATTN_ISA=") + env + " not understood (use amx, avx512, avx2 or baseline)";
    } else if (static_cast<int>(wanted) < static_cast<int>(choice.best)) {
      choice.selected = wanted;  // only ever lowered: a level above the CPU's would crash
    }
  }
  return choice;
}

const IsaChoice& isa_choice() {
  static const IsaChoice choice = choose();
  return choice;
}

}  // namespace

// Linux gives a process the (8 KiB) tile data state only on request, once per process: ask on first use.
bool amx_granted() {
  static const bool granted = [] {
#if defined(__linux__) && defined(__x86_64__)
    const CpuFeatures& f = cpu_features();
    if (!(f.amx_tile && f.os_amx)) return false;
    constexpr long kReqXcompPerm = 0x1023;  // ARCH_REQ_XCOMP_PERM
    constexpr long kXtileData = 18;         // XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#else
    return false;
#endif
  }();
  return granted;
}

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> all[] = {
      {sse2, "sse2"},           {avx && os_avx, "avx"},
      {avx2 && os_avx, "avx2"}, {fma && os_avx, "fma"},
      {f16c, "f16c"},           {avx512f && os_avx512, "avx512f"},
      {avx512bw && os_avx512, "avx512bw"}, {avx512dq && os_avx512, "avx512dq"},
      {avx512vl && os_avx512, "avx512vl"}, {avx512_bf16 && os_avx512, "avx512_bf16"},
      {avx512_fp16 && os_avx512, "avx512_fp16"}, {amx_tile, "amx_tile"},
      {amx_bf16, "amx_bf16"}, {amx_granted(), "amx_granted"}};
  for (const auto& [present, name] : all) {
    if (present) out.emplace_back(name);
  }
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

bool isa_runnable(Isa isa) {
  const CpuFeatures& f = cpu_features();
  (void)f;  // unused when only the baseline is compiled
  switch (isa) {
    case Isa::kBaseline:
      return true;
    case Isa::kAvx2:
#ifdef TILEATTN_HAVE_AVX2
      return f.avx2 && f.fma && f.f16c && f.os_avx;
#else
      return false;
#endif
    case Isa::kAvx512:
#ifdef TILEATTN_HAVE_AVX512
      return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.os_avx512 && f.f16c && f.fma;
#else
      return false;
#endif
    case Isa::kAmx:
#ifdef TILEATTN_HAVE_AMX
      return isa_runnable(Isa::kAvx512) && f.avx512_bf16 && f.amx_tile && f.amx_bf16 && f.os_amx && amx_granted();
#else
      return false;
#endif
    case Isa::kAuto:
      return true;
  }
  return false;
}

Isa best_supported_isa() { return isa_choice().best; }
Isa selected_isa() { return isa_choice().selected; }
const std::string& isa_env_problem() { return isa_choice().env_problem; }

bool bf16_dot_faster() { return cpu_features().vendor != "GenuineIntel"; }

bool bf16_dot_enabled() {
  static const bool cpu = isa_runnable(Isa::kAvx512) && cpu_features().avx512_bf16;
  if (!cpu) return false;
  const char* env = std::getenv("TILEATTN_BF16_DOT");
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  if (env != nullptr && std::strcmp(env, "1") == 0) return true;
  return bf16_dot_faster();
}

}  // namespace tileattn::detail
