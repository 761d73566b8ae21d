// IEEE binary16 ("float16") and bfloat16 storage types and their exact conversions to and from float,
// rounding to nearest even. NaN stays NaN (quieted), infinities stay infinities.
#pragma once

#include <cstdint>
#include <cstring>

namespace tileattn::detail {

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float to_float(Half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  const uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (man << 13));  // inf or NaN
  if (exp == 0) {                                                         // zero or subnormal: man * 2^-24
    const float mag = static_cast<float>(man) * 5.9604644775390625e-08f;
    return sign ? -mag : mag;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));  // rebias 15 -> 127
}

inline Half to_half(float f) {
  const uint32_t x = float_bits(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return {static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu))};  // NaN
  if (a >= 0x477ff000u) return {static_cast<uint16_t>(sign | 0x7c00u)};  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                                                // normal half: |f| >= 2^-14
    uint32_t r = a - 0x38000000u;                                        // rebias 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);                                      // round 13 bits, ties to even
    return {static_cast<uint16_t>(sign | (r >> 13))};
  }
  if (a <= 0x33000000u) return {sign};  // |f| <= 2^-25 rounds to zero (2^-25 is a tie, even is 0)
  // Subnormal half: the result is round_even(|f| * 2^24), |f| = m * 2^(e - 150).
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // e in [102, 112] -> shift in [14, 24]
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return {static_cast<uint16_t>(sign | q)};
}

inline float to_float(BFloat16 h) { return bits_float(static_cast<uint32_t>(h.bits) << 16); }

inline BFloat16 to_bfloat16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((x >> 16) | 0x0040u)};  // quiet NaN
  const uint32_t rounded = x + 0x7fffu + ((x >> 16) & 1u);  // ties to even; overflow reaches inf
  return {static_cast<uint16_t>(rounded >> 16)};
}

// Converts a storage element to the accumulation type A (float or double), and back.
template <class A>
inline A load_as(float x) {
  return static_cast<A>(x);
}
template <class A>
inline A load_as(double x) {
  return static_cast<A>(x);
}
template <class A>
inline A load_as(Half x) {
  return static_cast<A>(to_float(x));
}
template <class A>
inline A load_as(BFloat16 x) {
  return static_cast<A>(to_float(x));
}

template <class T>
struct StoreAs;
template <>
struct StoreAs<float> {
  static float from(float x) { return x; }
};
template <>
struct StoreAs<double> {
  static double from(double x) { return x; }
};
template <>
struct StoreAs<Half> {
  static Half from(float x) { return to_half(x); }
};
template <>
struct StoreAs<BFloat16> {
  static BFloat16 from(float x) { return to_bfloat16(x); }
};

// Unaligned-safe element access: arrays handed in from NumPy may sit at any byte address.
// Pointers into caller arrays are therefore kept as void pointers and read through memcpy, which
// compilers turn into plain (unaligned) loads.
template <class T>
inline T load_elem(const void* base, int64_t index) {
  T x;
  std::memcpy(&x, static_cast<const char*>(base) + index * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return x;
}
template <class T>
inline void store_elem(void* base, int64_t index, T x) {
  std::memcpy(static_cast<char*>(base) + index * static_cast<int64_t>(sizeof(T)), &x, sizeof(T));
}

}  // namespace tileattn::detail
