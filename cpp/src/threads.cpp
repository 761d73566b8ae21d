// The process-wide default thread count.
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "thread_pool.hpp"
#include "tileattn/tileattn.hpp"

namespace tileattn {
namespace {

// TILEATTN_NUM_THREADS when it holds a positive integer, else the CPUs this process may use.
int initial_threads() {
  if (const char* env = std::getenv("TILEATTN_NUM_THREADS"); env != nullptr) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= detail::kMaxThreads) return static_cast<int>(n);
  }
  return available_cpus();
}

std::atomic<int>& default_threads() {
  static std::atomic<int> value{initial_threads()};
  return value;
}

}  // namespace

int available_cpus() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

void set_num_threads(int n) {
  if (n < 1 || n > detail::kMaxThreads) {
    throw std::invalid_argument("num_threads must be in [1, " + std::to_string(detail::kMaxThreads) + "], got " +
                                std::to_string(n));
  }
  default_threads().store(n);
}

int get_num_threads() { return default_threads().load(); }

}  // namespace tileattn
