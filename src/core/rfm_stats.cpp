#include "core/rfm_stats.h"

#include "core/error.h"
#include "core/rfm_scoring.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <limits>
#include <utility>

#include "core/no_postgres.h"

namespace cdp::rfm {

namespace {
constexpr std::size_t kHugePage = std::size_t{2} << 20;
}

void* map_huge_pages(std::size_t bytes, void*& mapping, std::size_t& mapped_bytes) {
  // Map 2 MB more than needed so the array can start on a huge-page boundary.
  const std::size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  mapped_bytes = rounded + kHugePage;
  mapping = mmap(nullptr, mapped_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    mapping = nullptr;
    mapped_bytes = 0;
    throw std::bad_alloc();
  }
  const std::uintptr_t start = (reinterpret_cast<std::uintptr_t>(mapping) + kHugePage - 1) & ~(kHugePage - 1);
  void* base = reinterpret_cast<void*>(start);
#ifdef MADV_HUGEPAGE
  madvise(base, rounded, MADV_HUGEPAGE);  // a hint: without transparent huge pages it is a no-op
#endif
  return base;
}

void unmap_pages(void* mapping, std::size_t mapped_bytes) noexcept {
  if (mapping != nullptr) munmap(mapping, mapped_bytes);
}

namespace {

constexpr std::uint8_t kFormatVersion = 1;

[[noreturn]] void corrupt(const std::string& what) {
  throw Error(sqlstate::kInvalidBinaryRepresentation, "invalid cdp.rfm_agg state: " + what);
}

void put_u64(std::uint8_t*& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) *out++ = static_cast<std::uint8_t>(value >> (8 * i));
}
std::uint64_t get_u64(const std::uint8_t*& in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<std::uint64_t>(*in++) << (8 * i);
  return value;
}
void put_decimal(std::uint8_t*& out, const Decimal& value) {
  const auto bits = static_cast<unsigned __int128>(value.units());
  put_u64(out, static_cast<std::uint64_t>(bits));
  put_u64(out, static_cast<std::uint64_t>(bits >> 64));
  *out++ = static_cast<std::uint8_t>(value.scale());
}
Decimal get_decimal(const std::uint8_t*& in, const char* name) {
  const std::uint64_t low = get_u64(in), high = get_u64(in);
  const int scale = *in++;
  if (scale > Decimal::kMaxScale) corrupt(std::string(name) + " has scale " + std::to_string(scale));
  const auto bits = (static_cast<unsigned __int128>(high) << 64) | low;
  return Decimal(static_cast<__int128>(bits), scale);
}

std::uint64_t mix64(std::uint64_t x) {  // MurmurHash3's finaliser: every input bit affects every output bit
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

// Adds `amount` to units/scale in place, exactly (rescales the smaller scale up).
void add_money(__int128& units, std::int32_t& scale, const Decimal& amount) {
  if (units == 0 && amount.scale() >= scale) {  // first amount (or a zero sum): adopt its scale
    units = amount.units();
    scale = amount.scale();
    return;
  }
  if (amount.scale() == scale) {
    __int128 sum;
    if (!__builtin_add_overflow(units, amount.units(), &sum)) {
      units = sum;
      return;
    }  // else Decimal's exact addition below reports the overflow
  }
  Decimal sum(units, scale);
  sum += amount;
  units = sum.units();
  scale = sum.scale();
}

// Sorts (value, position) pairs by value, forms tie groups and writes each position's score.
template <typename Value, typename Less>
void score_pairs(std::vector<std::pair<Value, std::uint32_t>>& pairs, int bins, std::vector<std::uint8_t>& out,
                 Interrupts& interrupts, Less less) {
  std::sort(pairs.begin(), pairs.end(), [&](const auto& a, const auto& b) { return less(a.first, b.first); });
  interrupts.poll();
  std::vector<std::size_t> group_sizes;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (i == 0 || less(pairs[i - 1].first, pairs[i].first)) group_sizes.push_back(0);
    ++group_sizes.back();
  }
  const std::vector<int> group_scores = score_tie_groups(group_sizes, bins);
  std::size_t group = 0, left_in_group = group_sizes.empty() ? 0 : group_sizes[0];
  for (const auto& pair : pairs) {
    if (left_in_group == 0) left_in_group = group_sizes[++group];
    --left_in_group;
    out[pair.second] = static_cast<std::uint8_t>(group_scores[group]);
  }
  interrupts.poll();
}

}  // namespace

