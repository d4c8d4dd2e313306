// Exact numeric ordering on PostgreSQL's numeric payload; mirrors cmp_var_common/cmp_abs_common
// of PostgreSQL's numeric.c so that ties and order match the server's own comparison.
#include "core/numeric_order.h"

#include "core/error.h"

#include <cstdint>
#include <cstring>

#include "core/no_postgres.h"

namespace cdp {
namespace {

constexpr std::uint16_t kSignMask = 0xC000;
constexpr std::uint16_t kNegative = 0x4000;
constexpr std::uint16_t kShort = 0x8000;
constexpr std::uint16_t kSpecial = 0xC000;
constexpr std::uint16_t kExtSignMask = 0xF000;
constexpr std::uint16_t kNaN = 0xC000;
constexpr std::uint16_t kPosInf = 0xD000;
constexpr std::uint16_t kNegInf = 0xF000;
constexpr std::uint16_t kShortSignMask = 0x2000;
constexpr std::uint16_t kShortWeightSignMask = 0x0040;
constexpr std::uint16_t kShortWeightMask = 0x003F;

[[noreturn]] void malformed() {
  throw Error(sqlstate::kInvalidBinaryRepresentation, "malformed numeric value");
}

std::int16_t digit_at(const std::uint8_t* digits, int i) {
  std::int16_t digit;
  std::memcpy(&digit, digits + static_cast<std::size_t>(i) * sizeof digit, sizeof digit);
  return digit;
}

int compare_abs(const NumericOrderKey& a, const NumericOrderKey& b) {
  int weight1 = a.weight, weight2 = b.weight;
  int i1 = 0, i2 = 0;
  while (weight1 > weight2 && i1 < a.ndigits) {
    if (digit_at(a.digits, i1++) != 0) return 1;
    --weight1;
  }
  while (weight2 > weight1 && i2 < b.ndigits) {
    if (digit_at(b.digits, i2++) != 0) return -1;
    --weight2;
  }
  if (weight1 == weight2) {
    while (i1 < a.ndigits && i2 < b.ndigits) {
      const int difference = digit_at(a.digits, i1++) - digit_at(b.digits, i2++);
      if (difference != 0) return difference > 0 ? 1 : -1;
    }
  }
  while (i1 < a.ndigits)
    if (digit_at(a.digits, i1++) != 0) return 1;
  while (i2 < b.ndigits)
    if (digit_at(b.digits, i2++) != 0) return -1;
  return 0;
}

constexpr std::int64_t kNegativeInfinityHead = INT64_MIN;
constexpr std::int64_t kPositiveInfinityHead = INT64_MAX - 1;
constexpr std::int64_t kNaNHead = INT64_MAX;

// A finite non-zero value's magnitude is (weight, d0, d1, d2) after skipping leading zero digits,
// packed as (weight + 2^17) << 42 | d0 << 28 | d1 << 14 | d2 (each digit < 2^14); the head is
// magnitude + 1, negated for negative values, 0 for zero. Heads that differ order their values
// exactly; equal heads need the full comparison unless both hold every digit. Returns false on a
// digit out of range.
bool set_head(NumericOrderKey& key, bool negative) {
  int first = 0;
  long weight = key.weight;
  while (first < key.ndigits && digit_at(key.digits, first) == 0) {
    ++first;
    --weight;
  }
  if (first == key.ndigits) {  // zero, however it is stored
    key.head = 0;
    return true;
  }
  std::int64_t magnitude = (weight + (1L << 17)) << 42;
  for (int k = 0; k < 3; ++k) {
    const int i = first + k;
    const std::int64_t digit = i < key.ndigits ? digit_at(key.digits, i) : 0;
    if (digit < 0 || digit >= 10000) return false;
    magnitude |= digit << (28 - 14 * k);
  }
  for (int i = first + 3; i < key.ndigits; ++i) {
    const int digit = digit_at(key.digits, i);
    if (digit < 0 || digit >= 10000) return false;
    if (digit != 0) key.head_is_exact = false;
  }
  key.head = negative ? -(magnitude + 1) : magnitude + 1;
  return true;
}

NumericOrderKey invalid_key() {
  NumericOrderKey key;
  key.ndigits = -1;
  return key;
}

}  // namespace

NumericKind NumericOrderKey::kind() const {
  switch (head) {
    case kNegativeInfinityHead: return NumericKind::kNegativeInfinity;
    case kPositiveInfinityHead: return NumericKind::kPositiveInfinity;
    case kNaNHead: return NumericKind::kNaN;
    default: return NumericKind::kFinite;
  }
}

NumericOrderKey numeric_order_key_nothrow(const std::uint8_t* payload, std::size_t length) noexcept {
  if (length < sizeof(std::uint16_t)) return invalid_key();
  std::uint16_t header;
  std::memcpy(&header, payload, sizeof header);
  NumericOrderKey key;
  if ((header & kSignMask) == kSpecial) {
    switch (header & kExtSignMask) {
      case kNaN: key.head = kNaNHead; return key;
      case kPosInf: key.head = kPositiveInfinityHead; return key;
      case kNegInf: key.head = kNegativeInfinityHead; return key;
      default: return invalid_key();
    }
  }
  bool negative;
  std::size_t header_size;
  if ((header & kSignMask) == kShort) {
    negative = (header & kShortSignMask) != 0;
    key.weight = static_cast<std::int16_t>((header & kShortWeightSignMask) ? (~kShortWeightMask | (header & kShortWeightMask))
                                                                          : (header & kShortWeightMask));
    header_size = sizeof(std::uint16_t);
  } else {
    if (length < 2 * sizeof(std::uint16_t)) return invalid_key();
    negative = (header & kSignMask) == kNegative;
    std::memcpy(&key.weight, payload + sizeof(std::uint16_t), sizeof key.weight);
    header_size = 2 * sizeof(std::uint16_t);
  }
  if ((length - header_size) % sizeof(std::int16_t) != 0) return invalid_key();
  key.ndigits = static_cast<std::int32_t>((length - header_size) / sizeof(std::int16_t));
  key.digits = payload + header_size;
  if (!set_head(key, negative)) return invalid_key();
  return key;
}

NumericOrderKey numeric_order_key(const std::uint8_t* payload, std::size_t length) {
  NumericOrderKey key = numeric_order_key_nothrow(payload, length);
  if (!key.valid()) malformed();
  return key;
}

int compare_numeric(const NumericOrderKey& a, const NumericOrderKey& b) {
  if (a.head != b.head) return a.head < b.head ? -1 : 1;
  // Equal heads: same kind and sign. Specials and zero have no digits to compare.
  if (a.head_is_exact && b.head_is_exact) return 0;
  return a.head > 0 ? compare_abs(a, b) : compare_abs(b, a);
}

}  // namespace cdp
