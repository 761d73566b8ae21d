// Everything the kernel units use from outside their instruction-set namespace, included *before* a
// unit opens its `#pragma GCC target` region. Functions defined in these headers are therefore compiled
// for the baseline target in every unit, so the linker's choice among their identical inline copies can
// never hand AVX-512 code to a caller on an older CPU; only code defined inside a region (the unit's own
// namespace) uses the wider instructions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "fp_env.hpp"
#include "half.hpp"
#include "kernels.hpp"
#include "masking.hpp"
#include "scratch.hpp"
#include "static_switch.hpp"
#include "thread_pool.hpp"
#include "tile_config.hpp"
#include "tileattn/tileattn.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