namespace {

constexpr std::int64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
                                   10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000};

// The common case of money, decoded without 128-bit arithmetic: PostgreSQL's short numeric format
// (2-byte header) with at most 4 base-10000 digits, all within 10^14 units. Returns false to defer
// anything else to cdp::decode_numeric (which also rejects malformed bytes).
bool decode_short_money(const std::uint8_t* payload, std::size_t length, Decimal& out) {
  if (length < 2 || (length & 1) != 0 || length > 2 + 4 * 2) return false;
  std::uint16_t header;
  std::memcpy(&header, payload, 2);
  if ((header & 0xC000) != 0x8000) return false;
  const bool negative = (header & 0x2000) != 0;
  const int scale = (header & 0x1F80) >> 7;
  const int weight = (header & 0x0040) ? static_cast<int>(~0x003F | (header & 0x003F)) : (header & 0x003F);
  const int ndigits = static_cast<int>((length - 2) / 2);
  std::int64_t units = 0;
  for (int i = 0; i < ndigits; ++i) {
    std::int16_t digit;
    std::memcpy(&digit, payload + 2 + 2 * i, 2);
    if (digit < 0 || digit >= 10000) return false;
    const int exponent = 4 * (weight - i) + scale;
    if (exponent >= 0) {
      if (exponent > 14) return false;
      units += digit * kPow10[exponent];
    } else {
      if (exponent <= -4 || digit % kPow10[-exponent] != 0) return false;
      units += digit / kPow10[-exponent];
    }
  }
  out = Decimal(negative ? -units : units, scale);
  return true;
}

// Sorted (key, position) pairs -> each position's score. Keys are order-preserving unsigned images.
struct KeyedPosition {
  std::uint64_t first;   // order-preserving key
  std::uint32_t second;  // position in RfmScores::customers
};

std::uint64_t ordered_key(std::int64_t value) { return static_cast<std::uint64_t>(value) ^ (std::uint64_t{1} << 63); }

// LSD radix sort on the 64-bit key, 12 bits per pass, after subtracting the smallest key; passes
// whose digit is the same for every key are skipped (two years of microseconds need 4 passes, counts
// 1, cents 2). Linear time: scoring a million customers costs a few scans, not three comparison sorts.
void radix_sort(PagedArray<KeyedPosition>& items, PagedArray<KeyedPosition>& buffer, Interrupts& interrupts) {
  constexpr int kBits = 12, kDigits = (64 + kBits - 1) / kBits, kBuckets = 1 << kBits;
  const std::size_t n = items.size();
  if (n < 2) return;
  std::uint64_t lowest = items[0].first;
  for (const KeyedPosition& item : items) lowest = std::min(lowest, item.first);
  for (KeyedPosition& item : items) item.first -= lowest;
  std::vector<std::size_t> counts(static_cast<std::size_t>(kDigits) * kBuckets, 0);
  for (const KeyedPosition& item : items)
    for (int digit = 0; digit < kDigits; ++digit) ++counts[digit * kBuckets + ((item.first >> (kBits * digit)) & (kBuckets - 1))];
  for (int digit = 0; digit < kDigits; ++digit) {
    std::size_t* count = &counts[static_cast<std::size_t>(digit) * kBuckets];
    const int shift = kBits * digit;
    if (count[(items[0].first >> shift) & (kBuckets - 1)] == n) continue;
    std::size_t offset = 0;
    for (int bucket = 0; bucket < kBuckets; ++bucket) {
      const std::size_t c = count[bucket];
      count[bucket] = offset;
      offset += c;
    }
    for (const KeyedPosition& item : items) buffer[count[(item.first >> shift) & (kBuckets - 1)]++] = item;
    items.swap(buffer);
    interrupts.poll();
  }
  for (KeyedPosition& item : items) item.first += lowest;
}

