#include "core/profile_engine.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>

#include "core/no_postgres.h"

namespace cdp::profiles {

namespace {

std::uint64_t mix64(std::uint64_t x) {  // MurmurHash3's finaliser
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

std::uint64_t hash_bytes(const char* data, std::size_t length) {
  std::uint64_t hash = 0x9e3779b97f4a7c15ULL ^ (length * 0x100000001b3ULL);
  std::size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, 8);
    hash = (hash ^ mix64(word)) * 0x9ddfea08eb382d69ULL;
  }
  std::uint64_t tail = 0;
  for (std::size_t shift = 0; i < length; ++i, shift += 8)
    tail |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[i])) << shift;
  return mix64(hash ^ mix64(tail ^ length));
}

constexpr std::size_t kInitialSlots = 1024;
constexpr std::size_t kArenaBlock = std::size_t{1} << 20;
constexpr std::size_t kMaxPersons = std::numeric_limits<std::uint32_t>::max() - 2;

}  // namespace

ProfileEngine::ProfileEngine(std::int64_t local_as_of, MemoryBudget& budget)
    : local_as_of_(local_as_of),
      as_of_day_(lifecycle::utc_day(local_as_of)),
      budget_(budget),
      persons_(budget),
      day_rows_(budget) {
  budget_.charge(kInitialSlots * sizeof(std::uint64_t));
  rfm::PagedArray<std::uint64_t>(kInitialSlots).swap(slots_);
  slot_mask_ = kInitialSlots - 1;
}

ProfileEngine::~ProfileEngine() {
  budget_.release(slots_.size() * sizeof(std::uint64_t) + arena_charged_ + index_charged_);
}

void ProfileEngine::fold(std::uint32_t index, std::int64_t ordered_at, const Decimal* amount) {
  PersonStats& person = persons_[index];
  // The checks in the order of the SQL refresh, where cdp.rfm_agg saw each row before cdp.lifecycle.
  if (amount != nullptr) rfm::add_order(person.rfm, ordered_at, *amount);
  ++rows_;
  if (ordered_at > local_as_of_) return;  // a later local time (the DST fall-back hour): not for the lifecycle
  rfm::check_order_time(ordered_at);  // a row without an amount (add_order checked the others)
  if (amount == nullptr || amount->sign() <= 0) return;
  if (person.lifecycle_orders == 0 || ordered_at > person.lifecycle_last_order_at)
    person.lifecycle_last_order_at = ordered_at;
  if (person.lifecycle_orders != std::numeric_limits<std::uint32_t>::max()) ++person.lifecycle_orders;
  DayRow& row = day_rows_.grow();
  row.person = index;
  row.day = lifecycle::utc_day(ordered_at);
}

void ProfileEngine::add_batch(const std::int64_t* keys, const std::int64_t* ordered_at, const Decimal* const* amounts,
                              std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    __builtin_prefetch(&slots_[mix64(static_cast<std::uint64_t>(keys[i])) & slot_mask_]);
  for (std::size_t i = 0; i < count; ++i) fold(find_or_insert_integer(keys[i]), ordered_at[i], amounts[i]);
}

std::uint32_t ProfileEngine::find_or_insert_integer(std::int64_t key) {
  if (last_ != kNone) {
    const PersonStats& last = persons_[last_];
    if (last.integer_key() && last.key == key) return last_;
  }
  const std::uint64_t hash = mix64(static_cast<std::uint64_t>(key));
  const std::uint64_t tag = hash >> 32;
  for (std::size_t slot = hash & slot_mask_;; slot = (slot + 1) & slot_mask_) {
    const std::uint64_t value = slots_[slot];
    if (value == 0) return last_ = append(hash, slot, key, PersonStats::kIntegerKey);
    if ((value >> 32) == tag) {
      const std::uint32_t index = static_cast<std::uint32_t>((value & 0xFFFFFFFFu) - 1);
      const PersonStats& person = persons_[index];
      if (person.integer_key() && person.key == key) return last_ = index;
    }
  }
}

std::uint32_t ProfileEngine::find_or_insert_bytes(const char* key, std::size_t length) {
  if (length >= PersonStats::kIntegerKey) throw Error(sqlstate::kProgramLimitExceeded, "customer key is too long");
  if (last_ != kNone) {
    const PersonStats& last = persons_[last_];
    if (last.key_length == length && std::memcmp(last.key_bytes(), key, length) == 0) return last_;
  }
  const std::uint64_t hash = hash_bytes(key, length);
  const std::uint64_t tag = hash >> 32;
  for (std::size_t slot = hash & slot_mask_;; slot = (slot + 1) & slot_mask_) {
    const std::uint64_t value = slots_[slot];
    if (value == 0) {
      const char* stored = copy_key(key, length);
      return last_ = append(hash, slot, static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(stored)),
                            static_cast<std::uint32_t>(length));
    }
    if ((value >> 32) == tag) {
      const std::uint32_t index = static_cast<std::uint32_t>((value & 0xFFFFFFFFu) - 1);
      const PersonStats& person = persons_[index];
      if (person.key_length == length && std::memcmp(person.key_bytes(), key, length) == 0) return last_ = index;
    }
  }
}

