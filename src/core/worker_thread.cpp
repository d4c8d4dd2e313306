#include "core/worker_thread.h"

#include <csignal>
#include <pthread.h>
#include <system_error>

#include "core/no_postgres.h"

namespace cdp {

WorkerThread::WorkerThread() {
  // The new thread inherits the creating thread's signal mask: block everything around its creation, so no
  // signal is ever delivered to it, then restore the owner's mask.
  sigset_t all, previous;
  sigfillset(&all);
  const bool masked = pthread_sigmask(SIG_BLOCK, &all, &previous) == 0;
  if (masked) {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      // No thread (e.g. a process limit): post() runs the tasks on the owner.
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
}

void WorkerThread::run() noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return !tasks_.empty() || closing_ || stop_.load(std::memory_order_relaxed); });
    if (stop_.load(std::memory_order_relaxed) || error_ || tasks_.empty()) break;  // empty here: closing_
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    try {
      task();
    } catch (...) {
      lock.lock();
      error_ = std::current_exception();
      break;
    }
    task = nullptr;  // its captures are freed on this thread, outside the lock
    lock.lock();
  }
  tasks_.clear();
  ended_ = true;
  lock.unlock();
  idle_.notify_all();
}

void WorkerThread::post(std::function<void()> task) {
  if (!thread_.joinable()) {  // no worker: run now, on the owner (an exception reaches the caller)
    if (!error_ && !stop_requested()) task();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_ || ended_) return;
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void WorkerThread::finish(const std::function<void()>& poll, std::chrono::milliseconds poll_every) {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closing_ = true;
    }
    wake_.notify_one();
    std::unique_lock<std::mutex> lock(mutex_);
    while (!ended_) {
      if (idle_.wait_for(lock, poll_every, [this] { return ended_; })) break;
      lock.unlock();
      if (poll) poll();  // may throw: the destructor stops and joins the worker
      lock.lock();
    }
    lock.unlock();
    thread_.join();
  }
  if (error_) std::rethrow_exception(error_);
}

void WorkerThread::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_relaxed);
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t WorkerThread::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return tasks_.size();
}

}  // namespace cdp