void score_sorted(const PagedArray<KeyedPosition>& items, int bins, std::vector<std::uint8_t>& out) {
  std::vector<std::size_t> group_sizes;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i == 0 || items[i - 1].first != items[i].first) group_sizes.push_back(0);
    ++group_sizes.back();
  }
  const std::vector<int> group_scores = score_tie_groups(group_sizes, bins);
  std::size_t group = 0, left_in_group = group_sizes.empty() ? 0 : group_sizes[0];
  for (const KeyedPosition& item : items) {
    if (left_in_group == 0) left_in_group = group_sizes[++group];
    --left_in_group;
    out[item.second] = static_cast<std::uint8_t>(group_scores[group]);
  }
}

// Scores keyed positions. Narrow key ranges (order counts, most monetary sums in cents) are counted
// straight into a histogram, no sort at all; wide ones (timestamps) are radix sorted.
void score_keys(PagedArray<KeyedPosition>& items, PagedArray<KeyedPosition>& buffer, int bins,
                std::vector<std::uint8_t>& out, Interrupts& interrupts, MemoryBudget& budget) {
  const std::size_t n = items.size();
  if (n == 0) return;
  std::uint64_t lowest = items[0].first, highest = items[0].first;
  for (const KeyedPosition& item : items) {
    lowest = std::min(lowest, item.first);
    highest = std::max(highest, item.first);
  }
  const std::uint64_t range = highest - lowest;
  if (range < 4 * static_cast<std::uint64_t>(n)) {
    const std::size_t values = static_cast<std::size_t>(range) + 1;
    budget.charge(values * (sizeof(std::uint32_t) + 1));
    std::vector<std::uint32_t> counts(values, 0);
    for (const KeyedPosition& item : items) ++counts[item.first - lowest];
    std::vector<std::size_t> group_sizes;
    for (const std::uint32_t count : counts)
      if (count != 0) group_sizes.push_back(count);
    const std::vector<int> group_scores = score_tie_groups(group_sizes, bins);
    std::vector<std::uint8_t> score_of_value(values, 0);
    for (std::size_t value = 0, group = 0; value < values; ++value)
      if (counts[value] != 0) score_of_value[value] = static_cast<std::uint8_t>(group_scores[group++]);
    for (const KeyedPosition& item : items) out[item.second] = score_of_value[item.first - lowest];
    budget.release(values * (sizeof(std::uint32_t) + 1));
  } else {
    radix_sort(items, buffer, interrupts);
    score_sorted(items, bins, out);
  }
  interrupts.poll();
}

}  // namespace

Decimal amount_from_numeric(const std::uint8_t* payload, std::size_t length) {
  Decimal fast;
  if (decode_short_money(payload, length, fast)) return fast;
  const DecodedNumeric decoded = decode_numeric(payload, length);
  switch (decoded.kind) {
    case NumericKind::kFinite: return decoded.value;
    case NumericKind::kNaN:
      throw Error(sqlstate::kInvalidParameterValue, "order amount is NaN",
                  "RFM needs finite amounts: NaN cannot be summed into monetary value.",
                  "Exclude such rows, e.g. with a view that filters amount <> 'NaN'.");
    default:
      throw Error(sqlstate::kInvalidParameterValue,
                  std::string("order amount is ") +
                      (decoded.kind == NumericKind::kPositiveInfinity ? "Infinity" : "-Infinity"),
                  "RFM needs finite amounts: an infinite amount has no monetary value.",
                  "Exclude such rows, e.g. with a view that filters them out.");
  }
}

void check_order_time(std::int64_t ordered_at) {
  if (ordered_at == std::numeric_limits<std::int64_t>::min())
    throw Error("22008", "ordered_at must not be -infinity", "An order at -infinity has no recency.",
                "Exclude such rows, e.g. with a view that filters them out.");
}

void add_order(OrderStats& stats, std::int64_t ordered_at, const Decimal& amount) {
  check_order_time(ordered_at);
  stats.monetary += amount;
  if (amount.sign() > 0) {
    stats.positive_total += amount;
    if (stats.orders == 0 || ordered_at < stats.first_order_at) stats.first_order_at = ordered_at;
    if (stats.orders == 0 || ordered_at > stats.last_order_at) stats.last_order_at = ordered_at;
    ++stats.orders;
  }
  ++stats.rows;
}

void merge(OrderStats& into, const OrderStats& from) {
  if (from.rows == 0) return;
  into.monetary += from.monetary;
  if (from.orders > 0) {
    into.positive_total += from.positive_total;
    if (into.orders == 0 || from.first_order_at < into.first_order_at) into.first_order_at = from.first_order_at;
    if (into.orders == 0 || from.last_order_at > into.last_order_at) into.last_order_at = from.last_order_at;
    into.orders += from.orders;
  }
  into.rows += from.rows;
}

