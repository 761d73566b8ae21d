// Entry points of the kernels, one namespace per compiled instruction-set level. The dispatcher in
// attention.cpp is the only caller.
#pragma once

#include "tileattn/tileattn.hpp"

namespace tileattn::kernels {

namespace baseline {
void tiled_attention(const Params& p, int threads);
TileInfo tiled_tile_info(const Params& p, int threads);
}  // namespace baseline

// The plain scalar path: one query row at a time over its full row of scores.
void reference_attention(const Params& p, int threads);

}  // namespace tileattn::kernels
