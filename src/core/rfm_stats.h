// Per-customer order statistics for RFM (PostgreSQL-free).
//
// Two users:
//   * OrderStats — the state of the cdp.rfm_agg aggregate: a plain, trivially copyable struct that
//     lives in PostgreSQL's aggregate memory context and travels between parallel workers through
//     serialize()/deserialize().
//   * CustomerTable + score_customers — the engine behind cdp.rfm(): one pass over an order table
//     into a flat hash table keyed by customer, then the core scoring rule over all scored customers.
//
// Definitions (the same everywhere in pg_cdp):
//   * an order is a row with a positive amount; frequency/orders counts them;
//   * monetary is the exact sum of ALL amounts (refunds are negative rows and reduce it);
//   * first/last order times are taken over positive orders only;
//   * a customer without any positive order is not scored.
// Timestamps are PostgreSQL TimestampTz values: microseconds since 2000-01-01 00:00 UTC, with
// INT64_MIN / INT64_MAX meaning -infinity / +infinity.
#pragma once
#include "core/decimal.h"
#include "core/interrupt.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace cdp::rfm {

// Anonymous memory for PagedArray (defined in rfm_stats.cpp).
void* map_huge_pages(std::size_t bytes, void*& mapping, std::size_t& mapped_bytes);
void unmap_pages(void* mapping, std::size_t mapped_bytes) noexcept;

// A zero-filled array of trivially copyable T straight from the kernel (mmap), 2 MB aligned and
// advised to use transparent huge pages: for the big, randomly accessed tables of cdp.rfm this
// saves most page faults and TLB misses. Throws std::bad_alloc when the kernel refuses.
template <typename T>
class PagedArray {
  static_assert(std::is_trivially_copyable_v<T>, "PagedArray holds plain data");

 public:
  PagedArray() = default;
  explicit PagedArray(std::size_t size) : size_(size) {
    if (size > 0) base_ = map_huge_pages(size * sizeof(T), mapping_, mapped_bytes_);
  }
  ~PagedArray() { unmap_pages(mapping_, mapped_bytes_); }
  PagedArray(PagedArray&& other) noexcept { swap(other); }
  PagedArray& operator=(PagedArray&& other) noexcept {
    swap(other);
    return *this;
  }
  PagedArray(const PagedArray&) = delete;
  PagedArray& operator=(const PagedArray&) = delete;
  void swap(PagedArray& other) noexcept {
    std::swap(base_, other.base_);
    std::swap(size_, other.size_);
    std::swap(mapping_, other.mapping_);
    std::swap(mapped_bytes_, other.mapped_bytes_);
  }

  T& operator[](std::size_t i) { return static_cast<T*>(base_)[i]; }
  const T& operator[](std::size_t i) const { return static_cast<const T*>(base_)[i]; }
  T* data() { return static_cast<T*>(base_); }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return static_cast<const T*>(base_); }
  const T* end() const { return begin() + size_; }
  std::size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  std::size_t size_ = 0;
  void* mapping_ = nullptr;
  std::size_t mapped_bytes_ = 0;
};

// Decodes a numeric payload as an order amount. NaN and +/-Infinity are not amounts: they throw
// cdp::Error 22023 (invalid_parameter_value) naming the value.
Decimal amount_from_numeric(const std::uint8_t* payload, std::size_t length);

// ---------------------------------------------------------------------------------------------
// cdp.rfm_agg state.
struct OrderStats {
  std::int64_t rows = 0;            // rows folded in (each with non-NULL ordered_at and amount)
  std::int64_t orders = 0;          // rows with a positive amount
  std::int64_t first_order_at = 0;  // over positive orders; meaningful only when orders > 0
  std::int64_t last_order_at = 0;
  Decimal monetary;                 // sum of all amounts
  Decimal positive_total;           // sum of positive amounts (numerator of the average order value)
};
static_assert(std::is_trivially_copyable_v<OrderStats>, "OrderStats is copied as plain bytes");
static_assert(std::is_trivially_destructible_v<OrderStats>, "OrderStats lives in palloc'd memory");

// An order time must be a real time: -infinity (INT64_MIN) throws cdp::Error 22008, as in the lifecycle
// aggregates and profiles (it would make recency infinite). +infinity never reaches cdp.rfm (after every
// as_of); cdp.rfm_agg keeps it as a time.
void check_order_time(std::int64_t ordered_at);

// Folds one row in. Throws cdp::Error 22008 for an ordered_at of -infinity and 22003 when a sum leaves the
// exact range (38 digits).
void add_order(OrderStats& stats, std::int64_t ordered_at, const Decimal& amount);
// Folds the rows of `from` into `into` (combine step of a parallel aggregate).
void merge(OrderStats& into, const OrderStats& from);