void serialize(const OrderStats& stats, std::uint8_t (&out)[kSerializedSize]) {
  std::uint8_t* p = out;
  *p++ = kFormatVersion;
  put_u64(p, static_cast<std::uint64_t>(stats.rows));
  put_u64(p, static_cast<std::uint64_t>(stats.orders));
  put_u64(p, static_cast<std::uint64_t>(stats.first_order_at));
  put_u64(p, static_cast<std::uint64_t>(stats.last_order_at));
  put_decimal(p, stats.monetary);
  put_decimal(p, stats.positive_total);
}

OrderStats deserialize(const std::uint8_t* bytes, std::size_t length) {
  if (length != kSerializedSize)
    corrupt(std::to_string(length) + " bytes, expected " + std::to_string(kSerializedSize));
  const std::uint8_t* p = bytes;
  if (*p != kFormatVersion) corrupt("unknown format version " + std::to_string(*p));
  ++p;
  OrderStats stats;
  stats.rows = static_cast<std::int64_t>(get_u64(p));
  stats.orders = static_cast<std::int64_t>(get_u64(p));
  stats.first_order_at = static_cast<std::int64_t>(get_u64(p));
  stats.last_order_at = static_cast<std::int64_t>(get_u64(p));
  stats.monetary = get_decimal(p, "monetary");
  stats.positive_total = get_decimal(p, "positive total");
  if (stats.rows < 0 || stats.orders < 0 || stats.orders > stats.rows) corrupt("inconsistent row counts");
  if (stats.orders == 0) {
    if (stats.first_order_at != 0 || stats.last_order_at != 0 || !stats.positive_total.is_zero())
      corrupt("order times or positive total without positive orders");
  } else if (stats.first_order_at > stats.last_order_at || stats.positive_total.sign() <= 0) {
    corrupt("first order after last order, or non-positive total of positive orders");
  }
  if (stats.rows == 0 && !stats.monetary.is_zero()) corrupt("monetary value without rows");
  return stats;
}

// ---------------------------------------------------------------------------------------------

CustomerTable::CustomerTable(MemoryBudget& budget) : budget_(budget) {
  const std::size_t initial_slots = 1024;
  budget_.charge(initial_slots * sizeof(std::uint64_t));
  PagedArray<std::uint64_t>(initial_slots).swap(slots_);
  slot_mask_ = initial_slots - 1;
}

CustomerTable::~CustomerTable() {
  budget_.release(slots_.size() * sizeof(std::uint64_t) + chunks_.size() * kChunkSize * sizeof(CustomerTotals) +
                  arena_bytes_);
}

void CustomerTable::fold(CustomerTotals& totals, std::int64_t ordered_at, const Decimal& amount) {
  add_money(totals.monetary_units, totals.monetary_scale, amount);
  if (amount.sign() > 0) {
    if (totals.orders == 0 || ordered_at > totals.last_order_at) totals.last_order_at = ordered_at;
    ++totals.orders;
  }
}

CustomerTotals& CustomerTable::find_or_insert_integer(std::int64_t key) {
  // Orders of one customer often sit next to each other (inserted together, or clustered).
  if (last_ != nullptr && last_->key == key) return *last_;
  const std::uint64_t hash = mix64(static_cast<std::uint64_t>(key));
  const std::uint64_t tag = hash >> 32;
  for (std::size_t slot = hash & slot_mask_;; slot = (slot + 1) & slot_mask_) {
    const std::uint64_t value = slots_[slot];
    if (value == 0) {
      return *(last_ = &append(hash, slot, key, 0));
    }
    if ((value >> 32) == tag) {
      CustomerTotals& totals = entry((value & 0xFFFFFFFFu) - 1);
      if (totals.key == key) return *(last_ = &totals);
    }
  }
}

void CustomerTable::add_batch(const std::int64_t* keys, const std::int64_t* ordered_at, const Decimal* amounts,
                              std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    __builtin_prefetch(&slots_[mix64(static_cast<std::uint64_t>(keys[i])) & slot_mask_]);
  for (std::size_t i = 0; i < count; ++i) fold(find_or_insert_integer(keys[i]), ordered_at[i], amounts[i]);
}

