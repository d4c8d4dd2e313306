// The grouping half of cdp.refresh_profiles (PostgreSQL-free): one pass over the order rows into
// per-person statistics, then per person the same values the SQL aggregates gave.
//
// Each row is (person key, ordered_at, amount). The key is an integer (a person id or an integer
// customer key) or a byte string (a customer key's text); the two kinds never equal each other.
// ordered_at is the order time as the shop's local wall clock stored as UTC microseconds (how the
// refresh sees days), amount an exact decimal or NULL. The rules are the existing ones, shared:
//   * RFM statistics: cdp::rfm::add_order (the rule of cdp.rfm_agg) — monetary = sum of all amounts,
//     orders = positive rows, first/last order over positive rows, the sum of positive amounts;
//   * lifecycle: the positive rows at or before local as_of give the order days and the last order,
//     judged by cdp::lifecycle::outcome (the rule of cdp.lifecycle's final function).
// Memory is charged to a MemoryBudget as it grows: kBytesPerPerson per person, kBytesPerOrderDay per
// positive order row at or before as_of, plus the hash slots (about 16-23 bytes per person).
#pragma once
#include "core/decimal.h"
#include "core/interrupt.h"
#include "core/lifecycle.h"
#include "core/rfm_stats.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace cdp::profiles {

// One person's statistics.
struct PersonStats {
  rfm::OrderStats rfm;                  // rows = rows with an amount (NULL amounts are not folded in)
  std::int64_t key = 0;                 // the integer key, or the address of the key's bytes
  std::int64_t lifecycle_last_order_at = 0;  // last positive order at or before local as_of
  std::uint32_t key_length = 0;         // bytes keys: the length; integer keys: kIntegerKey
  std::uint32_t lifecycle_orders = 0;   // positive rows at or before local as_of (capped; > 0 is what counts)

  static constexpr std::uint32_t kIntegerKey = std::numeric_limits<std::uint32_t>::max();
  bool integer_key() const { return key_length == kIntegerKey; }
  const char* key_bytes() const { return reinterpret_cast<const char*>(static_cast<std::intptr_t>(key)); }
};
static_assert(std::is_trivially_copyable_v<PersonStats>, "PersonStats lives in zero-filled pages");

// An array that grows by chunks of doubling size, never moving what it holds (no copying on growth,
// peak memory = what it holds). Zero-filled. Charges the budget per chunk.
template <typename T>
class ChunkedArray {
 public:
  explicit ChunkedArray(MemoryBudget& budget) : budget_(budget) {}
  ~ChunkedArray() { budget_.release(charged_); }
  ChunkedArray(const ChunkedArray&) = delete;
  ChunkedArray& operator=(const ChunkedArray&) = delete;

  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return locate(i); }
  const T& operator[](std::size_t i) const { return const_cast<ChunkedArray*>(this)->locate(i); }
  // Appends a zero-filled element and returns it.
  T& grow() {
    if (size_ == capacity_) add_chunk();
    return locate(size_++);
  }
  void clear() {
    chunks_.clear();
    budget_.release(charged_);
    charged_ = 0;
    size_ = capacity_ = 0;
  }

 private:
  static constexpr unsigned kFirstBits = 10;  // chunk k holds 2^(10 + k) elements
  T& locate(std::size_t i) {
    const std::size_t biased = (i >> kFirstBits) + 1;
    const unsigned k = 63 - static_cast<unsigned>(__builtin_clzll(biased));
    return chunks_[k][i - (((std::size_t{1} << k) - 1) << kFirstBits)];
  }
  void add_chunk() {
    const std::size_t elements = std::size_t{1} << (kFirstBits + chunks_.size());
    budget_.charge(elements * sizeof(T));
    charged_ += elements * sizeof(T);
    chunks_.emplace_back(elements);
    capacity_ += elements;
  }

  MemoryBudget& budget_;
  std::vector<rfm::PagedArray<T>> chunks_;
  std::size_t size_ = 0, capacity_ = 0, charged_ = 0;
};

