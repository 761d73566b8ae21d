// Asks the caches, a few lines at a time, for rows of the caller's arrays that a later step of a thread
// will touch: the next KV tile of a work item, and the query, key/value and output rows of the thread's
// next work item. A small item (a 128-token sequence) otherwise starts with a burst of cache misses that
// nothing overlaps: at B32 H12 S128 D32 one thread spends a fifth of its time waiting for q, K, V and the
// output lines (bench/RESULTS.md). Spread over the current step's register blocks, the same lines arrive
// while the FMA units are busy.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tileattn::detail {

class RowPrefetcher {
 public:
  static constexpr int kMaxStreams = 8;  // more rows than that (wide GQA groups) are left to the hardware
  static constexpr int64_t kLine = 64;

  void clear() { count_ = stream_ = 0, row_ = 0, lines_ = 0, per_step_ = 0, cur_ = end_ = 0; }

  // `rows` rows of `row_bytes` bytes each, `stride` bytes apart, from `start`; `write`: the rows will be
  // written (asked for in a writable state). Rows that follow each other without a gap are one run.
  void add(const void* start, int64_t rows, int64_t stride, int64_t row_bytes, bool write) {
    if (start == nullptr || rows <= 0 || row_bytes <= 0 || count_ == kMaxStreams) return;
    if (stride == row_bytes) row_bytes *= rows, rows = 1;
    const auto a = reinterpret_cast<uintptr_t>(start);
    const int64_t lines_per_row = static_cast<int64_t>(((a + row_bytes - 1) | (kLine - 1)) - (a & ~uintptr_t{kLine - 1}) + 1) / kLine;
    streams_[count_++] = {a, rows, stride, row_bytes, write};
    lines_ += rows * lines_per_row;  // exact for the first row, within one line per row for the others
    if (count_ == 1) start_row();
  }

  // How many lines each step() asks for: all of them over `steps` calls.
  void spread_over(int64_t steps) { per_step_ = (lines_ + std::max<int64_t>(steps, 1) - 1) / std::max<int64_t>(steps, 1); }

  // Always inlined: out of line, GCC may find a function of prefetches free of effects and delete its calls.
  __attribute__((always_inline)) void step() {
    for (int64_t n = per_step_; n > 0 && stream_ < count_; --n) {
      const Stream& s = streams_[stream_];
      if (s.write) {
        __builtin_prefetch(reinterpret_cast<const void*>(cur_), 1, 2);
      } else {
        __builtin_prefetch(reinterpret_cast<const void*>(cur_), 0, 2);
      }
      cur_ += kLine;
      if (cur_ > end_) {
        if (++row_ == s.rows) row_ = 0, ++stream_;
        start_row();
      }
    }
  }

 private:
  struct Stream {
    uintptr_t start;
    int64_t rows, stride, row_bytes;
    bool write;
  };

  void start_row() {
    if (stream_ >= count_) return;
    const Stream& s = streams_[stream_];
    const uintptr_t a = s.start + static_cast<uintptr_t>(row_ * s.stride);
    cur_ = a & ~uintptr_t{kLine - 1};
    end_ = a + static_cast<uintptr_t>(s.row_bytes) - 1;
  }

  Stream streams_[kMaxStreams];
  int count_ = 0, stream_ = 0;
  int64_t row_ = 0, lines_ = 0, per_step_ = 0;
  uintptr_t cur_ = 0, end_ = 0;  // the next line to ask for, the last byte of the current row
};

}  // namespace tileattn::detail