std::size_t ProfileEngine::find(std::int64_t key) const {
  const std::uint64_t hash = mix64(static_cast<std::uint64_t>(key));
  const std::uint64_t tag = hash >> 32;
  for (std::size_t slot = hash & slot_mask_;; slot = (slot + 1) & slot_mask_) {
    const std::uint64_t value = slots_[slot];
    if (value == 0) return npos;
    if ((value >> 32) == tag) {
      const std::size_t index = (value & 0xFFFFFFFFu) - 1;
      const PersonStats& person = persons_[index];
      if (person.integer_key() && person.key == key) return index;
    }
  }
}

std::uint32_t ProfileEngine::append(std::uint64_t hash, std::size_t slot, std::int64_t key, std::uint32_t key_length) {
  if (finished_) throw Error(sqlstate::kInternalError, "cdp.refresh_profiles: a row after the last row");
  if (persons_.size() >= kMaxPersons)
    throw Error(sqlstate::kProgramLimitExceeded, "too many persons for cdp.refresh_profiles (limit 4294967293)");
  const std::uint32_t index = static_cast<std::uint32_t>(persons_.size());
  PersonStats& person = persons_.grow();
  person.key = key;  // before rehash(): it reads the key
  person.key_length = key_length;
  slots_[slot] = (hash >> 32 << 32) | (static_cast<std::uint64_t>(index) + 1);
  if (persons_.size() * 10 > slots_.size() * 7) rehash(slots_.size() * 2);  // load factor <= 0.7
  return index;
}

const char* ProfileEngine::copy_key(const char* key, std::size_t length) {
  static const char kEmpty[1] = {0};
  if (length == 0) return kEmpty;
  if (arena_.empty() || arena_used_ + length > arena_.back().size()) {
    const std::size_t block = std::max(kArenaBlock, length);
    budget_.charge(block);
    arena_charged_ += block;
    arena_.emplace_back(block);
    arena_used_ = 0;
  }
  char* stored = arena_.back().data() + arena_used_;
  std::memcpy(stored, key, length);
  arena_used_ += length;
  return stored;
}

void ProfileEngine::rehash(std::size_t new_size) {
  budget_.charge(new_size * sizeof(std::uint64_t));
  rfm::PagedArray<std::uint64_t> bigger(new_size);
  const std::size_t mask = new_size - 1;
  for (std::size_t i = 0; i < persons_.size(); ++i) {
    const PersonStats& person = persons_[i];
    const std::uint64_t hash = person.integer_key() ? mix64(static_cast<std::uint64_t>(person.key))
                                                    : hash_bytes(person.key_bytes(), person.key_length);
    std::size_t slot = hash & mask;
    while (bigger[slot] != 0) slot = (slot + 1) & mask;
    bigger[slot] = (hash >> 32 << 32) | (i + 1);
  }
  budget_.release(slots_.size() * sizeof(std::uint64_t));
  slots_.swap(bigger);
  slot_mask_ = mask;
}

void ProfileEngine::finish_rows(Interrupts& interrupts) {
  if (finished_) return;
  finished_ = true;
  // Counting sort of the (person, day) rows by person: offsets, then the days in person order.
  const std::size_t persons = persons_.size(), rows = day_rows_.size();
  index_charged_ = (persons + 1) * sizeof(std::uint32_t) + rows * sizeof(std::int32_t);
  budget_.charge(index_charged_);
  rfm::PagedArray<std::uint32_t>(persons + 1).swap(day_offsets_);
  rfm::PagedArray<std::int32_t>(rows).swap(days_);
  for (std::size_t i = 0; i < rows; ++i) ++day_offsets_[day_rows_[i].person + 1];
  for (std::size_t p = 0; p < persons; ++p) day_offsets_[p + 1] += day_offsets_[p];
  interrupts.poll();
  {
    // Fill from the back so each person's days keep the row order (mostly increasing already).
    std::vector<std::uint32_t> next;
    budget_.charge(persons * sizeof(std::uint32_t));
    next.assign(day_offsets_.begin() + 1, day_offsets_.end());
    for (std::size_t i = rows; i-- > 0;) {
      const DayRow& row = day_rows_[i];
      days_[--next[row.person]] = row.day;
      if ((i & 0xFFFF) == 0) interrupts.poll();
    }
    budget_.release(persons * sizeof(std::uint32_t));
  }
  day_rows_.clear();
  // Each person's order days: sorted, several orders of one day counted once (compacted in place).
  std::uint32_t written = 0;
  for (std::size_t p = 0; p < persons; ++p) {
    const std::uint32_t begin = day_offsets_[p], end = day_offsets_[p + 1];
    const std::size_t count = lifecycle::sort_unique(days_.data() + begin, end - begin);
    if (written != begin) std::memmove(days_.data() + written, days_.data() + begin, count * sizeof(std::int32_t));
    day_offsets_[p] = written;
    written += static_cast<std::uint32_t>(count);
    if ((p & 0xFFFF) == 0) interrupts.poll();
  }
  day_offsets_[persons] = written;
}

lifecycle::Outcome ProfileEngine::lifecycle(std::size_t person, const lifecycle::Policy& policy) const {
  return lifecycle::outcome(days_.data() + day_offsets_[person], day_offsets_[person + 1] - day_offsets_[person],
                            as_of_day_, persons_[person].lifecycle_last_order_at, policy);
}

}  // namespace cdp::profiles