class ProfileEngine {
 public:
  // local_as_of: as_of as the shop's local wall clock stored as UTC (rows up to it count for the lifecycle).
  ProfileEngine(std::int64_t local_as_of, MemoryBudget& budget);
  ~ProfileEngine();
  ProfileEngine(const ProfileEngine&) = delete;
  ProfileEngine& operator=(const ProfileEngine&) = delete;

  // One order row; amount nullptr for NULL. Throws cdp::Error: 22008 for an ordered_at of -infinity
  // (as cdp.lifecycle), 22003 when a sum leaves the exact range, 54000 past the memory budget.
  void add(std::int64_t key, std::int64_t ordered_at, const Decimal* amount) {
    fold(find_or_insert_integer(key), ordered_at, amount);
  }
  void add(const char* key, std::size_t length, std::int64_t ordered_at, const Decimal* amount) {
    fold(find_or_insert_bytes(key, length), ordered_at, amount);
  }
  // The same for a batch of integer-keyed rows: the hash slots of the whole batch are prefetched first,
  // so the cache misses of a big table overlap instead of queueing one after another.
  void add_batch(const std::int64_t* keys, const std::int64_t* ordered_at, const Decimal* const* amounts,
                 std::size_t count);

  // After the last row: groups the order days by person (rows may not be added afterwards).
  void finish_rows(Interrupts& interrupts);

  std::size_t size() const { return persons_.size(); }
  const PersonStats& at(std::size_t person) const { return persons_[person]; }
  // The person with this integer key, or npos.
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
  std::size_t find(std::int64_t key) const;
  std::size_t order_rows() const { return rows_; }

  std::int32_t as_of_day() const { return as_of_day_; }
  // Shop-calendar days from the last positive order to as_of (the person must have an order).
  std::int32_t recency_days(std::size_t person) const {
    return as_of_day_ - lifecycle::utc_day(persons_[person].rfm.last_order_at);
  }
  // cdp.lifecycle's result for the person (after finish_rows).
  lifecycle::Outcome lifecycle(std::size_t person, const lifecycle::Policy& policy) const;

  // Bytes charged per person besides the hash slots, and per positive order row at or before as_of.
  static constexpr std::size_t kBytesPerPerson = sizeof(PersonStats);
  static constexpr std::size_t kBytesPerOrderDay = 2 * sizeof(std::int32_t) + sizeof(std::int32_t);

 private:
  struct DayRow {
    std::uint32_t person;
    std::int32_t day;
  };
  void fold(std::uint32_t person, std::int64_t ordered_at, const Decimal* amount);
  std::uint32_t find_or_insert_integer(std::int64_t key);
  std::uint32_t find_or_insert_bytes(const char* key, std::size_t length);
  std::uint32_t append(std::uint64_t hash, std::size_t slot, std::int64_t key, std::uint32_t key_length);
  const char* copy_key(const char* key, std::size_t length);
  void rehash(std::size_t new_size);

  std::int64_t local_as_of_;
  std::int32_t as_of_day_;
  MemoryBudget& budget_;
  ChunkedArray<PersonStats> persons_;
  std::uint32_t last_ = kNone;  // the person of the previous row (rows of one person often come together)
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  // Slot: 0 = empty, else (hash tag << 32) | (person index + 1).
  rfm::PagedArray<std::uint64_t> slots_;
  std::size_t slot_mask_ = 0;
  std::vector<std::vector<char>> arena_;  // key bytes
  std::size_t arena_used_ = 0, arena_charged_ = 0;
  // Order days: (person, day) per positive row at or before as_of while reading, then by person.
  ChunkedArray<DayRow> day_rows_;
  rfm::PagedArray<std::uint32_t> day_offsets_;  // person p's days: days_[day_offsets_[p] .. day_offsets_[p + 1])
  mutable rfm::PagedArray<std::int32_t> days_;
  std::size_t index_charged_ = 0;
  std::size_t rows_ = 0;
  bool finished_ = false;
};

}  // namespace cdp::profiles
