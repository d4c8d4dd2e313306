// One background thread that runs tasks posted by the thread that owns it, in posting order.
// Pure C++ (no PostgreSQL): a reader posts the pure work it can overlap with its own (docs/identity.md, section 4).
//
// Rules that keep it safe inside a PostgreSQL backend:
//   - the thread is created with every signal blocked, so PostgreSQL's handlers (cancel, statement_timeout,
//     SIGUSR1 latches) always run on the owning thread;
//   - tasks must run pure C++ only (no PostgreSQL call, palloc, ereport or interrupt check);
//   - a task's exception is caught on the worker, the remaining tasks are dropped, and finish() rethrows it
//     on the owner;
//   - the destructor (and stop()) asks the worker to end and joins it, so an owner that leaves by an
//     exception (cancel, a memory-limit error) never leaves a thread running or a std::thread joinable;
//   - waiting uses a condition variable (no spinning); finish() wakes every `poll_every` to call the owner's
//     poll function, which may throw (cancel) — the destructor then stops the worker.
// If the thread cannot be created, tasks run on the owner inside post() (same results, no overlap).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace cdp {

class WorkerThread {
 public:
  WorkerThread();
  ~WorkerThread() { stop(); }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Owner only. Queues task (or runs it now when there is no thread). After a task failed, tasks are dropped.
  void post(std::function<void()> task);
  // Owner only. Waits until every posted task ran and the thread ended, calling poll() about every
  // poll_every while waiting; then rethrows a task's exception, if any. After finish() returns, whatever the
  // tasks wrote may be read by the owner (the join orders it).
  void finish(const std::function<void()>& poll,
              std::chrono::milliseconds poll_every = std::chrono::milliseconds(10));
  // Asks the worker to end after its current task (queued tasks are dropped) and joins it. Idempotent,
  // noexcept: for destructors and exit paths.
  void stop() noexcept;
  // For long tasks: true once stop() was called; they may return early (their results are then unused).
  bool stop_requested() const noexcept { return stop_.load(std::memory_order_relaxed); }
  bool threaded() const noexcept { return thread_.joinable(); }
  std::size_t queued() const;  // tasks posted and not yet started

 private:
  void run() noexcept;

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // worker: a task arrived, or finish/stop
  std::condition_variable idle_;  // owner: the worker ended
  std::deque<std::function<void()>> tasks_;
  bool closing_ = false;  // finish(): end once the queue is empty
  bool ended_ = false;    // the worker left its loop
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace cdp
