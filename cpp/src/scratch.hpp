// Per-thread scratch memory: one 64-byte aligned block per thread that only grows, so a thread allocates
// at most a few times in its life and never per call or per tile. The block is freed when the thread ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <utility>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace tileattn::detail {

// std::bad_alloc saying which memory could not be had (pybind11 raises MemoryError with what(); the C API
// passes it on in tileattn_last_error).
class AllocationError : public std::bad_alloc {
 public:
  explicit AllocationError(std::string what) : what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

constexpr std::size_t kScratchAlign = 64;

// Multiplies sizes, throwing std::bad_alloc on overflow (a request that large can never be met).
inline std::size_t checked_mul(std::size_t a, std::size_t b) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) throw std::bad_alloc();
  return a * b;
}
inline std::size_t checked_add(std::size_t a, std::size_t b) {
  if (b > std::numeric_limits<std::size_t>::max() - a) throw std::bad_alloc();
  return a + b;
}
inline std::size_t round_up_bytes(std::size_t n) {
  return checked_add(n, kScratchAlign - 1) & ~(kScratchAlign - 1);
}

// The machine's physical memory in bytes (the largest size_t where it cannot be read). A block larger
// than that can never be backed: where the system overcommits (Linux's vm.overcommit_memory = 1), such an
// allocation succeeds and the process is killed when its pages are touched, so it is refused up front.
inline std::size_t physical_memory_bytes() {
  static const std::size_t bytes = [] {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const auto n = static_cast<std::size_t>(pages), size = static_cast<std::size_t>(page);
    if (pages > 0 && page > 0 && n <= std::numeric_limits<std::size_t>::max() / size) return n * size;
#endif
    return std::numeric_limits<std::size_t>::max();
  }();
  return bytes;
}

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }

  // Returns at least `bytes` bytes, 64-byte aligned. Throws std::bad_alloc (also for more than the
  // machine's physical memory).
  void* get(std::size_t bytes) {
    if (bytes > size_) {
      if (bytes > physical_memory_bytes()) {
        throw AllocationError("tileattn: the call's working memory (" + std::to_string(bytes) +
                              " bytes) exceeds this machine's memory");
      }
      const std::size_t want = round_up_bytes(bytes);
      void* fresh = std::aligned_alloc(kScratchAlign, want);
      if (fresh == nullptr) {
        throw AllocationError("tileattn: cannot allocate the call's working memory (" + std::to_string(want) +
                              " bytes)");
      }
      std::free(data_);
      data_ = fresh;
      size_ = want;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// Per-thread scratch of the kernels' work items.
inline Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Per-thread scratch of a whole call, held by the calling thread and shared with the workers of its
// parallel regions (partial results that a second pass merges). Separate from thread_scratch(), which the
// calling thread also uses for its own work items.
inline Scratch& call_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Carves typed, aligned sub-buffers out of one scratch block: first measure with a null base, then
// carve for real from a block of measured().
class Carver {
 public:
  explicit Carver(void* base = nullptr) : base_(static_cast<char*>(base)) {}
  template <class T>
  T* take(std::size_t count) {
    T* p = reinterpret_cast<T*>(base_ == nullptr ? nullptr : base_ + offset_);
    offset_ = checked_add(offset_, round_up_bytes(checked_mul(count, sizeof(T))));
    return p;
  }
  std::size_t measured() const { return offset_; }

 private:
  char* base_;
  std::size_t offset_ = 0;
};

}  // namespace tileattn::detail
