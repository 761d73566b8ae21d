// A persistent pool of worker threads shared by every call in the process.
//
// parallel_for(n, threads, body) splits [0, n) into chunks that the calling thread and up to threads - 1
// workers take from an atomic counter (more chunks than threads, so uneven items balance out). Which thread
// runs an item never changes what the item computes, so results do not depend on the thread count.
// One parallel region runs at a time; a caller that finds the pool busy (another thread's call, or a call
// from inside a region) runs its items itself, which keeps concurrent callers correct and deadlock-free.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace tileattn::detail {

// The most threads a call or the process default may ask for (each is an OS thread of the pool).
constexpr int kMaxThreads = 4096;

// A non-owning reference to a callable `void(int64_t begin, int64_t end)`, free of allocation.
class RangeFn {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::remove_cv_t<F>, RangeFn>>>
  explicit RangeFn(F& f) : obj_(&f), call_(&invoke<F>) {}
  void operator()(int64_t begin, int64_t end) const { call_(obj_, begin, end); }

 private:
  template <class F>
  static void invoke(void* obj, int64_t begin, int64_t end) {
    (*static_cast<F*>(obj))(begin, end);
  }
  void* obj_;
  void (*call_)(void*, int64_t, int64_t);
};

// Runs body(begin, end) over [0, n) in chunks of `grain` items on up to `threads` threads (the caller
// included) and returns when all are done. The first exception thrown by body is rethrown here, after
// every thread has stopped taking chunks.
void parallel_for(int64_t n, int64_t grain, int threads, RangeFn body);

template <class F>
void parallel_for(int64_t n, int64_t grain, int threads, F&& body) {
  std::remove_reference_t<F>& ref = body;
  parallel_for(n, grain, threads, RangeFn(ref));
}

// Lets the pool's workers in, if the kernel has left them queued behind the calling thread. Bodies whose
// chunk is long (one chunk per thread, items taken from their own counter) call it between items; between
// chunks parallel_for calls it itself. Anywhere but in the caller of a parallel region it does nothing.
//
// Why: Linux may wake a sleeping worker on the caller's own CPU and leave it queued there, however idle the
// other CPUs are, until the caller's time slice ends. Measured on the development machine's Linux 6.18 guest,
// calls after a pause of a quarter second: a 1.3 ms two-thread call took 2.6 ms, its worker waiting 1-2.5 ms.
// So when a worker has not joined the region within 100 us of its start, the caller yields its CPU once: a
// worker queued behind it then runs, finds itself on the caller's CPU and moves itself to another one it
// may use (its affinity is unchanged after the move), where later calls wake it. A worker waking on
// another CPU makes the yield a no-op.
void yield_point();

// Whether a worker of the pool sleeps: it has had no job for a while (it spins for 200 us after each,
// then sleeps). A sleeping worker takes long to join a region: 50-300 us on the development machine's
// guest, where its wake-up lands on the caller's CPU and it must move (see yield_point), against about a
// microsecond for a spinning one.
bool workers_asleep();

// Wakes the sleeping workers without giving them work: they spin for the next region, whose caller
// then need not wait for them, for as long as they would after a region plus `busy_microseconds` (the
// time the caller expects to be busy first, at most 10 ms). Does nothing while another caller's region
// runs.
void wake_workers(double busy_microseconds);

// Number of worker threads currently alive in the pool (for show_config and tests).
int pool_workers();

}  // namespace tileattn::detail
