// The checks of a params struct, shared by the CPU entry point and the CUDA launch code.
#pragma once

#include <utility>

#include "tileattn/tileattn.hpp"

namespace tileattn::detail {

// Throws std::invalid_argument naming the field (std::bad_alloc for impossible sizes). Reads the
// lengths, offsets and ALiBi slopes, which must therefore be host memory; never reads q, k, v, mask, bias.
void validate(const Params& p);

// The first (output, input) pair of array names where out or lse shares a byte with an array the call
// reads (by their byte ranges: conservative), or {nullptr, nullptr}. device_arrays: only q, k, v, mask and
// bias count (a call on device memory, whose lengths, offsets and slopes are host memory). Call after
// validate.
std::pair<const char*, const char*> overlapping_output(const Params& p, bool device_arrays);

}  // namespace tileattn::detail
