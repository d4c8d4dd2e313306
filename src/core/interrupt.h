// Cooperative cancellation and memory limits for long-running core algorithms.
// The glue supplies a poll function that throws when PostgreSQL has a cancel or timeout pending,
// and a byte budget derived from work_mem / maintenance_work_mem.
#pragma once
#include "core/error.h"

#include <cstddef>
#include <functional>
#include <string>

namespace cdp {

// Called every few thousand iterations of a long loop; may throw to abandon the work.
class Interrupts {
 public:
  Interrupts() = default;
  explicit Interrupts(std::function<void()> poll) : poll_(std::move(poll)) {}
  // Cheap enough for inner loops: only every 4096th call reaches the poll function.
  void tick() {
    if ((++count_ & 0xFFF) == 0 && poll_) poll_();
  }
  void poll() {
    if (poll_) poll_();
  }

 private:
  std::function<void()> poll_;
  unsigned count_ = 0;
};

// Tracks an estimate of the bytes an algorithm holds and fails cleanly past the limit,
// so a huge input ends in an ERROR rather than in the kernel's OOM killer.
class MemoryBudget {
 public:
  MemoryBudget(std::size_t limit_bytes, std::string setting_name)
      : limit_(limit_bytes), setting_(std::move(setting_name)) {}
  void charge(std::size_t bytes) {
    used_ += bytes;
    if (used_ > limit_)
      throw Error(sqlstate::kProgramLimitExceeded,
                  "pg_cdp needs more than " + std::to_string(limit_ / (1024 * 1024)) + " MB of memory",
                  "The limit is " + setting_ + ".", "Raise " + setting_ + " for this session.");
  }
  void release(std::size_t bytes) { used_ = bytes > used_ ? 0 : used_ - bytes; }
  std::size_t used() const { return used_; }
  std::size_t limit() const { return limit_; }

 private:
  std::size_t limit_;
  std::size_t used_ = 0;
  std::string setting_;
};

}  // namespace cdp