CustomerTotals& CustomerTable::find_or_insert_bytes(const char* key, std::size_t length) {
  if (length > std::numeric_limits<std::uint32_t>::max())
    throw Error(sqlstate::kProgramLimitExceeded, "customer key is too long");
  bytes_keys_ = true;
  if (last_ != nullptr && last_->key_length == length && std::memcmp(last_->key_bytes(), key, length) == 0)
    return *last_;
  const std::uint64_t hash = hash_bytes(key, length);
  const std::uint64_t tag = hash >> 32;
  for (std::size_t slot = hash & slot_mask_;; slot = (slot + 1) & slot_mask_) {
    const std::uint64_t value = slots_[slot];
    if (value == 0) {
      const char* stored = copy_key(key, length);
      return *(last_ = &append(hash, slot, static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(stored)),
                               static_cast<std::uint32_t>(length)));
    }
    if ((value >> 32) == tag) {
      CustomerTotals& totals = entry((value & 0xFFFFFFFFu) - 1);
      if (totals.key_length == length && std::memcmp(totals.key_bytes(), key, length) == 0)
        return *(last_ = &totals);
    }
  }
}

CustomerTotals& CustomerTable::append(std::uint64_t hash, std::size_t slot, std::int64_t key,
                                      std::uint32_t key_length) {
  if (count_ >= std::numeric_limits<std::uint32_t>::max() - 1)
    throw Error(sqlstate::kProgramLimitExceeded, "too many customers for cdp.rfm (limit 4294967294)");
  if ((count_ & kChunkMask) == 0) {
    budget_.charge(kChunkSize * sizeof(CustomerTotals));
    chunks_.emplace_back(kChunkSize);  // zero-filled: every CustomerTotals starts at zero
  }
  const std::size_t index = count_++;
  CustomerTotals& totals = entry(index);
  totals.key = key;  // before grow(): rehashing reads it
  totals.key_length = key_length;
  slots_[slot] = (hash >> 32 << 32) | (index + 1);
  if (count_ * 10 > slots_.size() * 7) grow();  // load factor <= 0.7 keeps linear probing short
  return totals;
}

const char* CustomerTable::copy_key(const char* key, std::size_t length) {
  static const char kEmpty[1] = {0};
  if (length == 0) return kEmpty;
  if (length > kArenaBlock / 4) {  // a long key gets a block of its own
    budget_.charge(length);
    arena_bytes_ += length;
    big_keys_.emplace_back(new char[length]);
    std::memcpy(big_keys_.back().get(), key, length);
    return big_keys_.back().get();
  }
  if (arena_.empty() || arena_used_ + length > kArenaBlock) {
    budget_.charge(kArenaBlock);
    arena_bytes_ += kArenaBlock;
    arena_.emplace_back(new char[kArenaBlock]);
    arena_used_ = 0;
  }
  char* stored = arena_.back().get() + arena_used_;
  std::memcpy(stored, key, length);
  arena_used_ += length;
  return stored;
}

void CustomerTable::reserve(std::size_t customers) {
  std::size_t size = slots_.size();
  while (size * 7 < customers * 10 && size < (std::size_t{1} << 32)) size *= 2;
  if (size > slots_.size()) rehash(size);
}

void CustomerTable::rehash(std::size_t new_size) {
  budget_.charge(new_size * sizeof(std::uint64_t));
  PagedArray<std::uint64_t> bigger(new_size);
  const std::size_t mask = new_size - 1;
  for (std::size_t i = 0; i < count_; ++i) {
    const CustomerTotals& totals = entry(i);
    const std::uint64_t hash = bytes_keys_ ? hash_bytes(totals.key_bytes(), totals.key_length)
                                           : mix64(static_cast<std::uint64_t>(totals.key));
    std::size_t slot = hash & mask;
    while (bigger[slot] != 0) slot = (slot + 1) & mask;
    bigger[slot] = (hash >> 32 << 32) | (i + 1);
  }
  budget_.release(slots_.size() * sizeof(std::uint64_t));
  slots_.swap(bigger);
  slot_mask_ = mask;
}

// ---------------------------------------------------------------------------------------------