// Wire format between parallel workers: version byte, then fixed-width little-endian fields.
constexpr std::size_t kSerializedSize = 1 + 4 * 8 + 2 * (16 + 1);
void serialize(const OrderStats& stats, std::uint8_t (&out)[kSerializedSize]);
// Validates everything (length, version, ranges, consistency) and throws cdp::Error 22P03 on any
// inconsistency, so corrupt bytes end in an ERROR, never in undefined behaviour.
OrderStats deserialize(const std::uint8_t* bytes, std::size_t length);

// ---------------------------------------------------------------------------------------------
// cdp.rfm engine.

// Totals of one customer. 48 bytes; kept in fixed-size chunks so the table never moves them.
struct CustomerTotals {
  __int128 monetary_units = 0;      // monetary = monetary_units * 10^-monetary_scale
  std::int64_t key = 0;             // integer key, or the address of the key's bytes in the arena
  std::int64_t last_order_at = 0;   // over positive orders; meaningful only when orders > 0
  std::int64_t orders = 0;          // rows with a positive amount
  std::int32_t monetary_scale = 0;
  std::uint32_t key_length = 0;     // bytes keys only
  Decimal monetary() const { return Decimal(monetary_units, monetary_scale); }
  const char* key_bytes() const { return reinterpret_cast<const char*>(static_cast<std::intptr_t>(key)); }
};

// Flat open-addressing hash table from customer key to CustomerTotals. A table holds either
// integer keys or byte-string keys (never both). Memory is charged to the budget as it grows.
class CustomerTable {
 public:
  explicit CustomerTable(MemoryBudget& budget);
  ~CustomerTable();
  CustomerTable(const CustomerTable&) = delete;
  CustomerTable& operator=(const CustomerTable&) = delete;

  void add(std::int64_t key, std::int64_t ordered_at, const Decimal& amount) {
    fold(find_or_insert_integer(key), ordered_at, amount);
  }
  // The same for a batch of integer-keyed rows: the hash slots of the whole batch are prefetched
  // first, so the cache misses of a big table overlap instead of queueing one after another.
  void add_batch(const std::int64_t* keys, const std::int64_t* ordered_at, const Decimal* amounts, std::size_t count);
  void add(const char* key, std::size_t key_length, std::int64_t ordered_at, const Decimal& amount) {
    fold(find_or_insert_bytes(key, key_length), ordered_at, amount);
  }

  // Sizes the hash slots for about `customers` keys up front (saves rehashing; a hint only).
  void reserve(std::size_t customers);
  std::size_t size() const { return count_; }
  const CustomerTotals& at(std::size_t index) const { return chunks_[index >> kChunkBits][index & kChunkMask]; }
  // Bytes charged per customer by the table itself (entry + hash slots), not counting key bytes.
  static constexpr std::size_t kBytesPerCustomer = sizeof(CustomerTotals) + 2 * 8;

 private:
  static constexpr unsigned kChunkBits = 17;  // 6 MB chunks: a whole number of 2 MB huge pages
  static constexpr std::size_t kChunkSize = std::size_t{1} << kChunkBits;
  static constexpr std::size_t kChunkMask = kChunkSize - 1;
  static constexpr std::size_t kArenaBlock = std::size_t{1} << 20;

  CustomerTotals& entry(std::size_t index) { return chunks_[index >> kChunkBits][index & kChunkMask]; }
  static void fold(CustomerTotals& totals, std::int64_t ordered_at, const Decimal& amount);
  CustomerTotals& find_or_insert_integer(std::int64_t key);
  CustomerTotals& find_or_insert_bytes(const char* key, std::size_t length);
  CustomerTotals& append(std::uint64_t hash, std::size_t slot, std::int64_t key, std::uint32_t key_length);
  const char* copy_key(const char* key, std::size_t length);
  void grow() { rehash(slots_.size() * 2); }
  void rehash(std::size_t new_size);

  MemoryBudget& budget_;
  CustomerTotals* last_ = nullptr;  // the customer of the previous row
  std::size_t count_ = 0;
  // Slot: 0 = empty, else (hash tag << 32) | (entry index + 1).
  PagedArray<std::uint64_t> slots_;
  std::size_t slot_mask_ = 0;
  std::vector<PagedArray<CustomerTotals>> chunks_;
  bool bytes_keys_ = false;
  std::vector<std::unique_ptr<char[]>> arena_;  // key bytes, packed into kArenaBlock blocks
  std::size_t arena_used_ = 0;                   // bytes used in arena_.back()
  std::vector<std::unique_ptr<char[]>> big_keys_;
  std::size_t arena_bytes_ = 0;                  // charged to the budget for key storage
};

// R, F and M scores (1..bins) of every scored customer, in table order; index-aligned with
// `customers` (the table indexes of customers with at least one positive order).
struct RfmScores {
  std::vector<std::uint32_t> customers;
  std::vector<std::uint8_t> r, f, m;
};

// Scores last order time (later = higher), frequency and monetary with the core rule
// (cdp::rfm::score_tie_groups) over all customers that have a positive order.
RfmScores score_customers(const CustomerTable& table, int bins, Interrupts& interrupts, MemoryBudget& budget);

}  // namespace cdp::rfm
