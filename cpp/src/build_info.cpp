// What was built: reported by show_config().
#include <string>

#include "tileattn/tileattn.hpp"

#ifndef TILEATTN_VERSION
#define TILEATTN_VERSION "0.0.0"
#endif
#ifndef TILEATTN_BUILD_TYPE
#define TILEATTN_BUILD_TYPE "unknown"
#endif
#ifndef TILEATTN_CXX_FLAGS
#define TILEATTN_CXX_FLAGS ""
#endif

namespace tileattn {

const char* version() { return TILEATTN_VERSION; }

BuildInfo build_info() {
  BuildInfo info;
  info.version = TILEATTN_VERSION;
#if defined(__clang__)
  info.compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info.compiler = std::string("gcc ") + __VERSION__;
#else
  info.compiler = "unknown";
#endif
  info.build_type = TILEATTN_BUILD_TYPE;
  info.cxx_flags = TILEATTN_CXX_FLAGS;
#ifdef TILEATTN_NATIVE
  info.native_build = true;
#else
  info.native_build = false;
#endif
  info.compiled_isas.emplace_back("baseline");
#ifdef TILEATTN_HAVE_AVX2
  info.compiled_isas.emplace_back("avx2");
#endif
#ifdef TILEATTN_HAVE_AVX512
  info.compiled_isas.emplace_back("avx512");
#endif
#ifdef TILEATTN_HAVE_AMX
  info.compiled_isas.emplace_back("amx");
#endif
  return info;
}

}  // namespace tileattn