RfmScores score_customers(const CustomerTable& table, int bins, Interrupts& interrupts, MemoryBudget& budget) {
  check_bins(bins);
  RfmScores scores;
  std::size_t scored = 0;
  int max_scale = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const CustomerTotals& totals = table.at(i);
    if (totals.orders > 0) {
      ++scored;
      max_scale = std::max(max_scale, static_cast<int>(totals.monetary_scale));
    }
  }
  const std::size_t kept_bytes = scored * (sizeof(std::uint32_t) + 3);
  budget.charge(kept_bytes);
  scores.customers.reserve(scored);
  for (std::size_t i = 0; i < table.size(); ++i)
    if (table.at(i).orders > 0) scores.customers.push_back(static_cast<std::uint32_t>(i));
  scores.r.resize(scored);
  scores.f.resize(scored);
  scores.m.resize(scored);
  interrupts.poll();

  const std::size_t pair_bytes = 2 * scored * sizeof(KeyedPosition);  // items + radix buffer
  budget.charge(pair_bytes);
  PagedArray<KeyedPosition> items(scored), buffer(scored);
  // Recency: a later last order scores higher.
  for (std::size_t k = 0; k < scored; ++k)
    items[k] = {ordered_key(table.at(scores.customers[k]).last_order_at), static_cast<std::uint32_t>(k)};
  score_keys(items, buffer, bins, scores.r, interrupts, budget);
  // Frequency.
  for (std::size_t k = 0; k < scored; ++k)
    items[k] = {ordered_key(table.at(scores.customers[k]).orders), static_cast<std::uint32_t>(k)};
  score_keys(items, buffer, bins, scores.f, interrupts, budget);
  // Monetary, exact: at one common scale as 64-bit integers when every value fits (the usual case),
  // else as 128-bit integers, else (beyond 38 digits at that scale) by exact Decimal comparison.
  bool fits_64 = true, fits_128 = true;
  for (std::size_t k = 0; k < scored && fits_64; ++k) {
    const CustomerTotals& totals = table.at(scores.customers[k]);
    __int128 units;
    if (totals.monetary_scale == max_scale) {
      units = totals.monetary_units;
    } else {
      try {
        units = totals.monetary().rescaled(max_scale).units();
      } catch (const Error&) {
        fits_64 = fits_128 = false;
        break;
      }
    }
    if (units < std::numeric_limits<std::int64_t>::min() || units > std::numeric_limits<std::int64_t>::max()) {
      fits_64 = false;
      break;
    }
    items[k] = {ordered_key(static_cast<std::int64_t>(units)), static_cast<std::uint32_t>(k)};
  }
  if (fits_64) {
    score_keys(items, buffer, bins, scores.m, interrupts, budget);
  }
  PagedArray<KeyedPosition>().swap(items);
  PagedArray<KeyedPosition>().swap(buffer);
  budget.release(pair_bytes);
  if (!fits_64) {
    const auto by_value = [](const auto& a, const auto& b) { return a < b; };
    if (fits_128) {
      const std::size_t bytes = scored * sizeof(std::pair<__int128, std::uint32_t>);
      budget.charge(bytes);
      std::vector<std::pair<__int128, std::uint32_t>> pairs(scored);
      for (std::size_t k = 0; k < scored && fits_128; ++k) {
        try {
          pairs[k] = {table.at(scores.customers[k]).monetary().rescaled(max_scale).units(),
                      static_cast<std::uint32_t>(k)};
        } catch (const Error&) {
          fits_128 = false;
        }
      }
      if (fits_128) score_pairs(pairs, bins, scores.m, interrupts, by_value);
      budget.release(bytes);
    }
    if (!fits_128) {
      const std::size_t bytes = scored * sizeof(std::pair<Decimal, std::uint32_t>);
      budget.charge(bytes);
      std::vector<std::pair<Decimal, std::uint32_t>> exact(scored);
      for (std::size_t k = 0; k < scored; ++k)
        exact[k] = {table.at(scores.customers[k]).monetary(), static_cast<std::uint32_t>(k)};
      score_pairs(exact, bins, scores.m, interrupts,
                  [](const Decimal& a, const Decimal& b) { return a.compare(b) < 0; });
      budget.release(bytes);
    }
  }
  return scores;
}

}  // namespace cdp::rfm
