#include "thread_pool.hpp"

#include "scratch.hpp"  // AllocationError

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace tileattn::detail {
namespace {

using Clock = std::chrono::steady_clock;

// The CPU the calling thread runs on, or -1 where that cannot be known.
int current_cpu() {
#ifdef __linux__
  return sched_getcpu();
#else
  return -1;
#endif
}

// Moves the calling thread off `cpu` (when its affinity allows another CPU), then gives it back the
// affinity it had. The kernel moves the thread before sched_setaffinity returns, and restoring the mask
// does not move it again, so the thread ends up on another CPU and keeps its old mask.
void move_off_cpu(int cpu) {
#ifdef __linux__
  cpu_set_t mask;
  if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof mask, &mask) != 0) return;
  if (!CPU_ISSET(cpu, &mask) || CPU_COUNT(&mask) < 2) return;
  cpu_set_t others = mask;
  CPU_CLR(cpu, &others);
  if (sched_setaffinity(0, sizeof others, &others) == 0) sched_setaffinity(0, sizeof mask, &mask);
#else
  (void)cpu;
#endif
}

// How long the caller lets its workers take to join before it yields its CPU to them once (see
// yield_point in the header). Waking a worker on an idle CPU takes 10-100 us on the development machine.
constexpr auto kJoinPatience = std::chrono::microseconds(100);
// How long the caller waits awake for its workers to finish before it sleeps (Pool::run).
constexpr auto kDoneSpin = std::chrono::microseconds(200);
// How long a worker waits awake for the next job after one (or, after wake_workers, after the caller's
// own work) before it sleeps.
constexpr Clock::duration kWorkerSpin = std::chrono::microseconds(200);

struct Job;
// The job whose caller this thread is, while it runs its own chunks (null in workers and elsewhere).
thread_local Job* t_caller_job = nullptr;

struct Job {
  RangeFn body;
  int64_t n;
  int64_t grain;
  int max_workers;               // workers allowed to join (threads - 1)
  std::atomic<int64_t> next{0};  // first item not yet taken
  std::atomic<int> started{0};   // workers that have joined (read by the caller without the lock)
  int caller_cpu = -1;           // where the caller ran when it published the job
  Clock::time_point published;   // when it did
  bool yielded = false;          // whether the caller has yielded its CPU (read by the caller only)
  int joined = 0;                // guarded by Pool::mutex
  int active = 0;                // guarded by Pool::mutex
  std::atomic<int> running{0};   // `active` for the caller's spin: set under the lock, read without it
  std::exception_ptr error;      // guarded by error_mutex
  std::mutex error_mutex;

  Job(RangeFn b, int64_t n_, int64_t g, int w) : body(b), n(n_), grain(g), max_workers(w) {}

  // Takes chunks until none is left. After a failure the remaining chunks are skipped.
  void run_chunks() {
    for (;;) {
      const int64_t begin = next.fetch_add(grain, std::memory_order_relaxed);
      if (begin >= n) return;
      const int64_t end = std::min(n, begin + grain);
      try {
        body(begin, end);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lk(error_mutex);
          if (!error) error = std::current_exception();
        }
        next.store(n, std::memory_order_relaxed);
        return;
      }
      if (t_caller_job == this) yield_point();
    }
  }

  // Called by the caller only, between pieces of its work (see detail::yield_point in the header).
  void yield_point() {
    if (!yielded && started.load(std::memory_order_relaxed) < max_workers &&
        Clock::now() - published > kJoinPatience) {
      yielded = true;
      std::this_thread::yield();
    }
  }
};

class Pool {
 public:
  // The region lock: held by the caller for the whole of one parallel region.
  std::mutex region;

