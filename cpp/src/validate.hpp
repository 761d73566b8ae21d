// The checks of a params struct, shared by the CPU entry point and the CUDA launch code.
#pragma once

#include "tileattn/tileattn.hpp"

namespace tileattn::detail {

// Throws std::invalid_argument naming the field (std::bad_alloc for impossible sizes). Reads the
// lengths, offsets and ALiBi slopes, which must therefore be host memory; never reads q, k, v, mask, bias.
void validate(const Params& p);

}  // namespace tileattn::detail
