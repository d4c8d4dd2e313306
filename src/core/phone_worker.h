// Phone normalisation off the reading thread (docs/identity.md, section 4): the reader hands each distinct
// raw phone spelling to PhoneWorker as it first sees it and carries on scanning; one WorkerThread runs
// libphonenumber (through a PhoneMemo) on batches of spellings meanwhile. When the reader is done scanning,
// finish() has it normalise the batches still queued as well, from the last one backwards while the worker
// goes on from the front (each batch is claimed by exactly one of them), so the two cores share what is
// left. After finish(), the outcome and value of spelling i (numbered 0, 1, ... in add order) are exactly
// PhoneMemo::normalise's, whichever thread normalised it.
// Pure C++; libphonenumber is warmed up (singleton, metadata, regular expressions) on the owner before the
// thread starts. Its PhoneNumberUtil is thread-safe (const methods; each match makes its own ICU matcher);
// each thread has its own PhoneMemo.
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
  // Owner. Normalises queued batches alongside the worker and waits for every spelling (poll(), if given,
  // is called between batches and every few ms while waiting, and may throw); rethrows an exception of the
  // worker. Then outcome/value/memo may be used by the owner.
  void finish(const std::function<void()>& poll);
  int64_t batches_by_owner() const { return batches_by_owner_; }  // after finish(): how many the owner took
  Outcome outcome(int32_t spelling) const { return static_cast<Outcome>(outcomes_[spelling]); }
  std::string_view value(int32_t spelling) const {
    return std::string_view(values_.data() + offsets_[spelling], offsets_[spelling + 1] - offsets_[spelling]);
  }
  PhoneMemo& memo() { return memo_; }  // after finish() only
  // Owner, any time: bytes held by the batches not yet normalised, the results and the memo (the worker
  // publishes its part after each batch).
  std::size_t memory_bytes() const {
    return pending_.capacity() + pending_ends_.capacity() * sizeof(uint32_t) +
           queued_bytes_.load(std::memory_order_relaxed) + worker_bytes_.load(std::memory_order_relaxed) +
           result_bytes_.load(std::memory_order_relaxed) + owner_memo_.memory_bytes() + values_.memory_bytes() +
           offsets_.memory_bytes() + outcomes_.memory_bytes();
  }
  // Stops the worker now (queued spellings are dropped); the results are then incomplete. For exit paths.
  void stop() noexcept { worker_.stop(); }

 private:
  struct Batch {
    std::string bytes;  // the spellings, freed once normalised
    std::vector<uint32_t> ends;
    std::atomic<bool> claimed{false};  // set by the one thread (worker or owner) that normalises it
    // Written by that thread: the normalised values one after the other, where each ends, the outcomes.
    std::string values;
    std::vector<uint32_t> value_ends;
    std::vector<uint8_t> outcomes;
    std::size_t memory_bytes() const { return bytes.capacity() + ends.capacity() * sizeof(uint32_t); }
    std::size_t result_bytes() const {
      return values.capacity() + value_ends.capacity() * sizeof(uint32_t) + outcomes.capacity();
    }
  };
  void hand_over();
  // Normalises a batch with `memo` (the worker's or the owner's); false when stop() was called (only exit
  // paths call it, never while the owner is inside finish()).
  bool normalise(Batch& batch, PhoneMemo& memo, std::string& out);

  std::size_t batch_;
  int32_t added_ = 0;
  std::string pending_;  // spellings not handed over yet
  std::vector<uint32_t> pending_ends_;
  std::vector<std::shared_ptr<Batch>> batches_;  // owner: every batch handed over, in order
  std::atomic<std::size_t> queued_bytes_{0}, worker_bytes_{0}, result_bytes_{0};
  PhoneMemo memo_;  // the worker's until finish()
  std::string out_;
  PhoneMemo owner_memo_;  // the owner's, for the batches it takes in finish()
  std::string owner_out_;
  int64_t batches_by_owner_ = 0;
  // After finish(): the results of all batches in order.
  PodArray<char> values_;       // normalised values, one after the other
  PodArray<uint64_t> offsets_;  // spelling i's value is values_[offsets_[i], offsets_[i + 1])
  PodArray<uint8_t> outcomes_;
  WorkerThread worker_;  // last: constructed after, destroyed before, everything it uses
};

}  // namespace cdp::identity
