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
    : batch_(batch ? batch : 1), memo_(warmed_up(default_region)), owner_memo_(std::move(default_region)) {
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
  batches_.push_back(batch);
  const std::size_t bytes = batch->memory_bytes();
  queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  worker_.post([this, batch, bytes] {
    if (!batch->claimed.exchange(true)) {
      normalise(*batch, memo_, out_);
      worker_bytes_.store(memo_.memory_bytes() + out_.capacity(), std::memory_order_relaxed);
    }
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  });
}

bool PhoneWorker::normalise(Batch& batch, PhoneMemo& memo, std::string& out) {
  batch.value_ends.reserve(batch.ends.size());
  batch.outcomes.reserve(batch.ends.size());
  uint32_t begin = 0;
  for (const uint32_t end : batch.ends) {
    if (worker_.stop_requested()) return false;
    const Outcome outcome = memo.normalise(std::string_view(batch.bytes.data() + begin, end - begin), out);
    begin = end;
    batch.values.append(out);
    batch.value_ends.push_back(static_cast<uint32_t>(batch.values.size()));
    batch.outcomes.push_back(static_cast<uint8_t>(outcome));
  }
  result_bytes_.fetch_add(batch.result_bytes(), std::memory_order_relaxed);
  std::string().swap(batch.bytes);  // what remains until finish() is the results, which are counted
  std::vector<uint32_t>().swap(batch.ends);
  return true;
}

void PhoneWorker::finish(const std::function<void()>& poll) {
  hand_over();
  std::string().swap(pending_);
  std::vector<uint32_t>().swap(pending_ends_);
  // The worker claims batches from the front, the owner from the back: the first batch the owner finds
  // claimed means every earlier one is the worker's.
  for (auto it = batches_.rbegin(); it != batches_.rend(); ++it) {
    if (poll) poll();
    if ((*it)->claimed.exchange(true)) break;
    normalise(**it, owner_memo_, owner_out_);
    ++batches_by_owner_;
  }
  worker_.finish(poll);  // joins the worker: its batches' results are visible from here on
  for (auto& batch : batches_) {
    const uint64_t base = values_.size();
    values_.append(batch->values.begin(), batch->values.end());
    for (const uint32_t end : batch->value_ends) offsets_.push_back(base + end);
    outcomes_.append(batch->outcomes.begin(), batch->outcomes.end());
    result_bytes_.fetch_sub(batch->result_bytes(), std::memory_order_relaxed);
    batch.reset();
  }
  std::vector<std::shared_ptr<Batch>>().swap(batches_);
  if (outcomes_.size() != static_cast<std::size_t>(added_))
    throw Error(sqlstate::kInternalError, "phone normalisation lost spellings");  // cannot happen
}

}  // namespace cdp::identity