  void run(Job& job, int threads) {
    ensure_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      job_ = &job;
      job.caller_cpu = current_cpu();
      job.published = Clock::now();
      ++generation_;
      generation_atomic_.store(generation_, std::memory_order_release);
    }
    cv_work_.notify_all();
    t_caller_job = &job;
    job.run_chunks();
    t_caller_job = nullptr;
    std::unique_lock<std::mutex> lk(mutex_);
    job_ = nullptr;  // no worker joins from now on
    if (job.active == 0) return;
    lk.unlock();
    // The workers still running usually finish within microseconds of the caller. Sleeping on the
    // condition variable would make the last one's notify a wake-up of an idle CPU, which took 15-20 us
    // on the development machine's guest (a two-thread call of 8 x 16 x 16 took 40 us against 20 on one
    // thread): the caller first waits awake for a while, as the workers do between jobs.
    const auto spin_until = Clock::now() + kDoneSpin;
    while (job.running.load(std::memory_order_acquire) != 0) {
      if (Clock::now() >= spin_until) {
        lk.lock();
        cv_done_.wait(lk, [&] { return job.active == 0; });
        return;
      }
      std::this_thread::yield();
    }
  }

  int workers() {
    std::lock_guard<std::mutex> lk(mutex_);
    return static_cast<int>(workers_.size());
  }

  bool asleep() const { return sleeping_.load(std::memory_order_relaxed) > 0; }

  // A generation with no job: sleeping workers wake up, find nothing to join and spin (worker_loop).
  void wake(Clock::duration busy) {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      if (sleeping_.load(std::memory_order_relaxed) == 0) return;
      job_ = nullptr;
      wake_cpu_ = current_cpu();
      wake_spin_ = busy + kWorkerSpin;
      wake_generation_ = ++generation_;
      generation_atomic_.store(generation_, std::memory_order_release);
    }
    cv_work_.notify_all();
  }

 private:
  void ensure_workers(int count) {
    std::lock_guard<std::mutex> lk(mutex_);
    // A new worker starts from the generation before the job its creator is about to publish, so it
    // joins that job. (Reading the generation when the thread starts, later, made every process's first
    // parallel region, and the first after more threads were asked for, run without the new workers:
    // the job was published before they looked.)
    while (static_cast<int>(workers_.size()) < count) {
      try {
        workers_.emplace_back([this, seen = generation_] { worker_loop(seen); });
      } catch (const std::system_error& e) {  // the OS has no more threads to give: a resource, as memory
        throw AllocationError("tileattn: cannot start a thread (" + std::to_string(workers_.size() + 1) +
                              " asked for): " + e.what());
      }
    }
  }

  void worker_loop(uint64_t seen) {
    Clock::duration spin = kWorkerSpin;
    for (;;) {
      // Spin briefly before sleeping: back-to-back calls (small shapes) then start without a wake-up.
      const auto spin_until = Clock::now() + spin;
      spin = kWorkerSpin;
      while (generation_atomic_.load(std::memory_order_acquire) == seen &&
             Clock::now() < spin_until) {
        std::this_thread::yield();
      }
      std::unique_lock<std::mutex> lk(mutex_);
      if (generation_ == seen) {
        sleeping_.fetch_add(1, std::memory_order_relaxed);
        cv_work_.wait(lk, [&] { return generation_ != seen; });
        sleeping_.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = generation_;
      Job* job = job_;
      if (job == nullptr) {
        // Woken by wake() (its generation): spin for as long as it asked, off the waker's CPU. Else the
        // job's caller finished before this worker arrived: spin as after a job.
        if (seen == wake_generation_) {
          const int waker_cpu = wake_cpu_;
          spin = wake_spin_;
          lk.unlock();
          if (waker_cpu >= 0 && current_cpu() == waker_cpu) move_off_cpu(waker_cpu);
        }
        continue;
      }
      if (job->joined >= job->max_workers) continue;
      ++job->joined;
      job->running.store(++job->active, std::memory_order_relaxed);
      const int caller_cpu = job->caller_cpu;
      lk.unlock();
      job->started.fetch_add(1, std::memory_order_relaxed);
      if (caller_cpu >= 0 && current_cpu() == caller_cpu) move_off_cpu(caller_cpu);
      job->run_chunks();
      lk.lock();
      // The last worker's store lets a spinning caller return (and destroy the job): job is not touched after.
      const int left = --job->active;
      job->running.store(left, std::memory_order_release);
      if (left == 0) cv_done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> generation_atomic_{0};
  std::atomic<int> sleeping_{0};  // workers waiting on cv_work_ (changed under mutex_)
  int wake_cpu_ = -1;              // where the last wake() ran (guarded by mutex_)
  Clock::duration wake_spin_{};    // how long the workers it woke spin (guarded by mutex_)
  uint64_t wake_generation_ = 0;   // the generation it published (guarded by mutex_)
  Job* job_ = nullptr;
  std::vector<std::thread> workers_;
};

// The pool lives for the whole process and is never destroyed: joining workers during static
// destruction could hang an exiting interpreter. After fork() the child has none of the parent's
// threads, so it forgets the pool (leaking its memory) and builds a new one on first use.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork_once;

void forget_pool_in_child() { g_pool.store(nullptr); }

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, &forget_pool_in_child); });
  auto* fresh = new Pool();
  Pool* expected = nullptr;
  if (!g_pool.compare_exchange_strong(expected, fresh)) {
    delete fresh;
    return *expected;
  }
  return *fresh;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, int threads, RangeFn body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  threads = static_cast<int>(std::min<int64_t>(std::max(threads, 1), chunks));
  Job job(body, n, grain, threads - 1);
  if (threads > 1) {
    Pool& p = pool();
    std::unique_lock<std::mutex> region(p.region, std::try_to_lock);
    if (region.owns_lock()) {
      p.run(job, threads);
    } else {
      job.run_chunks();  // pool busy: this caller computes its own items
    }
  } else {
    job.run_chunks();
  }
  if (job.error) std::rethrow_exception(job.error);
}

void yield_point() {
  if (Job* job = t_caller_job) job->yield_point();
}

bool workers_asleep() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  return p != nullptr && p->asleep();
}

void wake_workers(double busy_microseconds) {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) return;
  // Not while another caller's region runs (its workers are awake, or busy with it).
  std::unique_lock<std::mutex> region(p->region, std::try_to_lock);
  if (region.owns_lock()) {
    p->wake(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::micro>(std::clamp(busy_microseconds, 0.0, 1e4))));
  }
}

int pool_workers() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  return p == nullptr ? 0 : p->workers();
}

}  // namespace tileattn::detail
