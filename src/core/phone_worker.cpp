#include "core/phone_worker.h"

#include "core/error.h"

#include "core/no_postgres.h"

namespace cdp::identity {

void warm_up_phone_library() {
  std::string out;
  // A national and an international number: the singleton, the metadata of the regions involved and the
  // regular expressions Parse, IsValidNumber and Format compile on first use.
  normalise_phone("020 7946 0958", "GB", out);
  normalise_phone("+1 650 253 0000", "US", out);
}

namespace {
// The memo's region, with libphonenumber warmed up first: members are constructed in order, so this runs
// before worker_ (the last member) starts the thread.
std::string warmed_up(std::string region) {
  warm_up_phone_library();
  return region;
}
}  // namespace

PhoneWorker::PhoneWorker(std::string default_region, std::size_t batch)
    : batch_(batch ? batch : 1), memo_(warmed_up(std::move(default_region))) {
  offsets_.push_back(0);
}

void PhoneWorker::add(std::string_view raw) {
  pending_.append(raw);
  pending_ends_.push_back(static_cast<uint32_t>(pending_.size()));
  ++added_;
  if (pending_ends_.size() >= batch_ || pending_.size() >= batch_ * 64) hand_over();
}

void PhoneWorker::hand_over() {
  if (pending_ends_.empty()) return;
  auto batch = std::make_shared<Batch>();
  batch->bytes.swap(pending_);
  batch->ends.swap(pending_ends_);
  pending_.reserve(batch->bytes.size());
  pending_ends_.reserve(batch_);
  const std::size_t bytes = batch->memory_bytes();
  queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  worker_.post([this, batch, bytes] {
    normalise(*batch);
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  });
}

void PhoneWorker::normalise(const Batch& batch) {
  uint32_t begin = 0;
  for (const uint32_t end : batch.ends) {
    if (worker_.stop_requested()) return;
    const Outcome outcome = memo_.normalise(std::string_view(batch.bytes.data() + begin, end - begin), out_);
    begin = end;
    values_.append(out_.begin(), out_.end());
    offsets_.push_back(values_.size());
    outcomes_.push_back(static_cast<uint8_t>(outcome));
  }
  worker_bytes_.store(memo_.memory_bytes() + values_.memory_bytes() + offsets_.memory_bytes() +
                          outcomes_.memory_bytes() + out_.capacity(),
                      std::memory_order_relaxed);
}

void PhoneWorker::finish(const std::function<void()>& poll) {
  hand_over();
  std::string().swap(pending_);
  std::vector<uint32_t>().swap(pending_ends_);
  worker_.finish(poll);
  if (outcomes_.size() != static_cast<std::size_t>(added_))
    throw Error(sqlstate::kInternalError, "phone normalisation lost spellings");  // cannot happen
}

}  // namespace cdp::identity
