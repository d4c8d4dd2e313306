// Phone normalisation off the reading thread (docs/identity.md, section 4): the reader hands each distinct
// raw phone spelling to PhoneWorker as it first sees it and carries on scanning; one WorkerThread runs
// libphonenumber (through a PhoneMemo) on batches of spellings meanwhile. After finish(), the outcome and
// value of spelling i (numbered 0, 1, ... in add order) are exactly PhoneMemo::normalise's.
// Pure C++; libphonenumber is warmed up (singleton, metadata, regular expressions) on the owner before the
// thread starts and is used by the worker alone until finish() returns.
#pragma once

#include "core/identity_normalize.h"
#include "core/pod_array.h"
#include "core/worker_thread.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cdp::identity {

// Initialises libphonenumber's singleton and its lazily built state by normalising a sample number.
void warm_up_phone_library();

class PhoneWorker {
 public:
  // batch: spellings per hand-over (one mutex round trip each).
  explicit PhoneWorker(std::string default_region, std::size_t batch = 4096);
  ~PhoneWorker() { worker_.stop(); }  // first: the thread ends before the state it uses is destroyed

  // Owner. Spelling number count() (the next one) is raw.
  void add(std::string_view raw);
  int32_t count() const { return added_; }
  // Owner. Waits for every spelling (poll() is called every few ms meanwhile and may throw), rethrows an
  // exception of the worker. Then outcome/value/memo may be used by the owner.
  void finish(const std::function<void()>& poll);
  Outcome outcome(int32_t spelling) const { return static_cast<Outcome>(outcomes_[spelling]); }
  std::string_view value(int32_t spelling) const {
    return std::string_view(values_.data() + offsets_[spelling], offsets_[spelling + 1] - offsets_[spelling]);
  }
  PhoneMemo& memo() { return memo_; }  // after finish() only
  // Owner, any time: bytes held by the batches not yet normalised, the results and the memo (the worker
  // publishes its part after each batch).
  std::size_t memory_bytes() const {
    return pending_.capacity() + pending_ends_.capacity() * sizeof(uint32_t) +
           queued_bytes_.load(std::memory_order_relaxed) + worker_bytes_.load(std::memory_order_relaxed);
  }
  // Stops the worker now (queued spellings are dropped); the results are then incomplete. For exit paths.
  void stop() noexcept { worker_.stop(); }

 private:
  struct Batch {
    std::string bytes;
    std::vector<uint32_t> ends;
    std::size_t memory_bytes() const { return bytes.capacity() + ends.capacity() * sizeof(uint32_t); }
  };
  void hand_over();
  void normalise(const Batch& batch);  // on the worker

  std::size_t batch_;
  int32_t added_ = 0;
  std::string pending_;  // spellings not handed over yet
  std::vector<uint32_t> pending_ends_;
  std::atomic<std::size_t> queued_bytes_{0}, worker_bytes_{0};
  // Worker-owned until finish().
  PhoneMemo memo_;
  std::string out_;
  PodArray<char> values_;       // normalised values, one after the other
  PodArray<uint64_t> offsets_;  // spelling i's value is values_[offsets_[i], offsets_[i + 1])
  PodArray<uint8_t> outcomes_;
  WorkerThread worker_;  // last: constructed after, destroyed before, everything it uses
};

}  // namespace cdp::identity
